//! The SMTP submission session driven the way the server drives it, with arbitrary client bytes
//! (command lines, SASL responses, DATA and BDAT bodies) and canned answers to its actions.
//!
//! Input: one options byte, one chunk-size byte, then what the client sends, fed in chunks of
//! that size (0: all at once) so that lines and bodies arrive split anywhere.
//! Options: bit 0 implicit TLS (465) or STARTTLS required (587); bit 1 a channel binding;
//! bits 2-3 the delivery outcome; bits 4-5 both set: the TLS handshake fails; bits 6-7 how
//! the connection ends (peer closes, timeout, shutdown, or nothing more).
//!
//! Besides "no panic", it checks what the session promises: nothing but the STARTTLS gate's
//! commands act before TLS on 587, mail is only ever sent as the authenticated account, to
//! at most `max_recipients`, no bigger than the limit, and every reply line is well formed.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use portcullis_proto_smtp::{
    Action, AuthOutcome, Config, DeliveryOutcome, Peer, Principal, RecipientOutcome, Role, Session,
};
use portcullis_sasl::{Attempt, ScramKeys, ScramProof};

const ALICE: &str = "alice@example.org";
/// Alice's alias: she may send as it too.
const ALIAS: &str = "sales@example.org";
const PASSWORD: &str = "secret";
const MAX_MESSAGE: u64 = 2000;
const MAX_RECIPIENTS: usize = 3;

fn config(implicit_tls: bool) -> Config {
    Config {
        hostname: "mail.example.org".into(),
        role: Role::Submission,
        implicit_tls,
        max_message_size: MAX_MESSAGE,
        max_recipients: MAX_RECIPIENTS,
        max_line_length: 512,
        max_commands: 200,
        max_auth_failures: 3,
        max_errors: 20,
    }
}

struct Driver {
    s: Session,
    tls: bool,
    tls_fails: bool,
    delivery: DeliveryOutcome,
    closed: bool,
    /// Bytes fed since the last `Read`: bounds the work one read may cause.
    budget: usize,
}

impl Driver {
    /// Answers actions until the session wants input or closes.
    fn run(&mut self) {
        let mut steps = 0usize;
        loop {
            steps += 1;
            assert!(steps <= 4 * self.budget + 64, "the session keeps acting without input");
            let action = self.s.next_action();
            if !self.tls {
                assert!(
                    !matches!(
                        action,
                        Action::ScramLookup { .. }
                            | Action::Authenticate { .. }
                            | Action::LookupRecipient { .. }
                            | Action::Deliver(_)
                    ),
                    "{action:?} before STARTTLS"
                );
            }
            match action {
                Action::Read => break,
                Action::Close => {
                    self.closed = true;
                    break;
                }
                Action::StartTls => {
                    assert!(!self.tls, "STARTTLS inside TLS");
                    check_replies(&self.s.take_output());
                    if self.tls_fails {
                        self.closed = true;
                        break;
                    }
                    self.tls = true;
                    self.s.tls_established("TLSv1.3 TLS13_AES_128_GCM_SHA256".into(), Some(vec![7; 32]));
                }
                Action::ScramLookup { username } => {
                    let keys = if username == ALICE {
                        ScramKeys::derive_with_salt(PASSWORD, b"salt", 1).unwrap()
                    } else {
                        ScramKeys::decoy(&username, b"decoy", 1)
                    };
                    self.s.scram_keys(keys);
                }
                Action::Authenticate { attempt, .. } => {
                    let (outcome, principal) = match attempt {
                        Attempt::Password(c) if c.username.starts_with("temp") => (AuthOutcome::TemporaryFailure, None),
                        Attempt::Password(c)
                            if c.username.eq_ignore_ascii_case(ALICE) && &c.password[..] == PASSWORD.as_bytes() =>
                        {
                            (AuthOutcome::Success, Some(alice()))
                        }
                        Attempt::Scram { username, proof: ScramProof::Valid, .. } if username == ALICE => {
                            (AuthOutcome::Success, Some(alice()))
                        }
                        _ => (AuthOutcome::InvalidCredentials, None),
                    };
                    self.s.auth_result(outcome, principal);
                }
                Action::LookupRecipient { address } => {
                    let lower = address.to_lowercase();
                    let outcome = match lower.split('@').next().unwrap_or("") {
                        "alice" | "bob" => RecipientOutcome::Local(1 + lower.len() as i64 % 2),
                        "full" => RecipientOutcome::MailboxFull,
                        "temp" => RecipientOutcome::TemporaryFailure,
                        _ if lower.ends_with("@example.org") => RecipientOutcome::UnknownUser,
                        _ => RecipientOutcome::NotLocal,
                    };
                    self.s.recipient_result(outcome);
                }
                Action::Deliver(envelope) => {
                    let from = envelope.from.to_lowercase();
                    assert!(from == ALICE || from == ALIAS, "mail sent as someone else: {from}");
                    assert!(!envelope.recipients.is_empty() && envelope.recipients.len() <= MAX_RECIPIENTS);
                    // Bare LF becomes CRLF, and the trace headers are added.
                    assert!(envelope.data.len() as u64 <= 2 * MAX_MESSAGE + 4096, "{}", envelope.data.len());
                    self.s.delivery_result(self.delivery.clone());
                }
                Action::Report(_) => {}
                // Port 25's actions; this target drives the submission role (mx_session drives 25).
                Action::CheckClient | Action::CheckSender { .. } => panic!("{action:?} on a submission port"),
            }
        }
        check_replies(&self.s.take_output());
    }
}

