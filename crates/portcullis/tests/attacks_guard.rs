//! The attacks of the outside review (issue 13, items 2 and 4 to 7), each performed against the
//! real server from loopback sources (127.0.0.x stand in for other clients): login names of any
//! length, one account under many spellings, a storm of logins refused unchecked, tens of
//! thousands of bans, a flood of silent connections, and parallel guesses on one account.
//! What only IPv6 can show (prefixes beyond ::1) is tested in the guard itself.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::Value;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An IMAPS session from `source`, greeting read.
fn imap(server: &TestServer, source: &str) -> Client {
    let mut c = server.connect_from(source, "imaps").upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(c.line().starts_with("* OK"));
    c
}

/// Sends a tagged IMAP command and returns its tagged answer ("" if the server closed).
fn tagged(c: &mut Client, tag: &str, command: &str) -> String {
    c.send(&format!("{tag} {command}"));
    answer_to(c, tag)
}

/// The tagged answer to the command tagged `tag` ("" if the server closed).
fn answer_to(c: &mut Client, tag: &str) -> String {
    loop {
        let line = c.line();
        if line.starts_with(&format!("{tag} ")) || line.is_empty() {
            return line;
        }
    }
}

/// IMAP LOGIN with both arguments quoted (so that a name may hold spaces).
fn imap_login_quoted(server: &TestServer, source: &str, user: &str, password: &str) -> String {
    let mut c = imap(server, source);
    tagged(&mut c, "a", &format!("LOGIN \"{user}\" \"{password}\""))
}

fn auth_failures(server: &TestServer) -> Vec<Value> {
    server.events().into_iter().filter(|e| e["event"] == "auth_failed").collect()
}

