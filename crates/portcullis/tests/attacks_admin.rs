//! Attacks from an outside review (issue 13, items 8-10: the admin listener, SCRAM and TOTP, the
//! sessions of removed accounts), each performed against the real server: before
//! the fix each of these succeeded; now each must fail. One section per finding.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::totp::{enable_totp, totp_code};
use common::*;
use serde_json::json;

const ADMIN: &str = "postmaster@example.test";
const CAROL: &str = "carol@example.test";

/// Failed logins answered at once, so that the tests do not wait out the guard's delays.
const QUICK_GUARD: &str = "[guard]\nfailure_delay = \"1ms\"\nmax_failure_delay = \"2ms\"\n";

fn quick(extra: &[&str]) -> Settings {
    let mut sections = vec![QUICK_GUARD.to_string()];
    sections.extend(extra.iter().map(|s| s.to_string()));
    Settings { sections, ..Settings::default() }
}

// ---- item 8: the admin listener goes through the guard ----------------------------------

/// How the admin listener dealt with a request.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Status(u16),
    /// Closed without a word (a refused connection).
    Closed,
    /// Nothing came within the read timeout: neither an answer nor a refusal.
    Silent,
}

/// One request from `source` to the admin listener, with `content_type` on the body.
fn admin_request(
    server: &TestServer,
    source: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
    content_type: Option<&str>,
) -> Answer {
    let Ok(mut tcp) = server.tcp_with(source, "admin", None) else { return Answer::Closed };
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(content_type) = content_type {
        request.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let _ = tcp.write_all(request.as_bytes());
    read_answer(&mut tcp)
}

fn read_answer(tcp: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tcp.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if raw.is_empty() {
                    return Answer::Silent;
                }
                break;
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&raw);
    match text.split(' ').nth(1).and_then(|s| s.parse().ok()) {
        Some(status) => Answer::Status(status),
        None => Answer::Closed,
    }
}

/// Whether the server closes `tcp` (EOF or reset) within `limit`, rather than leaving it be.
fn closed_within(tcp: &mut TcpStream, limit: Duration) -> bool {
    tcp.set_read_timeout(Some(limit)).unwrap();
    let mut chunk = [0u8; 4096];
    loop {
        match tcp.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    }
}

fn status_from(server: &TestServer, source: &str) -> Answer {
    admin_request(server, source, "GET", "/api/v1/status", Some(&server.admin_token()), "", None)
}

/// Before: a banned address, and a 4th connection from one address, were served (the admin
/// listener had its own 64 slots and asked no one); an open connection outlived the ban.
#[test]
fn the_admin_listener_refuses_banned_sources_and_caps_each_source() {
    let server = TestServer::start_with(Settings { limits: vec!["max_connections_per_ip = 3".into()], ..quick(&[]) });
    assert_eq!(status_from(&server, "127.0.0.50"), Answer::Status(200));
    let mut open = server.tcp_with("127.0.0.50", "admin", None).unwrap();
    let (status, _) = server.api("POST", "/api/v1/bans", Some(json!({"network": "127.0.0.50", "duration": "1h"})));
    assert_eq!(status, 201);
    assert!(closed_within(&mut open, Duration::from_secs(5)), "the ban closes the open admin connection");
    assert_eq!(status_from(&server, "127.0.0.50"), Answer::Closed, "a banned address is refused");
    let refused = server.wait_event(|e| e["event"] == "connection_refused" && e["listener"] == "admin");
    assert_eq!(refused["reason"], "banned");

    // Three connections from one address hold its share; a fourth is refused, others are not.
    let held: Vec<TcpStream> = (0..3).map(|_| server.tcp_with("127.0.0.52", "admin", None).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status_from(&server, "127.0.0.52"), Answer::Closed);
    server.wait_event(|e| {
        e["event"] == "connection_refused"
            && e["listener"] == "admin"
            && e["reason"] == "too_many_connections_from_peer"
    });
    assert_eq!(status_from(&server, "127.0.0.53"), Answer::Status(200));
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status_from(&server, "127.0.0.52"), Answer::Status(200), "the slots come back");
}

