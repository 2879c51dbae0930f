//! `portcullis store migrate` (issue 17): a SQLite installation made through the CLI and a
//! running server (accounts, TOTP and an app password for bob, mail delivered over SMTP with
//! flags set over IMAP, a queued outbound message, a ban, DKIM keys from `domain add`, an alias)
//! is copied, live, into a fresh database on the tests' one private PostgreSQL cluster
//! (tests/common/store.rs); a server started on the PostgreSQL URL then serves the same
//! mailboxes (UIDVALIDITY, UIDs, MODSEQs and flags over IMAP), the same password, app password
//! and TOTP secret work, the rest is there, and `store check` passes on both ends. A destination
//! that holds anything is refused. Without PostgreSQL: SKIPPED.

mod common;

use std::process::Command;

use common::totp::{enable_totp, totp_code};
use common::*;

/// A session's view of bob's INBOX, logged in with `password` (bob's app password: with TOTP
/// on, his own password opens no IMAP session): what SELECT (CONDSTORE) says and every
/// message's UID, FLAGS and MODSEQ. \Recent left out: which session first sees a message as
/// recent differs by design.
fn inbox_state(server: &TestServer, password: &str) -> Vec<String> {
    let mut c = server.connect_tls("imaps");
    c.line();
    let mut lines = Vec::new();
    for (tag, command) in [
        ("a", format!("LOGIN {BOB} {password}")),
        ("b", "SELECT INBOX (CONDSTORE)".to_string()),
        ("c", "UID FETCH 1:* (FLAGS MODSEQ)".to_string()),
    ] {
        c.send(&format!("{tag} {command}"));
        loop {
            let line = c.line();
            assert!(!line.is_empty(), "the server closed during {command}");
            if line.starts_with(&format!("{tag} ")) {
                assert!(line.starts_with(&format!("{tag} OK")), "{command}: {line}");
                break;
            }
            if tag != "a" && !line.contains("RECENT") {
                lines.push(line);
            }
        }
    }
    lines
}

/// Sets flags on bob's messages over IMAP, the way a client does.
fn flag_messages(server: &TestServer) {
    let mut c = server.connect_tls("imaps");
    c.line();
    for (tag, command) in [
        ("a", format!("LOGIN {BOB} {PASSWORD}")),
        ("b", "SELECT INBOX".to_string()),
        ("c", "STORE 1 +FLAGS (\\Flagged $Work)".to_string()),
        ("d", "STORE 2 +FLAGS (\\Seen \\Answered)".to_string()),
        ("e", "STORE 3 +FLAGS (\\Deleted)".to_string()),
        ("f", "EXPUNGE".to_string()),
    ] {
        c.send(&format!("{tag} {command}"));
        loop {
            let line = c.line();
            if line.starts_with(&format!("{tag} ")) {
                assert!(line.starts_with(&format!("{tag} OK")), "{command}: {line}");
                break;
            }
        }
    }
}

