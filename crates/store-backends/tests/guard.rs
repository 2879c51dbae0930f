//! What the guard keeps in the store: bans and known login addresses that survive a restart,
//! the change feed a follower node reads bans from, the sending, failed-login and login-attempt counts
//! every node shares (on SQLite: the one serving process's, in memory), and pruning of old history.

#[macro_use]
mod common;

use common::*;
use portcullis_store::*;

conformance!(bans_and_known_logins_persist);
async fn bans_and_known_logins_persist(db: TestDb) {
    {
        let store = open(&db, None).await;
        store.add_domain("example.org").await.unwrap();
        let alice =
            store.add_account("alice@example.org", &PasswordSecrets::hash_only("h"), Quota::Default).await.unwrap();
        let ban = StoredBan {
            network: "192.0.2.7/32".into(),
            until: Some(2_000),
            reason: "10 failed logins".into(),
            offence: 1,
            manual: false,
            created: 1_000,
        };
        store.put_ban(ban.clone()).await.unwrap();
        store.put_ban(StoredBan { until: None, manual: true, ..ban.clone() }).await.unwrap();
        store.put_ban(StoredBan { network: "2001:db8::/64".into(), ..ban }).await.unwrap();
        store.record_login(alice, "198.51.100.4/32", 5_000).await.unwrap();
        store.record_login(alice, "198.51.100.4/32", 4_000).await.unwrap();
        store.close();
    }
    let store = open(&db, None).await;
    let bans = store.bans().await.unwrap();
    assert_eq!(bans.len(), 2);
    assert_eq!(bans[0].network, "192.0.2.7/32");
    assert_eq!((bans[0].until, bans[0].manual), (None, true), "the second put replaced the first");
    assert!(store.login_known("Alice@example.org", "198.51.100.4/32", 5_000).await.unwrap());
    assert!(!store.login_known("alice@example.org", "198.51.100.4/32", 5_001).await.unwrap(), "older than asked");
    assert!(!store.login_known("alice@example.org", "198.51.100.5/32", 0).await.unwrap());
    assert!(!store.login_known("nobody@example.org", "198.51.100.4/32", 0).await.unwrap());
    assert!(!store.login_known("not an address", "x", 0).await.unwrap());
    assert!(store.delete_ban("2001:db8::/64").await.unwrap());
    assert!(!store.delete_ban("2001:db8::/64").await.unwrap());
    store.prune_guard_history(6_000, 0, 0).await.unwrap();
    assert!(!store.login_known("alice@example.org", "198.51.100.4/32", 0).await.unwrap());
    assert_eq!(store.bans().await.unwrap().len(), 1, "a permanent ban is never pruned");
}

fn ban(network: &str) -> StoredBan {
    StoredBan { network: network.into(), until: Some(2_000), reason: "r".into(), offence: 1, manual: false, created: 1 }
}

conformance!(a_follower_reads_only_the_bans_changed_since_its_last_look);
async fn a_follower_reads_only_the_bans_changed_since_its_last_look(db: TestDb) {
    let store = open(&db, None).await;
    let start = store.ban_changes(None).await.unwrap();
    assert_eq!(start, BanChanges::default());
    store.put_ban(ban("192.0.2.1/32")).await.unwrap();
    store.put_ban(ban("192.0.2.2/32")).await.unwrap();
    let first = store.ban_changes(Some(start.seq)).await.unwrap();
    assert_eq!(first.bans.iter().map(|b| b.network.as_str()).collect::<Vec<_>>(), ["192.0.2.1/32", "192.0.2.2/32"]);
    assert!(first.lifted.is_empty());
    assert_eq!(store.ban_changes(Some(first.seq)).await.unwrap(), BanChanges { seq: first.seq, ..Default::default() });

    // A change and a lift: each seen once, after the number the reader has.
    store.put_ban(StoredBan { until: None, ..ban("192.0.2.1/32") }).await.unwrap();
    assert!(store.delete_ban("192.0.2.2/32").await.unwrap());
    assert!(!store.delete_ban("192.0.2.3/32").await.unwrap(), "no ban, no change");
    let second = store.ban_changes(Some(first.seq)).await.unwrap();
    assert_eq!(second.bans.len(), 1);
    assert_eq!((second.bans[0].network.as_str(), second.bans[0].until), ("192.0.2.1/32", None));
    assert_eq!(second.lifted, ["192.0.2.2/32"]);
    assert_eq!(second.seq, first.seq + 2);
    // Banned again: no longer lifted.
    store.put_ban(ban("192.0.2.2/32")).await.unwrap();
    let third = store.ban_changes(Some(second.seq)).await.unwrap();
    assert_eq!((third.bans.len(), third.lifted.len()), (1, 0));
    assert!(store.ban_changes(Some(first.seq)).await.unwrap().lifted.is_empty());
    // Everything, for a server starting.
    assert_eq!(store.ban_changes(None).await.unwrap().bans.len(), 2);
}

