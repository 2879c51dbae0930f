//! Hostile receivers against the real queue (issue 15): small servers written here that send
//! an endless multiline reply, a banner of megabytes, replies at one byte a second, garbage
//! instead of a TLS handshake, and replies that each come just inside the reply wait. A is
//! given short waits (`delivery.reply_timeout`, `delivery.attempt_timeout`). Each attempt must
//! end within those bounds (RFC 5321 §4.5.3.2 waits, the client's reply bounds, the courier's
//! bound on the whole attempt), the message must wait in the queue (deferred, never bounced,
//! never taken), and the server must keep answering its users meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::mx::stored;
use common::{Settings, TestServer, ALICE, DOMAIN};
use portcullis_testdns::{TestDns, Zones};

const A_IP: &str = "127.0.0.2";
/// The longest one reply may take (`delivery.reply_timeout`).
const REPLY_WAIT: Duration = Duration::from_secs(2);
/// The longest one attempt may take (`delivery.attempt_timeout`).
const ATTEMPT_WAIT: Duration = Duration::from_secs(5);

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// What a hostile server saw: when each connection came, how many bytes it wrote.
#[derive(Default)]
struct Seen {
    accepted_ms: Mutex<Vec<i64>>,
    written: AtomicUsize,
}

/// Runs `behave` on each connection to `ip` (on an ephemeral port, returned).
fn hostile(ip: &str, behave: fn(TcpStream, &Seen)) -> (u16, Arc<Seen>) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let shared = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            shared.accepted_ms.lock().unwrap().push(now_ms());
            let seen = shared.clone();
            std::thread::spawn(move || behave(stream, &seen));
        }
    });
    (port, seen)
}

/// Writes `prefix`, then `chunk` until the client goes away.
fn flood(mut s: TcpStream, seen: &Seen, prefix: &[u8], chunk: &[u8]) {
    if s.write_all(prefix).is_err() {
        return;
    }
    while s.write_all(chunk).is_ok() {
        seen.written.fetch_add(chunk.len(), Ordering::Relaxed);
    }
}

fn endless_multiline(s: TcpStream, seen: &Seen) {
    flood(s, seen, b"220-hello\r\n", b"220-and more\r\n220-and more\r\n220-and more\r\n220-and more\r\n");
}

fn huge_banner(s: TcpStream, seen: &Seen) {
    flood(s, seen, b"220 ", &[b'x'; 65536]);
}

fn one_byte_a_second(mut s: TcpStream, seen: &Seen) {
    for byte in b"220 slow.hostile.test ESMTP, and very slowly so\r\n" {
        if s.write_all(&[*byte]).is_err() {
            return;
        }
        seen.written.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Offers STARTTLS and answers it, then sends bytes that are no TLS record; answers anything
/// else after EHLO the same way (the plaintext retry RFC 7435 allows without a policy).
fn garbage_tls(s: TcpStream, seen: &Seen) {
    let mut s = s;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 4096];
    let _ = s.write_all(b"220 tls.hostile.test ESMTP\r\n");
    let _ = s.read(&mut buf); // EHLO
    let _ = s.write_all(b"250-tls.hostile.test\r\n250 STARTTLS\r\n");
    let _ = s.read(&mut buf); // STARTTLS (or MAIL, on the plaintext retry)
    let _ = s.write_all(b"220 go ahead\r\n");
    let _ = s.read(&mut buf); // a ClientHello
    let garbage = [0x16, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5, 0xff, 0xff, 0xff];
    if s.write_all(&garbage).is_ok() {
        seen.written.fetch_add(garbage.len(), Ordering::Relaxed);
    }
    let _ = s.read(&mut buf);
}

/// A polite server that answers each command 1.5 s late: just inside the reply wait every
/// time, so only the bound on the whole attempt ends it. Counts the messages it took.
fn just_in_time(s: TcpStream, seen: &Seen) {
    let mut s = s;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let late = || std::thread::sleep(Duration::from_millis(1500));
    let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
    late();
    let _ = s.write_all(b"220 late.hostile.test ESMTP\r\n");
    let mut line = String::new();
    let mut in_data = false;
    while std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) > 0 {
        let reply: Option<&[u8]> = if in_data {
            if line == ".\r\n" {
                in_data = false;
                seen.written.fetch_add(1, Ordering::Relaxed); // a message taken
                Some(b"250 taken\r\n")
            } else {
                None
            }
        } else {
            match line.get(..4).map(|v| v.to_ascii_uppercase()).as_deref() {
                Some("EHLO") => Some(b"250 late.hostile.test\r\n"),
                Some("DATA") => {
                    in_data = true;
                    Some(b"354 go on\r\n")
                }
                Some("QUIT") => Some(b"221 bye\r\n"),
                _ => Some(b"250 ok\r\n"),
            }
        };
        if let Some(reply) = reply {
            late();
            if s.write_all(reply).is_err() {
                return;
            }
        }
        line.clear();
    }
}

/// `hostile.test`'s exchanger at `ip`, beside A's own domain.
fn zones(ip: &str) -> Zones {
    Zones::new()
        .zone(DOMAIN)
        .mx(DOMAIN, 10, &format!("out.{DOMAIN}"))
        .a(&format!("out.{DOMAIN}"), A_IP.parse().unwrap())
        .zone("hostile.test")
        .mx("hostile.test", 10, "mx.hostile.test")
        .a("mx.hostile.test", ip.parse::<Ipv4Addr>().unwrap())
}