/// Before: `[firewall.admin]` was an unknown key (the server did not start), and the global
/// lists did not apply to the admin listener.
#[test]
fn the_admin_listener_has_its_own_firewall_section() {
    let server = TestServer::start_with(quick(&["[firewall.admin]\ndeny = [\"127.0.0.51\"]\n"]));
    assert_eq!(status_from(&server, "127.0.0.51"), Answer::Closed);
    let refused = server.wait_event(|e| e["event"] == "connection_refused" && e["listener"] == "admin");
    assert_eq!(refused["reason"], "firewall");
    assert_eq!(status_from(&server, "127.0.0.1"), Answer::Status(200));
    let mut imap = server.connect_from("127.0.0.51", "imaps").upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(imap.line().starts_with("* OK"), "the section is the admin listener's only");
}

/// Before: failed bearer tokens and sign-ins were logged but never counted, so a burst of
/// them raised no alert.
#[test]
fn failed_admin_authentication_reaches_the_anomaly_detector() {
    let server = TestServer::start_with(quick(&[
        "[alerts]\nbucket = \"300ms\"\nwarmup_buckets = 2\nfloor = 5.0\ndeviations = 2.0\n",
        &format!("[admin]\naccounts = [\"{ADMIN}\"]\n"),
    ]));
    // Quiet buckets first: the baseline.
    std::thread::sleep(Duration::from_millis(1500));
    for _ in 0..5 {
        let body = json!({"account": ADMIN, "password": "wrong-wrong-wrong", "totp": "123456"}).to_string();
        let answer =
            admin_request(&server, "127.0.0.54", "POST", "/api/v1/signin", None, &body, Some("application/json"));
        assert_eq!(answer, Answer::Status(401));
    }
    for _ in 0..25 {
        assert_eq!(
            admin_request(&server, "127.0.0.55", "GET", "/api/v1/status", Some("not-the-token"), "", None),
            Answer::Status(401)
        );
    }
    let alert = server.wait_event(|e| e["event"] == "alert_raised" && e["kind"] == "auth_failure_spike");
    assert!(alert["observed"].as_f64().unwrap() >= 20.0, "{alert}");
}

fn sign_in(server: &TestServer, source: &str, password: &str, code: &str) -> Answer {
    let body = json!({"account": ADMIN, "password": password, "totp": code}).to_string();
    admin_request(server, source, "POST", "/api/v1/signin", None, &body, Some("application/json"))
}

/// A code that is not the one valid now (nor its neighbours).
fn wrong_code(uri: &str) -> String {
    let valid: Vec<String> = [-30, 0, 30].iter().map(|&o| totp_code(uri, o)).collect();
    (0..).map(|n| format!("{n:06}")).find(|c| !valid.contains(c)).unwrap()
}

/// Before: with the password known, codes could be guessed without end (about 7 a second);
/// the right code worked after any number of wrong ones.
#[test]
fn totp_locks_after_a_few_wrong_codes_until_the_owner_unlocks_it() {
    let mut server = TestServer::start_with(quick(&[
        &format!("[admin]\naccounts = [\"{ADMIN}\"]\n"),
        // Never banned: what stops the guessing must be the lock.
        "[firewall]\ntrusted_networks = [\"127.0.0.56\"]\n",
    ]));
    server.cli_ok(&["account", "add", ADMIN, "--password-stdin"], Some(PASSWORD));
    let uri = enable_totp(&server, ADMIN);
    let wrong = wrong_code(&uri);
    for _ in 0..5 {
        assert_eq!(sign_in(&server, "127.0.0.56", PASSWORD, &wrong), Answer::Status(401));
    }
    let alert = server.wait_event(|e| e["event"] == "alert_raised" && e["kind"] == "totp_locked");
    assert_eq!(alert["account"], ADMIN);
    assert_eq!(sign_in(&server, "127.0.0.56", PASSWORD, &totp_code(&uri, 30)), Answer::Status(401), "locked");
    server.wait_event(|e| e["event"] == "admin_auth_failed" && e["reason"] == "totp_locked");

    // The lock is in the store: a restart does not lift it.
    server.stop();
    server.launch();
    assert_eq!(sign_in(&server, "127.0.0.56", PASSWORD, &totp_code(&uri, 30)), Answer::Status(401));
    let out = server.cli_ok(&["account", "totp", "unlock", ADMIN], None);
    assert!(out.contains("Unlocked"), "{out}");
    assert_eq!(sign_in(&server, "127.0.0.56", PASSWORD, &totp_code(&uri, 30)), Answer::Status(200));
}