conformance!(known_sources_are_every_account_s_recent_login_addresses);
async fn known_sources_are_every_account_s_recent_login_addresses(db: TestDb) {
    let store = open(&db, None).await;
    store.add_domain("example.org").await.unwrap();
    let alice = store.add_account("alice@example.org", &PasswordSecrets::hash_only("h"), Quota::Default).await.unwrap();
    let bob = store.add_account("bob@example.org", &PasswordSecrets::hash_only("h"), Quota::Default).await.unwrap();
    store.record_login(alice, "198.51.100.4/32", 5_000).await.unwrap();
    store.record_login(bob, "198.51.100.4/32", 6_000).await.unwrap();
    store.record_login(bob, "2001:db8:1:2::/64", 1_000).await.unwrap();
    let mut known = store.known_sources(2_000).await.unwrap();
    known.sort();
    assert_eq!(known, [("198.51.100.4/32".to_string(), 6_000)]);
    assert_eq!(store.known_sources(0).await.unwrap().len(), 2);
}

conformance!(sending_is_counted_per_account_over_the_buckets_asked_for);
async fn sending_is_counted_per_account_over_the_buckets_asked_for(db: TestDb) {
    let store = open(&db, None).await;
    store.add_domain("example.org").await.unwrap();
    let alice = store.add_account("alice@example.org", &PasswordSecrets::hash_only("h"), Quota::Default).await.unwrap();
    let bob = store.add_account("bob@example.org", &PasswordSecrets::hash_only("h"), Quota::Default).await.unwrap();
    let sent = |messages, recipients| SentCounts { messages, recipients };
    assert_eq!(store.add_sent(alice, 6_000, 1, 3, 2_400).await.unwrap(), sent(1, 3));
    assert_eq!(store.add_sent(alice, 6_000, 1, 2, 2_400).await.unwrap(), sent(2, 5), "the same bucket adds up");
    assert_eq!(store.add_sent(alice, 6_060, 1, 1, 2_460).await.unwrap(), sent(3, 6), "and over buckets");
    assert_eq!(store.add_sent(bob, 6_060, 1, 1, 2_460).await.unwrap(), sent(1, 1), "per account");
    assert_eq!(store.add_sent(alice, 6_060, -1, -1, 2_460).await.unwrap(), sent(2, 5), "taken back");
    assert_eq!(store.add_sent(alice, 9_660, 1, 1, 6_060).await.unwrap(), sent(1, 1), "older buckets are not asked for");
    assert_eq!(store.add_sent(alice, 9_660, 0, 0, 0).await.unwrap(), sent(3, 6), "all of them");
    store.prune_guard_history(0, 0, 6_060).await.unwrap();
    assert_eq!(store.add_sent(alice, 9_660, 0, 0, 0).await.unwrap(), sent(1, 1), "the bucket of 6,000 is pruned");
    assert_eq!(store.add_sent(bob, 9_660, 0, 0, 0).await.unwrap(), sent(1, 1), "that of 6,060 is kept");
}

