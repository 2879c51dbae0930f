//! What submission checks and records for outgoing mail (issue 15), against the real server
//! process: aliases (the CLI, mail to them, sending from them), the header From: bound to
//! the account, Return-Path on local delivery (port 25's is in mx.rs).

mod common;

use common::*;

/// The messages in `user`'s INBOX, read over POP3, each with CRLF line ends.
fn inbox(server: &TestServer, user: &str) -> Vec<String> {
    let mut pop = server.connect_tls("pop3s");
    assert!(pop.line().starts_with("+OK"));
    assert!(pop.cmd(&format!("AUTH PLAIN {}", plain(user, PASSWORD))).starts_with("+OK"));
    let stat = pop.cmd("STAT");
    let count: usize = stat.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect(&stat);
    let messages = (1..=count)
        .map(|n| {
            assert!(pop.cmd(&format!("RETR {n}")).starts_with("+OK"));
            pop.multiline().join("\r\n")
        })
        .collect();
    pop.cmd("QUIT");
    messages
}

/// Logs in on 465 as `user`; the client after the AUTH reply.
fn logged_in(server: &TestServer, user: &str) -> Client {
    let mut c = server.connect_tls("submissions");
    c.reply();
    c.cmd("EHLO test.client");
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain(user, PASSWORD))).starts_with("235"));
    c
}

