use super::*;
use portcullis_config::{Firewall, NetRules};

fn settings() -> portcullis_config::Guard {
    portcullis_config::Guard {
        ban_after_failures: 5,
        ban_window: Duration::from_secs(600),
        ban_duration: Duration::from_secs(3600),
        max_ban_duration: Duration::from_secs(4 * 3600),
        failure_delay: Duration::from_millis(100),
        max_failure_delay: Duration::from_millis(1000),
        account_attack_failures: 3,
        unknown_source_delay: Duration::from_secs(2),
        known_source_memory: Duration::from_secs(30 * 86_400),
        max_messages_per_hour: 3,
        max_recipients_per_hour: 5,
        max_tracked: 1000,
    }
}

fn guard_with(firewall: Firewall) -> Guard {
    Guard::new(Policy {
        rules: Rules::new(firewall),
        max_connections: 10,
        max_connections_per_source: 3,
        settings: settings(),
    })
}

fn guard() -> Guard {
    guard_with(Firewall { trusted: vec!["127.0.0.9/32".parse().unwrap()], ..Firewall::default() })
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn later(now: Now, secs: u64) -> Now {
    Now { mono: now.mono + Duration::from_secs(secs), wall: now.wall + Duration::from_secs(secs) }
}

#[test]
fn connection_limits_per_source_and_in_total() {
    let g = guard();
    let now = Now::current();
    let a: Vec<_> = (0..3).map(|_| g.admit(ip("127.0.0.2"), Listener::Imaps, now).unwrap()).collect();
    assert_eq!(g.admit(ip("127.0.0.2"), Listener::Imaps, now).err(), Some(RefuseReason::TooManyConnectionsFromPeer));
    assert_eq!(
        g.admit(ip("::ffff:127.0.0.2"), Listener::Imaps, now).err(),
        Some(RefuseReason::TooManyConnectionsFromPeer)
    );
    let more: Vec<_> = (3..10).map(|i| g.admit(ip(&format!("127.0.1.{i}")), Listener::Imaps, now).unwrap()).collect();
    assert_eq!(g.admit(ip("127.0.2.1"), Listener::Imaps, now).err(), Some(RefuseReason::TooManyConnections));
    drop(a);
    assert_eq!(g.active(), 7);
    drop(more);
    assert!(g.admit(ip("127.0.0.2"), Listener::Imaps, now).is_ok());
}

#[test]
fn firewall_rules_refuse_before_anything_else() {
    let g = guard_with(Firewall {
        global: NetRules { allow: vec![], deny: vec!["127.0.0.66/32".parse().unwrap()] },
        listeners: vec![("imaps", NetRules { allow: vec!["127.0.0.0/28".parse().unwrap()], deny: vec![] })],
        trusted: vec![],
    });
    let now = Now::current();
    assert_eq!(g.admit(ip("127.0.0.66"), Listener::Submissions, now).err(), Some(RefuseReason::Firewall));
    assert_eq!(g.admit(ip("127.0.0.20"), Listener::Imaps, now).err(), Some(RefuseReason::Firewall));
    assert!(g.admit(ip("127.0.0.20"), Listener::Submissions, now).is_ok());
    assert!(g.admit(ip("127.0.0.5"), Listener::Imaps, now).is_ok());
}

#[test]
fn reload_revokes_sessions_the_new_rules_refuse() {
    let g = guard();
    let now = Now::current();
    let office = g.admit(ip("127.0.0.5"), Listener::Imaps, now).unwrap();
    let outsider = g.admit(ip("127.0.0.40"), Listener::Imaps, now).unwrap();
    let firewall = Firewall {
        listeners: vec![("imaps", NetRules { allow: vec!["127.0.0.0/28".parse().unwrap()], deny: vec![] })],
        ..Firewall::default()
    };
    let revoked = g.reload(Policy {
        rules: Rules::new(firewall),
        max_connections: 10,
        max_connections_per_source: 3,
        settings: settings(),
    });
    assert_eq!(revoked, 1);
    assert!(outsider.revoked().is_cancelled());
    assert!(!office.revoked().is_cancelled());
}

#[test]
fn failures_grow_the_delay_then_ban_with_doubling_length() {
    let g = guard();
    let now = Now::current();
    let held = g.admit(ip("127.0.0.3"), Listener::Submissions, now).unwrap();
    let delays: Vec<Duration> =
        (0..4).map(|_| g.auth_failed(ip("127.0.0.3"), "alice@x.test", false, now).delay).collect();
    assert_eq!(delays, [100, 200, 400, 800].map(Duration::from_millis));
    let fifth = g.auth_failed(ip("127.0.0.3"), "bob@x.test", false, now);
    assert_eq!(fifth.delay, Duration::from_millis(1000), "capped");
    let ban = fifth.ban.expect("banned after 5 failures");
    assert_eq!(ban.network, "127.0.0.3/32".parse::<IpNet>().unwrap());
    assert_eq!(ban.until, Some(now.wall + Duration::from_secs(3600)));
    assert!(held.revoked().is_cancelled(), "open sessions of a banned source are cut");
    assert_eq!(g.admit(ip("127.0.0.3"), Listener::Imaps, now).err(), Some(RefuseReason::Banned));
    assert!(g.admit(ip("127.0.0.4"), Listener::Imaps, now).is_ok());

    // After it expires, a repeat offence is banned twice as long.
    let after = later(now, 3601);
    assert_eq!(g.expire_bans(after.wall).len(), 1);
    assert!(g.admit(ip("127.0.0.3"), Listener::Imaps, after).is_ok());
    let mut second = None;
    for _ in 0..5 {
        second = g.auth_failed(ip("127.0.0.3"), "alice@x.test", false, after).ban;
    }
    assert_eq!(second.unwrap().until, Some(after.wall + Duration::from_secs(7200)));
}

#[test]
fn failures_outside_the_window_are_forgotten() {
    let g = guard();
    let now = Now::current();
    for i in 0..4 {
        assert!(g.auth_failed(ip("127.0.0.3"), "a@x.test", false, later(now, i * 200)).ban.is_none());
    }
    assert!(
        g.auth_failed(ip("127.0.0.3"), "a@x.test", false, later(now, 800)).ban.is_none(),
        "only 4 within 10 minutes"
    );
}

#[test]
fn ipv6_sources_are_banned_per_64() {
    let g = guard();
    let now = Now::current();
    let mut ban = None;
    for i in 0..5 {
        ban = g.auth_failed(ip(&format!("2001:db8:1:2::{i}")), "a@x.test", false, now).ban;
    }
    assert_eq!(ban.unwrap().network, "2001:db8:1:2::/64".parse::<IpNet>().unwrap());
    assert_eq!(g.admit(ip("2001:db8:1:2:ffff::1"), Listener::Imaps, now).err(), Some(RefuseReason::Banned));
    assert!(g.admit(ip("2001:db8:1:3::1"), Listener::Imaps, now).is_ok());
}

#[test]
fn trusted_networks_and_known_addresses_are_never_banned() {
    let g = guard();
    let now = Now::current();
    for _ in 0..20 {
        assert!(g.auth_failed(ip("127.0.0.9"), "a@x.test", false, now).ban.is_none(), "trusted");
        assert!(g.auth_failed(ip("127.0.0.7"), "a@x.test", true, now).ban.is_none(), "the owner's known address");
    }
    assert!(!g.may_ban(&"127.0.0.0/24".parse().unwrap()));
    assert!(g.may_ban(&"127.0.1.0/24".parse().unwrap()));
}

#[test]
fn an_attacked_account_slows_unknown_sources_only() {
    let g = guard();
    let now = Now::current();
    assert_eq!(g.auth_throttle(ip("127.0.0.20"), "alice@x.test", false, now), Duration::ZERO);
    for i in 0..3 {
        g.auth_failed(ip(&format!("127.0.0.{}", 30 + i)), "Alice@X.test", false, now);
    }
    assert_eq!(g.auth_throttle(ip("127.0.0.20"), "alice@x.test", false, now), Duration::from_secs(2));
    assert_eq!(g.auth_throttle(ip("127.0.0.21"), "alice@x.test", true, now), Duration::ZERO, "the owner goes through");
    assert_eq!(
        g.auth_throttle(ip("127.0.0.20"), "bob@x.test", false, now),
        Duration::ZERO,
        "other accounts are not affected"
    );
    assert_eq!(g.auth_throttle(ip("127.0.0.20"), "alice@x.test", false, later(now, 601)), Duration::ZERO, "it passes");
}

#[test]
fn a_success_reports_the_failures_before_it() {
    let g = guard();
    let now = Now::current();
    for _ in 0..4 {
        g.auth_failed(ip("127.0.0.30"), "alice@x.test", false, now);
    }
    assert_eq!(g.auth_succeeded("alice@x.test", now).failures_before, 4);
    assert_eq!(g.auth_succeeded("alice@x.test", now).failures_before, 0);
}

#[test]
fn bans_from_the_store_replace_the_list_but_fresh_ones_survive() {
    let g = guard();
    let now = Now::current();
    let manual =
        Ban { network: "127.0.5.0/24".parse().unwrap(), until: None, reason: "admin".into(), offence: 1, manual: true };
    let (gone, added) = g.set_bans(vec![manual.clone()], now);
    assert!(gone.is_empty() && added == vec![manual.clone()]);
    assert_eq!(g.admit(ip("127.0.5.9"), Listener::Imaps, now).err(), Some(RefuseReason::Banned));
    let mut auto = None;
    for _ in 0..5 {
        auto = g.auth_failed(ip("127.0.0.3"), "a@x.test", false, now).ban;
    }
    let auto = auto.unwrap();
    // A refresh that read the store before the auto ban was written keeps it...
    let (gone, _) = g.set_bans(vec![manual.clone()], now);
    assert!(gone.is_empty());
    assert!(g.banned(ip("127.0.0.3"), now.wall).is_some());
    // ...and one that no longer has the manual ban lifts it.
    let (gone, _) = g.set_bans(vec![auto], later(now, 1));
    assert_eq!(gone, vec![manual.network]);
    assert!(g.admit(ip("127.0.5.9"), Listener::Imaps, now).is_ok());
    assert!(g.remove_ban(&"127.0.0.3/32".parse().unwrap()));
    assert!(g.banned(ip("127.0.0.3"), now.wall).is_none());
}

#[test]
fn sending_limits_per_account_per_hour() {
    let g = guard();
    let now = Now::current();
    assert_eq!(g.message(1, 2, now), Ok(()));
    assert_eq!(g.message(1, 4, now), Err(LimitHit { limit: SendingLimit::Recipients(5), first: true }));
    assert_eq!(g.message(1, 1, now), Ok(()));
    assert_eq!(g.message(1, 1, now), Ok(()));
    assert_eq!(g.message(1, 1, now), Err(LimitHit { limit: SendingLimit::Messages(3), first: true }));
    assert_eq!(g.message(1, 1, now), Err(LimitHit { limit: SendingLimit::Messages(3), first: false }), "alert once");
    assert_eq!(g.message(2, 1, now), Ok(()), "per account");
    // Counted per minute: a minute's messages count until the whole minute is an hour old.
    assert!(g.message(1, 1, later(now, 3600)).is_err(), "not yet");
    assert_eq!(g.message(1, 1, later(now, 3660)), Ok(()), "an hour (and the rest of its minute) later");
}

#[test]
fn the_sending_window_holds_a_bucket_per_minute_not_per_message() {
    let g = guard();
    let now = Now::current();
    for n in 0..3 {
        assert_eq!(g.message(7, 1, later(now, n * 20)), Ok(()));
    }
    let minutes = |g: &Guard| g.inner.sending.lock().unwrap()[&7].minutes.len();
    assert_eq!(minutes(&g), 1, "three messages within a minute");
    assert!(g.message(7, 1, later(now, 61)).is_err(), "the hour's three messages are still counted");
    assert_eq!(g.message(8, 1, later(now, 61)), Ok(()));
    assert_eq!(g.message(8, 1, later(now, 200)), Ok(()));
    assert_eq!(g.inner.sending.lock().unwrap()[&8].minutes.len(), 2);
}

#[test]
fn memory_stays_bounded_under_a_storm_of_sources() {
    let g = guard();
    let now = Now::current();
    for i in 0..50_000u32 {
        let addr = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        g.auth_failed(IpAddr::V4(addr), &format!("user{i}@x.test"), false, now);
    }
    assert!(g.inner.sources.lock().unwrap().len() <= 1000);
    assert!(g.inner.accounts.lock().unwrap().len() <= 1000);
}

#[test]
fn the_owner_goes_ahead_in_the_password_check_queue() {
    let g = guard();
    assert_eq!(g.check_lane(ip("127.0.0.20"), false), CheckLane::Ordinary);
    assert_eq!(g.check_lane(ip("127.0.0.20"), true), CheckLane::Priority, "an address the account knows");
    assert_eq!(g.check_lane(ip("127.0.0.9"), false), CheckLane::Priority, "a trusted network");
    assert_eq!(g.check_lane(ip("::ffff:127.0.0.9"), false), CheckLane::Priority, "IPv4-mapped");
}

#[test]
fn a_success_after_an_attack_is_flagged() {
    let g = guard();
    let now = Now::current();
    for _ in 0..2 {
        g.auth_failed(ip("127.0.0.30"), "alice@x.test", false, now);
    }
    assert!(!g.auth_succeeded("alice@x.test", now).after_attack, "2 failures, 3 make an attack");
    for _ in 0..3 {
        g.auth_failed(ip("127.0.0.30"), "alice@x.test", false, now);
    }
    assert_eq!(g.auth_succeeded("alice@x.test", now), Success { failures_before: 3, after_attack: true });
}

#[test]
fn a_manual_ban_is_a_first_offence_with_a_reason() {
    let network: IpNet = "192.0.2.0/24".parse().unwrap();
    let until = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let ban = Ban::manual(network, until, "spam run");
    assert_eq!(ban, Ban { network, until, reason: "spam run".into(), offence: 1, manual: true });
    assert_eq!(Ban::manual(network, None, "  ").reason, MANUAL_BAN_REASON);
}

#[test]
fn the_policy_alone_says_what_may_be_banned() {
    let policy = Policy {
        rules: Rules::new(Firewall { trusted: vec!["10.1.0.0/16".parse().unwrap()], ..Firewall::default() }),
        max_connections: 10,
        max_connections_per_source: 3,
        settings: settings(),
    };
    assert!(!policy.may_ban(&"10.1.2.0/24".parse().unwrap()), "inside a trusted network");
    assert!(!policy.may_ban(&"10.0.0.0/8".parse().unwrap()), "around a trusted network");
    assert!(policy.may_ban(&"10.2.0.0/16".parse().unwrap()));
}
