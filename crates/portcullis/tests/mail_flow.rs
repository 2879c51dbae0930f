//! Mail in through SMTP submission, out through POP3, against the real server process.

mod common;

use common::*;

#[test]
fn submitted_mail_comes_back_over_pop3_byte_for_byte() {
    let server = TestServer::start();
    let body = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: =?UTF-8?B?w6TDtsO8?=\r\nMessage-ID: <m1@test>\r\nDate: Sat, 28 Nov 2026 00:00:00 +0000\r\n\r\nline one\r\n..starts with a dot\r\nlast";
    assert!(server.submit(BOB, body).starts_with("250 2.0.0"));
    server.wait_event(|e| e["event"] == "message_accepted" && e["recipients"] == 1);

    let mut pop = server.connect_tls("pop3s");
    assert!(pop.line().starts_with("+OK"));
    assert!(pop.cmd(&format!("USER {BOB}")).starts_with("+OK"));
    assert!(pop.cmd(&format!("PASS {PASSWORD}")).starts_with("+OK Logged in, 1 messages"));
    let status = pop.cmd("RETR 1");
    assert!(status.starts_with("+OK"), "{status}");
    let message = pop.multiline().join("\r\n");
    assert!(
        message.starts_with(&format!("Return-Path: <{ALICE}>\r\nReceived: from test.client ([127.0.0.1])")),
        "{message}"
    );
    assert!(message.ends_with(&body.replace("\r\n..", "\r\n.")), "{message}");
    assert_eq!(message.matches("Message-ID").count(), 1, "the client's Message-ID is kept");
    assert!(pop.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn missing_date_and_message_id_are_added() {
    let server = TestServer::start();
    server.submit(ALICE, "Subject: bare\r\n\r\nhi");
    let mut pop = server.connect_tls("pop3s");
    pop.line();
    pop.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD)));
    pop.cmd("RETR 1");
    let message = pop.multiline().join("\n");
    assert!(message.contains("\nDate: "), "{message}");
    assert!(message.contains("\nMessage-ID: <") && message.contains(&format!("@{HOSTNAME}>")), "{message}");
}

#[test]
fn pop3_deletes_at_quit_only_uidls_are_stable_and_the_maildrop_is_exclusive() {
    let server = TestServer::start();
    for i in 0..3 {
        server.submit(BOB, &format!("Subject: {i}\r\n\r\nbody {i}"));
    }
    let login = |c: &mut Client| {
        c.line();
        c.cmd(&format!("USER {BOB}"));
        c.cmd(&format!("PASS {PASSWORD}"))
    };
    let mut first = server.connect_tls("pop3s");
    assert!(login(&mut first).starts_with("+OK Logged in, 3 messages"));
    first.cmd("UIDL");
    let uidls = first.multiline();
    assert_eq!(uidls.len(), 3);

    let mut second = server.connect_tls("pop3s");
    assert!(login(&mut second).starts_with("-ERR [IN-USE]"), "one session per maildrop");

    assert!(first.cmd("DELE 2").starts_with("+OK"));
    // Dropping the connection without QUIT must not delete anything. Once the server has seen
    // the session end, the maildrop is free again.
    let peer = first.local_addr().to_string();
    drop(first);
    server.wait_event(|e| e["event"] == "connection_closed" && e["peer"] == peer.as_str());
    let mut third = server.connect_tls("pop3s");
    assert!(login(&mut third).starts_with("+OK Logged in, 3 messages"));
    third.cmd("UIDL");
    assert_eq!(third.multiline(), uidls, "UIDLs are stable across sessions");
    third.cmd("DELE 2");
    assert!(third.cmd("QUIT").starts_with("+OK Bye, 1 messages deleted"));

    let mut fourth = server.connect_tls("pop3s");
    assert!(login(&mut fourth).starts_with("+OK Logged in, 2 messages"));
    fourth.cmd("UIDL");
    let left = fourth.multiline();
    assert_eq!(left, vec![uidls[0].clone(), format!("2 {}", uidls[2].split(' ').nth(1).unwrap())]);
}

