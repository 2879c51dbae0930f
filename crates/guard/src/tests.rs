use std::net::IpAddr;

use super::*;
use portcullis_config::{Firewall, NetRules};
use portcullis_events::{Listener, RefuseReason};

fn settings() -> portcullis_config::Guard {
    portcullis_config::Guard {
        ban_after_failures: 5,
        ban_window: Duration::from_secs(600),
        ban_duration: Duration::from_secs(3600),
        max_ban_duration: Duration::from_secs(4 * 3600),
        ban_after_attempts: 8,
        failure_delay: Duration::from_millis(100),
        max_failure_delay: Duration::from_millis(1000),
        account_attack_failures: 3,
        unknown_source_attempts: 6,
        escalate_after: 3,
        escalate_ipv4_after: 0,
        known_source_memory: Duration::from_secs(30 * 86_400),
        max_messages_per_hour: 3,
        max_recipients_per_hour: 5,
        max_tracked: 1000,
        ban_after_unknown_recipients: 4,
        ban_after_early_talk: 2,
        bounce_alert_after: 4,
        bounce_window: Duration::from_secs(3600),
    }
}

fn policy_with(firewall: Firewall) -> Policy {
    Policy {
        rules: Rules::new(firewall),
        max_connections: 10,
        max_connections_per_source: 3,
        max_connections_per_56: 5,
        max_connections_per_48: 7,
        reserved_for_owners: 0,
        listener_limits: vec![(
            Listener::Smtp,
            ListenerLimits {
                max_connections: 4,
                max_connections_per_source: 2,
                connections_per_minute: 3,
                messages_per_minute: 2,
                recipients_per_minute: 5,
            },
        )],
        settings: settings(),
    }
}

fn guard_with(firewall: Firewall) -> Guard {
    Guard::new(policy_with(firewall))
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
        listeners: vec![(Listener::Imaps, NetRules { allow: vec!["127.0.0.0/28".parse().unwrap()], deny: vec![] })],
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
        listeners: vec![(Listener::Imaps, NetRules { allow: vec!["127.0.0.0/28".parse().unwrap()], deny: vec![] })],
        ..Firewall::default()
    };
    let revoked = g.reload(policy_with(firewall));
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
        (0..4).map(|_| g.auth_failed(ip("127.0.0.3"), "alice@x.test", false, None, now).delay).collect();
    assert_eq!(delays, [100, 200, 400, 800].map(Duration::from_millis));
    let fifth = g.auth_failed(ip("127.0.0.3"), "bob@x.test", false, None, now);
    assert_eq!(fifth.delay, Duration::from_millis(1000), "capped");
    let ban = fifth.bans.first().cloned().expect("banned after 5 failures");
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
        second = g.auth_failed(ip("127.0.0.3"), "alice@x.test", false, None, after).bans.first().cloned();
    }
    assert_eq!(second.unwrap().until, Some(after.wall + Duration::from_secs(7200)));
}

#[test]
fn failures_outside_the_window_are_forgotten() {
    let g = guard();
    let now = Now::current();
    for i in 0..4 {
        assert!(g.auth_failed(ip("127.0.0.3"), "a@x.test", false, None, later(now, i * 200)).bans.is_empty());
    }
    assert!(
        g.auth_failed(ip("127.0.0.3"), "a@x.test", false, None, later(now, 800)).bans.is_empty(),
        "only 4 within 10 minutes"
    );
}

#[test]
fn ipv6_sources_are_banned_per_64() {
    let g = guard();
    let now = Now::current();
    let mut ban = None;
    for i in 0..5 {
        ban = g.auth_failed(ip(&format!("2001:db8:1:2::{i}")), "a@x.test", false, None, now).bans.first().cloned();
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
        assert!(g.auth_failed(ip("127.0.0.9"), "a@x.test", false, None, now).bans.is_empty(), "trusted");
        assert!(
            g.auth_failed(ip("127.0.0.7"), "a@x.test", true, None, now).bans.is_empty(),
            "the owner's known address"
        );
        assert_eq!(g.login_attempt(ip("127.0.0.9"), "a@x.test", false, None, now), Entry::Check(CheckLane::Priority));
        assert_eq!(g.login_attempt(ip("127.0.0.7"), "a@x.test", true, None, now), Entry::Check(CheckLane::Priority));
    }
    assert!(!g.may_ban(&"127.0.0.0/24".parse().unwrap()));
    assert!(g.may_ban(&"127.0.1.0/24".parse().unwrap()));
}

