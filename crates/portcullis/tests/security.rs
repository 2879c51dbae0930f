//! The locks on the gates: STARTTLS on 587, TLS versions, credentials, limits and timeouts,
//! against the real server process.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn submission_port_refuses_everything_but_starttls_before_tls() {
    let server = TestServer::start();
    let mut c = server.connect_plain("submission");
    assert!(c.reply().starts_with("220 "));
    let ehlo = c.cmd("EHLO plain.client");
    assert!(ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"), "{ehlo}");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD))),
        "530 5.7.0 Must issue a STARTTLS command first"
    );
    assert_eq!(c.cmd(&format!("MAIL FROM:<{ALICE}>")), "530 5.7.0 Must issue a STARTTLS command first");
    // STARTTLS with a command injected behind it in the same packet.
    c.send_raw(b"STARTTLS\r\nMAIL FROM:<injected@example.test>\r\n");
    assert_eq!(c.reply(), "220 2.0.0 Ready to start TLS");
    let mut c = c.upgrade(server.client_config(rustls::ALL_VERSIONS));
    // The first reply under TLS must answer our EHLO, not the injected MAIL.
    let ehlo = c.cmd("EHLO tls.client");
    assert!(ehlo.starts_with("250-") && ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD))).starts_with("235"));
    server.wait_event(|e| e["event"] == "protocol_violation" && e["what"] == "AUTH before STARTTLS");
}

#[test]
fn tls_below_1_2_and_below_min_version_are_refused() {
    let server = TestServer::start_with(Settings { tls: vec!["min_version = \"1.3\"".into()], ..Settings::default() });
    for listener in ["submissions", "pop3s"] {
        let tls12 = server.connect_plain(listener).handshake(server.client_config(&[&rustls::version::TLS12]));
        assert!(tls12.is_err(), "{listener} accepted TLS 1.2 with min_version = 1.3");
        let mut tls13 =
            server.connect_plain(listener).handshake(server.client_config(&[&rustls::version::TLS13])).unwrap();
        assert!(!tls13.line().is_empty());
    }
    server.wait_event(|e| e["event"] == "tls_failed");
}

#[test]
fn tls_1_2_works_by_default() {
    let server = TestServer::start();
    let mut c =
        server.connect_plain("submissions").handshake(server.client_config(&[&rustls::version::TLS12])).unwrap();
    assert!(c.reply().starts_with("220"));
    let e = server.wait_event(|e| e["event"] == "tls_established");
    assert_eq!(e["version"], "TLSv1.2");
    assert!(e["cipher"].as_str().unwrap().contains("GCM") || e["cipher"].as_str().unwrap().contains("CHACHA20"));
}

#[test]
fn plaintext_on_an_implicit_tls_port_gets_nothing() {
    let server = TestServer::start();
    let mut c = server.connect_plain("submissions");
    c.send("EHLO plaintext.client");
    let answer = c.rest();
    assert!(!answer.contains("ESMTP") && !answer.contains("250"), "no SMTP is spoken before TLS on 465: {answer}");
    server.wait_event(|e| e["event"] == "tls_failed");
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let server = TestServer::start();
    let mut answers = Vec::new();
    for user in [ALICE, "nobody@example.test"] {
        let mut c = server.connect_tls("submissions");
        c.reply();
        c.cmd("EHLO c");
        answers.push(c.cmd(&format!("AUTH PLAIN {}", plain(user, "not-the-password"))));
        let mut p = server.connect_tls("pop3s");
        p.line();
        p.cmd(&format!("USER {user}"));
        answers.push(p.cmd("PASS not-the-password"));
    }
    assert_eq!(answers[0], answers[2]);
    assert_eq!(answers[1], answers[3]);
    assert!(answers[0].starts_with("535 5.7.8"));
    assert!(answers[1].starts_with("-ERR [AUTH]"));
    let failures = server.events().into_iter().filter(|e| e["event"] == "auth_failed").count();
    assert_eq!(failures, 4);
    assert!(!server.events().iter().any(|e| e.to_string().contains("not-the-password")), "secrets are never logged");
}

