//! Hostile input against the real server, over real TLS (issue 8): overlong lines, huge and
//! never-ending IMAP literals and SMTP message data, NUL bytes and invalid UTF-8, half-open and
//! slowloris connections, pipelined floods, TLS garbage and plaintext on the TLS ports,
//! STARTTLS injection on 587, and thousands of connections from one address. Port 25 (issue
//! 14) gets its own server and battery: the same kinds of input where they apply, and hostile
//! DNS (malformed answers, a silent server, huge TXT records, DKIM keys that do not parse).
//!
//! One server takes the whole battery. Every case must end in a clear protocol error or a
//! closed connection within its limit; afterwards the server must still serve a normal client,
//! its memory must be back near where it started, and nothing may have panicked.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Every idle timeout, and the TLS handshake timeout, of the server under attack.
const IDLE: Duration = Duration::from_secs(2);
const MAX_COMMANDS: usize = 2000;
const MAX_MESSAGE: usize = 1 << 20;
const MAX_CONNECTIONS_PER_IP: usize = 20;
/// How much later than its limit a connection may be cut (scheduling on a busy 2-core machine).
const SLACK: Duration = Duration::from_secs(3);
/// A third account, so that POP3 cases do not contend for alice's or bob's maildrop.
const CAROL: &str = "carol@example.test";
/// Size (about) of the message in carol's INBOX that the RETR floods fetch.
const BIG: usize = 128 * 1024;

fn settings() -> Settings {
    Settings {
        tls: vec!["handshake_timeout = \"2s\"".into()],
        limits: vec![
            "smtp_idle_timeout = \"2s\"".into(),
            "pop3_idle_timeout = \"2s\"".into(),
            "imap_idle_timeout = \"2s\"".into(),
            format!("max_commands = {MAX_COMMANDS}"),
            format!("max_message_size = {MAX_MESSAGE}"),
            format!("max_connections_per_ip = {MAX_CONNECTIONS_PER_IP}"),
        ],
        ..Settings::default()
    }
}

/// One kind of attack, against the running server.
type Case = fn(&TestServer);

#[test]
fn hostile_input_is_refused_or_cut_and_leaves_the_server_as_it_was() {
    let server = TestServer::start_with(settings());
    server.cli_ok(&["account", "add", CAROL, "--password-stdin"], Some(PASSWORD));
    let big = format!("Subject: big\r\n\r\n{}", format!("{}\r\n", "z".repeat(1022)).repeat(BIG / 1024));
    assert!(server.submit(CAROL, &big).starts_with("250"));

    // Warm up (TLS, the store's caches, the allocator), then take the baseline.
    for round in 0..3 {
        normal_client(&server, "127.0.0.2", &format!("warm-up {round}"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let baseline = rss_kib(&server);

    let cases: &[(&str, Case)] = &[
        ("overlong lines", overlong_lines),
        ("huge literals", huge_literals),
        ("never-ending literals", never_ending_literals),
        ("never-ending messages", never_ending_messages),
        ("NUL bytes", nul_bytes),
        ("invalid UTF-8", invalid_utf8),
        ("half-open connections", half_open),
        ("slowloris", slowloris),
        ("pipelined floods", pipelined_floods),
        ("POP3 RETR flood", retr_flood),
        ("TLS garbage", tls_garbage),
        ("plaintext on TLS ports", plaintext_on_tls_ports),
        ("STARTTLS injection", starttls_injection),
        ("connection flood", connection_flood),
    ];
    let mut peak = baseline;
    for (name, case) in cases {
        let started = Instant::now();
        case(&server);
        let rss = rss_kib(&server);
        peak = peak.max(rss);
        eprintln!("{name}: {:.1} s, server VmRSS {} KiB", started.elapsed().as_secs_f64(), rss);
    }

    // Still serving.
    normal_client(&server, "127.0.0.3", "after the battery");

    // Memory back near the start (what the allocator keeps for reuse, not what attacks held).
    let settled = settle_rss(&server, baseline);
    eprintln!("VmRSS: baseline {baseline} KiB, highest seen {peak} KiB, after {settled} KiB");
    assert!(
        settled <= baseline + RSS_MARGIN_KIB,
        "server memory did not come back: {baseline} KiB before, {settled} KiB after (margin {RSS_MARGIN_KIB} KiB)"
    );

    let internal: Vec<Value> = server.events().into_iter().filter(|e| e["event"] == "internal_error").collect();
    assert!(internal.is_empty(), "internal errors: {internal:?}");
    let (status, stderr) = server_stop(server);
    assert!(status.success(), "the server did not stop cleanly: {status}: {stderr}");
    assert!(!stderr.contains("panic"), "the server panicked: {stderr}");
}

/// What the server may keep after the battery, over its baseline. Runs showed 3 to 4.5 MiB
/// over a baseline of about 32 MiB; the margin is several times that, and far below what one
/// attack held before its fix (the RETR flood: 128 MiB).
const RSS_MARGIN_KIB: u64 = 16 * 1024;

fn server_stop(mut server: TestServer) -> (std::process::ExitStatus, String) {
    let (status, stderr) = server.stop();
    let stdout_panics: Vec<Value> =
        server.events().into_iter().filter(|e| e.to_string().to_lowercase().contains("panic")).collect();
    assert!(stdout_panics.is_empty(), "panics in the log: {stdout_panics:?}");
    (status, stderr)
}

fn rss_kib(server: &TestServer) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The server's VmRSS once it has come down to `baseline` + margin, or after 5 s, whichever
/// is first.
fn settle_rss(server: &TestServer, baseline: u64) -> u64 {
    let started = Instant::now();
    loop {
        let rss = rss_kib(server);
        if rss <= baseline + RSS_MARGIN_KIB || started.elapsed() > Duration::from_secs(5) {
            return rss;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---- clients --------------------------------------------------------------------------------

fn tls(server: &TestServer, source: &str, listener: &str) -> Client {
    server.connect_from(source, listener).upgrade(server.client_config(rustls::ALL_VERSIONS))
}

/// Reads until the server closes, for at most `limit`: what it said, and whether it closed.
fn until_closed(c: &mut Client, limit: Duration) -> (String, bool) {
    let started = Instant::now();
    let mut said = Vec::new();
    loop {
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return (String::from_utf8_lossy(&said).into_owned(), false);
        }
        c.set_read_timeout(Some(left));
        match c.read_chunk() {
            Ok(data) if data.is_empty() => return (String::from_utf8_lossy(&said).into_owned(), true),
            Ok(data) => said.extend(data),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            // Reset, or TLS ended without close_notify: closed all the same.
            Err(_) => return (String::from_utf8_lossy(&said).into_owned(), true),
        }
    }
}

/// Sends `bytes` one every `every` (a slowloris), until the server closes the connection or
/// `limit` has passed: what the server said, and when it closed (`None`: it never did).
fn trickle(c: &mut Client, bytes: &[u8], every: Duration, limit: Duration) -> (String, Option<Duration>) {
    drip(c, bytes.chunks(1).cycle(), every, limit)
}

/// As [`trickle`], one piece at a time: each piece whole, at once.
fn drip<'a>(
    c: &mut Client,
    pieces: impl Iterator<Item = &'a [u8]>,
    every: Duration,
    limit: Duration,
) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut said = Vec::new();
    let text = |said: &[u8]| String::from_utf8_lossy(said).into_owned();
    for piece in pieces {
        if started.elapsed() > limit {
            return (text(&said), None);
        }
        if c.try_send_raw(piece).is_err() {
            return (text(&said), Some(started.elapsed()));
        }
        let pause = Instant::now();
        while pause.elapsed() < every {
            c.set_read_timeout(Some(every.saturating_sub(pause.elapsed()).max(Duration::from_millis(1))));
            match c.read_chunk() {
                Ok(data) if data.is_empty() => return (text(&said), Some(started.elapsed())),
                Ok(data) => said.extend(data),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return (text(&said), Some(started.elapsed())),
            }
        }
    }
    unreachable!()
}

/// Sends an IMAP command; the untagged lines and the tagged one.
fn imap(c: &mut Client, tag: &str, command: &[u8]) -> (Vec<String>, String) {
    let mut line = format!("{tag} ").into_bytes();
    line.extend_from_slice(command);
    line.extend_from_slice(b"\r\n");
    c.send_raw(&line);
    imap_answer(c, tag)
}

/// The lines up to the tagged one ("" if the connection ends first: then `line()` keeps
/// returning "", which a message's blank lines do only once in a row, or a few times).
fn imap_answer(c: &mut Client, tag: &str) -> (Vec<String>, String) {
    let mut untagged = Vec::new();
    let mut blank = 0;
    loop {
        let line = c.line();
        if line.starts_with(&format!("{tag} ")) {
            return (untagged, line);
        }
        blank = if line.is_empty() { blank + 1 } else { 0 };
        if blank > 100 {
            return (untagged, String::new());
        }
        untagged.push(line);
    }
}

fn imap_login(server: &TestServer, source: &str, user: &str) -> Client {
    let mut c = tls(server, source, "imaps");
    assert!(c.line().starts_with("* OK"));
    let (_, ok) = imap(&mut c, "login", format!("LOGIN {user} {PASSWORD}").as_bytes());
    assert!(ok.starts_with("login OK"), "{ok}");
    c
}

fn smtp_login(server: &TestServer, source: &str) -> Client {
    let mut c = tls(server, source, "submissions");
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("EHLO hostile.test").starts_with("250"));
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD))).starts_with("235"));
    c
}