#[test]
fn a_success_reports_the_failures_before_it() {
    let g = guard();
    let now = Now::current();
    for _ in 0..4 {
        g.auth_failed(ip("127.0.0.30"), "alice@x.test", false, None, now);
    }
    assert_eq!(g.auth_succeeded(ip("127.0.0.2"), "alice@x.test", true, None, now).failures_before, 4);
    assert_eq!(g.auth_succeeded(ip("127.0.0.2"), "alice@x.test", true, None, now).failures_before, 0);
}

#[test]
fn changes_from_the_store_add_and_lift_bans_and_the_guard_s_own_are_not_news() {
    let g = guard();
    let now = Now::current();
    let held = g.admit(ip("127.0.5.9"), Listener::Imaps, now).unwrap();
    let manual =
        Ban { network: "127.0.5.0/24".parse().unwrap(), until: None, reason: "admin".into(), offence: 1, manual: true };
    let sync = g.apply_ban_changes(vec![manual.clone()], &[], now);
    assert_eq!(sync, BanSync { added: vec![manual.clone()], lifted: vec![] });
    assert!(held.revoked().is_cancelled(), "an open session from a network banned elsewhere is cut");
    assert_eq!(g.admit(ip("127.0.5.9"), Listener::Imaps, now).err(), Some(RefuseReason::Banned));
    let mut auto = Vec::new();
    for _ in 0..5 {
        auto.extend(g.auth_failed(ip("127.0.0.3"), "a@x.test", false, None, now).bans);
    }
    // The guard's own ban, written to the store and read back: nothing new.
    assert_eq!(g.apply_ban_changes(auto.clone(), &[], now), BanSync::default());
    assert!(g.banned(ip("127.0.0.3"), now.wall).is_some());
    // Lifted in the store (the CLI): lifted here; lifting again changes nothing.
    let sync = g.apply_ban_changes(vec![], &[manual.network], now);
    assert_eq!(sync.lifted, vec![manual.network]);
    assert!(g.admit(ip("127.0.5.9"), Listener::Imaps, now).is_ok());
    assert_eq!(g.apply_ban_changes(vec![], &[manual.network], now), BanSync::default());
    // A ban shortened into the past is gone.
    let ended = Ban { until: Some(now.wall - Duration::from_secs(1)), ..auto[0].clone() };
    assert_eq!(g.apply_ban_changes(vec![ended], &[], now), BanSync::default());
    assert!(g.banned(ip("127.0.0.3"), now.wall).is_none());
    assert!(!g.remove_ban(&"127.0.0.3/32".parse().unwrap()));
    assert_eq!(g.ban_count(), 0);
}

#[test]
fn sending_limits_per_account_per_hour() {
    let g = guard();
    let now = Now::current();
    assert_eq!(g.message(1, 2, Some(Sent::default()), now), Ok(()));
    assert_eq!(
        g.message(1, 4, Some(Sent::default()), now),
        Err(LimitHit { limit: SendingLimit::Recipients(5), first: true })
    );
    assert_eq!(g.message(1, 1, Some(Sent::default()), now), Ok(()));
    assert_eq!(g.message(1, 1, Some(Sent::default()), now), Ok(()));
    assert_eq!(
        g.message(1, 1, Some(Sent::default()), now),
        Err(LimitHit { limit: SendingLimit::Messages(3), first: true })
    );
    assert_eq!(
        g.message(1, 1, Some(Sent::default()), now),
        Err(LimitHit { limit: SendingLimit::Messages(3), first: false }),
        "alert once"
    );
    assert_eq!(g.message(2, 1, Some(Sent::default()), now), Ok(()), "per account");
    // Counted per minute: a minute's messages count until the whole minute is an hour old.
    assert!(g.message(1, 1, Some(Sent::default()), later(now, 3600)).is_err(), "not yet");
    assert_eq!(
        g.message(1, 1, Some(Sent::default()), later(now, 3660)),
        Ok(()),
        "an hour (and the rest of its minute) later"
    );
}

