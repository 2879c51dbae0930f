//! Portcullis behind a load balancer (issue 17): the PROXY protocol on a listener, the health
//! endpoint a balancer polls, and Debian's real HAProxy in front of one instance. Clients on
//! 127.0.0.2 and 127.0.0.3 stand in for the internet; the balancer connects from 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::haproxy::{Frontend, HaProxy, Node};
use common::outside::program;
use common::{Client, Settings, TestServer, ALICE, BOB, PASSWORD};
use nix::sys::signal::Signal;

/// imaps expects a PROXY header, only from 127.0.0.1; three failed logins ban an address.
fn proxied_server() -> TestServer {
    TestServer::start_with(Settings {
        sections: vec![
            "[proxy]\nlisteners = [\"imaps\"]\ntrusted_proxies = [\"127.0.0.1/32\"]\nheader_timeout = \"1s\"\n\
             [firewall]\ntrusted_networks = [\"127.0.0.1\"]\n\
             [guard]\nban_after_failures = 3\nfailure_delay = \"1ms\"\nmax_failure_delay = \"1ms\"\n"
                .into(),
        ],
        ..Settings::default()
    })
}

/// A TCP connection from `source` to `to`.
fn tcp_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let tcp: TcpStream = socket.into();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp
}

/// Whether the server closes `tcp` without a byte (read timeout: it stayed silent, a failure).
fn closed_without_a_word(mut tcp: TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match tcp.read(&mut byte) {
        Ok(0) => true,
        Err(e) if common::is_closed(&e) => true,
        Ok(_) => false,
        Err(e) => panic!("neither closed nor answered: {e}"),
    }
}

/// A v2 LOCAL header: the balancer speaking for itself (its health checks).
const V2_LOCAL: &[u8] = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";