#[test]
fn bdat_and_pipelining_over_a_real_connection() {
    let server = TestServer::start();
    let mut c = server.connect_tls("submissions");
    c.reply();
    c.cmd("EHLO pipelining.client");
    c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD)));
    let chunk = "Subject: chunked\r\n\r\nhello\r\n";
    c.send_raw(format!("MAIL FROM:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\nBDAT {} LAST\r\n{chunk}", chunk.len()).as_bytes());
    assert!(c.reply().starts_with("250 2.1.0"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("250 2.0.0 Message stored"));
}

#[test]
fn quota_is_enforced_at_delivery() {
    let server = TestServer::start();
    server.cli_ok(&["account", "quota", BOB, "2KiB"], None);
    let big = format!("Subject: big\r\n\r\n{}", "x".repeat(3000));
    let mut c = server.connect_tls("submissions");
    c.reply();
    c.cmd("EHLO c");
    c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD)));
    c.cmd(&format!("MAIL FROM:<{ALICE}>"));
    assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
    c.cmd("DATA");
    c.send(&format!("{big}\r\n."));
    assert!(c.reply().starts_with("552 5.2.2"));
    // A small one still fits.
    assert!(server.submit(BOB, "Subject: small\r\n\r\nok").starts_with("250"));
    server.wait_event(|e| e["event"] == "message_rejected");
}

#[test]
fn recipients_outside_our_domains_are_queued_for_a_logged_in_sender() {
    // The queue runner starts on a new message at once (on PostgreSQL it is woken by NOTIFY
    // within milliseconds): its MX lookup goes to a resolver that never answers, so that the
    // message is still queued when the test looks, however fast the runner is.
    let silent_resolver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = TestServer::start_with(Settings {
        sections: vec![dns_section(silent_resolver.local_addr().unwrap()).replace("\"1s\"", "\"30s\"")],
        ..Settings::default()
    });
    let mut c = server.connect_tls("submissions");
    c.reply();
    c.cmd("EHLO c");
    assert!(c.cmd(&format!("MAIL FROM:<{ALICE}>")).starts_with("530 5.7.0"), "nothing before login");
    c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD)));
    c.cmd(&format!("MAIL FROM:<{ALICE}>"));
    assert!(c.cmd("RCPT TO:<someone@example.com>").starts_with("250 2.1.5"));
    assert!(c.cmd("RCPT TO:<nobody@example.test>").starts_with("550 5.1.1"), "unknown local users still refused");
    assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
    c.cmd("DATA");
    c.send("Bcc: someone@example.com\r\nSubject: out\r\n\r\nhello\r\n.");
    assert!(c.reply().starts_with("250 2.0.0"));
    // Acknowledged: the remote recipient is in the queue on disk, Bob has his copy.
    let (rcpts, content) = server.with_store(async |store| {
        let queued = store.queued().await.unwrap();
        assert_eq!(queued.len(), 1, "{queued:?}");
        let message = store.queued_message(queued[0].id).await.unwrap().unwrap();
        (message.recipients.into_iter().map(|r| r.address).collect::<Vec<_>>(), message.content)
    });
    assert_eq!(rcpts, ["someone@example.com"]);
    let content = String::from_utf8(content).unwrap();
    assert!(content.contains(&format!("(authenticated as {ALICE})")), "{content}");
    assert!(!content.contains("Bcc:"), "{content}");
}

#[test]
fn an_acknowledged_message_survives_sigkill() {
    let mut server = TestServer::start();
    assert!(server.submit(BOB, "Subject: durable\r\n\r\nmust not be lost").starts_with("250"));
    server.signal(nix::sys::signal::Signal::SIGKILL);
    server.wait_exit(std::time::Duration::from_secs(10));
    server.launch();
    let mut pop = server.connect_tls("pop3s");
    pop.line();
    assert!(pop.cmd(&format!("AUTH PLAIN {}", plain(BOB, PASSWORD))).starts_with("+OK Logged in, 1 messages"));
    pop.cmd("RETR 1");
    assert!(pop.multiline().join("\n").ends_with("must not be lost"));
}