#[test]
fn an_account_whose_mail_bounces_en_masse_is_alerted_on_once() {
    // bounce_alert_after = 4 within an hour.
    let g = guard();
    let now = Now::current();
    let storm = |failures| Some(BounceStorm { failures, window: Duration::from_secs(3600) });
    assert_eq!(g.permanent_failures("a@example.org", 2, now), None);
    assert_eq!(g.permanent_failures("b@example.org", 3, now), None, "per account");
    assert_eq!(g.permanent_failures("A@example.org", 2, later(now, 30)), storm(4), "the address without case");
    assert_eq!(g.permanent_failures("a@example.org", 5, later(now, 90)), None, "once per episode");
    assert_eq!(g.permanent_failures("b@example.org", 0, later(now, 90)), None, "an attempt without failures adds none");
    assert_eq!(g.permanent_failures("", 10, now), None, "never for the null sender");
    // The window moves on: the first minute leaves it, then the second: under the threshold
    // again, and the next storm is a new episode.
    assert_eq!(g.permanent_failures("a@example.org", 0, later(now, 3700)), None, "5 still count");
    assert_eq!(g.permanent_failures("a@example.org", 0, later(now, 3760)), None);
    let minutes = |g: &Guard| g.inner.bounces.lock().unwrap().get(&"a@example.org".to_string()).unwrap().minutes.len();
    assert_eq!(minutes(&g), 0, "what left the window is forgotten");
    assert_eq!(g.permanent_failures("a@example.org", 4, later(now, 3770)), storm(4));
    assert_eq!(minutes(&g), 1, "counted per minute");

    // Off: never.
    let mut policy = policy_with(Firewall::default());
    policy.settings.bounce_alert_after = 0;
    let off = Guard::new(policy);
    assert_eq!(off.permanent_failures("a@example.org", 1000, now), None);
}

#[test]
fn the_sending_window_holds_a_bucket_per_minute_not_per_message() {
    let g = guard();
    let now = Now::current();
    for n in 0..3 {
        assert_eq!(g.message(7, 1, Some(Sent::default()), later(now, n * 20)), Ok(()));
    }
    let minutes = |g: &Guard| g.inner.sending.lock().unwrap()[&7].minutes.len();
    assert_eq!(minutes(&g), 1, "three messages within a minute");
    assert!(
        g.message(7, 1, Some(Sent::default()), later(now, 61)).is_err(),
        "the hour's three messages are still counted"
    );
    assert_eq!(g.message(8, 1, Some(Sent::default()), later(now, 61)), Ok(()));
    assert_eq!(g.message(8, 1, Some(Sent::default()), later(now, 200)), Ok(()));
    assert_eq!(g.inner.sending.lock().unwrap()[&8].minutes.len(), 2);
}

#[test]
fn memory_stays_bounded_under_a_storm_of_sources() {
    let g = guard();
    let now = Now::current();
    for i in 0..50_000u32 {
        let addr = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        g.auth_failed(IpAddr::V4(addr), &format!("user{i}@x.test"), false, None, now);
    }
    assert!(g.inner.sources.lock().unwrap().len() <= 1000);
    assert!(g.inner.accounts.lock().unwrap().len() <= 1000);
}

#[test]
fn the_owner_goes_ahead_in_the_password_check_queue() {
    let g = guard();
    let now = Now::current();
    let lane = |address: &str, known| g.login_attempt(ip(address), "a@x.test", known, None, now);
    assert_eq!(lane("127.0.0.20", false), Entry::Check(CheckLane::Ordinary));
    assert_eq!(lane("127.0.0.20", true), Entry::Check(CheckLane::Priority), "an address the account knows");
    assert_eq!(lane("127.0.0.9", false), Entry::Check(CheckLane::Priority), "a trusted network");
    assert_eq!(lane("::ffff:127.0.0.9", false), Entry::Check(CheckLane::Priority), "IPv4-mapped");
}

#[test]
fn a_success_after_an_attack_is_flagged() {
    let g = guard();
    let now = Now::current();
    for _ in 0..2 {
        g.auth_failed(ip("127.0.0.30"), "alice@x.test", false, None, now);
    }
    assert!(
        !g.auth_succeeded(ip("127.0.0.2"), "alice@x.test", true, None, now).after_attack,
        "2 failures, 3 make an attack"
    );
    for _ in 0..3 {
        g.auth_failed(ip("127.0.0.30"), "alice@x.test", false, None, now);
    }
    assert_eq!(
        g.auth_succeeded(ip("127.0.0.2"), "Alice@X.test.", true, None, now),
        Success { failures_before: 3, after_attack: true },
        "the same account, however spelt"
    );
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
    let policy = policy_with(Firewall { trusted: vec!["10.1.0.0/16".parse().unwrap()], ..Firewall::default() });
    assert!(!policy.may_ban(&"10.1.2.0/24".parse().unwrap()), "inside a trusted network");
    assert!(!policy.may_ban(&"10.0.0.0/8".parse().unwrap()), "around a trusted network");
    assert!(policy.may_ban(&"10.2.0.0/16".parse().unwrap()));
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn every_attempt_on_unknown_accounts_counts_checked_or_not_and_bans_a_storm() {
    let g = guard();
    let now = Now::current();
    // Seven attempts that are never checked (the hashing queue was full): still counted.
    for n in 0..7 {
        let entry = g.login_attempt(ip("127.0.0.3"), &format!("user{n}@x.test"), false, None, now);
        assert_eq!(entry, Entry::Check(CheckLane::Ordinary));
    }
    let Entry::Banned(bans) = g.login_attempt(ip("127.0.0.3"), "user7@x.test", false, None, now) else {
        panic!("the eighth attempt bans");
    };
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].network, net("127.0.0.3/32"));
    assert!(bans[0].reason.contains("8 login attempts"), "{}", bans[0].reason);
    assert_eq!(g.admit(ip("127.0.0.3"), Listener::Imaps, now).err(), Some(RefuseReason::Banned));

    // A success takes its attempt back: an office whose users log in from a new address is not
    // a storm.
    for n in 0..20 {
        let user = format!("staff{n}@x.test");
        assert_eq!(g.login_attempt(ip("127.0.0.4"), &user, false, None, now), Entry::Check(CheckLane::Ordinary));
        g.auth_succeeded(ip("127.0.0.4"), &user, false, None, now);
    }
    assert!(g.banned(ip("127.0.0.4"), now.wall).is_none());
    // And attempts outside the window are forgotten.
    for n in 0..7 {
        assert!(matches!(
            g.login_attempt(ip("127.0.0.5"), "x@x.test", false, None, later(now, n * 100)),
            Entry::Check(_)
        ));
    }
    assert!(matches!(g.login_attempt(ip("127.0.0.5"), "y@x.test", false, None, later(now, 700)), Entry::Check(_)));
}