/// The `auth_failed` events, once there are at least `n` (the log is read as it comes).
fn failures_when(server: &TestServer, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let failures = auth_failures(server);
        if failures.len() >= n || started.elapsed() > Duration::from_secs(10) {
            return failures;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `auth_failed` event of the connection whose local end is `client` (null if none
/// comes within a few seconds).
fn failure_of(server: &TestServer, client: std::net::SocketAddr) -> Value {
    let peer = client.to_string();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if let Some(e) = server.events().into_iter().find(|e| e["event"] == "auth_failed" && e["peer"] == peer.as_str())
        {
            return e;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Value::Null
}

#[test]
fn login_names_longer_than_255_bytes_are_refused_before_anything_else() {
    let server = TestServer::start_with(Settings {
        sections: vec![format!("[admin]\naccounts = [\"{ALICE}\"]\n")],
        ..Settings::default()
    });
    let mut wrong = Vec::new();
    // Where the login pipeline decides, the refusal is an event that names why, with the name
    // cut short; the SASL and POP3 parsers already refuse fields over 255 bytes themselves.
    let mut check = |what: &str, reply: &str, refused: bool, event: Option<(&Value, &str)>| {
        if !refused {
            wrong.push(format!("{what}: not refused: {}", &reply[..reply.len().min(200)]));
        }
        let Some((event, field)) = event else { return };
        let name = event[field].as_str().unwrap_or("");
        if event.is_null() {
            wrong.push(format!("{what}: no event"));
        } else if name.len() > 300 {
            wrong.push(format!("{what}: a {}-byte name in its {} event", name.len(), event["event"]));
        }
        if !event.is_null() && event["reason"] != "name_too_long" {
            wrong.push(format!("{what}: reason {}", event["reason"]));
        }
    };

    // IMAP LOGIN, the name a 60 KB literal (the command limit is 64 KiB).
    let long = format!("{}@example.test", "a".repeat(60_000));
    let mut c = imap(&server, "127.0.0.2");
    c.send_raw(format!("a LOGIN {{{}+}}\r\n{long} \"{PASSWORD}\"\r\n", long.len()).as_bytes());
    let reply = answer_to(&mut c, "a");
    let event = failure_of(&server, c.local_addr());
    check("IMAP LOGIN", &reply, reply.starts_with("a NO"), Some((&event, "username")));

    // SCRAM-SHA-256 over SMTP: its parser takes names up to 512 bytes.
    let name = format!("{}@example.test", "b".repeat(400));
    let mut s = server.connect_from("127.0.0.3", "submissions").upgrade(server.client_config(rustls::ALL_VERSIONS));
    s.reply();
    s.cmd("EHLO client");
    let first = s.cmd(&format!("AUTH SCRAM-SHA-256 {}", b64(format!("n,,n={name},r=clientnonce").as_bytes())));
    let reply = match first.strip_prefix("334 ") {
        Some(challenge) => {
            let server_first = base64::engine::general_purpose::STANDARD.decode(challenge.trim()).unwrap_or_default();
            let server_first = String::from_utf8(server_first).unwrap_or_default();
            let nonce = server_first.split(',').find_map(|f| f.strip_prefix("r=")).unwrap_or("x").to_string();
            s.cmd(&b64(format!("c=biws,r={nonce},p={}", b64(&[0u8; 32])).as_bytes()))
        }
        None => first,
    };
    let event = failure_of(&server, s.local_addr());
    check("SMTP SCRAM", &reply, reply.starts_with("535"), Some((&event, "username")));

    // SMTP AUTH PLAIN and POP3 USER: refused by their parsers.
    let mut s = server.connect_from("127.0.0.4", "submissions").upgrade(server.client_config(rustls::ALL_VERSIONS));
    s.reply();
    s.cmd("EHLO client");
    let reply = s.cmd(&format!("AUTH PLAIN {}", plain(&format!("{}@example.test", "c".repeat(2_880)), PASSWORD)));
    check("SMTP PLAIN", &reply, reply.starts_with("535"), None);
    let mut p = server.connect_from("127.0.0.5", "pop3s").upgrade(server.client_config(rustls::ALL_VERSIONS));
    p.line();
    let reply = p.cmd(&format!("USER {}", "d".repeat(3_000)));
    check("POP3 USER", &reply, reply.starts_with("-ERR"), None);

    // The admin sign-in, with a 1 MB name.
    let body = serde_json::json!({ "account": "e".repeat(1 << 20), "password": PASSWORD, "totp": "123456" });
    let response = server.http("POST", "/api/v1/signin", None, Some(&body.to_string()));
    let event = server.wait_event(|e| e["event"] == "admin_auth_failed" && e["path"] == "/api/v1/signin");
    check("admin sign-in", &response.status.to_string(), response.status == 401, Some((&event, "account")));

    // None of those names reached the log whole.
    let longest = server.events().iter().map(|e| e.to_string().len()).max().unwrap_or(0);
    if longest > 2_000 {
        wrong.push(format!("a {longest}-byte log line"));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn every_spelling_of_an_address_is_one_account_to_the_guard() {
    let server = TestServer::start_with(Settings {
        sections: vec![
            "[guard]\nfailure_delay = \"1ms\"\nmax_failure_delay = \"1ms\"\nunknown_source_attempts = 4\n".into()
        ],
        ..Settings::default()
    });
    // Alice's usual address.
    assert!(imap_login_quoted(&server, "127.0.0.2", ALICE, PASSWORD).starts_with("a OK"));
    // Four wrong guesses, one per spelling the store takes for alice, each from its own source.
    let spellings = ["alice@example.test.", "alice@ example.test", "ALICE@Example.TEST", " alice@example.test"];
    for (n, spelling) in spellings.iter().enumerate() {
        let answer = imap_login_quoted(&server, &format!("127.0.0.{}", 10 + n), spelling, "wrong-guess-1");
        assert!(answer.starts_with("a NO"), "{spelling}: {answer}");
    }
    let guessed: Vec<_> = failures_when(&server, 4).iter().map(|e| e["reason"].clone()).collect();
    assert_eq!(guessed, vec!["wrong_password"; 4], "every spelling opens alice's account in the store");
    // Now the account has had four attempts from unknown addresses: the next one, under yet
    // another spelling, is refused unchecked.
    let answer = imap_login_quoted(&server, "127.0.0.20", "Alice@example.test.", "wrong-guess-2");
    assert!(answer.contains("[UNAVAILABLE]"), "the guard saw four accounts, not one: answered {answer:?}");
    assert_eq!(failures_when(&server, 5)[4]["reason"], "account_limited");
    // Alice herself, from the address she logs in from, is not limited.
    assert!(imap_login_quoted(&server, "127.0.0.2", ALICE, PASSWORD).starts_with("a OK"));
}

/// Logs in over IMAP from `source` until the source is refused at accept (banned) or `until`;
/// counts the answers. Each connection makes up to three attempts, like a real attacker's.
fn attack_until_banned(server: &TestServer, source: &str, user: &str, until: Instant) -> (u32, bool) {
    let mut answers = 0;
    while Instant::now() < until {
        let Ok(tcp) = server.tcp_with(source, "imaps", None) else { return (answers, true) };
        let Ok(mut c) = Client::plain(tcp).handshake(server.client_config(rustls::ALL_VERSIONS)) else {
            return (answers, true);
        };
        if !c.line().starts_with("* OK") {
            return (answers, true);
        }
        for n in 0..3 {
            let answer = tagged(&mut c, &format!("t{n}"), &format!("LOGIN {user} wrong-guess-{n}"));
            if answer.is_empty() {
                break;
            }
            answers += 1;
        }
    }
    (answers, false)
}

#[test]
fn a_storm_of_unchecked_logins_gets_its_sources_banned_within_seconds() {
    // Expensive password checks (a stand-in for a busy machine): the ordinary queue of the
    // hashing pool fills, and most attempts are refused unchecked.
    let server = TestServer::start_with(Settings {
        passwords: vec!["argon2_memory_kib = 8192".into(), "argon2_iterations = 2".into()],
        ..Settings::default()
    });
    assert!(server.imap_login("127.0.0.2", ALICE, PASSWORD).starts_with("a OK"));
    let sources: Vec<String> = (10..30).map(|n| format!("127.0.0.{n}")).collect();
    let started = Instant::now();
    let until = started + Duration::from_secs(45);
    let results: Vec<(String, u32, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter()
            .flat_map(|source| (0..4).map(move |k| (source, k)).collect::<Vec<_>>())
            .map(|(source, k)| {
                let server = &server;
                scope.spawn(move || {
                    let (answers, banned) =
                        attack_until_banned(server, source, &format!("nobody{k}@example.test"), until);
                    (source.clone(), answers, banned)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut per_source: HashMap<String, (u32, bool)> = HashMap::new();
    for (source, answers, banned) in results {
        let entry = per_source.entry(source).or_default();
        entry.0 += answers;
        entry.1 |= banned;
    }
    let events = server.events();
    let busy = events.iter().filter(|e| e["event"] == "auth_failed" && e["reason"] == "server_busy").count();
    let checked = events.iter().filter(|e| e["event"] == "auth_failed" && e["reason"] == "unknown_account").count();
    let banned: Vec<&String> = sources.iter().filter(|s| per_source.get(*s).is_some_and(|p| p.1)).collect();
    let answers: u32 = per_source.values().map(|p| p.0).sum();
    eprintln!(
        "storm: {} of {} sources banned after {:?}; {answers} answers, {checked} checked, {busy} refused unchecked",
        banned.len(),
        sources.len(),
        started.elapsed()
    );
    assert_eq!(banned.len(), sources.len(), "sources still attacking after 45 s");
    assert!(started.elapsed() < Duration::from_secs(30), "the storm took {:?} to ban", started.elapsed());
    // Each source was banned by its attempts (20 by default), answered or not: a few more
    // answers come back from attempts that were already in flight.
    let most = per_source.values().map(|p| p.0).max().unwrap_or(0);
    assert!(most <= 20 + 4, "a source had {most} answers before its ban");
}

#[test]
fn sixty_thousand_bans_do_not_slow_accepts() {
    let mut server = TestServer::start();
    // The median time from connecting to the greeting (20 s when none comes).
    let connect = |server: &TestServer| {
        let mut times = Vec::new();
        for _ in 0..30 {
            let started = Instant::now();
            let mut c = server.connect_from("127.0.0.7", "submission");
            let greeted = c.reply().starts_with("220");
            times.push(if greeted { started.elapsed() } else { Duration::from_secs(20) });
            std::thread::sleep(Duration::from_millis(50));
        }
        times.sort();
        (times[times.len() / 2], times[times.len() * 9 / 10], times[times.len() - 1])
    };
    let before = connect(&server);

    // 60,000 bans in the store (an IPv6 /48's /64s, as a storm from it would leave).
    server.stop();
    server.with_store(async |store| {
        let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
        // All at once, so that the store commits them in a few large transactions.
        let mut writes = tokio::task::JoinSet::new();
        for n in 0..60_000u32 {
            let store = store.clone();
            let ban = portcullis_store::StoredBan {
                network: format!("2001:db8:77:{n:x}::/64"),
                until: Some(until as i64),
                reason: "test".into(),
                offence: 1,
                manual: false,
                created: 0,
            };
            writes.spawn(async move { store.put_ban(ban).await });
        }
        while let Some(written) = writes.join_next().await {
            written.unwrap().unwrap();
        }
    });
    let started = Instant::now();
    server.launch();
    let start_time = started.elapsed();
    // Accepts while the bans are re-read from the store every second.
    let after = connect(&server);
    eprintln!(
        "connect to greeting (p50, p90, max): {before:?} without bans, {after:?} with 60,000; start took {start_time:?}"
    );
    assert!(after.0 < before.0 * 3 + Duration::from_millis(20), "{before:?} -> {after:?}");
    assert!(after.2 < Duration::from_secs(1), "{before:?} -> {after:?}");
}

#[test]
fn a_slot_flood_cannot_lock_the_owner_out() {
    // Four of the forty slots are kept for owners (the default tenth).
    let server = TestServer::start_with(Settings {
        limits: vec!["max_connections = 40".into(), "max_connections_per_ip = 20".into()],
        ..Settings::default()
    });
    assert!(server.imap_login("127.0.0.2", ALICE, PASSWORD).starts_with("a OK"), "the owner's usual address");
    // Silent TLS connections from two sources, as many as are let in.
    let mut flood = Vec::new();
    for source in ["127.0.0.10", "127.0.0.11", "127.0.0.12"] {
        for _ in 0..20 {
            let Ok(tcp) = server.tcp_with(source, "imaps", None) else { break };
            let Ok(mut c) = Client::plain(tcp).handshake(server.client_config(rustls::ALL_VERSIONS)) else { break };
            if !c.line().starts_with("* OK") {
                break;
            }
            flood.push(c);
        }
    }
    eprintln!("the flood holds {} connections", flood.len());
    assert_eq!(flood.len(), 36, "all but the owners' slots");
    let started = Instant::now();
    let answer = server.imap_login("127.0.0.2", ALICE, PASSWORD);
    eprintln!("the owner's login during the flood: {answer:?} after {:?}", started.elapsed());
    assert!(answer.starts_with("a OK"), "the owner was locked out: {answer:?}");
    // Strangers are turned away politely, as over any connection limit.
    let mut stranger = server.connect_from("127.0.0.20", "imaps").upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(stranger.line().starts_with("* BYE [UNAVAILABLE]"));
    drop(flood);
}

#[test]
fn connections_that_never_log_in_are_closed_at_the_login_timeout() {
    const LOGIN_TIMEOUT: Duration = Duration::from_secs(3);
    let server =
        TestServer::start_with(Settings { limits: vec!["login_timeout = \"3s\"".into()], ..Settings::default() });
    let started = Instant::now();
    let mut imap = imap(&server, "127.0.0.10");
    let mut pop = server.connect_from("127.0.0.11", "pop3s").upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(pop.line().starts_with("+OK"));
    let mut smtp = server.connect_from("127.0.0.12", "submissions").upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(smtp.reply().starts_with("220"));
    let mut owner = imap_session_logged_in(&server, "127.0.0.13");
    // Busy, never logging in: a command every half second keeps any idle timer from firing.
    let mut open = true;
    while started.elapsed() < Duration::from_secs(30) && open {
        std::thread::sleep(Duration::from_millis(500));
        open = imap.try_send_raw(b"n NOOP\r\n").is_ok() && !answer_to(&mut imap, "n").is_empty();
    }
    let held = started.elapsed();
    assert!(!open, "a connection that never logs in held its slot for {held:?}");
    assert!(held < LOGIN_TIMEOUT + Duration::from_secs(3), "closed only after {held:?}");
    // Every protocol: the others were silent, and are gone too (SMTP with a goodbye; POP3's
    // autologout says nothing, RFC 1939 §3).
    assert!(smtp.reply().starts_with("421 4.4.2"), "SMTP");
    assert!(closed_by_server(&mut smtp) && closed_by_server(&mut pop));
    // A session that logged in is bound by the idle timeout only.
    assert_eq!(tagged(&mut owner, "b", "NOOP"), "b OK NOOP completed");
}

/// Whether the server closes the connection (end of stream) within a few seconds; a read
/// that times out is not a close.
fn closed_by_server(c: &mut Client) -> bool {
    c.set_read_timeout(Some(Duration::from_secs(10)));
    loop {
        match c.read_chunk() {
            Ok(data) if data.is_empty() => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

/// An IMAPS session from `source`, logged in as alice.
fn imap_session_logged_in(server: &TestServer, source: &str) -> Client {
    let mut c = imap(server, source);
    assert!(tagged(&mut c, "a", &format!("LOGIN {ALICE} {PASSWORD}")).starts_with("a OK"));
    c
}

#[test]
fn parallel_guesses_on_one_account_are_limited_not_just_slowed() {
    let server = TestServer::start_with(Settings {
        sections: vec![
            "[guard]\nfailure_delay = \"1ms\"\nmax_failure_delay = \"1ms\"\nunknown_source_attempts = 5\n".into()
        ],
        ..Settings::default()
    });
    // Forty guesses at once, each from its own address.
    let answers: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (10..50)
            .map(|n| {
                let server = &server;
                scope.spawn(move || server.imap_login(&format!("127.0.0.{n}"), ALICE, &format!("guess-{n}")))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = failures_when(&server, 40).iter().filter(|e| e["reason"] == "wrong_password").count();
    let limited = answers.iter().filter(|a| a.contains("[UNAVAILABLE]")).count();
    eprintln!("40 parallel guesses on one account: {checked} checked, {limited} refused unchecked");
    assert!(checked <= 5, "{checked} guesses checked on an account under attack");
    assert_eq!(limited, 40 - checked);
}