/// Before: the sign-in parsed any body as JSON, so a plain HTML form on any web page could
/// post to it (and to the other JSON endpoints, given a token).
#[test]
fn json_endpoints_take_only_json() {
    let server = TestServer::start_with(quick(&[&format!("[admin]\naccounts = [\"{ADMIN}\"]\n")]));
    let body = json!({"account": ADMIN, "password": PASSWORD, "totp": "123456"}).to_string();
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let answer = admin_request(&server, "127.0.0.57", "POST", "/api/v1/signin", None, &body, content_type);
        assert_eq!(answer, Answer::Status(415), "{content_type:?}");
    }
    let token = server.admin_token();
    let ban = json!({"network": "127.0.0.99"}).to_string();
    let answer = admin_request(&server, "127.0.0.57", "POST", "/api/v1/bans", Some(&token), &ban, Some("text/plain"));
    assert_eq!(answer, Answer::Status(415));
    let json_type = Some("application/json; charset=utf-8");
    let answer = admin_request(&server, "127.0.0.57", "POST", "/api/v1/bans", Some(&token), &ban, json_type);
    assert_eq!(answer, Answer::Status(201));
}

// ---- item 9: SCRAM ----------------------------------------------------------------------

/// SCRAM-SHA-256 from the client's side (RFC 5802 §3), written from the RFC.
mod scram {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Digest, Sha256};

    const NONCE: &str = "rOprNGfwEbeRWgbNEkqO";

    pub fn b64(data: &[u8]) -> String {
        STANDARD.encode(data)
    }

    pub fn unb64(text: &str) -> String {
        String::from_utf8(STANDARD.decode(text.trim()).unwrap()).unwrap()
    }

    pub fn client_first(user: &str) -> String {
        format!("n,,n={user},r={NONCE}")
    }

    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// The salt a server-first message names.
    pub fn salt(server_first: &str) -> String {
        server_first.split(',').find_map(|f| f.strip_prefix("s=")).unwrap().to_string()
    }

    /// client-final for `password`, and the server-final a server that knows it must send.
    pub fn client_final(user: &str, password: &str, server_first: &str) -> (String, String) {
        let field = |name: &str| server_first.split(',').find_map(|f| f.strip_prefix(name)).unwrap().to_string();
        let nonce = field("r=");
        assert!(nonce.starts_with(NONCE));
        let salt = STANDARD.decode(field("s=")).unwrap();
        let iterations: u32 = field("i=").parse().unwrap();
        let salted = pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("n={user},r={NONCE},{server_first},{without_proof}");
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
        let server_signature = hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes());
        (format!("{without_proof},p={}", b64(&proof)), format!("v={}", b64(&server_signature)))
    }
}

fn imap_from(server: &TestServer, source: &str) -> Client {
    let mut c = server.connect_from(source, "imaps").upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(c.line().starts_with("* OK"));
    c
}

/// Starts IMAP AUTHENTICATE SCRAM-SHA-256 for `user`; the server-first message.
fn imap_scram_start(c: &mut Client, user: &str) -> String {
    c.send(&format!("a AUTHENTICATE SCRAM-SHA-256 {}", scram::b64(scram::client_first(user).as_bytes())));
    let line = c.line();
    scram::unb64(line.strip_prefix("+ ").unwrap_or_else(|| panic!("no server-first: {line}")))
}