#[test]
fn an_account_takes_so_many_attempts_from_unknown_addresses_however_spelt_and_parallel() {
    let g = guard();
    let now = Now::current();
    // Six attempts at once from six addresses, under six spellings of one address: none of
    // them has an outcome yet, all count.
    let spellings =
        ["alice@x.test", "Alice@X.test", "alice@x.test.", "alice@ x.test", " ALICE@x.TEST ", "alice@X.Test."];
    for (n, name) in spellings.iter().enumerate() {
        let entry = g.login_attempt(ip(&format!("127.0.1.{n}")), name, false, None, now);
        assert_eq!(entry, Entry::Check(CheckLane::Ordinary), "{name:?}");
    }
    assert_eq!(g.login_attempt(ip("127.0.1.20"), "alice@x.test", false, None, now), Entry::AccountLimited);
    assert_eq!(g.login_attempt(ip("127.0.1.21"), "ALICE@x.test.", false, None, now), Entry::AccountLimited);
    // The owner from a known address, and a trusted network, go through; so does another account.
    assert_eq!(g.login_attempt(ip("127.0.1.22"), "alice@x.test", true, None, now), Entry::Check(CheckLane::Priority));
    assert_eq!(g.login_attempt(ip("127.0.0.9"), "alice@x.test", false, None, now), Entry::Check(CheckLane::Priority));
    assert_eq!(g.login_attempt(ip("127.0.1.23"), "bob@x.test", false, None, now), Entry::Check(CheckLane::Ordinary));
    // A refused attempt still counts against its source: the limit feeds the bans.
    for _ in 0..7 {
        g.login_attempt(ip("127.0.1.20"), "alice@x.test", false, None, now);
    }
    assert!(g.banned(ip("127.0.1.20"), now.wall).is_some());
    // When the window has room again, unknown addresses are let through again.
    assert_eq!(
        g.login_attempt(ip("127.0.1.24"), "alice@x.test", false, None, later(now, 601)),
        Entry::Check(CheckLane::Ordinary)
    );
}

#[test]
fn attempts_every_node_counted_decide_with_this_node_s_own_as_the_floor() {
    let g = guard();
    let now = Now::current();
    let shared = |source, account| Some(Attempts { source, account });
    // An owner's attempt is never counted (the server then asks the store nothing).
    assert!(!g.counts_attempt(ip("127.0.3.1"), true));
    assert!(!g.counts_attempt(ip("127.0.0.9"), false), "a trusted network");
    assert!(g.counts_attempt(ip("127.0.3.1"), false));
    // Other nodes saw seven attempts from this source: its first here is the eighth, a storm.
    let Entry::Banned(bans) = g.login_attempt(ip("127.0.3.1"), "a@x.test", false, shared(8, 1), now) else {
        panic!("the eighth attempt over all nodes bans");
    };
    assert!(bans[0].reason.contains("8 login attempts"), "{}", bans[0].reason);
    // Other nodes let six attempts at carol through: her seventh here is refused unchecked,
    // the sixth was not.
    assert_eq!(
        g.login_attempt(ip("127.0.3.2"), "carol@x.test", false, shared(1, 6), now),
        Entry::Check(CheckLane::Ordinary)
    );
    assert_eq!(g.login_attempt(ip("127.0.3.3"), "carol@x.test", false, shared(1, 7), now), Entry::AccountLimited);
    // A store that counts less (or not at all) never lowers this node's own counts.
    for n in 0..6 {
        g.login_attempt(ip(&format!("127.0.4.{n}")), "dave@x.test", false, None, now);
    }
    assert_eq!(g.login_attempt(ip("127.0.4.9"), "dave@x.test", false, shared(1, 1), now), Entry::AccountLimited);
    assert_eq!(g.login_attempt(ip("127.0.4.10"), "dave@x.test", false, None, now), Entry::AccountLimited);
}

