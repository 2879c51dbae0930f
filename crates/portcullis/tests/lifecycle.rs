//! The process: privilege drop, certificate reload, orderly shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

#[test]
fn started_as_root_it_runs_as_the_configured_user() {
    if !outside::root("the privilege drop happens only when started as root") {
        return;
    }
    let server = TestServer::start();
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid.as_raw();
    assert!(uid_line.split_whitespace().skip(1).all(|u| u == nobody.to_string()), "{uid_line}");
    // And it still works: the store is writable by the dropped user.
    assert!(server.submit(BOB, "Subject: after the drop\r\n\r\nok").starts_with("250"));
}

#[test]
fn root_without_a_service_user_is_refused() {
    if !outside::root("only root without `process.user` is refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path());
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        "hostname = \"mail.example.test\"\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n[listen]\nsubmissions = [\"127.0.0.1:0\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN).arg("--config").arg(&config).arg("serve").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("process.user") && err.contains("root"), "{err}");
}

#[test]
fn sighup_swaps_the_certificate_without_dropping_sessions() {
    let server = TestServer::start();
    let mut old_session = server.connect_tls("submissions");
    assert!(old_session.reply().starts_with("220"));

    // A new certificate (for the same name, but a different key).
    let new_cert = write_cert(server.dir.path());
    server.signal(Signal::SIGHUP);
    // The TLS reload's own event: the firewall's comes first and says nothing of certificates.
    server.wait_event(|e| e["event"] == "config_reloaded" && e["what"] == "tls" && e["ok"] == true);

    // New connections get the new certificate: a client trusting only it connects.
    let config = client_config(&new_cert, rustls::ALL_VERSIONS);
    let mut fresh = Client::plain(std::net::TcpStream::connect(server.addr("pop3s")).unwrap()).upgrade(config);
    assert!(fresh.line().starts_with("+OK"));
    // The session from before the reload goes on.
    assert!(old_session.cmd("EHLO still.here").starts_with("250"));

    // A broken certificate file is refused and the current one stays in service.
    std::fs::write(server.dir.path().join("cert.pem"), "not a certificate").unwrap();
    server.signal(Signal::SIGHUP);
    let failed = server.wait_event(|e| e["event"] == "config_reloaded" && e["what"] == "tls" && e["ok"] == false);
    assert!(failed["error"].as_str().unwrap().contains("cert.pem"));
    let config = client_config(&new_cert, rustls::ALL_VERSIONS);
    let mut still = Client::plain(std::net::TcpStream::connect(server.addr("submissions")).unwrap()).upgrade(config);
    assert!(still.reply().starts_with("220"));
}

#[test]
fn sigterm_lets_sessions_finish_then_closes_them() {
    let mut server = TestServer::start();
    let mut busy = server.connect_tls("submissions");
    busy.reply();
    busy.cmd("EHLO c");
    busy.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD)));
    server.signal(Signal::SIGTERM);
    server.wait_event(|e| e["event"] == "server_stopping" && e["sessions"] == 1);
    // No new connections: the listeners close as the drain starts...
    let started = Instant::now();
    while std::net::TcpStream::connect(server.addr("submissions")).is_ok() {
        assert!(started.elapsed() < Duration::from_secs(10), "still accepting connections while stopping");
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...but the open session may finish its message within the grace period (3s here).
    busy.cmd(&format!("MAIL FROM:<{ALICE}>"));
    busy.cmd(&format!("RCPT TO:<{BOB}>"));
    busy.cmd("DATA");
    busy.send("Subject: last one\r\n\r\nin flight\r\n.");
    assert!(busy.reply().starts_with("250"));
    // Then, idle past the grace period, it is told goodbye.
    assert!(busy.reply().starts_with("421 4.3.2"));
    let (status, _) = server.wait_exit(Duration::from_secs(15));
    assert!(status.success());
    assert!(server.events().iter().any(|e| e["event"] == "server_stopped"));
}