#[test]
fn sender_must_be_the_authenticated_user() {
    let server = TestServer::start();
    let mut c = server.connect_tls("submissions");
    c.reply();
    c.cmd("EHLO c");
    c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD)));
    assert!(c.cmd(&format!("MAIL FROM:<{BOB}>")).starts_with("553 5.7.1"));
}

#[test]
fn connections_per_ip_are_limited_with_a_clear_refusal() {
    let server =
        TestServer::start_with(Settings { limits: vec!["max_connections_per_ip = 2".into()], ..Settings::default() });
    let mut held: Vec<Client> = (0..2).map(|_| server.connect_tls("submissions")).collect();
    for c in &mut held {
        assert!(c.reply().starts_with("220"));
    }
    let mut refused = server.connect_tls("submissions");
    assert_eq!(refused.reply(), "421 4.7.0 Too many connections from your address, try again later");
    let mut refused_plain = server.connect_plain("submission");
    assert!(refused_plain.reply().starts_with("421 4.7.0"));
    server.wait_event(|e| e["event"] == "connection_refused" && e["reason"] == "too_many_connections_from_peer");
    // Another source address is not affected.
    let mut other = server.connect_from("127.0.0.2", "submissions").upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(other.reply().starts_with("220"));
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.connect_tls("submissions").reply().starts_with("220"));
}

#[test]
fn idle_sessions_time_out_and_silent_handshakes_are_cut() {
    let server = TestServer::start_with(Settings {
        limits: vec!["smtp_idle_timeout = \"1s\"".into(), "pop3_idle_timeout = \"1s\"".into()],
        tls: vec!["handshake_timeout = \"1s\"".into()],
        ..Settings::default()
    });
    let mut c = server.connect_tls("submissions");
    c.reply();
    let started = Instant::now();
    assert!(c.reply().starts_with("421 4.4.2"));
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut silent = server.connect_plain("pop3s");
    let started = Instant::now();
    assert!(silent.closed());
    assert!(started.elapsed() < Duration::from_secs(5), "the handshake timeout closes silent clients");
    server.wait_event(|e| e["event"] == "connection_closed" && e["reason"] == "timeout");
}

#[test]
fn oversize_lines_and_messages_get_protocol_errors_and_the_session_continues() {
    let server =
        TestServer::start_with(Settings { limits: vec!["max_message_size = \"64KiB\"".into()], ..Settings::default() });
    let mut c = server.connect_tls("submissions");
    c.reply();
    assert!(c.cmd(&format!("EHLO {}", "a".repeat(10_000))).starts_with("500 5.5.2"));
    assert!(c.cmd("EHLO c").contains("SIZE 65536"));
    c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD)));
    assert!(c.cmd(&format!("MAIL FROM:<{ALICE}> SIZE=100000")).starts_with("552 5.3.4"));
    c.cmd(&format!("MAIL FROM:<{ALICE}>"));
    c.cmd(&format!("RCPT TO:<{BOB}>"));
    c.cmd("DATA");
    let line = format!("{}\r\n", "y".repeat(998));
    for _ in 0..100 {
        c.send_raw(line.as_bytes());
    }
    c.send(".");
    assert!(c.reply().starts_with("552 5.3.4"));
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK");
}

#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let server =
        TestServer::start_with(Settings { limits: vec!["pop3_idle_timeout = \"1s\"".into()], ..Settings::default() });
    let big = format!("Subject: big\r\n\r\n{}", format!("{}\r\n", "z".repeat(998)).repeat(16 * 1024));
    assert!(server.submit(BOB, &big).starts_with("250"));
    let mut c =
        server.connect_with("127.0.0.1", "pop3s", Some(4096)).upgrade(server.client_config(rustls::ALL_VERSIONS));
    c.line();
    c.cmd(&format!("AUTH PLAIN {}", plain(BOB, PASSWORD)));
    c.send("RETR 1");
    // Read nothing more: the server must give up on us rather than hold the session forever.
    let closed = server.wait_event(|e| e["event"] == "connection_closed" && e["listener"] == "pop3s");
    assert_eq!(closed["reason"], "io_error");
}