/// Before: for an account with TOTP on, the right password got the server's signature (the
/// proof that it was right) before the refusal; a wrong one got the refusal at once.
#[test]
fn scram_does_not_reveal_the_password_of_an_account_with_totp() {
    let server = TestServer::start_with(quick(&[]));
    let mut c = imap_from(&server, "127.0.0.60");
    let salt_before = scram::salt(&imap_scram_start(&mut c, ALICE));
    c.send("*");
    assert!(c.line().starts_with("a BAD"));
    drop(c);
    enable_totp(&server, ALICE);

    let answer = |password: &str| {
        let mut c = imap_from(&server, "127.0.0.60");
        let server_first = imap_scram_start(&mut c, ALICE);
        assert_eq!(scram::salt(&server_first), salt_before, "the salt does not change with TOTP");
        let (last, _) = scram::client_final(ALICE, password, &server_first);
        c.send(&scram::b64(last.as_bytes()));
        c.line()
    };
    let right = answer(PASSWORD);
    let wrong = answer("not-the-password-at-all");
    assert!(right.starts_with("a NO [AUTHENTICATIONFAILED]"), "the right password proven: {right}");
    assert_eq!(right, wrong, "a right and a wrong password get the same answer");
    server.wait_event(|e| e["event"] == "auth_failed" && e["reason"] == "second_factor_required");
}

/// Before: an exchange cancelled with `*` (or cut off) after the server's first message left
/// no failure behind: salts could be collected, and a proven password go unrecorded.
#[test]
fn abandoned_scram_exchanges_count_as_failed_logins() {
    let server = TestServer::start_with(Settings {
        sections: vec![format!("{QUICK_GUARD}ban_after_failures = 3\n")],
        ..Settings::default()
    });
    let first = scram::b64(scram::client_first(ALICE).as_bytes());
    // SMTP: cancelled with "*" after server-first (RFC 4954 §4: 501).
    let mut smtp = server.connect_from("127.0.0.70", "submissions").upgrade(server.client_config(rustls::ALL_VERSIONS));
    smtp.reply();
    smtp.cmd("EHLO attacker");
    assert!(smtp.cmd(&format!("AUTH SCRAM-SHA-256 {first}")).starts_with("334 "));
    assert!(smtp.cmd("*").starts_with("501"));
    drop(smtp);
    // IMAP: the same (RFC 9051 §6.2.2: BAD).
    let mut imap = imap_from(&server, "127.0.0.70");
    imap_scram_start(&mut imap, ALICE);
    imap.send("*");
    assert!(imap.line().starts_with("a BAD"));
    drop(imap);
    // POP3: cut off after server-first.
    let mut pop = server.connect_from("127.0.0.70", "pop3s").upgrade(server.client_config(rustls::ALL_VERSIONS));
    pop.line();
    assert!(pop.cmd(&format!("AUTH SCRAM-SHA-256 {first}")).starts_with("+ "));
    drop(pop);
    for listener in ["submissions", "imaps", "pop3s"] {
        let failed = server.wait_event(|e| e["event"] == "auth_failed" && e["listener"] == listener);
        assert_eq!((failed["username"].as_str(), failed["reason"].as_str()), (Some(ALICE), Some("abandoned")));
    }
    server.wait_event(|e| e["event"] == "ban_added" && e["network"] == "127.0.0.70/32");
    assert!(server.connect_from("127.0.0.70", "imaps").closed(), "three abandoned exchanges are three failures");

    // The right password proven, then cancelled: not a login, and not nothing either.
    let mut imap = imap_from(&server, "127.0.0.71");
    let server_first = imap_scram_start(&mut imap, BOB);
    let (last, expected) = scram::client_final(BOB, PASSWORD, &server_first);
    imap.send(&scram::b64(last.as_bytes()));
    let server_final = imap.line();
    assert_eq!(scram::unb64(server_final.strip_prefix("+ ").unwrap()), expected);
    imap.send("*");
    assert!(imap.line().starts_with("a BAD"));
    drop(imap);
    let failed = server.wait_event(|e| e["event"] == "auth_failed" && e["username"] == BOB);
    assert!(failed["peer"].as_str().unwrap().starts_with("127.0.0.71:"));
    assert!(!server.events().iter().any(|e| e["event"] == "auth_succeeded" && e["account"] == BOB));
}

