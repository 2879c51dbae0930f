//! Every SASL exchange (PLAIN, LOGIN, SCRAM-SHA-256, SCRAM-SHA-256-PLUS) through
//! `Exchange::start`, `step` and `keys`, as the protocols drive it.
//!
//! Input: an options byte, then lines separated by LF.
//! Options: bits 0-1 the mechanism; bit 2 the connection has a channel binding; bit 3 the first
//! line is the initial response (SASL-IR); bit 5 `keys` is called out of turn first.
//! Bit 4 selects the mode:
//! - raw (0): the lines are the client's responses, as sent (base64, "=" or "*"); SCRAM keys
//!   are real ones for "user" and decoys for anyone else. No proof may be valid then.
//! - scripted (1, SCRAM only): a client written here from RFC 5802 runs the exchange with the
//!   user name, authzid, nonce and extension taken from the lines, and bits 6-7 choose the
//!   right password, a wrong one, another connection's channel binding, or an extension in
//!   client-final; the outcome must be exactly the expected one.
#![no_main]
#![forbid(unsafe_code)]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use portcullis_sasl::{encode, Attempt, Exchange, Mechanism, SaslError, ScramKeys, ScramProof, Step};
use sha2::{Digest, Sha256};

const PASSWORD: &str = "pencil";
const SALT: &[u8] = b"fuzz-salt-16byte";
const ITERATIONS: u32 = 2;
const BINDING: [u8; 32] = [7; 32];

fn keys_for(username: &str) -> ScramKeys {
    if username == "user" {
        ScramKeys::derive_with_salt(PASSWORD, SALT, ITERATIONS).unwrap()
    } else {
        ScramKeys::decoy(username, b"decoy", ITERATIONS)
    }
}