#[test]
fn names_are_counted_by_one_bounded_key() {
    assert_eq!(account_key(" Alice@Example.ORG. "), "alice@example.org");
    assert_eq!(account_key("alice@ example.org"), "alice@example.org");
    assert_eq!(account_key("not an address"), "", "names that open no account count as one");
    assert_eq!(account_key(&"a".repeat(1 << 20)), "");
    let g = guard();
    let now = Now::current();
    for n in 0..50 {
        g.login_attempt(ip(&format!("127.0.2.{n}")), &format!("{}{n}", "z".repeat(60_000)), false, None, now);
    }
    let accounts = g.inner.accounts.lock().unwrap();
    assert_eq!(accounts.len(), 1, "one key for every name that is no address");
    assert!(accounts.iter().all(|(key, _)| key.len() <= portcullis_config::MAX_LOGIN_NAME));
}

/// Bans `network` the way the guard does after a source's failures.
fn ban_by_failures(g: &Guard, address: &str, now: Now) -> Vec<Ban> {
    let mut bans = Vec::new();
    for _ in 0..5 {
        bans.extend(g.auth_failed(ip(address), "a@x.test", false, None, now).bans);
    }
    bans
}

#[test]
fn ipv6_bans_widen_to_the_56_then_the_48() {
    let g = guard();
    let now = Now::current();
    // Two /64s of one /56: two bans.
    assert_eq!(ban_by_failures(&g, "2001:db8:1:100::1", now).len(), 1);
    assert_eq!(ban_by_failures(&g, "2001:db8:1:1a0::1", now).len(), 1);
    assert!(g.admit(ip("2001:db8:1:1ff::1"), Listener::Imaps, now).is_ok(), "the rest of the /56 is not banned yet");
    // The third bans the /56 as well.
    let bans = ban_by_failures(&g, "2001:db8:1:1b0::1", now);
    assert_eq!(
        bans.iter().map(|b| b.network).collect::<Vec<_>>(),
        [net("2001:db8:1:1b0::/64"), net("2001:db8:1:100::/56")]
    );
    assert!(bans[1].reason.contains("3 banned /64s"), "{}", bans[1].reason);
    assert!(bans[1].until >= bans[0].until, "as long as the bans inside it at least");
    assert_eq!(g.admit(ip("2001:db8:1:1ff::1"), Listener::Imaps, now).err(), Some(RefuseReason::Banned));
    assert!(g.admit(ip("2001:db8:1:200::1"), Listener::Imaps, now).is_ok(), "another /56");
    // /64s in two more /56s of the /48: three /56s hold a ban, the /48 goes.
    assert_eq!(ban_by_failures(&g, "2001:db8:1:200::1", now).len(), 1);
    let bans = ban_by_failures(&g, "2001:db8:1:3300::1", now);
    assert_eq!(bans.last().unwrap().network, net("2001:db8:1::/48"));
    assert_eq!(g.admit(ip("2001:db8:1:ffff::1"), Listener::Imaps, now).err(), Some(RefuseReason::Banned));
    assert!(g.admit(ip("2001:db8:2::1"), Listener::Imaps, now).is_ok(), "outside the /48");
    // Seven bans (five /64s, a /56, the /48) for the whole /48, where every /64 of it could
    // have made one.
    assert_eq!(g.ban_count(), 7);
}

#[test]
fn no_ban_widens_over_an_owner_or_a_trusted_network() {
    let g = guard_with(Firewall { trusted: vec![net("2001:db8:5:5ff::/64")], ..Firewall::default() });
    let now = Now::current();
    // An owner logged in from a /64 of this /56 lately.
    g.auth_succeeded(ip("2001:db8:4:4ff::1"), "alice@x.test", false, None, now);
    for n in 0..3 {
        ban_by_failures(&g, &format!("2001:db8:4:4{n}0::1"), now);
        ban_by_failures(&g, &format!("2001:db8:5:5{n}0::1"), now);
    }
    assert_eq!(g.ban_count(), 6, "no /56 and no /48 banned");
    assert!(g.admit(ip("2001:db8:4:4ff::1"), Listener::Imaps, now).is_ok());
    // Known from the store, at start, likewise.
    let g = guard();
    g.set_known_sources(&[(net("2001:db8:6:6ff::/64"), now.wall - Duration::from_secs(3600))], now);
    for n in 0..3 {
        ban_by_failures(&g, &format!("2001:db8:6:6{n}0::1"), now);
    }
    assert_eq!(g.ban_count(), 3);
}

