//! Crash safety (docs/architecture.md §10, issue 8): mail is submitted by several clients at once, and
//! appended over IMAP by another, while the server is killed with SIGKILL at random moments,
//! cycle after cycle. Every message the server acknowledged (250 to the final dot, a tagged OK
//! to APPEND) must then be there, byte for byte, over IMAP and over POP3, in every recipient's
//! mailbox; a message that was not acknowledged may be there or not, but only whole
//! and only for all of its recipients at once; and `portcullis store check` must pass after
//! every crash.
//!
//! The same holds on port 25 (issue 14): other servers deliver over plaintext and STARTTLS
//! from 127.0.0.x, every message checked (SPF, DKIM, DMARC against a loopback DNS server),
//! while the server is killed the same way.
//!
//! The random moments come from a seed printed at the start; `CRASH_SEED=N` repeats a run.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const CYCLES: usize = 5;
const SMTP_CLIENTS: usize = 4;

/// A message as a client sent it.
#[derive(Clone)]
struct Sent {
    id: String,
    raw: Vec<u8>,
    recipients: Vec<&'static str>,
    /// Submitted over SMTP (the server prepends a Received header), not appended over IMAP
    /// (stored exactly as sent).
    smtp: bool,
    /// The server answered 250 to its final dot, or OK to the APPEND.
    acknowledged: bool,
}

/// xorshift64*: the test's only randomness, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A message of 200 bytes to 48 KiB (several pages of the store for the larger ones), its
/// lines never starting with a dot, ending with CRLF.
fn message(id: &str, rng: &mut Rng) -> Vec<u8> {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut raw = format!(
        "From: {ALICE}\r\nSubject: crash test {id}\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: {id}\r\n\r\n"
    )
    .into_bytes();
    let size = 200 + rng.below(48 * 1024) as usize;
    while raw.len() < size {
        for _ in 0..76 {
            raw.push(CHARS[rng.below(CHARS.len() as u64) as usize]);
        }
        raw.extend_from_slice(b"\r\n");
    }
    raw
}

/// One SMTP command; `None` once the server is gone.
fn try_cmd(c: &mut Client, line: &str) -> Option<String> {
    c.try_send_raw(format!("{line}\r\n").as_bytes()).ok()?;
    Some(c.reply()).filter(|r| !r.is_empty())
}