conformance!(counts_are_shared_by_every_handle_and_outlive_one);
async fn counts_are_shared_by_every_handle_and_outlive_one(db: TestDb) {
    if !is_postgres(&db) {
        // SQLite's counts belong to the one process that serves the store (in its memory, so
        // that a count never waits for the writer's sync: architecture §6.5); a second handle
        // is a second process's view, which counts nothing, and a restart starts afresh.
        return;
    }
    let first = open(&db, None).await;
    first.add_domain("example.org").await.unwrap();
    let alice = first.add_account("alice@example.org", &PasswordSecrets::hash_only("h"), Quota::Default).await.unwrap();
    let source = "192.0.2.7/32";
    assert_eq!(first.add_sent(alice, 6_000, 1, 3, 0).await.unwrap(), SentCounts { messages: 1, recipients: 3 });
    assert_eq!(first.add_auth_failure(source, Some("alice@example.org"), 6_000, 0).await.unwrap(), 1);
    let second = open(&db, None).await;
    assert_eq!(second.add_sent(alice, 6_060, 1, 1, 0).await.unwrap(), SentCounts { messages: 2, recipients: 4 });
    assert_eq!(second.add_auth_failure(source, Some("alice@example.org"), 6_060, 0).await.unwrap(), 2);
    assert_eq!(second.take_account_failures("alice@example.org").await.unwrap(), 2, "either node's");
    assert_eq!(first.take_account_failures("alice@example.org").await.unwrap(), 0, "taken for every node");
    let both = |source, account| AttemptCounts { source, account };
    assert_eq!(first.add_auth_attempt(source, Some("bob@example.org"), 6_000, 1, 0).await.unwrap(), both(1, 1));
    assert_eq!(
        second.add_auth_attempt("2001:db8::/64", Some("bob@example.org"), 6_060, 1, 0).await.unwrap(),
        both(1, 2)
    );
    second.forget_auth_failures(source).await.unwrap();
    assert_eq!(first.add_auth_failure(source, None, 6_060, 0).await.unwrap(), 1, "forgotten for every node");
    assert_eq!(first.add_auth_attempt(source, None, 6_060, 1, 0).await.unwrap(), both(1, 0), "attempts too");
    // And across a restart of them all.
    first.close();
    second.close();
    let store = open(&db, None).await;
    assert_eq!(store.add_sent(alice, 6_060, 0, 0, 0).await.unwrap(), SentCounts { messages: 2, recipients: 4 });
    assert_eq!(store.add_auth_failure(source, None, 6_060, 0).await.unwrap(), 2);
    assert_eq!(store.add_auth_attempt(source, Some("bob@example.org"), 6_060, 0, 0).await.unwrap(), both(1, 2));
}

conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    nodes_adding_at_once_miss_none_of_each_other_s_messages
);
async fn nodes_adding_at_once_miss_none_of_each_other_s_messages(db: TestDb) {
    let first = open(&db, None).await;
    first.add_domain("example.org").await.unwrap();
    let alice = first.add_account("alice@example.org", &PasswordSecrets::hash_only("h"), Quota::Default).await.unwrap();
    // Two nodes on PostgreSQL; on SQLite one process counts, so two tasks share its handle.
    let second = if is_postgres(&db) { open(&db, None).await } else { first.clone() };
    const EACH: i64 = 40;
    let mut tasks = Vec::new();
    for store in [first.clone(), second.clone()] {
        tasks.push(tokio::spawn(async move {
            let mut totals = Vec::new();
            for _ in 0..EACH {
                totals.push(store.add_sent(alice, 6_000, 1, 1, 0).await.unwrap().messages);
                totals.push(store.add_auth_failure("192.0.2.7/32", None, 6_000, 0).await.unwrap() as i64);
            }
            totals
        }));
    }
    let mut totals = Vec::new();
    for task in tasks {
        totals.extend(task.await.unwrap());
    }
    // Each answer counts every addition before it and its own: the sending totals are 1..=80
    // once each, and so are the failure counts. One missed would repeat a total.
    totals.sort_unstable();
    let expected: Vec<i64> = (1..=2 * EACH).flat_map(|n| [n, n]).collect();
    assert_eq!(totals, expected);
}

conformance!(failed_logins_are_counted_per_source_and_per_account);
async fn failed_logins_are_counted_per_source_and_per_account(db: TestDb) {
    let store = open(&db, None).await;
    let source = "192.0.2.7/32";
    assert_eq!(store.add_auth_failure(source, Some("alice@example.org"), 6_000, 5_400).await.unwrap(), 1);
    assert_eq!(store.add_auth_failure(source, Some("alice@example.org"), 6_000, 5_400).await.unwrap(), 2);
    assert_eq!(store.add_auth_failure(source, None, 6_060, 5_460).await.unwrap(), 3, "a name that is no address");
    assert_eq!(store.add_auth_failure("2001:db8::/64", Some("bob@example.org"), 6_060, 5_460).await.unwrap(), 1);
    assert_eq!(store.add_auth_failure(source, None, 6_660, 6_060).await.unwrap(), 2, "the bucket of 6,000 is out");
    // A success takes the account's failures: once.
    assert_eq!(store.take_account_failures("alice@example.org").await.unwrap(), 2);
    assert_eq!(store.take_account_failures("alice@example.org").await.unwrap(), 0);
    assert_eq!(store.take_account_failures("nobody@example.org").await.unwrap(), 0);
    // A ban forgets the source's failures, and only that source's.
    store.forget_auth_failures(source).await.unwrap();
    assert_eq!(store.add_auth_failure(source, None, 6_660, 0).await.unwrap(), 1);
    assert_eq!(store.add_auth_failure("2001:db8::/64", None, 6_660, 0).await.unwrap(), 2);
    // Pruned by age, accounts' failures too.
    store.add_auth_failure(source, Some("carol@example.org"), 6_000, 0).await.unwrap();
    store.prune_guard_history(0, 0, 6_060).await.unwrap();
    assert_eq!(store.take_account_failures("carol@example.org").await.unwrap(), 0);
    assert_eq!(store.add_auth_failure(source, None, 6_660, 0).await.unwrap(), 2, "6,660's kept, 6,000's pruned");
}