/// Logs in over POP3, waiting a little if the last session's maildrop lock is still held.
fn pop3_login(server: &TestServer, source: &str, user: &str) -> Client {
    let started = Instant::now();
    loop {
        let mut c = tls(server, source, "pop3s");
        assert!(c.line().starts_with("+OK"));
        c.send(&format!("AUTH PLAIN {}", plain(user, PASSWORD)));
        let answer = c.line();
        if answer.starts_with("+OK") {
            return c;
        }
        assert!(answer.contains("IN-USE") && started.elapsed() < SLACK, "{answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A well-behaved client on every protocol: alice sends herself a message over 465 and reads
/// it back, byte for byte, over IMAP and POP3.
fn normal_client(server: &TestServer, source: &str, what: &str) {
    let id = format!("<{}.{}@hostile.test>", what.replace(' ', "-"), rand_u64());
    let body = format!("Subject: {what}\r\nMessage-ID: {id}\r\n\r\nA normal message ({what}).\r\nSecond line.");
    let mut c = smtp_login(server, source);
    assert!(c.cmd(&format!("MAIL FROM:<{ALICE}>")).starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{ALICE}>")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(&format!("{body}\r\n."));
    let stored = c.reply();
    assert!(stored.starts_with("250 "), "{what}: {stored}");
    assert!(c.cmd("QUIT").starts_with("221"));

    let mut i = imap_login(server, source, ALICE);
    let (_, ok) = imap(&mut i, "s", b"SELECT INBOX");
    assert!(ok.starts_with("s OK"), "{ok}");
    let (found, ok) = imap(&mut i, "f", format!("UID SEARCH HEADER Message-ID \"{id}\"").as_bytes());
    assert!(ok.starts_with("f OK"), "{ok}");
    let uid: u32 = found[0].rsplit(' ').next().unwrap().parse().expect("one message found");
    let (lines, ok) = imap(&mut i, "g", format!("UID FETCH {uid} BODY.PEEK[]").as_bytes());
    assert!(ok.starts_with("g OK"), "{ok}");
    let fetched = lines.join("\r\n");
    assert!(fetched.contains(&body), "{what}: IMAP gave {fetched}");
    imap(&mut i, "o", b"LOGOUT");

    let mut p = pop3_login(server, source, ALICE);
    p.send("STAT");
    let stat = p.line();
    let count: usize = stat.split(' ').nth(1).unwrap().parse().unwrap();
    p.send(&format!("RETR {count}"));
    assert!(p.line().starts_with("+OK"));
    let message = p.multiline().join("\r\n");
    assert!(message.ends_with(&body), "{what}: POP3 gave {message}");
    p.send("QUIT");
    assert!(p.line().starts_with("+OK"));
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    h.finish()
}

/// Pseudo-random bytes (xorshift), the same for the same seed.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

fn events_of(server: &TestServer, peer: SocketAddr) -> Vec<Value> {
    let peer = peer.to_string();
    server.events().into_iter().filter(|e| e["peer"] == peer.as_str()).collect()
}

/// Whether the server logged this protocol violation for `peer` (waiting a little for the
/// log line).
fn violation(server: &TestServer, peer: SocketAddr, what: &str) -> bool {
    let started = Instant::now();
    loop {
        if events_of(server, peer).iter().any(|e| e["event"] == "protocol_violation" && e["what"] == what) {
            return true;
        }
        if started.elapsed() > SLACK {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (a little) for the server to log the end of the connection from `peer`; its reason.
fn close_reason(server: &TestServer, peer: SocketAddr) -> String {
    let peer = peer.to_string();
    let e = server.wait_event(|e| e["event"] == "connection_closed" && e["peer"] == peer.as_str());
    e["reason"].as_str().unwrap().to_string()
}

// ---- the cases ------------------------------------------------------------------------------

/// A 1 MiB line (256 times the limit) on every protocol: one error for the whole line, and the
/// session goes on. Also a message over the size limit, announced and not.
fn overlong_lines(server: &TestServer) {
    const SRC: &str = "127.0.0.11";
    let huge = "a".repeat(1 << 20);

    let mut c = tls(server, SRC, "submissions");
    c.reply();
    c.send(&format!("EHLO {huge}"));
    assert_eq!(c.reply(), "500 5.5.2 Line too long");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK");
    assert!(violation(server, c.local_addr(), "line too long"));

    let mut c = server.connect_from(SRC, "submission");
    c.reply();
    c.send(&huge);
    assert_eq!(c.reply(), "500 5.5.2 Line too long");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK");

    let mut p = tls(server, SRC, "pop3s");
    p.line();
    p.send(&format!("USER {huge}"));
    assert_eq!(p.line(), "-ERR Line too long");
    p.send("CAPA");
    assert!(p.line().starts_with("+OK"));
    p.multiline();

    let mut i = tls(server, SRC, "imaps");
    i.line();
    let (_, bad) = imap(&mut i, "a1", format!("LOGIN {huge} x").as_bytes());
    assert_eq!(bad, "a1 BAD Command line too long");
    // Inside a SASL exchange.
    i.send("a2 AUTHENTICATE PLAIN");
    assert!(i.line().starts_with('+'));
    i.send(&huge);
    let (_, bad) = imap_answer(&mut i, "a2");
    assert!(bad.starts_with("a2 BAD") || bad.starts_with("a2 NO"), "{bad}");
    assert!(imap(&mut i, "a3", b"NOOP").1.starts_with("a3 OK"));
    assert!(violation(server, i.local_addr(), "command too long"));

    // Messages over max_message_size: announced with SIZE, and sent anyway.
    let mut c = smtp_login(server, SRC);
    assert!(c.cmd("EHLO again").contains(&format!("SIZE {MAX_MESSAGE}")));
    assert!(c.cmd(&format!("MAIL FROM:<{ALICE}> SIZE={}", MAX_MESSAGE + 1)).starts_with("552 5.3.4"));
    assert!(c.cmd(&format!("MAIL FROM:<{ALICE}>")).starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let line = format!("{}\r\n", "y".repeat(998));
    for _ in 0..(MAX_MESSAGE / 1000 + 100) {
        c.send_raw(line.as_bytes());
    }
    c.send(".");
    assert!(c.reply().starts_with("552 5.3.4"));
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK");
    assert!(violation(server, c.local_addr(), "message too big"));
}

/// Literals announced far over any limit, before and after login: refused without a
/// continuation request, the session goes on; a non-synchronizing one closes it.
fn huge_literals(server: &TestServer) {
    const SRC: &str = "127.0.0.12";
    let mut i = tls(server, SRC, "imaps");
    i.line();
    for (tag, command) in [
        ("a1", "LOGIN {999999999}"),
        ("a2", "APPEND INBOX {999999999}"),
        // Under APPENDLIMIT, but nobody is logged in: no reason to take it.
        ("a3", "APPEND INBOX {500000}"),
        ("a4", "LOGIN {9999999999999999999}"),
    ] {
        let (_, answer) = imap(&mut i, tag, command.as_bytes());
        assert_eq!(answer, format!("{tag} NO [TOOBIG] Literal too large"), "{command}");
    }
    // Too many digits to be a size at all.
    let (_, answer) = imap(&mut i, "a5", b"LOGIN {99999999999999999999999}");
    assert!(answer.starts_with("a5 BAD"), "{answer}");
    assert!(imap(&mut i, "a6", b"NOOP").1.starts_with("a6 OK"));
    // A non-synchronizing literal cannot be skipped: the connection goes.
    i.send("a7 APPEND INBOX {999999999+}");
    let (said, closed) = until_closed(&mut i, SLACK);
    assert!(closed && said.contains("* BYE [TOOBIG]"), "{said}");
    assert!(violation(server, i.local_addr(), "literal too big"));

    let mut i = imap_login(server, SRC, ALICE);
    for (tag, command) in [
        ("b1", "APPEND INBOX {999999999}".to_string()),
        ("b2", format!("APPEND INBOX {{{}}}", MAX_MESSAGE + 1)),
        ("b3", "SELECT {999999999}".to_string()),
        ("b4", "APPEND INBOX (\\Seen) {4294967296}".to_string()),
    ] {
        let (_, answer) = imap(&mut i, tag, command.as_bytes());
        assert_eq!(answer, format!("{tag} NO [TOOBIG] Literal too large"), "{command}");
    }
    assert!(imap(&mut i, "b5", b"NOOP").1.starts_with("b5 OK"));
}

/// Literals that start and never end: the idle timeout ends them, with a BYE.
fn never_ending_literals(server: &TestServer) {
    const SRC: &str = "127.0.0.13";
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = tls(server, SRC, "imaps");
            i.line();
            i.send("a1 LOGIN {60000}");
            assert!(i.line().starts_with('+'));
            i.send_raw(&[b'x'; 1000]);
            let (said, closed) = until_closed(&mut i, IDLE + SLACK);
            assert!(closed && said.contains("* BYE"), "pre-login literal: {said}");
        });
        s.spawn(|| {
            let mut i = imap_login(server, SRC, ALICE);
            i.send(&format!("b1 APPEND INBOX {{{}}}", MAX_MESSAGE - 10));
            assert!(i.line().starts_with('+'));
            i.send_raw(&vec![b'x'; 200_000]);
            let (said, closed) = until_closed(&mut i, IDLE + SLACK);
            assert!(closed && said.contains("* BYE"), "APPEND literal: {said}");
            assert_eq!(close_reason(server, i.local_addr()), "timeout");
        });
    });
}

/// SMTP's literals: message data that never ends, sent as fast as the server takes it, as
/// DATA and as one huge BDAT chunk. Skipped up to `max_message_size` plus the larger of itself
/// and 1 MiB, then answered as too big and cut, not read for ever.
fn never_ending_messages(server: &TestServer) {
    const SRC: &str = "127.0.0.25";
    std::thread::scope(|s| {
        for start in ["DATA", "BDAT 1000000000000"] {
            s.spawn(move || {
                let mut c = smtp_login(server, SRC);
                assert!(c.cmd(&format!("MAIL FROM:<{ALICE}>")).starts_with("250"));
                assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
                c.send(start);
                if start == "DATA" {
                    assert!(c.reply().starts_with("354"));
                }
                let peer = c.local_addr();
                let piece = format!("{}\r\n", "n".repeat(1022)).repeat(64);
                let mut sent = 0;
                // 16 times the limit, or until the server stops taking it.
                while sent < 16 * MAX_MESSAGE && c.try_send_raw(piece.as_bytes()).is_ok() {
                    sent += piece.len();
                }
                let (_, closed) = until_closed(&mut c, SLACK);
                assert!(closed, "{start}: not closed after {sent} bytes");
                assert!(sent < 16 * MAX_MESSAGE, "{start}: the server took {sent} bytes");
                assert!(violation(server, peer, "message too big"), "{start}");
                assert_ne!(close_reason(server, peer), "timeout", "{start}: cut by the idle timeout only");
            });
        }
    });
}

/// NUL bytes in commands, arguments, literals and a message body.
fn nul_bytes(server: &TestServer) {
    const SRC: &str = "127.0.0.14";
    let mut c = tls(server, SRC, "submissions");
    c.reply();
    // The name is only recorded, cleaned, in the Received header.
    c.send_raw(b"EHLO a\0b\r\n");
    assert!(c.reply().starts_with("250-"));
    c.send_raw(b"NO\0OP\r\n");
    assert_eq!(c.reply(), "500 5.5.2 Command unrecognized");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK");

    let mut c = smtp_login(server, SRC);
    c.send_raw(format!("MAIL FROM:<ali\0ce@{DOMAIN}>\r\n").as_bytes());
    assert_eq!(c.reply(), "553 5.1.7 Bad sender address syntax");
    assert!(c.cmd(&format!("MAIL FROM:<{ALICE}>")).starts_with("250"));
    c.send_raw(format!("RCPT TO:<b\0ob@{DOMAIN}>\r\n").as_bytes());
    assert_eq!(c.reply(), "553 5.1.3 Bad recipient address syntax");
    assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send_raw(b"Subject: nul\0bytes\r\n\r\nbody with \0 a NUL\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0 Message stored"));
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK");

    let mut p = tls(server, SRC, "pop3s");
    p.line();
    p.send_raw(b"US\0ER carol\r\n");
    assert_eq!(p.line(), "-ERR Unknown command");
    p.send_raw(b"USER car\0ol\r\n");
    assert_eq!(p.line(), "+OK Send PASS");
    p.send("CAPA");
    assert!(p.line().starts_with("+OK"));
    p.multiline();

    let mut i = tls(server, SRC, "imaps");
    i.line();
    assert!(imap(&mut i, "a1", b"NO\0OP").1.starts_with("a1 BAD Syntax error"));
    assert_eq!(imap(&mut i, "a2", b"LOGIN \"ali\0ce\" x").1, "a2 BAD Syntax error: unterminated quoted string");
    // In a literal it is just a byte of a user name nobody has.
    i.send("a3 LOGIN {6}");
    assert!(i.line().starts_with('+'));
    i.send_raw(b"al\0ice x\r\n");
    assert!(imap_answer(&mut i, "a3").1.starts_with("a3 NO [AUTHENTICATIONFAILED]"));
    assert!(imap(&mut i, "a4", b"NOOP").1.starts_with("a4 OK"));

    let mut i = imap_login(server, SRC, ALICE);
    assert_eq!(imap(&mut i, "b1", b"SELECT \"IN\0BOX\"").1, "b1 BAD Syntax error: unterminated quoted string");
    assert!(imap(&mut i, "b2", b"NOOP").1.starts_with("b2 OK"));
}

/// Bytes that are not UTF-8 where text is expected, and a message full of them, which IMAP
/// must still summarize (ENVELOPE, BODYSTRUCTURE) and search.
fn invalid_utf8(server: &TestServer) {
    const SRC: &str = "127.0.0.15";
    let mut c = smtp_login(server, SRC);
    c.send_raw(b"EHLO \xff\xfe\xfd\r\n");
    assert!(c.reply().starts_with("250-"));
    c.send_raw(b"MAIL FROM:<\xff\xfe@example.test>\r\n");
    assert_eq!(c.reply(), "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter");
    c.send_raw(b"MAIL FROM:<\xc3\x28@example.test> SMTPUTF8\r\n");
    assert_eq!(c.reply(), "553 5.1.7 Bad sender address syntax");
    assert!(c.cmd(&format!("MAIL FROM:<{ALICE}>")).starts_with("250"));
    c.send_raw(b"RCPT TO:<\xff\xfe@example.test>\r\n");
    assert!(c.reply().starts_with("550 5.1.1"));
    assert_eq!(c.cmd("RSET"), "250 2.0.0 OK");

    let mut p = tls(server, SRC, "pop3s");
    p.line();
    p.send_raw(b"\xff\xfe\r\n");
    assert_eq!(p.line(), "-ERR Unknown command");
    p.send_raw(b"USER \xc3\x28\r\n");
    assert_eq!(p.line(), "+OK Send PASS");
    p.send("CAPA");
    assert!(p.line().starts_with("+OK"));
    p.multiline();

    let mut i = tls(server, SRC, "imaps");
    i.line();
    assert!(imap(&mut i, "a1", b"\xff\xfe").1.starts_with("a1 BAD Syntax error"));
    assert!(imap(&mut i, "a2", b"NOOP").1.starts_with("a2 OK"));

    let mut i = imap_login(server, SRC, ALICE);
    assert_eq!(imap(&mut i, "b1", b"SELECT \"\xff\xfe\"").1, "b1 NO [CANNOT] Invalid mailbox name");
    assert!(imap(&mut i, "b2", b"ENABLE UTF8=ACCEPT").1.starts_with("b2 OK"));
    assert_eq!(imap(&mut i, "b3", b"CREATE \"\xc3\x28\"").1, "b3 NO [CANNOT] Invalid mailbox name");
    let message: &[u8] = b"From: \xc3\x28 <x@\xff.test>\r\nSubject: =?utf-8?b?/w==?= \xff\xfe\r\n\
        Content-Type: multipart/mixed; boundary=\"\xff\"\r\n\r\n--\xff\r\nContent-Type: text/plain; \
        charset=\xfe\r\n\r\n\xff\xff\r\n--\xff--\r\n";
    i.send(&format!("b4 APPEND INBOX {{{}}}", message.len()));
    assert!(i.line().starts_with('+'));
    i.send_raw(message);
    i.send_raw(b"\r\n");
    assert!(imap_answer(&mut i, "b4").1.starts_with("b4 OK"));
    assert!(imap(&mut i, "b5", b"SELECT INBOX").1.starts_with("b5 OK"));
    let (fetched, answer) =
        imap(&mut i, "b6", b"FETCH * (ENVELOPE BODYSTRUCTURE BODY[HEADER.FIELDS (SUBJECT)] BINARY[1])");
    assert_eq!(answer, "b6 OK FETCH completed");
    assert!(fetched[0].contains("ENVELOPE") && fetched.join(" ").contains("BODYSTRUCTURE"));
    assert_eq!(imap(&mut i, "b7", b"SEARCH CHARSET UTF-8 SUBJECT \"\xff\"").1, "b7 BAD Syntax error: invalid UTF-8");
    assert!(imap(&mut i, "b8", b"NOOP").1.starts_with("b8 OK"));
}

/// Connections that say nothing, or stop halfway, or close their sending side.
fn half_open(server: &TestServer) {
    const SRC: &str = "127.0.0.16";
    std::thread::scope(|s| {
        for listener in ["submissions", "imaps", "pop3s"] {
            // Connected, not a byte sent: cut at the handshake timeout.
            s.spawn(move || {
                let mut c = server.connect_from(SRC, listener);
                let (said, closed) = until_closed(&mut c, IDLE + SLACK);
                assert!(closed && said.is_empty(), "{listener}, silent: {said:?}");
                assert_eq!(close_reason(server, c.local_addr()), "tls_failed");
            });
            // Connected and half-closed at once: gone as soon as the server reads the FIN.
            s.spawn(move || {
                let mut c = server.connect_from(SRC, listener);
                c.shutdown_write();
                let (_, closed) = until_closed(&mut c, SLACK);
                assert!(closed, "{listener}, half-closed before TLS");
            });
            // TLS, then silence: the idle timeout.
            s.spawn(move || {
                let mut c = tls(server, SRC, listener);
                let (said, closed) = until_closed(&mut c, IDLE + SLACK);
                assert!(closed, "{listener}, idle: {said}");
                match listener {
                    "submissions" => assert!(said.contains("421 4.4.2"), "{said}"),
                    "imaps" => assert!(said.contains("* BYE Autologout"), "{said}"),
                    _ => {}
                }
                assert_eq!(close_reason(server, c.local_addr()), "timeout");
            });
            // TLS, half a command, then half-closed.
            s.spawn(move || {
                let mut c = tls(server, SRC, listener);
                c.line();
                c.send_raw(b"NO");
                c.shutdown_write();
                let (_, closed) = until_closed(&mut c, SLACK);
                assert!(closed, "{listener}, half-closed mid-command");
                let reason = close_reason(server, c.local_addr());
                assert!(reason == "peer_closed" || reason == "io_error", "{reason}");
            });
        }
        // 587 greets in plaintext, then waits for EHLO no longer than the idle timeout.
        s.spawn(|| {
            let mut c = server.connect_from(SRC, "submission");
            let (said, closed) = until_closed(&mut c, IDLE + SLACK);
            assert!(closed && said.starts_with("220 ") && said.contains("421 4.4.2"), "587, silent: {said}");
        });
    });
}

/// One byte per second, of a command or of a TLS handshake: cut within the idle (or
/// handshake) timeout of the first byte, not kept alive by every byte.
fn slowloris(server: &TestServer) {
    const SRC: &str = "127.0.0.17";
    let second = Duration::from_secs(1);
    let limit = IDLE + SLACK;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut c = tls(server, SRC, "submissions");
            c.reply();
            let (said, closed) = trickle(&mut c, b"EHLO slowloris.example\r\n", second, limit);
            assert!(closed.is_some() && said.contains("421 4.4.2"), "465: {said}");
        });
        s.spawn(|| {
            let mut c = server.connect_from(SRC, "submission");
            c.reply();
            let (said, closed) = trickle(&mut c, b"EHLO slowloris.example\r\n", second, limit);
            assert!(closed.is_some() && said.contains("421 4.4.2"), "587: {said}");
        });
        s.spawn(|| {
            let mut c = tls(server, SRC, "imaps");
            c.line();
            let (said, closed) = trickle(&mut c, b"a1 CAPABILITY\r\n", second, limit);
            assert!(closed.is_some() && said.contains("* BYE"), "993: {said}");
        });
        s.spawn(|| {
            let mut c = tls(server, SRC, "pop3s");
            c.line();
            let (said, closed) = trickle(&mut c, b"CAPA\r\n", second, limit);
            assert!(closed.is_some(), "995: {said}");
        });
        // A SASL response, trickled (the exchange is one command).
        s.spawn(|| {
            let mut c = tls(server, SRC, "imaps");
            c.line();
            c.send("a1 AUTHENTICATE PLAIN");
            assert!(c.line().starts_with('+'));
            let (said, closed) = trickle(&mut c, b"AGFsaWNlAHg=\r\n", second, limit);
            assert!(closed.is_some(), "993 SASL: {said}");
        });
        // A message's data, trickled by a logged-in client: not a command, but an upload that
        // must average MIN_UPLOAD_RATE (1 KiB/s) beyond the idle timeout.
        s.spawn(|| {
            let mut c = smtp_login(server, SRC);
            assert!(c.cmd(&format!("MAIL FROM:<{ALICE}>")).starts_with("250"));
            assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
            assert!(c.cmd("DATA").starts_with("354"));
            let (said, closed) = trickle(&mut c, b"Subject: slow\r\n\r\nsome text\r\n", second, limit);
            assert!(closed.is_some() && said.contains("421 4.4.2"), "465 DATA: {said}");
        });
        // An APPEND's message literal, trickled: an upload like DATA.
        s.spawn(|| {
            let mut c = imap_login(server, SRC, ALICE);
            c.send("a2 APPEND INBOX {200000}");
            assert!(c.line().starts_with('+'));
            let (said, closed) = trickle(&mut c, b"Subject: slow\r\n\r\nsome text\r\n", second, limit);
            assert!(closed.is_some() && said.contains("* BYE"), "993 APPEND: {said}");
        });
        // The same as BDAT chunks of a byte, each BDAT line sent whole and quickly: every
        // command is prompt, the message as a whole is not.
        s.spawn(|| {
            let mut c = smtp_login(server, SRC);
            assert!(c.cmd(&format!("MAIL FROM:<{ALICE}>")).starts_with("250"));
            assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
            let (said, closed) = drip(&mut c, std::iter::repeat(&b"BDAT 1\r\nx"[..]), second, limit);
            assert!(closed.is_some() && said.contains("250 2.0.0 1 octets received"), "465 BDAT: {said}");
            assert!(said.contains("421 4.4.2"), "465 BDAT: {said}");
        });
        // A BDAT chunk announced before login, refused and only skipped: it is part of its
        // command, trickled or not.
        s.spawn(|| {
            let mut c = tls(server, SRC, "submissions");
            c.reply();
            assert!(c.cmd("EHLO slowloris.example").starts_with("250"));
            c.send("BDAT 1000000000");
            let (said, closed) = trickle(&mut c, b"x", second, limit);
            assert!(closed.is_some() && said.contains("421 4.4.2"), "465 refused BDAT: {said}");
        });
        // The TLS ClientHello itself, trickled: the handshake timeout covers the handshake.
        s.spawn(|| {
            let name = rustls::pki_types::ServerName::try_from(HOSTNAME).unwrap();
            let mut hello = Vec::new();
            rustls::ClientConnection::new(server.client_config(rustls::ALL_VERSIONS), name)
                .unwrap()
                .write_tls(&mut hello)
                .unwrap();
            let mut c = server.connect_from(SRC, "pop3s");
            let (_, closed) = trickle(&mut c, &hello, second, limit);
            assert!(closed.is_some(), "995 handshake");
        });
    });
}