/// Before: the salt shown for an account that does not exist changed at every restart (and
/// with the spelling of the name), while real accounts' salts never do: a list of names was
/// enough to tell which exist.
#[test]
fn decoy_salts_do_not_tell_which_accounts_exist() {
    let mut server = TestServer::start_with(quick(&[]));
    let salts = |server: &TestServer| -> Vec<String> {
        ["ghost@example.test", "GHOST@Example.Test", ALICE]
            .iter()
            .map(|user| {
                let mut c = imap_from(server, "127.0.0.80");
                let salt = scram::salt(&imap_scram_start(&mut c, user));
                c.send("*");
                c.line();
                salt
            })
            .collect()
    };
    let before = salts(&server);
    assert_eq!(before[0], before[1], "one account, one salt, however it is spelled");
    server.stop();
    server.launch();
    let after = salts(&server);
    assert_eq!(before, after, "salts survive a restart, real or not");
}

// ---- item 10: sessions of removed accounts ----------------------------------------------

/// Reads IMAP lines up to the tagged answer to `tag`, or to the end of the connection.
fn imap_until(c: &mut Client, tag: &str) -> String {
    let mut transcript = String::new();
    loop {
        let line = c.line();
        transcript.push_str(&line);
        transcript.push('\n');
        if line.is_empty() || line.starts_with(&format!("{tag} ")) {
            return transcript;
        }
    }
}

fn imap_session(server: &TestServer, source: &str, user: &str, password: &str) -> Client {
    let mut c = imap_from(server, source);
    c.send(&format!("a LOGIN {user} {password}"));
    let answer = imap_until(&mut c, "a");
    assert!(answer.contains("a OK"), "{answer}");
    c
}