/// A with short waits, retrying only much later (one attempt per test).
fn start_a(dns: &TestDns, port: u16) -> TestServer {
    TestServer::start_with(Settings {
        sections: vec![
            format!("[dns]\nservers = [\"{}\"]\ntimeout = \"1s\"\nattempts = 1", dns.addr()),
            "[queue]\nretry_first = \"1h\"\nexpire = \"1d\"\ndelay_notice = \"0s\"".into(),
            format!(
                "[delivery]\nsource_ipv4 = \"{A_IP}\"\nport = {port}\nreply_timeout = \"{}s\"\nattempt_timeout = \"{}s\"",
                REPLY_WAIT.as_secs(),
                ATTEMPT_WAIT.as_secs()
            ),
        ],
        ..Settings::default()
    })
}

/// Runs one hostile case: alice's message to hostile.test is deferred, within `limit` of the
/// connection, with a reason that contains `reason`; A answers a login meanwhile.
fn case(ip: &str, behave: fn(TcpStream, &Seen), limit: Duration, reason: &str) -> Arc<Seen> {
    let (port, seen) = hostile(ip, behave);
    let dns = TestDns::start(zones(ip)).unwrap();
    let a = start_a(&dns, port);
    let to = "victim@hostile.test";
    let reply = a.submit(to, &format!("From: <{ALICE}>\r\nTo: <{to}>\r\nSubject: hostile\r\n\r\nHello."));
    assert!(reply.starts_with("250 "), "{reply}");

    // While the attempt is under way, A's users are served at once.
    let started = Instant::now();
    let login = a.imap_login("127.0.0.1", ALICE, common::PASSWORD);
    assert!(login.starts_with("a OK"), "{login}");
    assert!(started.elapsed() < Duration::from_secs(2), "IMAP login took {:?}", started.elapsed());

    let attempt = a.wait_event(|e| e["event"] == "delivery_attempt");
    assert_eq!((attempt["deferred"].as_u64(), attempt["failed"].as_u64()), (Some(1), Some(0)), "{attempt}");
    let why = attempt["reason"].as_str().unwrap_or_default();
    assert!(why.contains(reason), "expected {reason:?} in the reason: {attempt}");
    let first_connection = *seen.accepted_ms.lock().unwrap().first().expect("the receiver was reached");
    let took = attempt["ts_ms"].as_i64().unwrap() - first_connection;
    assert!(took >= 0 && took < limit.as_millis() as i64, "the attempt took {took} ms (limit {limit:?}): {attempt}");
    // The event comes before the attempt's record is written: wait for the reason.
    let waiting = Instant::now();
    while !a.cli_ok(&["queue", "list"], None).contains(&format!("{to} (pending): ")) {
        assert!(waiting.elapsed() < Duration::from_secs(10), "{}", a.cli_ok(&["queue", "list"], None));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(stored(&a, ALICE, "INBOX").is_empty(), "no failure notice: a hostile server is not a refusal");
    seen
}

#[test]
fn an_endless_multiline_reply_is_cut_off_at_the_line_bound() {
    let seen = case("127.0.0.61", endless_multiline, REPLY_WAIT, "too many lines");
    // The client stopped reading at 100 lines; the kernel's buffers hold a little more.
    assert!(seen.written.load(Ordering::Relaxed) < 16 << 20, "{} bytes", seen.written.load(Ordering::Relaxed));
}

#[test]
fn a_huge_banner_is_cut_off_at_the_line_length_bound() {
    let seen = case("127.0.0.62", huge_banner, REPLY_WAIT, "too long");
    assert!(seen.written.load(Ordering::Relaxed) < 16 << 20, "{} bytes", seen.written.load(Ordering::Relaxed));
}

#[test]
fn a_reply_at_one_byte_a_second_ends_at_the_reply_wait() {
    // Each byte within a second of the last: only a deadline for the whole reply ends it.
    let seen = case("127.0.0.63", one_byte_a_second, REPLY_WAIT + Duration::from_secs(1), "did not answer in time");
    assert!(seen.written.load(Ordering::Relaxed) <= 4, "{} bytes", seen.written.load(Ordering::Relaxed));
}

#[test]
fn garbage_instead_of_a_tls_handshake_is_deferred() {
    // Two connections at most (the handshake, then RFC 7435's one plaintext retry).
    let seen = case("127.0.0.64", garbage_tls, REPLY_WAIT * 2 + Duration::from_secs(1), "at ");
    assert!(seen.accepted_ms.lock().unwrap().len() <= 2);
}

#[test]
fn replies_each_just_in_time_are_ended_by_the_attempts_bound() {
    // Greeting, EHLO, STARTTLS-less MAIL, RCPT, DATA, end of data: 6 replies of 1.5 s, 9 s in
    // all, each inside the 2 s reply wait; the 5 s bound on the attempt ends it first.
    let seen = case("127.0.0.65", just_in_time, ATTEMPT_WAIT + Duration::from_secs(1), "did not answer in time");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(seen.written.load(Ordering::Relaxed), 0, "the message was not taken");
}
