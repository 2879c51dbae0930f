//! Hostile exchangers written for the test: a reply that never ends, a reply at one byte a
//! second, a TLS "handshake" of garbage, a banner of megabytes, replies each just inside the
//! reply wait (ended by the bound on the whole attempt). Each attempt must end
//! temporary (the mail waits, nothing bounces), within the configured waits, and without
//! reading more than the reply bounds allow.

mod common;

use common::*;
use portcullis_delivery::{AttemptOutcome, Courier};
use portcullis_smtp_client::{Cause, Disposition, Reason, ReplyError, SessionFailure};
use portcullis_testdns::TestDns;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Runs `behave` for each connection to a listener on `ip`; counts the bytes it managed to
/// write before the client gave up.
async fn hostile<F, Fut>(ip: Ipv4Addr, behave: F) -> (u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>)
where
    F: Fn(TcpStream, Arc<AtomicUsize>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let behave = Arc::new(behave);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (behave, counter) = (behave.clone(), counter.clone());
            tokio::spawn(async move { behave(stream, counter).await });
        }
    });
    (port, written, task)
}

/// Writes `chunk` until the client goes away.
async fn flood(mut s: TcpStream, prefix: &'static [u8], chunk: &'static [u8], written: Arc<AtomicUsize>) {
    if s.write_all(prefix).await.is_err() {
        return;
    }
    while s.write_all(chunk).await.is_ok() {
        written.fetch_add(chunk.len(), Ordering::Relaxed);
    }
}

async fn attempt(ip: Ipv4Addr, port: u16, greeting: Duration) -> (portcullis_delivery::BatchReport, Duration) {
    let dns = TestDns::start(zone_with_mx("hostile.test", ip)).unwrap();
    let mut s = settings(port);
    s.timeouts.greeting = greeting;
    s.timeouts.command = greeting;
    s.max_connections = 1;
    let courier = courier(&dns, s, &[]);
    let started = Instant::now();
    let report = courier
        .deliver(portcullis_delivery::Batch {
            domain: "hostile.test".into(),
            messages: vec![message(&["v@hostile.test"])],
        })
        .await;
    (report, started.elapsed())
}

fn session_cause(report: &portcullis_delivery::BatchReport) -> Cause {
    let r = &report.messages[0][0];
    assert_eq!(r.disposition, Disposition::Temporary, "{report:#?}");
    match &r.why {
        portcullis_delivery::Why::Smtp(Reason::Session(SessionFailure { cause, .. })) => cause.clone(),
        other => panic!("not a session failure: {other:?}"),
    }
}

#[tokio::test]
async fn an_endless_multiline_reply_is_cut_off() {
    let ip = Ipv4Addr::new(127, 0, 0, 51);
    let (port, written, _task) =
        hostile(ip, |s, w| flood(s, b"220-hello\r\n", b"220-and more\r\n220-and more\r\n", w)).await;
    let (report, took) = attempt(ip, port, Duration::from_secs(5)).await;
    assert_eq!(session_cause(&report), Cause::BadReply(ReplyError::TooManyLines));
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The client stops reading at its bound; the kernel buffers a little more.
    assert!(written.load(Ordering::Relaxed) < 16 * 1024 * 1024, "{}", written.load(Ordering::Relaxed));
}