/// Whether the server ends the session within `limit`.
fn session_closed_within(c: &mut Client, limit: Duration) -> bool {
    c.set_read_timeout(Some(limit));
    let started = Instant::now();
    loop {
        match c.read_chunk() {
            Ok(data) if data.is_empty() => return true,
            Ok(_) if started.elapsed() < limit => continue,
            Ok(_) => return false,
            Err(e) => return !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    }
}

/// The review's reproduction. Before: account ids were reused and open sessions never looked
/// again, so bob's session, left open while bob was removed and carol added, read carol's mail.
#[test]
fn a_removed_accounts_session_cannot_read_the_next_accounts_mail() {
    let server = TestServer::start_with(quick(&[]));
    let mut bob = imap_session(&server, "127.0.0.90", BOB, PASSWORD);
    server.cli_ok(&["account", "remove", BOB], None);
    server.cli_ok(&["account", "add", CAROL, "--password-stdin"], Some(PASSWORD));
    assert!(server.submit(CAROL, "Subject: for carol\r\n\r\nCarol's secret is 7f3a9.").starts_with("250"));
    let mut transcript = String::new();
    for (tag, command) in [("b", "SELECT INBOX"), ("c", "FETCH 1:* BODY[]")] {
        if bob.try_send_raw(format!("{tag} {command}\r\n").as_bytes()).is_err() {
            break;
        }
        transcript.push_str(&imap_until(&mut bob, tag));
    }
    assert!(!transcript.contains("7f3a9"), "bob's session read carol's mail:\n{transcript}");
    assert!(session_closed_within(&mut bob, Duration::from_secs(5)), "{transcript}");
    let closed = server.wait_event(|e| e["event"] == "account_session_closed");
    assert_eq!((closed["account"].as_str(), closed["reason"].as_str()), (Some(BOB), Some("account_removed")));
}

/// Before: only sessions opened with a revoked app password were closed; a password change,
/// or TOTP turned on, left every other session (and admin sign-in tokens) open.
#[test]
fn new_credentials_close_the_sessions_opened_with_the_old_ones() {
    let server = TestServer::start_with(quick(&[&format!("[admin]\naccounts = [\"{ADMIN}\"]\n")]));
    let added = server.cli_ok(&["account", "app-password", "add", ALICE, "--name", "phone"], None);
    let app_password = added.lines().find_map(|l| l.strip_prefix("App password (shown only this once): ")).unwrap();
    let mut with_password = imap_session(&server, "127.0.0.91", ALICE, PASSWORD);
    let mut with_app_password = imap_session(&server, "127.0.0.92", ALICE, app_password);
    let mut bob = imap_session(&server, "127.0.0.93", BOB, PASSWORD);

    server.cli_ok(&["account", "passwd", ALICE, "--password-stdin"], Some("a-new-passphrase-for-alice-7"));
    assert!(session_closed_within(&mut with_password, Duration::from_secs(5)), "password change, password session");
    assert!(session_closed_within(&mut with_app_password, Duration::from_secs(5)), "and its app password session");
    bob.send("n NOOP");
    assert!(imap_until(&mut bob, "n").contains("n OK"), "other accounts' sessions stay");

    enable_totp(&server, BOB);
    assert!(session_closed_within(&mut bob, Duration::from_secs(5)), "TOTP turned on");
    for account in [ALICE, BOB] {
        server.wait_event(|e| {
            e["event"] == "account_session_closed" && e["account"] == account && e["reason"] == "credentials_changed"
        });
    }

    // An administrator's sign-in token ends with its password too.
    server.cli_ok(&["account", "add", ADMIN, "--password-stdin"], Some(PASSWORD));
    let uri = enable_totp(&server, ADMIN);
    let body = json!({"account": ADMIN, "password": PASSWORD, "totp": totp_code(&uri, 30)}).to_string();
    let r = server.http("POST", "/api/v1/signin", None, Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    let token: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    assert_eq!(server.http("GET", "/api/v1/status", Some(&token), None).status, 200);
    server.cli_ok(&["account", "passwd", ADMIN, "--password-stdin"], Some("a-new-passphrase-for-admin-7"));
    assert_eq!(server.http("GET", "/api/v1/status", Some(&token), None).status, 401);
}

/// Before: a revoked session only noticed at its next read, so a FETCH already running sent
/// every message of a removed account.
#[test]
fn revocation_stops_a_fetch_in_flight() {
    const MESSAGES: usize = 40;
    let server = TestServer::start_with(quick(&[]));
    let mut smtp = server.connect_tls("submissions");
    smtp.reply();
    smtp.cmd("EHLO test.client");
    assert!(smtp.cmd(&format!("AUTH PLAIN {}", plain(BOB, PASSWORD))).starts_with("235"));
    let filler = "x".repeat(998);
    let body: String = (0..500).map(|_| format!("{filler}\r\n")).collect();
    for n in 0..MESSAGES {
        smtp.cmd(&format!("MAIL FROM:<{BOB}>"));
        assert!(smtp.cmd(&format!("RCPT TO:<{ALICE}>")).starts_with("250"));
        assert!(smtp.cmd("DATA").starts_with("354"));
        smtp.send(&format!("Subject: message {n}\r\n\r\n{body}."));
        assert!(smtp.reply().starts_with("250"));
    }
    smtp.cmd("QUIT");

    let mut imap = Client::plain(server.tcp_with("127.0.0.94", "imaps", Some(8192)).unwrap())
        .upgrade(server.client_config(rustls::ALL_VERSIONS));
    imap.line();
    imap.send(&format!("a LOGIN {ALICE} {PASSWORD}"));
    assert!(imap_until(&mut imap, "a").contains("a OK"));
    imap.send("b SELECT INBOX");
    assert!(imap_until(&mut imap, "b").contains(&format!("* {MESSAGES} EXISTS")));
    imap.send("c FETCH 1:* BODY[]");
    // The answer (20 MB) fills the buffers while the client does not read; then the account goes.
    std::thread::sleep(Duration::from_millis(500));
    server.cli_ok(&["account", "remove", ALICE], None);
    std::thread::sleep(Duration::from_secs(3));
    let rest = imap.rest();
    let fetched = rest.matches(" FETCH (").count();
    assert!(!rest.contains("c OK"), "the whole FETCH went out after the account was removed");
    assert!(fetched < MESSAGES, "{fetched} of {MESSAGES} messages went out");
}
