//! The guard against real connections from several loopback addresses (127.0.0.2 to
//! 127.0.0.50 all reach the server): firewall rules, brute-force bans that spare the owner (and
//! the attacked account's limit on unknown addresses), bans across restarts and from the CLI,
//! sending limits, and anomaly alerts to a webhook.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

fn guard_settings(extra: &str) -> Settings {
    Settings {
        sections: vec![format!(
            "[guard]\nban_after_failures = 5\nfailure_delay = \"10ms\"\nmax_failure_delay = \"40ms\"\n\
             account_attack_failures = 5\nunknown_source_attempts = 5\nban_after_attempts = 5\n{extra}"
        )],
        ..Settings::default()
    }
}

#[test]
fn a_brute_force_from_many_sources_is_banned_while_the_owner_logs_in() {
    let server = TestServer::start_with(guard_settings(""));
    // The owner's usual address.
    assert!(server.imap_login("127.0.0.2", ALICE, PASSWORD).starts_with("a OK"));

    // Twenty attackers at once, five wrong passwords each (over several connections).
    std::thread::scope(|scope| {
        for n in 10..30 {
            let server = &server;
            scope.spawn(move || {
                let source = format!("127.0.0.{n}");
                for _ in 0..5 {
                    if server.refused(&source, "imaps") {
                        break;
                    }
                    let answer = server.imap_login(&source, ALICE, "guess-123456");
                    assert!(answer.starts_with("a NO") || answer.is_empty(), "{answer}");
                }
            });
        }
    });
    for n in 10..30 {
        let source = format!("127.0.0.{n}");
        assert!(server.refused(&source, "imaps"), "{source} is banned");
        assert!(server.refused(&source, "submissions"), "{source} is banned on every listener");
    }
    let bans = server.wait_events(|e| e["event"] == "ban_added" && e["origin"] == "auto", 20);
    assert_eq!(bans.len(), 20, "{bans:?}");

    // The owner, from the known address, logs in...
    let answer = server.imap_login("127.0.0.2", ALICE, PASSWORD);
    assert!(answer.starts_with("a OK"), "{answer}");
    // ...while an unknown address, even with the right password, is turned away for now: the
    // account has had all the attempts from unknown addresses its window allows.
    let answer = server.imap_login("127.0.0.40", ALICE, PASSWORD);
    assert!(answer.starts_with("a NO [UNAVAILABLE]"), "{answer}");
    // Another account is not affected.
    let answer = server.imap_login("127.0.0.41", BOB, PASSWORD);
    assert!(answer.starts_with("a OK"), "{answer}");
    server.wait_event(|e| e["event"] == "alert_raised" && e["kind"] == "login_after_failures");
}