/// Thousands of commands in one write: answered until `max_commands`, then the connection is
/// closed; the counted commands include RCPT TO repeated without end.
fn pipelined_floods(server: &TestServer) {
    const SRC: &str = "127.0.0.18";
    let flood = |line: &str, n: usize| line.repeat(n).into_bytes();
    let limit = Duration::from_secs(30);

    let mut c = tls(server, SRC, "submissions");
    c.reply();
    let _ = c.try_send_raw(&flood("NOOP\r\n", 3 * MAX_COMMANDS));
    let (said, closed) = until_closed(&mut c, limit);
    assert!(closed, "SMTP NOOP flood: not closed");
    assert!(said.matches("250 2.0.0 OK").count() <= MAX_COMMANDS);
    assert!(violation(server, c.local_addr(), "too many commands"), "SMTP NOOP flood");

    let mut c = smtp_login(server, SRC);
    assert!(c.cmd(&format!("MAIL FROM:<{ALICE}>")).starts_with("250"));
    let _ = c.try_send_raw(&flood(&format!("RCPT TO:<{BOB}>\r\n"), 3 * MAX_COMMANDS));
    let (said, closed) = until_closed(&mut c, limit);
    assert!(closed, "SMTP RCPT flood: not closed after {} replies", said.lines().count());
    assert!(violation(server, c.local_addr(), "too many commands"), "SMTP RCPT flood");

    let mut i = tls(server, SRC, "imaps");
    i.line();
    let commands: String = (0..3 * MAX_COMMANDS).map(|n| format!("t{n} NOOP\r\n")).collect();
    let _ = i.try_send_raw(commands.as_bytes());
    let (said, closed) = until_closed(&mut i, limit);
    assert!(closed, "IMAP NOOP flood: not closed");
    assert!(said.matches(" OK NOOP completed").count() <= MAX_COMMANDS);
    assert!(violation(server, i.local_addr(), "too many commands"), "IMAP NOOP flood");

    let mut p = pop3_login(server, SRC, CAROL);
    let _ = p.try_send_raw(&flood("NOOP\r\n", 3 * MAX_COMMANDS));
    let (said, closed) = until_closed(&mut p, limit);
    assert!(closed && said.contains("-ERR Too many commands"), "POP3 NOOP flood");
}