#[test]
fn ipv4_bans_widen_to_the_24_only_when_asked() {
    let g = guard();
    let now = Now::current();
    for n in 1..=5 {
        ban_by_failures(&g, &format!("192.0.2.{n}"), now);
    }
    assert_eq!(g.ban_count(), 5);
    assert!(g.admit(ip("192.0.2.200"), Listener::Imaps, now).is_ok());
    let mut policy = policy_with(Firewall::default());
    policy.settings.escalate_ipv4_after = 3;
    let g = Guard::new(policy);
    for n in 1..=3 {
        ban_by_failures(&g, &format!("192.0.2.{n}"), now);
    }
    assert_eq!(g.admit(ip("192.0.2.200"), Listener::Imaps, now).err(), Some(RefuseReason::Banned));
    assert!(g.banned(ip("192.0.3.1"), now.wall).is_none());
}

#[test]
fn connections_are_capped_per_56_and_per_48_too() {
    let g = guard();
    let now = Now::current();
    let admit = |address: &str| g.admit(ip(address), Listener::Imaps, now);
    let mut held = Vec::new();
    // Three from one /64 (its own cap), two more from another /64 of the /56: the /56 is full.
    for address in ["2001:db8:1:100::1", "2001:db8:1:100::2", "2001:db8:1:100::3", "2001:db8:1:101::1"] {
        held.push(admit(address).unwrap());
    }
    assert_eq!(admit("2001:db8:1:100::4").err(), Some(RefuseReason::TooManyConnectionsFromPeer), "per /64");
    held.push(admit("2001:db8:1:102::1").unwrap());
    assert_eq!(admit("2001:db8:1:103::1").err(), Some(RefuseReason::TooManyConnectionsFromPeer), "per /56");
    // Two from another /56 of the /48: the /48 is full.
    held.push(admit("2001:db8:1:200::1").unwrap());
    held.push(admit("2001:db8:1:300::1").unwrap());
    assert_eq!(admit("2001:db8:1:400::1").err(), Some(RefuseReason::TooManyConnectionsFromPeer), "per /48");
    assert!(admit("2001:db8:2::1").is_ok(), "another /48");
    // Slots come back as connections close.
    held.truncate(4);
    assert!(admit("2001:db8:1:103::1").is_ok());
}

#[test]
fn the_last_slots_are_kept_for_owners() {
    let mut policy = policy_with(Firewall { trusted: vec![net("127.0.0.9/32")], ..Firewall::default() });
    policy.reserved_for_owners = 3;
    let g = Guard::new(policy);
    let now = Now::current();
    g.auth_succeeded(ip("127.0.3.1"), "alice@x.test", false, None, now);
    let mut held: Vec<_> =
        (0..7).map(|n| g.admit(ip(&format!("127.0.4.{n}")), Listener::Imaps, now).unwrap()).collect();
    assert_eq!(
        g.admit(ip("127.0.4.100"), Listener::Imaps, now).err(),
        Some(RefuseReason::TooManyConnections),
        "a stranger may not take a kept slot"
    );
    held.push(g.admit(ip("127.0.3.1"), Listener::Imaps, now).expect("an owner's address"));
    held.push(g.admit(ip("127.0.0.9"), Listener::Imaps, now).expect("a trusted network"));
    held.push(g.admit(ip("127.0.3.1"), Listener::Imaps, now).expect("an owner again"));
    assert_eq!(g.admit(ip("127.0.3.1"), Listener::Imaps, now).err(), Some(RefuseReason::TooManyConnections), "full");
    // Owners known from the store count too, until their memory runs out.
    g.set_known_sources(&[(net("127.0.3.2/32"), now.wall - Duration::from_secs(60))], now);
    held.truncate(7);
    assert!(g.admit(ip("127.0.3.2"), Listener::Imaps, now).is_ok());
    let long_ago = later(now, 31 * 86_400);
    assert!(g.admit(ip("127.0.3.1"), Listener::Imaps, long_ago).is_err(), "forgotten after 30 days");
}