#[test]
fn bans_survive_a_restart_and_the_cli_adds_and_lifts_them_at_once() {
    let mut server = TestServer::start_with(guard_settings(""));
    for _ in 0..2 {
        let mut c =
            server.connect_from("127.0.0.12", "submissions").upgrade(server.client_config(rustls::ALL_VERSIONS));
        c.reply();
        c.cmd("EHLO attacker");
        for _ in 0..3 {
            c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, "wrong-password")));
        }
    }
    server.wait_event(|e| e["event"] == "ban_added" && e["network"] == "127.0.0.12/32");
    assert!(server.refused("127.0.0.12", "pop3s"));
    let list = server.cli_ok(&["ban", "list"], None);
    assert!(list.contains("127.0.0.12/32") && list.contains("auto"), "{list}");

    server.stop();
    server.launch();
    assert!(server.refused("127.0.0.12", "imaps"), "the ban survived the restart");

    server.cli_ok(&["ban", "remove", "127.0.0.12"], None);
    let started = Instant::now();
    while server.refused("127.0.0.12", "imaps") {
        assert!(started.elapsed() < Duration::from_secs(5), "ban remove took effect too late");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.wait_event(|e| e["event"] == "ban_removed");

    // A session open when the admin bans its network is cut.
    let mut open = server.connect_from("127.0.0.13", "imaps").upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(open.line().starts_with("* OK"));
    server.cli_ok(&["ban", "add", "127.0.0.0/28", "--for", "1h", "--reason", "test"], None);
    let started = Instant::now();
    while !server.refused("127.0.0.13", "imaps") {
        assert!(started.elapsed() < Duration::from_secs(5), "ban add took effect too late");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(open.closed(), "the open session from the banned network was closed");
    assert!(!server.refused("127.0.0.20", "imaps"), "outside the banned network");
    assert!(server.cli(&["ban", "remove", "127.0.0.99"], None).status.code() != Some(0));
}

#[test]
fn trusted_networks_are_never_banned_nor_banned_by_hand() {
    let server = TestServer::start_with(Settings {
        sections: vec![
            "[firewall]\ntrusted_networks = [\"127.0.0.5\"]\n[guard]\nban_after_failures = 3\nfailure_delay = \"1ms\"\nmax_failure_delay = \"1ms\"\n".into(),
        ],
        ..Settings::default()
    });
    for _ in 0..6 {
        server.imap_login("127.0.0.5", ALICE, "wrong-password");
    }
    assert!(!server.refused("127.0.0.5", "imaps"));
    let out = server.cli(&["ban", "add", "127.0.0.0/24"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("trusted_networks"));
}

#[test]
fn a_listener_allow_list_refuses_others_before_tls_and_reloads_on_sighup() {
    let mut settings = Settings {
        sections: vec!["[firewall.imaps]\nallow = [\"127.0.0.2\", \"127.0.0.3\"]\n".into()],
        ..Settings::default()
    };
    let server = TestServer::start_with(settings.clone());
    assert!(server.refused("127.0.0.4", "imaps"), "not on the imaps allow list");
    assert!(!server.refused("127.0.0.4", "submissions"), "465 stays public");
    let e = server.wait_event(|e| e["event"] == "connection_refused" && e["reason"] == "firewall");
    assert_eq!(e["listener"], "imaps");
    assert!(
        !server.events().iter().any(|e| e["event"] == "tls_failed" && e["listener"] == "imaps"),
        "no TLS work for refused connections"
    );

    let mut two = server.connect_from("127.0.0.2", "imaps").upgrade(server.client_config(rustls::ALL_VERSIONS));
    let mut three = server.connect_from("127.0.0.3", "imaps").upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(two.line().starts_with("* OK") && three.line().starts_with("* OK"));
    settings.sections = vec!["[firewall.imaps]\nallow = [\"127.0.0.2\"]\n".into()];
    server.rewrite_config(&settings);
    server.signal(Signal::SIGHUP);
    server.wait_event(|e| e["event"] == "config_reloaded" && e["what"] == "firewall");
    assert!(three.closed(), "a session the new rules refuse is closed");
    two.send("n NOOP");
    assert_eq!(two.line(), "n OK NOOP completed", "a session that still matches goes on");
    assert!(server.refused("127.0.0.3", "imaps"));
}

#[test]
fn sending_limits_answer_with_a_temporary_error_and_alert() {
    let server = TestServer::start_with(guard_settings("max_messages_per_hour = 2\n"));
    assert!(server.submit(BOB, "Subject: 1\r\n\r\none").starts_with("250"));
    assert!(server.submit(BOB, "Subject: 2\r\n\r\ntwo").starts_with("250"));
    let third = server.submit(BOB, "Subject: 3\r\n\r\nthree");
    assert!(third.starts_with("451 4.7.1"), "{third}");
    let alert = server.wait_event(|e| e["event"] == "alert_raised" && e["kind"] == "sending_limit");
    assert_eq!(alert["account"], ALICE);
    let fourth = server.submit(BOB, "Subject: 4\r\n\r\nfour");
    assert!(fourth.starts_with("451 4.7.1"), "{fourth}");
    // An alert for the fourth would be logged before its refusal: once both refusals are in
    // the log, so is every alert they raised.
    server.wait_events(|e| e["event"] == "message_rejected" && e["reason"] == "sending limit reached", 2);
    assert_eq!(
        server.events().iter().filter(|e| e["kind"] == "sending_limit").count(),
        1,
        "one alert, not one per message"
    );
}

/// A webhook receiver on loopback: records each POSTed body.
fn webhook() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut length = 0;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        if line.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    seen.lock().unwrap().push(String::from_utf8(body).unwrap());
                    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
                }
            });
        }
    });
    (port, bodies)
}

#[test]
fn a_connection_spike_after_a_quiet_baseline_raises_exactly_one_alert() {
    let (port, bodies) = webhook();
    let server = TestServer::start_with(Settings {
        limits: vec!["max_connections_per_ip = 200".into()],
        sections: vec![format!(
            "[alerts]\nwebhook = \"http://127.0.0.1:{port}/hook\"\nmail_to = \"{BOB}\"\nbucket = \"1s\"\nwarmup_buckets = 3\nfloor = 20\n"
        )],
        ..Settings::default()
    });
    // A quiet baseline: a connection now and then for a few seconds.
    for _ in 0..8 {
        drop(server.connect_plain("submission"));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(bodies.lock().unwrap().is_empty(), "no alert while quiet");
    // The spike: 150 connections at once.
    let spike: Vec<_> = (0..150).map(|_| server.connect_plain("submission")).collect();
    let alert = server.wait_event(|e| e["event"] == "alert_raised" && e["kind"] == "connection_spike");
    assert!(alert["observed"].as_f64().unwrap() >= 100.0, "{alert}");
    drop(spike);
    // Delivered to the webhook (JSON, the same record as the log line)...
    let started = Instant::now();
    while bodies.lock().unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the webhook got nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    // ...and only once, even though the spike shows on the listener and overall.
    std::thread::sleep(Duration::from_secs(3));
    let received = bodies.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    let json: serde_json::Value = serde_json::from_str(&received[0]).unwrap();
    assert_eq!(json["event"], "alert_raised");
    assert_eq!(json["kind"], "connection_spike");
    assert_eq!(server.events().iter().filter(|e| e["event"] == "alert_raised").count(), 1);
    // And into the postmaster's (here bob's) mailbox.
    let mut pop = server.connect_tls("pop3s");
    pop.line();
    assert!(pop.cmd(&format!("AUTH PLAIN {}", plain(BOB, PASSWORD))).starts_with("+OK Logged in, 1 messages"));
    pop.cmd("TOP 1 0");
    assert!(pop.multiline().iter().any(|l| l.starts_with("Subject: [Portcullis warning] connection_spike")));
}