/// RETR of the big message a thousand times in one write: the server's memory must not grow
/// with the number of RETRs waiting to be answered; and a client that asks and never reads is
/// cut off at the idle timeout.
fn retr_flood(server: &TestServer) {
    const SRC: &str = "127.0.0.19";
    const RETRS: usize = 1000;
    let before = rss_kib(server);
    let mut p = pop3_login(server, SRC, CAROL);
    p.send_raw(format!("{}QUIT\r\n", "RETR 1\r\n".repeat(RETRS)).as_bytes());
    let done = std::sync::atomic::AtomicBool::new(false);
    let (received, peak) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(server));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        // Count what comes back without keeping it.
        let mut received = 0;
        p.set_read_timeout(Some(Duration::from_secs(20)));
        while let Ok(chunk) = p.read_chunk() {
            if chunk.is_empty() {
                break;
            }
            received += chunk.len();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (received, sampler.join().unwrap())
    });
    eprintln!("RETR flood: {received} bytes; server VmRSS {before} KiB before, {peak} KiB at most");
    assert!(received >= RETRS * BIG, "RETR flood: only {received} bytes came back");
    assert!(peak < before + 48 * 1024, "RETR flood: the server's memory went from {before} KiB to {peak} KiB");

    // Asks for a thousand copies and reads none: cut off at the idle timeout.
    let mut p = server.connect_with(SRC, "pop3s", Some(4096)).upgrade(server.client_config(rustls::ALL_VERSIONS));
    p.line();
    p.send(&format!("AUTH PLAIN {}", plain(CAROL, PASSWORD)));
    assert!(p.line().starts_with("+OK"));
    p.send_raw("RETR 1\r\n".repeat(RETRS).as_bytes());
    let peer = p.local_addr();
    let started = Instant::now();
    let closed = server.wait_event(|e| e["event"] == "connection_closed" && e["peer"] == peer.to_string().as_str());
    assert_eq!(closed["reason"], "io_error");
    assert!(started.elapsed() < IDLE + SLACK, "a reader that stops was held for {:?}", started.elapsed());
}