#[tokio::test]
async fn a_huge_banner_is_cut_off() {
    let ip = Ipv4Addr::new(127, 0, 0, 52);
    let (port, _, _task) = hostile(ip, |s, w| flood(s, b"220 ", &[b'x'; 65536], w)).await;
    let (report, took) = attempt(ip, port, Duration::from_secs(5)).await;
    assert_eq!(session_cause(&report), Cause::BadReply(ReplyError::LineTooLong));
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_reply_at_one_byte_a_second_times_out_as_a_whole() {
    let ip = Ipv4Addr::new(127, 0, 0, 53);
    let (port, _, _task) = hostile(ip, |mut s: TcpStream, _| async move {
        for byte in b"220 slow.hostile.test ESMTP but very slowly\r\n" {
            if s.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    let (report, took) = attempt(ip, port, Duration::from_secs(2)).await;
    assert_eq!(session_cause(&report), Cause::TimedOut);
    // Every byte came within a second of the last: only a deadline for the whole reply ends it.
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn garbage_instead_of_a_tls_handshake_is_temporary() {
    let ip = Ipv4Addr::new(127, 0, 0, 54);
    let (port, _, _task) = hostile(ip, |mut s: TcpStream, _| async move {
        let mut buf = [0u8; 512];
        let _ = s.write_all(b"220 tls.hostile.test\r\n").await;
        let _ = s.read(&mut buf).await; // EHLO
        let _ = s.write_all(b"250-tls.hostile.test\r\n250 STARTTLS\r\n").await;
        let _ = s.read(&mut buf).await; // STARTTLS
        let _ = s.write_all(b"220 go ahead\r\n").await;
        let _ = s.read(&mut buf).await; // ClientHello
        let _ = s.write_all(&[0x16, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5, 0xff, 0xff]).await;
        let _ = s.read(&mut buf).await;
    })
    .await;
    let (report, took) = attempt(ip, port, Duration::from_secs(3)).await;
    assert!(matches!(session_cause(&report), Cause::Tls(_)), "{report:#?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(matches!(report.attempts[0].outcome, AttemptOutcome::SessionFailed(_)));
    assert!(report.attempts[0].tls_failure.is_some());
}

#[tokio::test]
async fn after_a_failed_handshake_without_policy_one_plaintext_session_follows() {
    // A server whose TLS the client cannot speak, but which takes mail in plaintext.
    let ip = Ipv4Addr::new(127, 0, 0, 57);
    let (port, _, _task) = hostile(ip, |mut s: TcpStream, _| async move {
        let mut buf = vec![0u8; 4096];
        let _ = s.write_all(b"220 old.hostile.test\r\n").await;
        loop {
            let Ok(n) = s.read(&mut buf).await else { return };
            if n == 0 {
                return;
            }
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let reply: &[u8] = if text.starts_with("EHLO") {
                b"250-old.hostile.test\r\n250 STARTTLS\r\n"
            } else if text.starts_with("STARTTLS") {
                b"220 go ahead\r\n"
            } else if text.starts_with("DATA") {
                b"354 go\r\n"
            } else if text.ends_with("\r\n.\r\n") {
                b"250 2.0.0 taken in plaintext\r\n"
            } else if text.starts_with("QUIT") {
                b"221 bye\r\n"
            } else if text.starts_with("MAIL") || text.starts_with("RCPT") {
                b"250 ok\r\n"
            } else {
                b"\x15\x03\x03\x00\x02\x02\x28" // a TLS alert where a ServerHello belongs
            };
            if s.write_all(reply).await.is_err() {
                return;
            }
        }
    })
    .await;
    let dns = TestDns::start(zone_with_mx("hostile.test", ip)).unwrap();
    let courier = courier(&dns, settings(port), &[]);
    let report = courier
        .deliver(portcullis_delivery::Batch {
            domain: "hostile.test".into(),
            messages: vec![message(&["v@hostile.test"])],
        })
        .await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Delivered, "{report:#?}");
    assert_eq!(report.attempts.len(), 2, "{:#?}", report.attempts);
    assert!(report.attempts[0].tls_failure.is_some());
    assert!(report.attempts[1].tls.is_none(), "the second session is plaintext");
    assert_eq!(report.attempts[1].outcome, AttemptOutcome::Completed);
}

#[tokio::test]
async fn a_silent_server_and_a_closed_port_are_temporary() {
    let ip = Ipv4Addr::new(127, 0, 0, 55);
    let (port, _, _task) = hostile(ip, |s: TcpStream, _| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let (report, took) = attempt(ip, port, Duration::from_secs(1)).await;
    assert_eq!(session_cause(&report), Cause::TimedOut);
    assert!(took < Duration::from_secs(3), "{took:?}");
    let closed = free_port(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 56)));
    let (report, _) = attempt(Ipv4Addr::new(127, 0, 0, 56), closed, Duration::from_secs(1)).await;
    assert!(matches!(session_cause(&report), Cause::Connect(_)));
    assert!(matches!(report.attempts[0].outcome, AttemptOutcome::ConnectFailed(_)));
}

/// A server answering every line 1.2 s late: inside every 2 s reply wait, so only the bound on
/// the whole attempt (`attempt_timeout`) ends it; the recipient stays temporary and what the
/// session knew is kept.
#[tokio::test]
async fn replies_each_just_in_time_are_ended_by_the_attempts_bound() {
    let ip = Ipv4Addr::new(127, 0, 0, 57);
    let (port, _, _task) = hostile(ip, |mut s: TcpStream, _| async move {
        let late = || tokio::time::sleep(Duration::from_millis(1200));
        late().await;
        if s.write_all(b"220 late.hostile.test\r\n").await.is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                return;
            }
            late().await;
            if s.write_all(b"250 ok\r\n").await.is_err() {
                return;
            }
        }
    })
    .await;
    let dns = TestDns::start(zone_with_mx("hostile.test", ip)).unwrap();
    let mut s = settings(port);
    s.timeouts = s.timeouts.capped(Duration::from_secs(2));
    s.attempt_timeout = Duration::from_secs(3);
    s.max_connections = 1;
    let courier = courier(&dns, s, &[]);
    let started = Instant::now();
    let report = courier
        .deliver(portcullis_delivery::Batch {
            domain: "hostile.test".into(),
            messages: vec![message(&["v@hostile.test"])],
        })
        .await;
    let took = started.elapsed();
    assert_eq!(session_cause(&report), Cause::TimedOut);
    assert!(took >= Duration::from_secs(3) && took < Duration::from_millis(3800), "{took:?}");
}
