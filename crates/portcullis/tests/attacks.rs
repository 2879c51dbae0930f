//! Attacks from an outside review (issue 13), each performed against the real server: before
//! the fix each of these succeeded; now each must fail. One section per finding.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::totp::{enable_totp, totp_code};
use common::*;
use serde_json::json;

const ADMIN: &str = "postmaster@example.test";

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