/// Not TLS on the TLS ports: random bytes, a record header announcing 16 KiB that never comes,
/// an SSLv2 hello, and garbage inside an established TLS connection. Closed, never answered
/// in plaintext.
fn tls_garbage(server: &TestServer) {
    const SRC: &str = "127.0.0.20";
    let sslv2_hello: &[u8] = &[
        0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10, 0x05, 0x00, 0x80, 0x03, 0x00, 0x80, 0x01,
        0x00, 0x80, 0x07, 0x00, 0xc0, 0x06, 0x00, 0x40, 0x02, 0x00, 0x80, 0x04, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    std::thread::scope(|s| {
        for (n, listener) in ["submissions", "imaps", "pop3s"].into_iter().enumerate() {
            s.spawn(move || {
                let mut c = server.connect_from(SRC, listener);
                let _ = c.try_send_raw(&noise(64 * 1024, n as u64 + 1));
                let (said, closed) = until_closed(&mut c, SLACK);
                assert!(closed, "{listener}: random bytes");
                assert!(!said.contains("OK") && !said.contains("220"), "{listener}: {said}");
            });
            s.spawn(move || {
                let mut c = server.connect_from(SRC, listener);
                c.send_raw(&[0x16, 0x03, 0x01, 0x40, 0x00, 0x01]);
                let (_, closed) = until_closed(&mut c, IDLE + SLACK);
                assert!(closed, "{listener}: a record that never comes");
            });
            s.spawn(move || {
                let mut c = server.connect_from(SRC, listener);
                c.send_raw(sslv2_hello);
                let (_, closed) = until_closed(&mut c, SLACK);
                assert!(closed, "{listener}: SSLv2 hello");
            });
            s.spawn(move || {
                let mut c = tls(server, SRC, listener);
                let _ = c.send_beneath_tls(&noise(4096, 99));
                let (said, closed) = until_closed(&mut c, SLACK);
                assert!(closed, "{listener}: garbage inside TLS: {said}");
            });
        }
    });
    // The log is read apart from the connections: wait for the failures to show in it.
    server.wait_events(|e| e["event"] == "tls_failed", 9);
}

/// Speaking the protocol in plaintext on its TLS port: no answer in plaintext, closed.
fn plaintext_on_tls_ports(server: &TestServer) {
    const SRC: &str = "127.0.0.21";
    for (listener, command) in [
        ("submissions", "EHLO plaintext.client\r\n"),
        ("imaps", "a1 LOGIN alice@example.test secret\r\n"),
        ("pop3s", "USER alice@example.test\r\n"),
        ("submissions", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("imaps", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("pop3s", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ] {
        let mut c = server.connect_from(SRC, listener);
        c.send_raw(command.as_bytes());
        let (said, closed) = until_closed(&mut c, SLACK);
        assert!(closed, "{listener}: {command:?} left open");
        for word in ["ESMTP", "250", "OK", "BYE", "ERR", "HTTP"] {
            assert!(!said.contains(word), "{listener} answered {command:?} in plaintext: {said}");
        }
        assert_eq!(close_reason(server, c.local_addr()), "tls_failed");
    }
}

/// Commands pipelined behind STARTTLS on 587 are thrown away, never run inside TLS; plaintext
/// where the handshake should be ends the connection.
fn starttls_injection(server: &TestServer) {
    const SRC: &str = "127.0.0.22";
    // A whole transaction with credentials, injected behind STARTTLS in one write.
    let mut c = server.connect_from(SRC, "submission");
    c.reply();
    c.cmd("EHLO plain.client");
    let injected = format!(
        "STARTTLS\r\nAUTH PLAIN {}\r\nMAIL FROM:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\nDATA\r\nSubject: injected\r\n\r\nx\r\n.\r\nQUIT\r\n",
        plain(ALICE, PASSWORD)
    );
    c.send_raw(injected.as_bytes());
    assert_eq!(c.reply(), "220 2.0.0 Ready to start TLS");
    let peer = c.local_addr();
    let mut c = c.upgrade(server.client_config(rustls::ALL_VERSIONS));
    let ehlo = c.cmd("EHLO tls.client");
    assert!(ehlo.starts_with("250-"), "the first answer under TLS is not our EHLO's: {ehlo}");
    // Not logged in: the injected AUTH never ran.
    assert_eq!(c.cmd(&format!("MAIL FROM:<{ALICE}>")), "530 5.7.0 Authentication required");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    let seen = events_of(server, peer);
    assert!(!seen.iter().any(|e| e["event"] == "auth_succeeded" || e["event"] == "message_accepted"), "{seen:?}");

    // More injected than one read takes: what the server has not read yet reaches the TLS
    // handshake as garbage, and the connection fails rather than run any of it.
    let mut c = server.connect_from(SRC, "submission");
    c.reply();
    c.cmd("EHLO plain.client");
    let peer = c.local_addr();
    let mut junk = b"STARTTLS\r\n".to_vec();
    junk.extend(format!("AUTH PLAIN {}\r\nMAIL FROM:<{ALICE}>\r\n", plain(ALICE, PASSWORD)).repeat(400).as_bytes());
    c.send_raw(&junk);
    assert_eq!(c.reply(), "220 2.0.0 Ready to start TLS");
    match c.handshake(server.client_config(rustls::ALL_VERSIONS)) {
        Err(_) => {}
        Ok(mut c) => {
            let ehlo = c.cmd("EHLO tls.client");
            assert!(ehlo.is_empty() || ehlo.starts_with("250-"), "{ehlo}");
        }
    }
    let reason = close_reason(server, peer);
    assert!(["tls_failed", "quit", "peer_closed", "io_error"].contains(&reason.as_str()), "{reason}");
    let seen = events_of(server, peer);
    assert!(!seen.iter().any(|e| e["event"] == "auth_succeeded" || e["event"] == "message_accepted"), "{seen:?}");

    // Plaintext where the ClientHello belongs.
    let mut c = server.connect_from(SRC, "submission");
    c.reply();
    c.send("STARTTLS");
    assert_eq!(c.reply(), "220 2.0.0 Ready to start TLS");
    c.send_raw(format!("EHLO evil\r\nAUTH PLAIN {}\r\n", plain(ALICE, PASSWORD)).as_bytes());
    let (said, closed) = until_closed(&mut c, SLACK);
    // At most a TLS alert: no SMTP reply.
    assert!(closed && !said.contains("\r\n"), "plaintext after STARTTLS: {said:?}");
    assert_eq!(close_reason(server, c.local_addr()), "tls_failed");
}

/// Sets the flag when dropped, also while unwinding from a panic.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Thousands of connections from one address: beyond `max_connections_per_ip` each is refused
/// (politely, in its protocol, while few are waiting; else just closed), others are still
/// served meanwhile, and the address gets in again once its connections are gone.
fn connection_flood(server: &TestServer) {
    const SRC: &str = "127.0.0.23";
    const FLOOD: usize = 3000;
    // This process holds the whole flood: the usual soft limit (1024) is too low for it.
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    assert!(
        hard >= FLOOD as u64 + 500,
        "the connection flood needs `ulimit -n` of {} (hard limit {hard})",
        FLOOD + 500
    );
    let mut held: Vec<Client> = (0..MAX_CONNECTIONS_PER_IP)
        .map(|_| {
            let mut c = tls(server, SRC, "submissions");
            assert!(c.reply().starts_with("220 "));
            c
        })
        .collect();

    // Refusals in each protocol's words (over TLS where the port demands it).
    let mut c = tls(server, SRC, "submissions");
    assert_eq!(c.reply(), "421 4.7.0 Too many connections from your address, try again later");
    let mut c = server.connect_from(SRC, "submission");
    assert_eq!(c.reply(), "421 4.7.0 Too many connections from your address, try again later");
    let mut c = tls(server, SRC, "imaps");
    assert_eq!(c.line(), "* BYE [UNAVAILABLE] Too many connections, try again later");
    let mut c = tls(server, SRC, "pop3s");
    assert_eq!(c.line(), "-ERR [SYS/TEMP] Too many connections, try again later");

    // The held connections must outlast the flood, which a loaded machine may take longer than
    // the idle timeout to open (and the server to refuse): were they cut meanwhile, flood
    // connections would be admitted in their place. Keep them busy until the refusals are in.
    let counted = AtomicBool::new(false);
    let (started, flood) = std::thread::scope(|s| {
        s.spawn(|| {
            while !counted.load(Ordering::Relaxed) {
                for c in held.iter_mut() {
                    assert!(c.cmd("NOOP").starts_with("250"), "a held connection was cut during the flood");
                }
                std::thread::sleep(IDLE / 4);
            }
        });
        // Also when this panics: the keeper stops, and the scope can end.
        let _stop = SetOnDrop(&counted);
        let started = Instant::now();
        let listeners = ["submissions", "submission", "imaps", "pop3s"];
        let mut flood: Vec<std::net::TcpStream> = Vec::with_capacity(FLOOD);
        for n in 0..FLOOD {
            match server.tcp_with(SRC, listeners[n % 4], None) {
                Ok(tcp) => flood.push(tcp),
                Err(e) => panic!("connection {n} of the flood failed: {e}"),
            }
        }
        eprintln!("connection flood: {FLOOD} connections in {:.1} s", started.elapsed().as_secs_f64());

        // Meanwhile, another address is served.
        let mut other = tls(server, "127.0.0.24", "submissions");
        assert!(other.reply().starts_with("220 "));
        let mut other = tls(server, "127.0.0.24", "imaps");
        assert!(other.line().starts_with("* OK"));

        // Every flood connection is closed by the server: at once, or after the handshake
        // timeout for the few refused politely.
        for (n, tcp) in flood.iter_mut().enumerate() {
            use std::io::Read;
            tcp.set_read_timeout(Some(IDLE + SLACK)).unwrap();
            let mut sink = [0u8; 512];
            let mut closed = false;
            for _ in 0..4 {
                match tcp.read(&mut sink) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        break
                    }
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            assert!(closed, "flood connection {n} was left open");
        }
        let refused = server.wait_events(
            |e| {
                e["event"] == "connection_refused"
                    && e["reason"] == "too_many_connections_from_peer"
                    && e["peer"].as_str().is_some_and(|p| p.starts_with(&format!("{SRC}:")))
            },
            FLOOD + 4,
        );
        assert!(refused.len() >= FLOOD + 4, "{} refusals logged", refused.len());
        (started, flood)
    });
    eprintln!("connection flood: all closed {:.1} s after the start", started.elapsed().as_secs_f64());
    drop(flood);

    // The address gets in again once its connections are gone.
    drop(held);
    let again = Instant::now();
    loop {
        let mut c = tls(server, SRC, "submissions");
        let reply = c.reply();
        if reply.starts_with("220 ") {
            break;
        }
        assert!(again.elapsed() < SLACK, "{SRC} still refused: {reply}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---- port 25 ---------------------------------------------------------------------------------

/// A domain whose SPF record is one huge TXT record (about 36 KiB, only over TCP).
const HUGE_TXT: &str = "hugetxt.test";
/// A domain whose DKIM key record does not parse.
const BAD_KEY: &str = "badkey.test";
/// A domain whose name server answers with malformed packets.
const MALFORMED: &str = "malformed.test";

/// Port 25 gets the same treatment as 465/587 where it applies (no login there): overlong
/// lines, messages over the limit and never-ending ones, NUL bytes and invalid UTF-8, a silent
/// client, a pipelined flood, STARTTLS injection and TLS garbage; and what only 25 meets, the
/// answers of other people's DNS: malformed packets, a server that never answers (a timeout,
/// then 451), huge TXT records, DKIM keys that do not parse. Afterwards the server still takes
/// mail on 25, and nothing went wrong inside it.
#[test]
fn hostile_input_on_port_25_is_refused_or_cut_and_leaves_the_server_as_it_was() {
    use common::mx::*;
    use portcullis_testdns::Fault;

    let key = portcullis_dkim_sign::SigningKey::generate(portcullis_dkim_sign::Algorithm::Ed25519Sha256).unwrap();
    let huge_spf = format!(
        "v=spf1 {} ip4:{GOOD_IP} -all",
        (0..2000).map(|i| format!("ip4:10.{}.{}.0/24", i / 250, i % 250)).collect::<Vec<_>>().join(" ")
    );
    let zones = zones(&key)
        .zone(HUGE_TXT)
        .mx(HUGE_TXT, 10, &format!("mx.{GOOD}"))
        .txt(HUGE_TXT, &huge_spf)
        .zone(BAD_KEY)
        .mx(BAD_KEY, 10, &format!("mx.{GOOD}"))
        .txt(BAD_KEY, &format!("v=spf1 ip4:{GOOD_IP} -all"))
        .txt(&format!("{SELECTOR}._domainkey.{BAD_KEY}"), "v=DKIM1; k=ed25519; p=!!not*base64!!")
        .zone(MALFORMED)
        .mx(MALFORMED, 10, &format!("mx.{GOOD}"));
    let dns = portcullis_testdns::TestDns::start(zones).unwrap();
    dns.set_fault_for(MALFORMED, Fault::Malformed);
    let world = World { dns, key };
    let mut s = Settings::mx(world.addr());
    s.limits.extend(settings().limits);
    s.tls.extend(settings().tls);
    s.sections.push("[sender_auth]\ndeadline = \"3s\"".into());
    let server = TestServer::start_with(s);
    let from = format!("alice@{GOOD}");
    let greeted = |source: &str| {
        let mut c = server.connect_from(source, "smtp");
        assert!(c.reply().starts_with("220 "));
        c
    };
    let ehlo = |source: &str| {
        let mut c = greeted(source);
        assert!(c.cmd("EHLO mx.sender.test").starts_with("250-"));
        c
    };

    // Overlong lines; a message announced over the limit, and one sent over it.
    let mut c = greeted(GOOD_IP);
    c.send(&format!("EHLO {}", "a".repeat(1 << 20)));
    assert_eq!(c.reply(), "500 5.5.2 Line too long");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK");
    assert!(violation(&server, c.local_addr(), "line too long"));
    assert!(c.cmd("EHLO mx.sender.test").contains(&format!("SIZE {MAX_MESSAGE}")));
    assert!(c.cmd(&format!("MAIL FROM:<{from}> SIZE={}", MAX_MESSAGE + 1)).starts_with("552 5.3.4"));
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let line = format!("{}\r\n", "y".repeat(998));
    for _ in 0..(MAX_MESSAGE / 1000 + 100) {
        c.send_raw(line.as_bytes());
    }
    c.send(".");
    assert!(c.reply().starts_with("552 5.3.4"));
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK");

    // A message that never ends, in DATA and in BDAT: cut well before 16 times the limit.
    for start in ["DATA", "BDAT 1000000000000"] {
        let mut c = ehlo(GOOD_IP);
        assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
        assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
        c.send(start);
        if start == "DATA" {
            assert!(c.reply().starts_with("354"));
        }
        let piece = format!("{}\r\n", "n".repeat(1022)).repeat(64);
        let mut sent = 0;
        while sent < 16 * MAX_MESSAGE && c.try_send_raw(piece.as_bytes()).is_ok() {
            sent += piece.len();
        }
        let (_, closed) = until_closed(&mut c, SLACK);
        assert!(closed && sent < 16 * MAX_MESSAGE, "{start}: took {sent} bytes");
        assert!(violation(&server, c.local_addr(), "message too big"), "{start}");
    }

    // NUL bytes and invalid UTF-8 where commands and addresses belong.
    let mut c = ehlo(GOOD_IP);
    c.send_raw(b"NO\0OP\r\n");
    assert_eq!(c.reply(), "500 5.5.2 Command unrecognized");
    c.send_raw(format!("MAIL FROM:<ali\0ce@{GOOD}>\r\n").as_bytes());
    assert_eq!(c.reply(), "553 5.1.7 Bad sender address syntax");
    c.send_raw(b"MAIL FROM:<\xff\xfe@sender.test>\r\n");
    assert_eq!(c.reply(), "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter");
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    c.send_raw(b"RCPT TO:<b\0ob@example.test>\r\n");
    assert_eq!(c.reply(), "553 5.1.3 Bad recipient address syntax");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK");

    // A client that connects and says nothing is cut at the idle timeout.
    let mut c = greeted(GOOD_IP);
    let started = Instant::now();
    let (_, closed) = until_closed(&mut c, IDLE + SLACK);
    assert!(closed && started.elapsed() >= IDLE, "silent client: closed {closed} after {:?}", started.elapsed());

    // A pipelined flood (PIPELINING was offered): cut at max_commands.
    let mut c = ehlo(GOOD_IP);
    let _ = c.try_send_raw("NOOP\r\n".repeat(3 * MAX_COMMANDS).as_bytes());
    let (said, closed) = until_closed(&mut c, Duration::from_secs(30));
    assert!(closed && said.matches("250 2.0.0 OK").count() <= MAX_COMMANDS, "NOOP flood on 25");
    assert!(violation(&server, c.local_addr(), "too many commands"));

    // STARTTLS injection: what was pipelined behind STARTTLS never runs.
    let mut c = ehlo(GOOD_IP);
    c.send_raw(format!("STARTTLS\r\nMAIL FROM:<{from}>\r\nRCPT TO:<{BOB}>\r\nDATA\r\nx\r\n.\r\n").as_bytes());
    assert_eq!(c.reply(), "220 2.0.0 Ready to start TLS");
    let peer = c.local_addr();
    let mut c = c.upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(c.cmd("EHLO mx.sender.test").starts_with("250-"), "the first answer under TLS is our EHLO's");
    assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("503"), "the injected MAIL FROM never ran");
    c.cmd("QUIT");
    assert!(!events_of(&server, peer).iter().any(|e| e["event"] == "message_received"));
    // Plaintext where the ClientHello belongs.
    let mut c = ehlo(GOOD_IP);
    assert_eq!(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS");
    c.send_raw(b"EHLO evil\r\nMAIL FROM:<a@b>\r\n");
    let (said, closed) = until_closed(&mut c, SLACK);
    assert!(closed && !said.contains("\r\n"), "plaintext after STARTTLS: {said:?}");
    assert_eq!(close_reason(&server, c.local_addr()), "tls_failed");

    // Other people's DNS. Malformed answers for the sender's domain: a temporary failure.
    let mut c = ehlo(GOOD_IP);
    let reply = c.cmd(&format!("MAIL FROM:<x@{MALFORMED}>"));
    assert!(reply.starts_with("451 4.4.3 "), "malformed answers: {reply}");
    // A huge SPF record (truncated over UDP, whole over TCP): read and judged like any other,
    // never a temporary failure, since the DNS did answer.
    let huge_from = format!("news@{HUGE_TXT}");
    let reply = send(&mut c, &huge_from, BOB, message(&huge_from, BOB, "huge txt").as_bytes());
    assert!(reply.starts_with("250 ") || reply.starts_with("550 5.7."), "huge TXT: {reply}");
    let verdict = server.wait_event(|e| e["event"] == "sender_verdict" && e["mail_from"] == huge_from.as_str());
    assert_ne!(verdict["spf"], "temperror", "{verdict}");
    // A DKIM key that does not parse: the signature cannot verify, SPF carries the message.
    let bad_from = format!("alice@{BAD_KEY}");
    let unverifiable = portcullis_dkim_sign::Signer::new(
        portcullis_dkim_sign::SigningKey::from_pem(&world.key.to_pem()).unwrap(),
        BAD_KEY,
        SELECTOR,
    )
    .sign_message(message(&bad_from, BOB, "bad key").as_bytes())
    .unwrap();
    let reply = send(&mut c, &bad_from, BOB, &unverifiable);
    assert!(reply.starts_with("250 "), "bad DKIM key: {reply}");
    let verdict = server.wait_event(|e| e["event"] == "sender_verdict" && e["mail_from"] == bad_from.as_str());
    assert!(["permerror", "neutral", "fail"].contains(&verdict["dkim"].as_str().unwrap()), "{verdict}");
    assert_eq!(verdict["spf"], "pass", "{verdict}");
    c.cmd("QUIT");
    // A DNS server that never answers, during DATA: 451 after the deadline, nothing stored.
    let mut c = ehlo(GOOD_IP2);
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    world.dns.set_fault(Some(Fault::Silent));
    let started = Instant::now();
    c.send_raw(format!("{}.\r\n", message(&from, BOB, "silent dns")).as_bytes());
    let reply = c.reply();
    world.dns.set_fault(None);
    assert!(reply.starts_with("451 4."), "silent DNS: {reply}");
    assert!(started.elapsed() < Duration::from_secs(3) + SLACK, "bounded by the deadline: {:?}", started.elapsed());

    // Still taking mail on 25.
    let signed = world.signer().sign_message(message(&from, BOB, "after the battery").as_bytes()).unwrap();
    let reply = send(&mut c, &from, BOB, &signed);
    assert!(reply.starts_with("250 "), "after the battery: {reply}");
    c.cmd("QUIT");

    let internal: Vec<Value> = server.events().into_iter().filter(|e| e["event"] == "internal_error").collect();
    assert!(internal.is_empty(), "internal errors: {internal:?}");
    let (status, stderr) = server_stop(server);
    assert!(status.success(), "the server did not stop cleanly: {status}: {stderr}");
    assert!(!stderr.contains("panic"), "the server panicked: {stderr}");
}