/// `portcullis --config CONFIG ARGS` with a config other than the server's.
fn cli_with(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN).arg("--config").arg(config).args(args).output().unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_live_sqlite_installation_moves_to_postgresql() {
    // A fresh database on the test process's one cluster (tests/common/store.rs); None after
    // a SKIPPED notice without PostgreSQL.
    let Some(url) = store::shared_database() else { return };
    // Outbound mail goes to a smart host that is not there: it stays queued, deferred.
    let relay = format!("[relay]\nhost = \"localhost\"\nport = {}", free_port("127.0.0.1"));
    let sqlite_settings = Settings { sections: vec![relay.clone()], ..Settings::default() };
    let mut server = TestServer::start_with(sqlite_settings);

    for n in 1..=4 {
        assert!(server.submit(BOB, &format!("Subject: note {n}\r\n\r\nnumber {n}")).starts_with("250"));
    }
    flag_messages(&server);
    let added = server.cli_ok(&["account", "app-password", "add", BOB, "--name", "phone"], None);
    let app_password =
        added.lines().find_map(|l| l.strip_prefix("App password (shown only this once): ")).unwrap().to_string();
    let totp_uri = enable_totp(&server, BOB);
    server.cli_ok(&["ban", "add", "127.0.0.66", "--for", "1h", "--reason", "before the move"], None);
    let dkim = server.cli_ok(&["domain", "add", "second.test"], None);
    server.cli_ok(&["account", "alias", "add", "sales@second.test", ALICE], None);
    assert!(server
        .submit("someone@far.test", &format!("From: <{ALICE}>\r\nSubject: away\r\n\r\nqueued"))
        .starts_with("250"));
    server.wait_event(|e| e["event"] == "delivery_attempt" && e["deferred"] == 1);
    let before = inbox_state(&server, &app_password);
    assert!(before.iter().any(|l| l.contains("$Work") && l.contains("\\Flagged")), "{before:?}");
    let dkim_before = server.cli_ok(&["dkim", "list", "second.test"], None);
    let bans_before = server.cli_ok(&["ban", "list"], None);

    // Live: the server keeps running while the copy is made.
    let out = server.cli(&["store", "migrate", "--to", &url], None);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for line in [
        "messages 3/3",
        "blobs 3/3",
        "expunged 1/1",
        "accounts 2/2",
        "queue 1/1",
        "dkim_keys ",
        "aliases 1/1",
        "bans 1/1",
    ] {
        assert!(said.contains(line), "{line:?} in {said}");
    }
    assert!(said.contains("Both ends agree"), "{said}");

    // A destination that holds anything is refused, and says so.
    let again = server.cli(&["store", "migrate", "--to", &url], None);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("not empty"), "{}", text(&again));

    // The cut-over: stop, switch store.url, start.
    let sqlite_config = server.dir.path().join("sqlite.toml");
    std::fs::copy(&server.config_path, &sqlite_config).unwrap();
    server.stop();
    let pg_settings =
        Settings { sections: vec![relay], store: vec![format!("url = \"{url}\"")], ..Settings::default() };
    server.rewrite_config(&pg_settings);
    server.launch();

    assert_eq!(inbox_state(&server, &app_password), before, "the same mailbox over IMAP on PostgreSQL");
    assert!(server.imap_login("127.0.0.2", ALICE, PASSWORD).starts_with("a OK"), "alice's password");
    assert!(server.imap_login("127.0.0.2", BOB, PASSWORD).starts_with("a NO"), "bob's TOTP still asked for");
    let totp =
        server.cli(&["account", "totp", "check", BOB], Some(&format!("{PASSWORD}\n{}\n", totp_code(&totp_uri, 30))));
    assert!(totp.status.success(), "bob's password and TOTP secret: {}", text(&totp));
    assert_eq!(server.cli_ok(&["dkim", "list", "second.test"], None), dkim_before);
    assert!(dkim_before.contains("active") && !dkim.is_empty(), "{dkim_before}");
    assert_eq!(server.cli_ok(&["ban", "list"], None), bans_before);
    assert!(server.cli_ok(&["account", "alias", "list"], None).contains("sales@second.test"));
    let queue = server.cli_ok(&["queue", "list"], None);
    assert!(queue.contains("someone@far.test"), "{queue}");
    // New mail on PostgreSQL goes on after the copied UIDs.
    assert!(server.submit(BOB, "Subject: after\r\n\r\nafter the move").starts_with("250"));
    let after = inbox_state(&server, &app_password);
    assert!(after.iter().any(|l| l.contains("UID 5 ")), "{after:?}");

    for config in [&server.config_path, &sqlite_config] {
        let check = cli_with(config, &["store", "check"]);
        assert!(check.status.success(), "{}", text(&check));
        assert!(text(&check).contains("No problems found."), "{}", text(&check));
    }
    server.stop();

    // And back, from the configured PostgreSQL store into a new SQLite file.
    // In the data dir: the CLI writes it as the service user, as the server would.
    let back = server.dir.path().join("data/back.db");
    let out = server.cli(&["store", "migrate", "--to", &format!("sqlite:{}", back.display())], None);
    assert!(out.status.success() && text(&out).contains("Both ends agree"), "{}", text(&out));
    assert!(text(&out).contains("messages 4/4"), "{}", text(&out));
}
