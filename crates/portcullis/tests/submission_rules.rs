//! What submission checks and records for outgoing mail (issue 15), against the real server
//! process: aliases (the CLI, mail to them, sending from them), the header From: bound to
//! the account, Return-Path on local delivery.

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