/// Submits messages on one connection until the server goes away; every message it started
/// is recorded, acknowledged or not. `connection` tells apart a client's connections in a cycle.
fn submit_until_killed(
    server_addr: std::net::SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    (cycle, client, connection): (usize, usize, usize),
    seed: u64,
    log: &Mutex<Vec<Sent>>,
) {
    let mut rng =
        Rng(seed ^ ((cycle * 1000 + connection) as u64) ^ (client as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let Ok(tcp) = std::net::TcpStream::connect(server_addr) else { return };
    let Ok(mut c) = Client::plain(tcp).handshake(cfg) else { return };
    if !c.reply().starts_with("220") {
        return;
    }
    let ready = try_cmd(&mut c, "EHLO crash.test").is_some_and(|r| r.starts_with("250"))
        && try_cmd(&mut c, &format!("AUTH PLAIN {}", plain(ALICE, PASSWORD))).is_some_and(|r| r.starts_with("235"));
    if !ready {
        return;
    }
    let id = |n| format!("<crash-{cycle}-{client}-{connection}-{n}@example.test>");
    send_until_cut(&mut c, &mut rng, &format!("MAIL FROM:<{ALICE}>"), id, log, |_| {});
}

/// Sends messages (a third to both users, a third to each) on `c`, logged in or not, until the
/// server goes away or refuses one; every message whose DATA was accepted is recorded before
/// it is sent, and marked acknowledged at its 250. `refused` is told any other final reply.
fn send_until_cut(
    c: &mut Client,
    rng: &mut Rng,
    mail_from: &str,
    id: impl Fn(u64) -> String,
    log: &Mutex<Vec<Sent>>,
    refused: impl Fn(&str),
) {
    for n in 0.. {
        let id = id(n);
        let recipients: Vec<&'static str> = match n % 3 {
            0 => vec![ALICE, BOB],
            1 => vec![BOB],
            _ => vec![ALICE],
        };
        let raw = message(&id, rng);
        let mut ok = try_cmd(c, mail_from).is_some_and(|r| r.starts_with("250"));
        for to in &recipients {
            ok = ok && try_cmd(c, &format!("RCPT TO:<{to}>")).is_some_and(|r| r.starts_with("250"));
        }
        ok = ok && try_cmd(c, "DATA").is_some_and(|r| r.starts_with("354"));
        if !ok {
            return;
        }
        // From here on the message may reach the store: record it before sending.
        let index = {
            let mut log = log.lock().unwrap();
            log.push(Sent { id, raw: raw.clone(), recipients, smtp: true, acknowledged: false });
            log.len() - 1
        };
        let mut data = raw;
        data.extend_from_slice(b".\r\n");
        if c.try_send_raw(&data).is_err() {
            return;
        }
        let reply = c.reply();
        if !reply.starts_with("250") {
            refused(&reply);
            return;
        }
        log.lock().unwrap()[index].acknowledged = true;
    }
}

/// Appends messages to alice's INBOX over IMAP on one connection until the server goes away;
/// every message whose literal it started sending is recorded, acknowledged or not.
fn append_until_killed(
    server_addr: std::net::SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    (cycle, connection): (usize, usize),
    seed: u64,
    log: &Mutex<Vec<Sent>>,
) {
    let mut rng = Rng(seed ^ ((cycle * 1000 + connection) as u64) ^ 0x5851_f42d_4c95_7f2d);
    let Ok(tcp) = std::net::TcpStream::connect(server_addr) else { return };
    let Ok(mut c) = Client::plain(tcp).handshake(cfg) else { return };
    // The tagged answer to `tag`, skipping untagged lines; `None` once the server is gone.
    let answer = |c: &mut Client, tag: &str| loop {
        let line = c.line();
        if line.is_empty() {
            return None;
        }
        if line.starts_with(&format!("{tag} ")) {
            return Some(line);
        }
    };
    if !c.line().starts_with("* OK") || c.try_send_raw(format!("l LOGIN {ALICE} {PASSWORD}\r\n").as_bytes()).is_err() {
        return;
    }
    if !answer(&mut c, "l").is_some_and(|l| l.starts_with("l OK")) {
        return;
    }
    for n in 0.. {
        let id = format!("<crash-{cycle}-append-{connection}-{n}@example.test>");
        let raw = message(&id, &mut rng);
        let tag = format!("a{n}");
        if c.try_send_raw(format!("{tag} APPEND INBOX {{{}}}\r\n", raw.len()).as_bytes()).is_err()
            || !c.line().starts_with('+')
        {
            return;
        }
        // From here on the message may reach the store: record it before sending.
        let index = {
            let mut log = log.lock().unwrap();
            log.push(Sent { id, raw: raw.clone(), recipients: vec![ALICE], smtp: false, acknowledged: false });
            log.len() - 1
        };
        let mut data = raw;
        data.extend_from_slice(b"\r\n");
        if c.try_send_raw(&data).is_err() {
            return;
        }
        match answer(&mut c, &tag) {
            Some(line) if line.starts_with(&format!("{tag} OK")) => log.lock().unwrap()[index].acknowledged = true,
            _ => return,
        }
    }
}

/// Every message in the account's INBOX over IMAP: Message-ID to raw bytes (several entries
/// if the same Message-ID is there more than once).
fn imap_messages(server: &TestServer, user: &str) -> Vec<(String, Vec<u8>)> {
    let mut c = server.connect_tls("imaps");
    c.line();
    c.send(&format!("l LOGIN {user} {PASSWORD}"));
    assert!(c.line().starts_with("l OK"));
    c.send("s SELECT INBOX");
    while !c.line().starts_with("s ") {}
    c.send("f UID FETCH 1:* (BODY.PEEK[])");
    let mut found = Vec::new();
    loop {
        let line = c.line();
        if line.starts_with("f ") {
            assert!(line.starts_with("f OK"), "{line}");
            break;
        }
        assert!(!line.is_empty(), "the IMAP connection ended");
        let Some(size) = line.strip_suffix('}').and_then(|l| l.rsplit_once('{')).map(|(_, n)| n.parse().unwrap())
        else {
            continue;
        };
        let raw = c.bytes(size);
        assert_eq!(raw.len(), size);
        found.push((message_id(&raw), raw));
    }
    c.send("o LOGOUT");
    found
}

/// Every message in the account's maildrop over POP3, as IMAP's.
fn pop3_messages(server: &TestServer, user: &str) -> Vec<(String, Vec<u8>)> {
    let mut c = server.connect_tls("pop3s");
    c.line();
    c.send(&format!("AUTH PLAIN {}", plain(user, PASSWORD)));
    assert!(c.line().starts_with("+OK"));
    c.send("STAT");
    let count: usize = c.line().split(' ').nth(1).unwrap().parse().unwrap();
    let mut found = Vec::new();
    for n in 1..=count {
        c.send(&format!("RETR {n}"));
        assert!(c.line().starts_with("+OK"));
        let mut raw = c.multiline().join("\r\n").into_bytes();
        raw.extend_from_slice(b"\r\n");
        found.push((message_id(&raw), raw));
    }
    c.send("QUIT");
    assert!(c.line().starts_with("+OK"));
    found
}

fn message_id(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or_else(|| panic!("a message without Message-ID: {}", &text[..text.len().min(300)]))
        .trim()
        .to_string()
}

/// Checks one account's messages, as one protocol returned them, against what was sent.
fn verify(protocol: &str, user: &str, found: &[(String, Vec<u8>)], sent: &HashMap<String, Sent>) -> usize {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (id, raw) in found {
        *seen.entry(id.as_str()).or_default() += 1;
        let Some(message) = sent.get(id) else {
            if id.starts_with("<crash-") {
                panic!("{protocol}: {user} has {id}, which was never sent");
            }
            continue;
        };
        assert!(message.recipients.contains(&user), "{protocol}: {user} has {id}, sent to {:?}", message.recipients);
        // SMTP: the server prepends Return-Path and its Received header; the rest is ours,
        // byte for byte. APPEND: all of it is ours.
        // On 25 our Authentication-Results and Received-SPF come after Return-Path.
        let intact = if message.smtp {
            let ours = raw.iter().position(|&b| b == b'\n').map_or(&raw[..0], |end| &raw[end + 1..]);
            raw.ends_with(&message.raw)
                && raw.starts_with(b"Return-Path: <")
                && (ours.starts_with(b"Received: ") || ours.starts_with(b"Authentication-Results: "))
        } else {
            *raw == message.raw
        };
        assert!(
            intact,
            "{protocol}: {id} in {user}'s mailbox is not what was sent ({} bytes stored, {} sent)",
            raw.len(),
            message.raw.len()
        );
    }
    for (id, n) in &seen {
        assert_eq!(*n, 1, "{protocol}: {id} is in {user}'s mailbox {n} times");
    }
    let mut acknowledged = 0;
    for message in sent.values().filter(|m| m.recipients.contains(&user) && m.acknowledged) {
        assert!(
            seen.contains_key(message.id.as_str()),
            "{protocol}: {} was acknowledged, but {user} lacks it",
            message.id
        );
        acknowledged += 1;
    }
    acknowledged
}

/// `store check` on the server's store: SQLite's only (the command names PostgreSQL's own
/// tools for a PostgreSQL database), so under `PORTCULLIS_TEST_STORE=postgres` what these
/// tests check is the mail itself.
fn store_check(server: &TestServer, when: &str) {
    if common::store::postgres_mode() {
        return;
    }
    let out = server.cli(&["store", "check"], None);
    assert!(
        out.status.success(),
        "store check {when}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn acknowledged_mail_survives_sigkill_under_load() {
    let started = Instant::now();
    let seed = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut server = TestServer::start();
    let log: Arc<Mutex<Vec<Sent>>> = Arc::default();

    for cycle in 0..CYCLES {
        if cycle > 0 {
            server.launch();
        }
        let cfg = server.client_config(rustls::ALL_VERSIONS);
        let addr = server.addr("submissions");
        let imaps = server.addr("imaps");
        let stop = Arc::new(AtomicBool::new(false));
        let before = log.lock().unwrap().len();
        let mut clients: Vec<_> = (0..SMTP_CLIENTS)
            .map(|client| {
                let (cfg, log, stop) = (cfg.clone(), log.clone(), stop.clone());
                std::thread::spawn(move || {
                    // Reconnect within the cycle if a connection ends early (a refused
                    // login would be a bug, but the check below would name it).
                    for connection in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        submit_until_killed(addr, cfg.clone(), (cycle, client, connection), seed, &log);
                    }
                })
            })
            .collect();
        clients.push({
            let (cfg, log, stop) = (cfg.clone(), log.clone(), stop.clone());
            std::thread::spawn(move || {
                for connection in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    append_until_killed(imaps, cfg.clone(), (cycle, connection), seed, &log);
                }
            })
        });
        // Let the load build up, then kill at a random moment.
        std::thread::sleep(Duration::from_millis(300 + rng.below(1200)));
        nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
        server.kill(); // reaps it
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.join().unwrap();
        }
        let log_now = log.lock().unwrap();
        let cycle_sent = &log_now[before..];
        eprintln!(
            "cycle {cycle}: {} messages started, {} acknowledged before SIGKILL ({} of them appended)",
            cycle_sent.len(),
            cycle_sent.iter().filter(|m| m.acknowledged).count(),
            cycle_sent.iter().filter(|m| m.acknowledged && !m.smtp).count()
        );
        drop(log_now);
        // The store as the crash left it.
        store_check(&server, &format!("after crash {cycle}"));
    }

    server.launch();
    let sent: HashMap<String, Sent> = log.lock().unwrap().iter().map(|m| (m.id.clone(), m.clone())).collect();
    let acknowledged = sent.values().filter(|m| m.acknowledged).count();
    assert!(acknowledged >= CYCLES * SMTP_CLIENTS, "the load was too light to mean anything: {acknowledged}");
    let appended = sent.values().filter(|m| m.acknowledged && !m.smtp).count();
    assert!(appended >= CYCLES, "too few APPENDs acknowledged to mean anything: {appended}");
    let mut stored: HashMap<&str, Vec<String>> = HashMap::new();
    for user in [ALICE, BOB] {
        let over_imap = imap_messages(&server, user);
        let over_pop3 = pop3_messages(&server, user);
        let a = verify("IMAP", user, &over_imap, &sent);
        let b = verify("POP3", user, &over_pop3, &sent);
        assert_eq!(a, b);
        let mut imap_ids: Vec<String> = over_imap.into_iter().map(|(id, _)| id).collect();
        let mut pop3_ids: Vec<String> = over_pop3.into_iter().map(|(id, _)| id).collect();
        imap_ids.sort();
        pop3_ids.sort();
        assert_eq!(imap_ids, pop3_ids, "IMAP and POP3 disagree about {user}'s mailbox");
        eprintln!("{user}: {} messages, all {a} acknowledged ones intact", imap_ids.len());
        stored.insert(user, imap_ids);
    }
    // A message not acknowledged is there for all of its recipients or for none.
    for message in sent.values().filter(|m| m.recipients.len() == 2) {
        let there = |user: &str| stored[user].binary_search(&message.id).is_ok();
        assert_eq!(there(ALICE), there(BOB), "{} is stored for one recipient only", message.id);
    }
    let unacknowledged = sent.values().filter(|m| !m.acknowledged).count();
    eprintln!(
        "{} messages sent, {acknowledged} acknowledged, {unacknowledged} cut off by a SIGKILL; {:.1} s",
        sent.len(),
        started.elapsed().as_secs_f64()
    );
    store_check(&server, "with the server running");
    let internal: Vec<_> = server.events().into_iter().filter(|e| e["event"] == "internal_error").collect();
    assert!(internal.is_empty(), "{internal:?}");
    let (status, stderr) = server.stop();
    assert!(status.success() && !stderr.contains("panic"), "{status}: {stderr}");
    store_check(&server, "at the end");
}

