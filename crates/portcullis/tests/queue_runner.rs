//! The queue runner's scheduling (issue 15), against a real server on loopback and small SMTP
//! sinks written here, found through MX records served by `portcullis_testdns`:
//! - a destination that stalls in DATA holds back only itself: mail for another domain,
//!   queued meanwhile, is delivered promptly, and several messages due for one domain arrive
//!   over one connection;
//! - mail for a domain that refuses connections is deferred at once, for that reason, while the
//!   domain is paused, not held back to be claimed again and again;
//! - a runner killed (SIGKILL) while a receiver stalls in DATA leaves a lease; the restarted
//!   server takes it back at once (not after the hour-long lease), and the receiver gets the
//!   message once.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use common::outbound::{queued, sender, submit, Answer, Schedule, Sink, TAKE};
use common::{wait_for, TestServer};
use portcullis_testdns::{TestDns, Zones};

/// Takes a message up to its final dot, then never answers.
const SLOW: (&str, &str) = ("slow.test", "127.0.0.7");
/// Answers promptly.
const FAST: (&str, &str) = ("fast.test", "127.0.0.8");

const DEFER: Answer = Answer::Rcpt("451 4.7.1 come back later");

fn zones() -> Zones {
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    let mut zones = Zones::new();
    for (domain, address) in [SLOW, FAST] {
        zones = zones.zone(domain).mx(domain, 10, &format!("mx.{domain}")).a(&format!("mx.{domain}"), ip(address));
    }
    zones
}

/// A port free on both sinks' addresses (exchangers are reached on one `[delivery] port`).
fn sink_port() -> u16 {
    for _ in 0..50 {
        let probe = TcpListener::bind((FAST.1, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        if TcpListener::bind((SLOW.1, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both sink addresses");
}

/// The sender: retries an hour apart, so that anything delivered quickly in these tests was
/// delivered by a flush or by taking back a lease, never by the retry schedule.
fn start_sender(dns: &TestDns, port: u16) -> TestServer {
    let schedule = Schedule { retry_first: "1h", retry_max_interval: "1h", expire: "1d" };
    TestServer::start_with(sender(dns, schedule, &format!("port = {port}")))
}

#[test]
fn a_stalled_domain_holds_back_only_itself_and_one_connection_carries_a_domains_messages() {
    let dns = TestDns::start(zones()).unwrap();
    let port = sink_port();
    let slow = Sink::start(SLOW.1, port, Answer::StallInData);
    let fast = Sink::start(FAST.1, port, DEFER);
    let a = start_sender(&dns, port);

    submit(&a, &format!("someone@{}", SLOW.0), "stuck");
    wait_for("the slow destination stalling in DATA", Duration::from_secs(20), || slow.stalled() == 1);
    const N: usize = 6;
    for n in 0..N {
        submit(&a, &format!("r{n}@{}", FAST.0), &format!("message {n}"));
    }
    // Each is tried at once, while the slow delivery is still in progress, and deferred.
    a.wait_events(|e| e["event"] == "delivery_attempt" && e["domain"] == FAST.0 && e["deferred"] == 1, N);
    assert_eq!(slow.stalled(), 1);

    // Now the fast destination takes mail, and every waiting message is made due at once: the
    // message in progress at the slow one is not (a flush would deliver it twice).
    fast.set(TAKE);
    let before = fast.connections();
    let flushed = a.cli_ok(&["queue", "flush"], None);
    assert!(flushed.starts_with(&format!("{N} message")), "the leased message is left alone: {flushed}");
    let took = wait_for("the fast domain's messages delivered", Duration::from_secs(15), || fast.taken() == N);
    assert!(took < Duration::from_secs(5), "delivered promptly, not after the slow one: {took:?}");
    assert_eq!(fast.connections() - before, 1, "one connection carried all {N}");
    let attempts = a.wait_events(|e| e["event"] == "delivery_attempt" && e["delivered"] == 1, N);
    assert!(attempts.iter().all(|e| e["domain"] == FAST.0), "{attempts:?}");

    // The slow delivery is still in progress, on its one connection, and still queued.
    assert_eq!((slow.connections(), slow.taken()), (1, 0));
    wait_for("the six records", Duration::from_secs(5), || queued(&a) == 1);
}

#[test]
fn a_lease_of_a_killed_runner_is_taken_back_at_the_restart_and_delivered_once() {
    let dns = TestDns::start(zones()).unwrap();
    let port = sink_port();
    let sink = Sink::start(FAST.1, port, Answer::StallInData);
    let mut a = start_sender(&dns, port);
    submit(&a, &format!("someone@{}", FAST.0), "survivor");
    wait_for("the receiver stalling in DATA", Duration::from_secs(20), || sink.stalled() == 1);

    // Killed mid-attempt: the message stays leased to the dead run, for an hour.
    a.signal(nix::sys::signal::Signal::SIGKILL);
    a.kill();
    assert_eq!(queued(&a), 1);
    sink.set(TAKE);

    let restarted = Instant::now();
    a.launch();
    wait_for("the delivery after the restart", Duration::from_secs(20), || sink.taken() >= 1);
    assert!(restarted.elapsed() < Duration::from_secs(10), "promptly: {:?}", restarted.elapsed());
    std::thread::sleep(Duration::from_secs(3)); // several ticks of the runner
    assert_eq!(sink.taken(), 1, "delivered once");
    assert_eq!(queued(&a), 0);
}

#[test]
fn mail_for_a_domain_refusing_connections_is_deferred_at_once_for_that_reason() {
    let dns = TestDns::start(zones()).unwrap();
    let port = sink_port(); // nothing listens there
    let a = start_sender(&dns, port);
    submit(&a, &format!("first@{}", SLOW.0), "one");
    let first = a.wait_event(|e| e["event"] == "delivery_attempt" && e["deferred"] == 1);
    let reason = first["reason"].as_str().unwrap().to_string();

    // The domain is paused (a minute); the next message for it is not held in memory or given
    // back to be claimed again and again, but deferred now with the same reason, its retry
    // (an hour here) counted as for any temporary failure.
    submit(&a, &format!("second@{}", SLOW.0), "two");
    let both = a.wait_events(|e| e["event"] == "delivery_attempt" && e["deferred"] == 1, 2);
    assert_eq!(both[1]["queue_id"], 2, "{both:?}");
    assert_eq!(both[1]["reason"].as_str(), Some(reason.as_str()), "{both:?}");
    // The event comes as the outcome is known; the record follows.
    let attempts = || -> Vec<u32> {
        a.with_store(async |store| {
            let mut queued = store.queued().await.unwrap();
            queued.sort_by_key(|m| m.id);
            queued.iter().map(|m| m.attempts).collect()
        })
    };
    wait_for("both attempts recorded", Duration::from_secs(5), || attempts() == [1, 1]);
}