fn alice() -> Principal {
    Principal { account: 1, address: ALICE.into(), aliases: vec![ALIAS.into()] }
}

/// Every reply line is "NNN " or "NNN-" and text, ended by CRLF, with no stray CR or LF.
fn check_replies(output: &[u8]) {
    if output.is_empty() {
        return;
    }
    assert!(output.ends_with(b"\r\n"), "unterminated reply {:?}", String::from_utf8_lossy(output));
    for line in output[..output.len() - 1].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or_else(|| panic!("bare LF in {output:?}"));
        assert!(
            line.len() >= 4
                && line[..3].iter().all(u8::is_ascii_digit)
                && matches!(line[3], b' ' | b'-')
                && !line.contains(&b'\r'),
            "malformed reply line {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let [options, chunk, input @ ..] = data else { return };
    let implicit_tls = options & 1 != 0;
    let peer = Peer {
        ip: "192.0.2.7".parse().unwrap(),
        session_id: "F1".into(),
        tls: implicit_tls.then(|| "TLSv1.3 TLS13_AES_128_GCM_SHA256".into()),
        channel_binding: (options & 2 != 0).then(|| vec![7; 32]),
        name: None,
    };
    let delivery = match (options >> 2) & 3 {
        0 => DeliveryOutcome::Stored,
        1 => DeliveryOutcome::MailboxFull("bob@example.org".into()),
        2 => DeliveryOutcome::SendingLimit,
        _ => DeliveryOutcome::TemporaryFailure,
    };
    let mut d = Driver {
        s: Session::with_clock(config(implicit_tls), peer, || 1_764_291_600),
        tls: implicit_tls,
        tls_fails: options & 0x30 == 0x30,
        delivery,
        closed: false,
        budget: 0,
    };
    d.run();
    let chunk = if *chunk == 0 { input.len().max(1) } else { *chunk as usize };
    for piece in input.chunks(chunk) {
        if d.closed {
            return;
        }
        d.s.feed(piece);
        d.budget = piece.len();
        d.run();
    }
    if d.closed {
        return;
    }
    match options >> 6 {
        0 => d.s.peer_closed(),
        1 => d.s.timed_out(),
        2 => d.s.shutting_down(),
        _ => return,
    }
    d.budget = 0;
    d.run();
    assert!(d.closed, "the session did not close");
});