#[test]
fn store_check_names_damage_and_fails() {
    // SQLite whatever PORTCULLIS_TEST_STORE says: the damage is done to its file.
    let mut server =
        TestServer::start_with(Settings { store: vec!["url = \"sqlite:data/mail.db\"".into()], ..Settings::default() });
    assert!(server.submit(BOB, "Subject: one\r\n\r\nbody").starts_with("250"));
    server.stop();
    let out = server.cli(&["store", "check"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1 message in 1 body") && stdout.contains("No problems found."), "{stdout}");

    // A body without its header cache (schema 5) is tolerated, and said. The damage here is
    // made on the SQLite file behind the store's back (this server's store).
    let db = rusqlite::Connection::open(server.dir.path().join("data/mail.db")).unwrap();
    db.execute("DELETE FROM header_caches", []).unwrap();
    drop(db);
    let out = server.cli(&["store", "check"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("1 body without a usable header cache") && stdout.contains("No problems found."),
        "{stdout}"
    );

    // Bob's usage set wrong behind the store's back.
    let db = rusqlite::Connection::open(server.dir.path().join("data/mail.db")).unwrap();
    db.execute("UPDATE accounts SET used_bytes = used_bytes + 1 WHERE localpart = 'bob'", []).unwrap();
    drop(db);
    let out = server.cli(&["store", "check", "--quick"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("account bob@example.test: its usage says"), "{stdout}");
    assert!(stderr.starts_with("error: the store has 1 problem (listed above)"), "{stderr}");
}

/// A connection to `addr` from the loopback address `source` (another server's address).
fn tcp_from(source: &str, addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let source: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&source.into())?;
    socket.connect(&addr.into())?;
    let tcp: std::net::TcpStream = socket.into();
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    Ok(tcp)
}

/// Delivers messages on port 25 from `source` (over STARTTLS when `tls`) on one connection
/// until the server goes away; every message it started is recorded, acknowledged or not.
fn deliver_until_killed(
    server_addr: std::net::SocketAddr,
    (source, tls): (&str, Option<Arc<rustls::ClientConfig>>),
    (cycle, client, connection): (usize, usize, usize),
    seed: u64,
    log: &Mutex<Vec<Sent>>,
) {
    use common::mx::GOOD;
    let mut rng = Rng(seed ^ ((cycle * 1000 + connection) as u64) ^ (client as u64 + 7).wrapping_mul(0x9e37_79b9));
    let Ok(tcp) = tcp_from(source, server_addr) else { return };
    let mut c = Client::plain(tcp);
    if !c.reply().starts_with("220") || !try_cmd(&mut c, "EHLO mx.sender.test").is_some_and(|r| r.starts_with("250")) {
        return;
    }
    if let Some(cfg) = tls {
        if !try_cmd(&mut c, "STARTTLS").is_some_and(|r| r.starts_with("220")) {
            return;
        }
        let Ok(upgraded) = c.handshake(cfg) else { return };
        c = upgraded;
        if !try_cmd(&mut c, "EHLO mx.sender.test").is_some_and(|r| r.starts_with("250")) {
            return;
        }
    }
    let id = |n| format!("<crash-25-{cycle}-{client}-{connection}-{n}@sender.test>");
    // Anything but a 250 at the end of DATA would be a verdict gone wrong: the check names it.
    let refused = |reply: &str| assert!(reply.is_empty() || reply.starts_with("421"), "{reply}");
    send_until_cut(&mut c, &mut rng, &format!("MAIL FROM:<relay@{GOOD}>"), id, log, refused);
}

#[test]
fn acknowledged_mail_on_port_25_survives_sigkill_under_load() {
    use common::mx::{World, GOOD_IP, GOOD_IP2};
    let seed = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let world = World::start();
    let mut settings = Settings::mx(world.addr());
    // The per-source rates of 25 would throttle the load, which is not what is tested here.
    settings
        .sections
        .push("[smtp]\nconnections_per_minute = 0\nmessages_per_minute = 0\nrecipients_per_minute = 0".into());
    let mut server = TestServer::start_with(settings);
    let log: Arc<Mutex<Vec<Sent>>> = Arc::default();

    for cycle in 0..CYCLES {
        if cycle > 0 {
            server.launch();
        }
        let cfg = server.client_config(rustls::ALL_VERSIONS);
        let addr = server.addr("smtp");
        let stop = Arc::new(AtomicBool::new(false));
        let before = log.lock().unwrap().len();
        let clients: Vec<_> = (0..SMTP_CLIENTS)
            .map(|client| {
                let (cfg, log, stop) = (cfg.clone(), log.clone(), stop.clone());
                // Half over STARTTLS, half in plaintext; from two addresses of the SPF record.
                let source = if client % 2 == 0 { GOOD_IP } else { GOOD_IP2 };
                let tls = (client < SMTP_CLIENTS / 2).then_some(cfg);
                std::thread::spawn(move || {
                    for connection in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        deliver_until_killed(addr, (source, tls.clone()), (cycle, client, connection), seed, &log);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(600 + rng.below(1500)));
        nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.join().unwrap();
        }
        let cycle_sent = log.lock().unwrap()[before..].to_vec();
        eprintln!(
            "cycle {cycle}: {} messages started on 25, {} acknowledged before SIGKILL",
            cycle_sent.len(),
            cycle_sent.iter().filter(|m| m.acknowledged).count()
        );
        store_check(&server, &format!("after crash {cycle} on 25"));
    }

    server.launch();
    let sent: HashMap<String, Sent> = log.lock().unwrap().iter().map(|m| (m.id.clone(), m.clone())).collect();
    let acknowledged = sent.values().filter(|m| m.acknowledged).count();
    assert!(acknowledged >= CYCLES * SMTP_CLIENTS, "the load was too light to mean anything: {acknowledged}");
    let mut stored: HashMap<&str, Vec<String>> = HashMap::new();
    for user in [ALICE, BOB] {
        let over_imap = imap_messages(&server, user);
        let a = verify("IMAP", user, &over_imap, &sent);
        let mut ids: Vec<String> = over_imap.into_iter().map(|(id, _)| id).collect();
        ids.sort();
        eprintln!("{user}: {} messages, all {a} acknowledged ones intact", ids.len());
        stored.insert(user, ids);
    }
    for message in sent.values().filter(|m| m.recipients.len() == 2) {
        let there = |user: &str| stored[user].binary_search(&message.id).is_ok();
        assert_eq!(there(ALICE), there(BOB), "{} is stored for one recipient only", message.id);
    }
    store_check(&server, "with the server running (25)");
    let internal: Vec<_> = server.events().into_iter().filter(|e| e["event"] == "internal_error").collect();
    assert!(internal.is_empty(), "{internal:?}");
    let (status, stderr) = server.stop();
    assert!(status.success() && !stderr.contains("panic"), "{status}: {stderr}");
}