#[test]
fn the_proxy_listener_takes_headers_from_trusted_balancers_only() {
    let server = proxied_server();
    let imaps = server.addr("imaps");

    // Straight from a client: a header from it would be a forgery, so it is refused unread.
    let direct = tcp_from("127.0.0.3", imaps);
    let peer = direct.local_addr().unwrap().to_string();
    assert!(closed_without_a_word(direct));
    let e = server.wait_event(|e| e["event"] == "proxy_refused" && e["peer"] == peer.as_str());
    assert_eq!((e["listener"].as_str(), e["reason"].as_str()), (Some("imaps"), Some("untrusted_source")));

    // From the balancer, but a TLS ClientHello where the header should be.
    let mut bare = tcp_from("127.0.0.1", imaps);
    let peer = bare.local_addr().unwrap().to_string();
    bare.write_all(b"\x16\x03\x01\x00\x05hello").unwrap();
    assert!(closed_without_a_word(bare));
    server
        .wait_event(|e| e["event"] == "proxy_refused" && e["peer"] == peer.as_str() && e["reason"] == "missing_header");

    // From the balancer, silent: closed after proxy.header_timeout.
    let silent = tcp_from("127.0.0.1", imaps);
    let peer = silent.local_addr().unwrap().to_string();
    assert!(closed_without_a_word(silent));
    server.wait_event(|e| e["event"] == "proxy_refused" && e["peer"] == peer.as_str() && e["reason"] == "timeout");

    // A v1 header names the client: the session, and its events, are 127.0.0.9's.
    let mut v1 = tcp_from("127.0.0.1", imaps);
    v1.write_all(b"PROXY TCP4 127.0.0.9 127.0.0.1 40999 993\r\n").unwrap();
    let mut c = Client::plain(v1).upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(c.line().starts_with("* OK"));
    assert!(imap_login(&mut c, BOB, PASSWORD).starts_with("a OK"), "logged in");
    server.wait_event(|e| e["event"] == "connection_opened" && e["peer"] == "127.0.0.9:40999");
    server.wait_event(|e| e["event"] == "auth_succeeded" && e["peer"] == "127.0.0.9:40999");

    // v2 LOCAL, a health check: served as the balancer itself.
    let mut local = tcp_from("127.0.0.1", imaps);
    let own = local.local_addr().unwrap().to_string();
    local.write_all(V2_LOCAL).unwrap();
    let mut c = Client::plain(local).upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(c.line().starts_with("* OK"));
    server.wait_event(|e| e["event"] == "connection_opened" && e["peer"] == own.as_str());

    // Each refusal is counted by listener and reason.
    let metrics = server.http("GET", "/metrics", Some(&server.admin_token()), None).body;
    for reason in ["untrusted_source", "missing_header", "timeout"] {
        let line = format!("portcullis_proxy_refused_total{{listener=\"imaps\",reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "{line} not in the metrics");
    }

    // The other listeners take no header and serve anyone as before.
    let mut plain = server.connect_from("127.0.0.3", "submissions").upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(plain.line().starts_with("220"));
}

#[test]
fn health_is_ok_while_serving_and_draining_once_sigterm_starts_the_drain() {
    // The tests' shutdown_grace is 3s: time enough for the message below.
    let mut server = TestServer::start();
    let ok = server.http("GET", "/health", None, None);
    assert_eq!((ok.status, ok.body.as_str()), (200, "ok\n"), "no token needed");
    assert!(ok.headers["content-type"].starts_with("text/plain"));

    let mut busy = server.connect_tls("submissions");
    busy.reply();
    busy.cmd("EHLO c");
    busy.cmd(&format!("AUTH PLAIN {}", common::plain(ALICE, PASSWORD)));
    server.signal(Signal::SIGTERM);
    server.wait_event(|e| e["event"] == "server_stopping");
    let draining = server.http("GET", "/health", None, None);
    assert_eq!((draining.status, draining.body.as_str()), (503, "draining\n"));
    // The session open when the drain began still delivers its message.
    busy.cmd(&format!("MAIL FROM:<{ALICE}>"));
    busy.cmd(&format!("RCPT TO:<{BOB}>"));
    busy.cmd("DATA");
    busy.send("Subject: during the drain\r\n\r\nstill delivered\r\n.");
    assert!(busy.reply().starts_with("250"));
    busy.cmd("QUIT");
    let (status, _) = server.wait_exit(Duration::from_secs(20));
    assert!(status.success());
}

/// IMAP LOGIN from `source` through the balancer; the tagged answer, or None when refused.
fn login_through(
    server: &TestServer,
    balancer: SocketAddr,
    source: &str,
    user: &str,
    password: &str,
) -> Option<String> {
    let tcp = tcp_from(source, balancer);
    let mut c = Client::plain(tcp).handshake(server.client_config(rustls::ALL_VERSIONS)).ok()?;
    let greeting = c.try_line().ok()?;
    if !greeting.starts_with("* OK") {
        return None;
    }
    Some(imap_login(&mut c, user, password))
}

/// `a LOGIN`; the tagged answer (empty if the server closed first).
fn imap_login(c: &mut Client, user: &str, password: &str) -> String {
    c.send(&format!("a LOGIN {user} {password}"));
    loop {
        let line = c.try_line().unwrap_or_default();
        if line.starts_with("a ") || line.is_empty() {
            return line;
        }
    }
}

#[test]
fn behind_haproxy_the_server_sees_bans_and_logs_the_real_clients() {
    let Some(haproxy) = program("haproxy", "apt-get install haproxy") else { return };
    let server = proxied_server();
    let node = Node { listener: server.addr("imaps"), admin: server.addr("admin") };
    let running = HaProxy::start(&haproxy, &[Frontend::new("imaps", vec![node])]);
    let balancer = running.addr("imaps");

    // 127.0.0.3 logs in through the balancer, and is named as itself.
    assert!(login_through(&server, balancer, "127.0.0.3", BOB, PASSWORD).unwrap().starts_with("a OK"));
    let opened = server.wait_event(|e| {
        e["event"] == "auth_succeeded" && e["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.3:"))
    });
    assert_eq!(opened["listener"], "imaps");

    // 127.0.0.2 guesses passwords through the same balancer until it is banned...
    for attempt in 0..3 {
        let answer = login_through(&server, balancer, "127.0.0.2", ALICE, "wrong-password");
        // The third may be cut short by the ban it brings.
        if attempt < 2 {
            assert!(answer.is_some_and(|a| a.starts_with("a NO")), "attempt {attempt}");
        }
    }
    server.wait_event(|e| e["event"] == "ban_added" && e["network"] == "127.0.0.2/32");
    let failures = server
        .events()
        .into_iter()
        .filter(|e| e["event"] == "auth_failed" && e["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.2:")));
    assert!(failures.count() >= 2, "each failure counted against the client, not the balancer");
    // ...and is refused from then on...
    assert_eq!(login_through(&server, balancer, "127.0.0.2", ALICE, PASSWORD), None);
    server.wait_event(|e| {
        e["event"] == "connection_refused"
            && e["reason"] == "banned"
            && e["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.2:"))
    });
    // ...while 127.0.0.3 still logs in through the same balancer.
    assert!(login_through(&server, balancer, "127.0.0.3", BOB, PASSWORD).unwrap().starts_with("a OK"));

    // No session or refusal named the balancer's address; nothing banned it.
    for e in server.events() {
        if matches!(e["event"].as_str(), Some("connection_opened" | "connection_refused" | "auth_failed")) {
            let peer = e["peer"].as_str().unwrap_or("");
            assert!(!peer.starts_with("127.0.0.1:"), "an event names the balancer: {e}");
        }
        if e["event"] == "ban_added" {
            assert_eq!(e["network"], "127.0.0.2/32", "only the guessing client is banned: {e}");
        }
    }

    // A client going round the balancer is refused, named as itself.
    let direct = tcp_from("127.0.0.3", server.addr("imaps"));
    let peer = direct.local_addr().unwrap().to_string();
    assert!(closed_without_a_word(direct));
    server.wait_event(|e| {
        e["event"] == "proxy_refused" && e["peer"] == peer.as_str() && e["reason"] == "untrusted_source"
    });
}

/// dist/haproxy.cfg, the example docs/operations.md points to, is one HAProxy accepts (its
/// paths moved into a temp dir, as they would be on a real balancer).
#[test]
fn the_example_haproxy_config_is_valid() {
    let Some(haproxy) = program("haproxy", "apt-get install haproxy") else { return };
    let dir = tempfile::tempdir().unwrap();
    common::write_cert(dir.path());
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/haproxy.cfg")).unwrap();
    assert!(example.contains("send-proxy-v2") && example.contains("uri /health"));
    let d = dir.path().display();
    let local = example
        .replace("/etc/haproxy/portcullis-ca.pem", &format!("{d}/cert.pem"))
        .replace("chroot /var/lib/haproxy", &format!("chroot {d}"))
        .replace("/run/haproxy/admin.sock", &format!("{d}/admin.sock"));
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, local).unwrap();
    let check = Command::new(haproxy).arg("-c").arg("-f").arg(&path).output().unwrap();
    assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stderr));
}