conformance!(login_attempts_are_counted_per_source_and_per_account_and_taken_back);
async fn login_attempts_are_counted_per_source_and_per_account_and_taken_back(db: TestDb) {
    let store = open(&db, None).await;
    let (a, b) = ("192.0.2.7/32", "2001:db8::/64");
    let both = |source, account| AttemptCounts { source, account };
    assert_eq!(store.add_auth_attempt(a, Some("alice@example.org"), 6_000, 1, 5_400).await.unwrap(), both(1, 1));
    assert_eq!(store.add_auth_attempt(a, Some("alice@example.org"), 6_000, 1, 5_400).await.unwrap(), both(2, 2));
    // Credential stuffing: another source, the same account, the next minute.
    assert_eq!(store.add_auth_attempt(b, Some("alice@example.org"), 6_060, 1, 5_460).await.unwrap(), both(1, 3));
    assert_eq!(
        store.add_auth_attempt(a, None, 6_060, 1, 5_460).await.unwrap(),
        both(3, 0),
        "a name that is no address"
    );
    assert_eq!(
        store.add_auth_attempt(a, Some("bob@example.org"), 6_060, 1, 5_460).await.unwrap(),
        both(4, 1),
        "per account"
    );
    // A success takes its attempt back, from the bucket it was counted in.
    assert_eq!(store.add_auth_attempt(b, Some("alice@example.org"), 6_060, -1, 5_460).await.unwrap(), both(0, 2));
    assert_eq!(
        store.add_auth_attempt(a, Some("alice@example.org"), 6_660, 1, 6_060).await.unwrap(),
        both(3, 1),
        "6,000 is out"
    );
    // A ban forgets the source's attempts (and only that source's), not the account's.
    store.add_auth_attempt(b, None, 6_660, 1, 0).await.unwrap();
    store.forget_auth_failures(a).await.unwrap();
    assert_eq!(store.add_auth_attempt(a, Some("alice@example.org"), 6_660, 1, 0).await.unwrap(), both(1, 4));
    assert_eq!(store.add_auth_attempt(b, None, 6_660, 0, 0).await.unwrap(), both(1, 0));
    // Pruned by age.
    store.prune_guard_history(0, 0, 6_660).await.unwrap();
    assert_eq!(store.add_auth_attempt(b, Some("alice@example.org"), 6_660, 0, 0).await.unwrap(), both(1, 2));
}

conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    nodes_counting_attempts_at_once_miss_none_of_each_other_s
);
async fn nodes_counting_attempts_at_once_miss_none_of_each_other_s(db: TestDb) {
    let first = open(&db, None).await;
    let second = if is_postgres(&db) { open(&db, None).await } else { first.clone() };
    const EACH: i64 = 40;
    let mut tasks = Vec::new();
    for (n, store) in [first.clone(), second.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut totals = Vec::new();
            for _ in 0..EACH {
                // Two sources (one per node) on one account: the account's totals interleave.
                let source = format!("192.0.2.{n}/32");
                totals.push(
                    store.add_auth_attempt(&source, Some("alice@example.org"), 6_000, 1, 0).await.unwrap().account,
                );
            }
            totals
        }));
    }
    let mut totals = Vec::new();
    for task in tasks {
        totals.extend(task.await.unwrap());
    }
    totals.sort_unstable();
    assert_eq!(totals, (1..=2 * EACH as u32).collect::<Vec<_>>(), "each total once: none missed");
}