#[test]
fn sixty_thousand_bans_from_the_store_and_then_only_what_changed() {
    let g = guard();
    let now = Now::current();
    let until = Some(now.wall + Duration::from_secs(3600));
    let bans: Vec<Ban> = (0..60_000u32)
        .map(|n| Ban {
            network: net(&format!("2001:db8:{:x}:{:x}::/64", 0x100 + (n >> 16), n & 0xffff)),
            until,
            reason: "storm".into(),
            offence: 1,
            manual: false,
        })
        .collect();
    let sync = g.apply_ban_changes(bans.clone(), &[], now);
    assert_eq!(sync.added.len(), 60_000);
    assert_eq!(g.ban_count(), 60_000);
    assert!(g.banned(ip("2001:db8:100:1234::5"), now.wall).is_some());
    assert!(g.admit(ip("2001:db8:200::1"), Listener::Imaps, now).is_ok());
    // The next look brings one change: only it is applied.
    let one = Ban { network: net("2001:db8:300::/64"), ..bans[0].clone() };
    assert_eq!(g.apply_ban_changes(vec![one.clone()], &[bans[5].network], now).added, vec![one]);
    assert_eq!(g.ban_count(), 60_000);
    assert_eq!(g.expire_bans(later(now, 3600).wall).len(), 60_000);
}

#[test]
fn port_25_has_connection_limits_of_its_own() {
    let g = guard();
    let now = Now::current();
    let two: Vec<_> = (0..2).map(|_| g.admit(ip("127.0.0.2"), Listener::Smtp, now).unwrap()).collect();
    assert_eq!(g.admit(ip("127.0.0.2"), Listener::Smtp, now).err(), Some(RefuseReason::TooManyConnectionsFromPeer));
    assert!(g.admit(ip("127.0.0.2"), Listener::Imaps, now).is_ok(), "other listeners keep the global limits");
    let more: Vec<_> = (0..2).map(|i| g.admit(ip(&format!("127.0.3.{i}")), Listener::Smtp, now).unwrap()).collect();
    assert_eq!(g.admit(ip("127.0.4.1"), Listener::Smtp, now).err(), Some(RefuseReason::TooManyConnections));
    drop(more);
    drop(two);
    // Back under the limits at once, but not under the rate: a fourth connection within a minute.
    assert!(g.admit(ip("127.0.0.2"), Listener::Smtp, now).is_ok(), "the third");
    assert_eq!(
        g.admit(ip("127.0.0.2"), Listener::Smtp, now).map(drop).err(),
        Some(RefuseReason::TooManyConnectionsPerMinute)
    );
    assert!(g.admit(ip("127.0.0.2"), Listener::Smtp, later(now, 130)).is_ok(), "two minutes on");
    // Trusted networks are not held to them (only to the server-wide limits: 3 per source).
    let trusted: Vec<_> = (0..3).map(|_| g.admit(ip("127.0.0.9"), Listener::Smtp, now).unwrap()).collect();
    assert_eq!(trusted.len(), 3);
}

#[test]
fn messages_and_recipients_per_minute_per_source_on_25() {
    let g = guard();
    let now = Now::current();
    let a = ip("127.0.0.2");
    assert!(g.rate(Listener::Smtp, Rate::Messages, a, 1, now).is_ok());
    assert!(g.rate(Listener::Smtp, Rate::Messages, a, 1, now).is_ok());
    let hit = g.rate(Listener::Smtp, Rate::Messages, a, 1, now).unwrap_err();
    assert_eq!((hit.rate, hit.limit), (Rate::Messages, 2));
    assert!(g.rate(Listener::Smtp, Rate::Messages, ip("127.0.0.3"), 1, now).is_ok(), "per source");
    assert!((0..5).all(|_| g.rate(Listener::Smtp, Rate::Recipients, a, 1, now).is_ok()));
    assert!(g.rate(Listener::Smtp, Rate::Recipients, a, 1, now).is_err());
    assert!(g.rate(Listener::Smtp, Rate::Messages, a, 1, later(now, 125)).is_ok(), "the minute passes");
    assert!(g.rate(Listener::Submissions, Rate::Messages, a, 100, now).is_ok(), "no limits of its own");
    assert!((0..10).all(|_| g.rate(Listener::Smtp, Rate::Messages, ip("127.0.0.9"), 1, now).is_ok()), "trusted");
}

#[test]
fn a_directory_harvest_is_slowed_then_banned() {
    let g = guard();
    let now = Now::current();
    let held = g.admit(ip("127.0.0.5"), Listener::Smtp, now).unwrap();
    let delays: Vec<Duration> = (0..3).map(|_| g.unknown_recipient(ip("127.0.0.5"), now).delay).collect();
    assert_eq!(delays, [100, 200, 400].map(Duration::from_millis), "each unknown recipient waits longer");
    let fourth = g.unknown_recipient(ip("127.0.0.5"), now);
    let ban = fourth.bans.first().expect("banned at the fourth unknown recipient");
    assert_eq!(ban.network, "127.0.0.5/32".parse::<IpNet>().unwrap());
    assert!(ban.reason.contains("unknown recipients"), "{}", ban.reason);
    assert!(held.revoked().is_cancelled(), "its open connection is cut");
    assert_eq!(g.admit(ip("127.0.0.5"), Listener::Smtp, now).err(), Some(RefuseReason::Banned));
    // Spread over longer than the window, a few typos ban nobody.
    for i in 0..8 {
        assert!(g.unknown_recipient(ip("127.0.0.6"), later(now, i * 301)).bans.is_empty());
    }
    let trusted = g.unknown_recipient(ip("127.0.0.9"), now);
    assert_eq!((trusted.delay, trusted.bans.len()), (Duration::ZERO, 0), "trusted: neither slowed nor banned");
}