#[test]
fn aliases_receive_for_their_account_and_may_send_as_it() {
    let server = TestServer::start();
    server.cli_ok(&["domain", "add", "second.test"], None);
    let added = server.cli_ok(&["account", "alias", "add", "Sales@Second.TEST", BOB], None);
    assert!(added.contains("Added alias sales@second.test of bob@example.test"), "{added}");
    server.cli_ok(&["account", "alias", "add", "info@example.test", BOB], None);

    // What an operator gets wrong is said plainly.
    let refused = |args: &[&str], says: &str| {
        let out = server.cli(args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{args:?}: {stderr}");
    };
    refused(&["account", "alias", "add", "x@elsewhere.test", BOB], "portcullis domain add elsewhere.test");
    refused(&["account", "alias", "add", ALICE, BOB], "already an account or an alias");
    refused(&["account", "alias", "add", "info@example.test", ALICE], "already an account or an alias");
    refused(&["account", "alias", "add", "y@example.test", "nobody@example.test"], "there is no account");
    refused(&["account", "alias", "remove", "nothing@example.test"], "there is no alias");
    refused(&["domain", "remove", "second.test"], "aliases");
    let listed = server.cli_ok(&["account", "alias", "list"], None);
    assert!(listed.contains("info@example.test") && listed.contains("sales@second.test"), "{listed}");
    assert!(!server.cli_ok(&["account", "alias", "list", ALICE], None).contains("@second.test"));

    // Mail to an alias lands in the account's INBOX (the running server sees it at once).
    let reply = server.submit("sales@second.test", &format!("From: {ALICE}\r\nSubject: to sales\r\n\r\nhi"));
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let bobs = inbox(&server, BOB);
    assert_eq!(bobs.len(), 1);
    assert!(bobs[0].contains("Subject: to sales"), "{}", bobs[0]);

    // Bob may send as his aliases; Alice may not.
    let mut c = logged_in(&server, BOB);
    assert!(c.cmd("MAIL FROM:<Info@example.test>").starts_with("250 2.1.0"));
    c.cmd("QUIT");
    let mut c = logged_in(&server, ALICE);
    let refusal = c.cmd("MAIL FROM:<info@example.test>");
    assert!(refusal.starts_with("553 5.7.1") && refusal.contains(ALICE), "{refusal}");
    c.cmd("QUIT");

    // A removed alias is an unknown user again.
    server.cli_ok(&["account", "alias", "remove", "sales@second.test"], None);
    let mut c = logged_in(&server, ALICE);
    c.cmd(&format!("MAIL FROM:<{ALICE}>"));
    assert!(c.cmd("RCPT TO:<sales@second.test>").starts_with("550 5.1.1"));
    c.cmd("QUIT");
    server.cli_ok(&["domain", "remove", "second.test"], None);
}

/// Sends one message with Python's smtplib over implicit TLS as alice, its header From: and
/// Sender: as given; what smtplib said (the reply code and text of a refusal, or "sent").
fn smtplib_send(server: &TestServer, python: &std::path::Path, from: &str, sender: Option<&str>) -> String {
    let script = r#"
import smtplib, ssl, sys
from email.message import EmailMessage
host, port, cafile, user, password, rcpt, author, sender = sys.argv[1:9]
msg = EmailMessage()
msg["From"] = author
if sender:
    msg["Sender"] = sender
msg["To"] = rcpt
msg["Subject"] = "author check"
msg.set_content("hello")
context = ssl.create_default_context(cafile=cafile)
with smtplib.SMTP_SSL(host, int(port), context=context, timeout=20) as smtp:
    smtp.login(user, password)
    try:
        smtp.send_message(msg, from_addr=user, to_addrs=[rcpt])
        print("sent")
    except smtplib.SMTPDataError as e:
        print(e.smtp_code, e.smtp_error.decode())
"#;
    let addr = server.addr("submissions");
    let out = std::process::Command::new(python)
        // The certificate names localhost (and the host name), not 127.0.0.1.
        .args(["-c", script, "localhost", &addr.port().to_string()])
        .arg(server.cert_path())
        .args([ALICE, PASSWORD, BOB, from, sender.unwrap_or("")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_header_from_is_bound_to_the_account_on_submission() {
    let Some(python) = outside::program("python3", "apt-get install python3") else { return };
    let server = TestServer::start();
    server.cli_ok(&["account", "alias", "add", "news@example.test", ALICE], None);

    let refused = smtplib_send(&server, &python, &format!("Bob <{BOB}>"), None);
    assert_eq!(
        refused,
        format!("550 5.7.1 From: <{BOB}> is not an address of the account {ALICE}; send as the account or one of its aliases")
    );
    let event = server.wait_event(|e| e["event"] == "message_rejected");
    assert_eq!(event["account"], ALICE);
    assert!(event["reason"].as_str().unwrap().contains(BOB), "{event}");
    let refused = smtplib_send(&server, &python, ALICE, Some("Someone <someone@example.com>"));
    assert!(refused.starts_with("550 5.7.1 Sender: <someone@example.com>"), "{refused}");
    assert!(inbox(&server, BOB).is_empty(), "nothing stored");

    assert_eq!(smtplib_send(&server, &python, &format!("Alice <{ALICE}>"), None), "sent");
    assert_eq!(smtplib_send(&server, &python, "The News <news@example.test>", Some(ALICE)), "sent");
    assert_eq!(inbox(&server, BOB).len(), 2);
}

#[test]
fn local_copies_carry_one_return_path_and_name_the_account() {
    let server = TestServer::start();
    let reply = server
        .submit(BOB, "Return-Path: <forged@elsewhere.test>\r\nFrom: alice@example.test\r\nSubject: traced\r\n\r\nhi");
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let message = inbox(&server, BOB).remove(0);
    // RFC 5321 §4.4: the envelope sender, on top, once; then our Received naming the account.
    assert!(message.starts_with(&format!("Return-Path: <{ALICE}>\r\nReceived: from test.client")), "{message}");
    assert_eq!(message.matches("Return-Path:").count(), 1, "{message}");
    assert!(message.contains(&format!("(authenticated as {ALICE})")), "{message}");
}

#[test]
fn notify_success_for_a_local_recipient_gives_the_sender_a_delivered_notice() {
    let server = TestServer::start();
    server.cli_ok(&["account", "alias", "add", "news@example.test", ALICE], None);
    let mut c = logged_in(&server, ALICE);
    // Sent as an alias: the notice still reaches the account.
    assert!(c.cmd("MAIL FROM:<news@example.test> ENVID=news+2D7").starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{BOB}> NOTIFY=SUCCESS ORCPT=rfc822;bobby@example.test")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send("From: news@example.test\r\nSubject: tell me\r\n\r\nthe body stays home\r\n.");
    assert!(c.reply().starts_with("250 2.0.0"));
    // Without NOTIFY=SUCCESS: no notice.
    c.cmd("MAIL FROM:<alice@example.test>");
    c.cmd(&format!("RCPT TO:<{BOB}> NOTIFY=FAILURE"));
    c.cmd("DATA");
    c.send("From: alice@example.test\r\nSubject: quiet\r\n\r\nhi\r\n.");
    assert!(c.reply().starts_with("250 2.0.0"));
    c.cmd("QUIT");

    assert_eq!(inbox(&server, BOB).len(), 2);
    let notices = inbox(&server, ALICE);
    assert_eq!(notices.len(), 1, "one notice, for the message that asked");
    let notice = &notices[0];
    assert!(notice.starts_with("Return-Path: <>\r\n"), "from the null sender: {notice}");
    assert!(notice.contains("Subject: Successful Mail Delivery Report"), "{notice}");
    for field in [
        "Original-Envelope-Id: news-7",
        "Original-Recipient: rfc822; bobby@example.test",
        "Final-Recipient: rfc822; bob@example.test",
        "Action: delivered",
        "Status: 2.0.0",
    ] {
        assert!(notice.contains(field), "{field} missing: {notice}");
    }
    assert!(notice.contains("Subject: tell me") && !notice.contains("the body stays home"), "header only: {notice}");
}