fn raw(mechanism: Mechanism, options: u8, lines: &mut dyn Iterator<Item = &[u8]>) {
    let binding = (options & 4 != 0).then_some(&BINDING[..]);
    let initial = if options & 8 != 0 { lines.next() } else { None };
    let (mut exchange, mut step) = Exchange::start(mechanism, initial, binding);
    assert_eq!(exchange.mechanism(), mechanism);
    if options & 32 != 0 {
        let out_of_turn = exchange.keys(keys_for("user"));
        let scram = matches!(mechanism, Mechanism::ScramSha256 | Mechanism::ScramSha256Plus);
        assert!(scram || matches!(out_of_turn, Step::Failed(SaslError::Malformed)), "{out_of_turn:?}");
    }
    for _ in 0..16 {
        step = match step {
            Step::Challenge(challenge) => {
                if mechanism == Mechanism::Login {
                    assert!(challenge == b"Username:" || challenge == b"Password:");
                }
                let _ = encode(&challenge);
                match lines.next() {
                    Some(line) => exchange.step(line),
                    None => return,
                }
            }
            Step::Lookup { username } => {
                assert!(matches!(mechanism, Mechanism::ScramSha256 | Mechanism::ScramSha256Plus));
                assert!(!username.is_empty() && username.len() <= 512);
                exchange.keys(keys_for(&username))
            }
            Step::Attempt(Attempt::Password(c)) => {
                assert!(matches!(mechanism, Mechanism::Plain | Mechanism::Login));
                assert!(!c.username.is_empty() && c.username.len() <= 255 && !c.username.contains('\0'));
                assert!(c.authzid.len() <= 255 && !c.authzid.contains('\0'));
                assert!(c.password.len() <= 255);
                // RFC 4616 forbids NUL in a PLAIN password; LOGIN has no grammar to say so.
                assert!(mechanism == Mechanism::Login || !c.password.contains(&0));
                return;
            }
            Step::Attempt(Attempt::Scram { proof, .. }) => {
                assert!(matches!(mechanism, Mechanism::ScramSha256 | Mechanism::ScramSha256Plus));
                assert_ne!(proof, ScramProof::Valid, "a SCRAM proof forged without the password");
                return;
            }
            Step::Failed(_) => return,
        };
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn text(field: Option<&[u8]>, max: usize) -> String {
    String::from_utf8_lossy(field.unwrap_or_default()).chars().take(max).collect()
}

/// A correct client (RFC 5802, RFC 9266) with fuzzed fields; the server must agree with it.
fn scripted(plus: bool, options: u8, lines: &mut dyn Iterator<Item = &[u8]>) {
    let mechanism = if plus { Mechanism::ScramSha256Plus } else { Mechanism::ScramSha256 };
    let username = text(lines.next(), 64);
    let authzid = text(lines.next(), 64);
    // A comma would end the nonce (the rest is an extension): the client sends none.
    let nonce: String = text(lines.next(), 64).split(',').next().unwrap_or_default().to_string();
    let extension = text(lines.next(), 64);
    let variant = options >> 6;
    let have_binding = options & 4 != 0;
    let gs2 = match (plus, authzid.is_empty()) {
        (true, true) => "p=tls-exporter,,".to_string(),
        (true, false) => format!("p=tls-exporter,a={},", escape(&authzid)),
        (false, true) => "n,,".to_string(),
        (false, false) => format!("n,a={},", escape(&authzid)),
    };
    let first_bare = format!("n={},r={nonce}", escape(&username));
    let (mut exchange, step) = Exchange::start(mechanism, None, have_binding.then_some(&BINDING[..]));
    assert!(matches!(step, Step::Challenge(ref c) if c.is_empty()), "{step:?}");

    let step = exchange.step(encode(format!("{gs2}{first_bare}").as_bytes()).as_bytes());
    let nonce_ok = !nonce.is_empty() && nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',');
    if username.is_empty() || !nonce_ok || (plus && !have_binding) {
        assert!(matches!(step, Step::Failed(_)), "{step:?}");
        return;
    }
    match step {
        Step::Lookup { username: looked_up } => assert_eq!(looked_up, username),
        other => panic!("{other:?}"),
    }
    let Step::Challenge(server_first) = exchange.keys(keys_for(&username)) else { panic!("no server-first") };
    let server_first = String::from_utf8(server_first).unwrap();
    let mut fields = server_first.split(',');
    let combined = fields.next().unwrap().strip_prefix("r=").unwrap();
    assert!(combined.starts_with(&nonce) && combined.len() > nonce.len());
    let salt = BASE64.decode(fields.next().unwrap().strip_prefix("s=").unwrap()).unwrap();
    let iterations: u32 = fields.next().unwrap().strip_prefix("i=").unwrap().parse().unwrap();
    assert_eq!(iterations, ITERATIONS);

    let password = if variant == 1 { "pencils" } else { PASSWORD };
    let salted: [u8; 32] = pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), &salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let stored: [u8; 32] = Sha256::digest(client_key).into();
    let mut channel = gs2.as_bytes().to_vec();
    if plus {
        channel.extend_from_slice(if variant == 2 { &[9; 32] } else { &BINDING });
    }
    let mut without_proof = format!("c={},r={combined}", BASE64.encode(channel));
    if variant == 3 && !extension.is_empty() {
        without_proof = format!("{without_proof},{extension}");
    }
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let signature = hmac(&stored, auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
    let client_final = format!("{without_proof},p={}", BASE64.encode(proof));
    let step = exchange.step(encode(client_final.as_bytes()).as_bytes());

    let known = username == "user";
    let expected = match variant {
        _ if !known => ScramProof::Wrong,
        1 => ScramProof::Wrong,
        2 if plus => ScramProof::BindingMismatch,
        _ => ScramProof::Valid,
    };
    if expected != ScramProof::Valid {
        match step {
            Step::Attempt(Attempt::Scram { proof, username: who, .. }) => {
                assert_eq!(proof, expected);
                assert_eq!(who, username);
            }
            other => panic!("expected {expected:?}, got {other:?}"),
        }
        return;
    }
    let Step::Challenge(server_final) = step else { panic!("expected server-final, got {step:?}") };
    let server_key = hmac(&salted, b"Server Key");
    let expected_final = format!("v={}", BASE64.encode(hmac(&server_key, auth_message.as_bytes())));
    assert_eq!(server_final, expected_final.into_bytes());
    match exchange.step(b"=") {
        Step::Attempt(Attempt::Scram { proof: ScramProof::Valid, username: who, authzid: az }) => {
            assert_eq!((who, az), (username, authzid));
        }
        other => panic!("expected success, got {other:?}"),
    }
    // The exchange is over: anything more fails.
    assert!(matches!(exchange.step(b"="), Step::Failed(_)));
}

fuzz_target!(|data: &[u8]| {
    let [options, rest @ ..] = data else { return };
    let mechanism = match options & 3 {
        0 => Mechanism::Plain,
        1 => Mechanism::Login,
        2 => Mechanism::ScramSha256,
        _ => Mechanism::ScramSha256Plus,
    };
    let mut lines = rest.split(|&b| b == b'\n');
    match mechanism {
        Mechanism::ScramSha256 | Mechanism::ScramSha256Plus if options & 16 != 0 => {
            scripted(mechanism == Mechanism::ScramSha256Plus, *options, &mut lines)
        }
        _ => raw(mechanism, *options, &mut lines),
    }
    assert_eq!(Mechanism::from_name(mechanism.name()), Some(mechanism));
});