#[test]
fn early_talkers_are_banned_after_a_few_connections() {
    let g = guard();
    let now = Now::current();
    assert!(g.early_talk(ip("127.0.0.7"), now).is_empty());
    let bans = g.early_talk(ip("127.0.0.7"), now);
    assert_eq!(bans.len(), 1, "the second one within the window bans");
    assert!(bans[0].reason.contains("talking out of turn"), "{}", bans[0].reason);
    assert!((0..5).all(|_| g.early_talk(ip("127.0.0.9"), now).is_empty()), "trusted");
}

#[test]
fn the_store_s_count_of_every_node_s_sending_limits_this_one() {
    let (g, now) = (guard(), Now::current());
    // The other nodes sent two of the account's three messages, four of its five recipients.
    let elsewhere = Some(Sent { messages: 2, recipients: 4 });
    assert_eq!(g.message(1, 2, elsewhere, now), Err(LimitHit { limit: SendingLimit::Recipients(5), first: true }));
    assert_eq!(g.message(1, 1, elsewhere, now), Ok(()));
    let full = Some(Sent { messages: 3, recipients: 5 });
    assert_eq!(g.message(1, 1, full, now), Err(LimitHit { limit: SendingLimit::Messages(3), first: true }));
    assert_eq!(g.message(1, 1, full, now), Err(LimitHit { limit: SendingLimit::Messages(3), first: false }), "once");
    // This node's own count stays a floor when the store's is lower (it missed some).
    assert_eq!(g.message(2, 1, Some(Sent::default()), now), Ok(()));
    assert_eq!(g.message(2, 1, Some(Sent::default()), now), Ok(()));
    assert_eq!(g.message(2, 1, Some(Sent::default()), now), Ok(()));
    assert!(g.message(2, 1, Some(Sent::default()), now).is_err(), "three here, whatever the store says");
}

#[test]
fn sending_is_refused_while_the_store_cannot_count_it() {
    let (g, now) = (guard(), Now::current());
    assert_eq!(g.message(1, 1, None, now), Err(LimitHit { limit: SendingLimit::Uncounted, first: false }));
    assert_eq!(g.message(1, 1, Some(Sent::default()), now), Ok(()), "counted again: sent");
}

#[test]
fn failures_counted_on_every_node_ban_at_the_total() {
    let (g, now) = (guard(), Now::current());
    // Four failures from 127.0.0.3 on other nodes, then this node's first: the fifth in all.
    let first = g.auth_failed(ip("127.0.0.3"), "a@x.test", false, Some(4), now);
    assert_eq!(first.delay, Duration::from_millis(800), "the delay of the fourth failure: 100 ms doubled thrice");
    let ban = g.auth_failed(ip("127.0.0.3"), "a@x.test", false, Some(5), now);
    assert_eq!(ban.bans.len(), 1, "the fifth in all bans");
    assert!(ban.bans[0].reason.starts_with("5 failed logins"), "{}", ban.bans[0].reason);
    // Never the owner, however many the store counts.
    assert!(g.auth_failed(ip("127.0.0.7"), "a@x.test", true, Some(50), now).bans.is_empty());
    // The store unreachable: this node's own count decides alone.
    let mut bans = Vec::new();
    for _ in 0..5 {
        bans.extend(g.auth_failed(ip("127.0.0.4"), "a@x.test", false, None, now).bans);
    }
    assert_eq!(bans.len(), 1);
}

#[test]
fn a_success_reports_the_failures_every_node_counted() {
    let (g, now) = (guard(), Now::current());
    g.auth_failed(ip("127.0.0.30"), "alice@x.test", false, Some(1), now);
    let success = g.auth_succeeded(ip("127.0.0.2"), "alice@x.test", true, Some(7), now);
    assert_eq!((success.failures_before, success.after_attack), (7, true));
    let local = g.auth_succeeded(ip("127.0.0.2"), "alice@x.test", true, None, now);
    assert_eq!(local.failures_before, 0, "this node's one failure was reported with the store's");
}
