//! Coordination across nodes on a real PostgreSQL, two store handles on one database standing
//! for two nodes: a change committed on one reaches the other's watchers within a second (a
//! STORE too, whose NOTIFY a SQL function sends); after the LISTEN connection drops, the
//! watchers hear about every mailbox again, and the node is told to resync what signals would
//! have told it; the live nodes are listed, and a signal too large for a NOTIFY reaches them
//! all; IMAP session slots are counted across both, and a dead node's stop counting once they
//! expire; a POP3 maildrop locked on one is refused on the other until the lock is dropped.

mod common;
mod seed;

use std::time::{Duration, Instant};

use portcullis_store::*;
use portcullis_store_postgres::PgStore;
use tokio::sync::broadcast::error::TryRecvError;

/// Delivers a message to `account` through `store` (a local copy of a queued submission: the
/// queue's write path announces like every mail write).
async fn deliver(store: &PgStore, account: AccountId, subject: &str) {
    let message = NewQueued {
        sender: "alice@example.org".into(),
        recipients: vec![NewRecipient { address: "bob@remote.test".into(), notify: None, orcpt: None }],
        ret: None,
        envid: None,
        smtputf8: false,
        eight_bit: false,
        requiretls: false,
        content: seed::message(subject),
        queued_at: 0,
    };
    let local = Delivery { recipients: vec![account], raw: seed::message(subject), internal_date: 0 };
    store.enqueue(message, Some(local)).await.unwrap();
}

/// Polls `attempt` until it gives something, for up to 10 s (a dropped slot or lock is freed
/// by a DELETE spawned on drop, a moment later).
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut attempt: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = attempt().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_change_committed_on_one_node_reaches_the_others_watchers_within_a_second() {
    let Some((url, a, b)) = common::two_nodes().await else { return };
    let db = seed::connect(&url).await;
    let alice = seed::account(&db, "alice@example.org", None).await;
    let other = seed::account(&db, "other@example.org", None).await;
    let mut on_b = b.watch(alice);
    let mut other_on_b = b.watch(other);
    for round in 0..3 {
        let started = Instant::now();
        deliver(&a, alice, &format!("m{round}")).await;
        let change = tokio::time::timeout(Duration::from_secs(1), on_b.recv())
            .await
            .expect("the change reached node B within 1 s")
            .unwrap();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
        let (inbox, _, modseq) = seed::inbox(&db, alice).await;
        assert_eq!(change, MailboxChange { account: alice, mailbox: inbox, modseq: modseq as u64 });
    }
    // Only the account's own watchers hear of it; a rolled-back delivery announces nothing.
    assert!(matches!(other_on_b.try_recv(), Err(TryRecvError::Empty)));
    db.execute("UPDATE accounts SET quota = 1 WHERE id = $1", &[&alice]).await.unwrap();
    let message = NewQueued {
        sender: String::new(),
        recipients: vec![NewRecipient { address: "x@remote.test".into(), notify: None, orcpt: None }],
        ret: None,
        envid: None,
        smtputf8: false,
        eight_bit: false,
        requiretls: false,
        content: seed::message("no room"),
        queued_at: 0,
    };
    let local = Delivery { recipients: vec![alice], raw: seed::message("no room"), internal_date: 0 };
    assert!(a.enqueue(message, Some(local)).await.is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(on_b.try_recv(), Err(TryRecvError::Empty)));
}

#[tokio::test]
async fn a_one_statement_store_on_one_node_reaches_the_others_watchers() {
    let Some((url, a, b)) = common::two_nodes().await else { return };
    let db = seed::connect(&url).await;
    let alice = seed::account(&db, "alice@example.org", None).await;
    deliver(&a, alice, "m").await;
    let (inbox, _, _) = seed::inbox(&db, alice).await;
    let mut on_b = b.watch(alice);
    let seen = Flags::system(Flags::SEEN);
    let update = a.store_flags(inbox, &[1], FlagOp::Add, &seen, None).await.unwrap();
    let change = tokio::time::timeout(Duration::from_secs(1), on_b.recv())
        .await
        .expect("the change reached node B within 1 s")
        .unwrap();
    assert_eq!(change, MailboxChange { account: alice, mailbox: inbox, modseq: update.updated[0].modseq });
    // A STORE that changes nothing is no change, on either node.
    assert!(a.store_flags(inbox, &[1], FlagOp::Add, &seen, None).await.unwrap().updated.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(on_b.try_recv(), Err(TryRecvError::Empty)));
}

#[tokio::test]
async fn after_the_listen_connection_drops_every_watched_mailbox_is_announced_again() {
    let Some((url, a, b)) = common::two_nodes().await else { return };
    let db = seed::connect(&url).await;
    let alice = seed::account(&db, "alice@example.org", None).await;
    let mut on_b = b.watch(alice);
    deliver(&a, alice, "before").await;
    tokio::time::timeout(Duration::from_secs(1), on_b.recv()).await.expect("heard before the cut").unwrap();
    // Every LISTEN connection of this database goes (a server restart, a failover).
    let killed: i64 = db
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'portcullis-listen'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 2, "one LISTEN connection per node");
    // A change while B is not listening: its NOTIFY is lost, so B must announce the INBOX at
    // its current MODSEQ once it listens again.
    deliver(&a, alice, "during").await;
    let (inbox, _, modseq) = seed::inbox(&db, alice).await;
    let latest = MailboxChange { account: alice, mailbox: inbox, modseq: modseq as u64 };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let change = tokio::time::timeout(left, on_b.recv()).await.expect("the change during the cut is announced");
        if change.unwrap() == latest {
            break;
        }
    }
    // And it listens again.
    let started = Instant::now();
    deliver(&a, alice, "after").await;
    let change = tokio::time::timeout(Duration::from_secs(1), on_b.recv()).await.expect("listening again").unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(change.modseq, modseq as u64 + 1);
}

/// Signals sent while a node's LISTEN connection is down never reach it: once it listens
/// again it is told to read everything (`NodeSignal::Resync`), at once rather than at its
/// follower's next poll, and it hears new signals again.
#[tokio::test]
async fn after_the_listen_connection_drops_the_node_is_told_to_resync() {
    let Some((url, a, b)) = common::two_nodes().await else { return };
    let db = seed::connect(&url).await;
    let mut on_b = b.signals();
    let ban = |network: &str| StoredBan {
        network: network.into(),
        until: None,
        reason: "test".into(),
        offence: 1,
        manual: true,
        created: 1_000,
    };
    a.put_ban(ban("192.0.2.1/32")).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(1), on_b.recv()).await.expect("heard before the cut");
    assert_eq!(heard.unwrap(), NodeSignal::BansChanged);
    // No resync without a cut.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(on_b.try_recv(), Err(TryRecvError::Empty)));
    let killed: i64 = db
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'portcullis-listen'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 2, "one LISTEN connection per node");
    // A ban while B may not be listening: its NOTIFY may be lost, the resync may not.
    a.put_ban(ban("192.0.2.2/32")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let signal = tokio::time::timeout(left, on_b.recv()).await.expect("told to resync after the reconnect");
        match signal.unwrap() {
            NodeSignal::Resync => break,
            NodeSignal::BansChanged => {} // The NOTIFY got through before the cut took B.
            other => panic!("unexpected {other:?}"),
        }
    }
    // What the resync reads has the ban made during the cut.
    let bans = b.ban_changes(None).await.unwrap().bans;
    assert!(bans.iter().any(|b| b.network == "192.0.2.2/32"), "{bans:?}");
    // And B hears signals again, within a second.
    let started = Instant::now();
    a.put_ban(ban("192.0.2.3/32")).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(1), on_b.recv()).await.expect("listening again");
    assert_eq!(heard.unwrap(), NodeSignal::BansChanged);
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// Who should answer a question asked of every node: the nodes started and not stopped (or
/// dead for less than their rows' expiry). A signal too large for a NOTIFY payload (a node's
/// list of sessions can be) reaches every node through its row.
#[tokio::test]
async fn live_nodes_are_listed_and_a_signal_too_large_for_a_notify_reaches_every_node() {
    let Some((url, a, b)) = common::two_nodes().await else { return };
    let db = seed::connect(&url).await;
    // Listed once something on the node listens to signals (a server's follower), not before
    // (the CLI, which never answers).
    assert_eq!(a.live_nodes().await.unwrap(), Vec::<String>::new());
    let (mut on_a, mut on_b) = (a.signals(), b.signals());
    let mut both = vec![a.node().to_string(), b.node().to_string()];
    both.sort();
    eventually("both nodes listed", || async { (a.live_nodes().await.unwrap() == both).then_some(()) }).await;
    assert_eq!(b.live_nodes().await.unwrap(), both);

    let sessions = format!("[{}]", vec![r#"{"tls": "TLSv1.3 TLS13_AES_256_GCM_SHA384"}"#; 400].join(","));
    assert!(sessions.len() > 8000, "{} bytes: more than a NOTIFY carries", sessions.len());
    let large = NodeSignal::SessionsListed { request: 7, node: b.node().to_string(), sessions };
    b.publish(large.clone()).await.unwrap();
    let small = NodeSignal::ListSessions { request: 8, by: a.node().to_string() };
    a.publish(small.clone()).await.unwrap();
    for on in [&mut on_a, &mut on_b] {
        let mut heard = Vec::new();
        for _ in 0..2 {
            heard.push(tokio::time::timeout(Duration::from_secs(1), on.recv()).await.expect("within 1 s").unwrap());
        }
        // The large one is read from its row: it may come after the small one.
        assert!(heard.contains(&large) && heard.contains(&small), "{heard:?}");
    }
    let stored: i64 = db.query_one("SELECT count(*) FROM signal_bodies", &[]).await.unwrap().get(0);
    assert_eq!(stored, 1, "only the large one went through the table");

    // A node that stops is no longer expected to answer.
    b.close();
    let alone = vec![a.node().to_string()];
    eventually("a stopped node's row goes", || async { (a.live_nodes().await.unwrap() == alone).then_some(()) }).await;
    // A dead node's row (never deleted) stops counting once it expires.
    let dead = "dead-host:1:1";
    db.execute("INSERT INTO nodes(node, expires) VALUES ($1, 0)", &[&dead]).await.unwrap();
    assert_eq!(a.live_nodes().await.unwrap(), alone);
}

#[tokio::test]
async fn session_slots_are_counted_across_nodes_and_a_dead_nodes_expire() {
    let Some((url, a, b)) = common::two_nodes().await else { return };
    let db = seed::connect(&url).await;
    let alice = seed::account(&db, "alice@example.org", None).await;
    let bob = seed::account(&db, "bob@example.org", None).await;
    let on_a = a.acquire_session(alice, 2).await.unwrap().expect("first slot");
    let on_b = b.acquire_session(alice, 2).await.unwrap().expect("second slot");
    assert!(a.acquire_session(alice, 2).await.unwrap().is_none());
    assert!(b.acquire_session(alice, 2).await.unwrap().is_none());
    // Another account counts apart; a maximum of zero refuses all.
    let bobs = b.acquire_session(bob, 1).await.unwrap().expect("bob's own slot");
    assert!(a.acquire_session(bob, 0).await.unwrap().is_none());
    // Dropping a slot frees it for either node.
    drop(on_a);
    let again = eventually("a dropped slot is freed", || async { b.acquire_session(alice, 2).await.unwrap() }).await;
    drop(bobs);
    eventually("bob's slot is freed", || async { a.acquire_session(bob, 1).await.unwrap() }).await;
    // Node B dies (SIGKILL): its slots are never dropped, its heartbeat stops. They keep
    // counting until they expire (made to have expired here, rather than waiting a minute).
    std::mem::forget((on_b, again));
    drop(b);
    assert!(a.acquire_session(alice, 2).await.unwrap().is_none());
    let dead: i64 =
        db.query_one("SELECT count(*) FROM session_slots WHERE account_id = $1", &[&alice]).await.unwrap().get(0);
    assert_eq!(dead, 2);
    db.execute("UPDATE session_slots SET expires = 0 WHERE account_id = $1", &[&alice]).await.unwrap();
    let one = a.acquire_session(alice, 2).await.unwrap().expect("a dead node's slots do not count");
    let _two = a.acquire_session(alice, 2).await.unwrap().expect("a dead node's slots do not count");
    assert!(a.acquire_session(alice, 2).await.unwrap().is_none());
    drop(one);
    // An unknown account is an error, not a slot.
    assert!(matches!(a.acquire_session(999_999, 2).await, Err(StoreError::NoSuchAccount(_))));
}

#[tokio::test]
async fn a_maildrop_locked_on_one_node_is_refused_on_the_other_until_the_lock_drops() {
    let Some((url, a, b)) = common::two_nodes().await else { return };
    let db = seed::connect(&url).await;
    let alice = seed::account(&db, "alice@example.org", None).await;
    let bob = seed::account(&db, "bob@example.org", None).await;
    let lock = a.lock_maildrop(alice).await.unwrap().expect("free maildrop");
    assert!(b.lock_maildrop(alice).await.unwrap().is_none(), "locked on the other node");
    assert!(a.lock_maildrop(alice).await.unwrap().is_none(), "locked on the same node");
    let bobs = b.lock_maildrop(bob).await.unwrap().expect("another account's maildrop");
    drop(lock);
    let on_b = eventually("a dropped lock is freed", || async { b.lock_maildrop(alice).await.unwrap() }).await;
    assert!(a.lock_maildrop(alice).await.unwrap().is_none());
    // A refused attempt took nothing from the holder: the row is still B's own.
    let owner: String =
        db.query_one("SELECT node FROM maildrop_locks WHERE account_id = $1", &[&alice]).await.unwrap().get(0);
    let bob_owner: String =
        db.query_one("SELECT node FROM maildrop_locks WHERE account_id = $1", &[&bob]).await.unwrap().get(0);
    assert_eq!(owner, bob_owner);
    // Node B dies holding both: refused until its rows expire, then A takes them over.
    std::mem::forget((on_b, bobs));
    drop(b);
    assert!(a.lock_maildrop(alice).await.unwrap().is_none());
    db.execute("UPDATE maildrop_locks SET expires = 0", &[]).await.unwrap();
    let taken = a.lock_maildrop(alice).await.unwrap().expect("a dead node's expired lock is taken over");
    // Dropping A's lock frees it; B's dead rows are not A's to delete, but it took alice's.
    drop(taken);
    eventually("A's lock is freed", || async {
        let rows: i64 =
            db.query_one("SELECT count(*) FROM maildrop_locks WHERE account_id = $1", &[&alice]).await.unwrap().get(0);
        (rows == 0).then_some(())
    })
    .await;
    assert!(matches!(a.lock_maildrop(999_999).await, Err(StoreError::NoSuchAccount(_))));
}

#[tokio::test]
async fn the_heartbeat_renews_a_live_nodes_slots_and_locks_and_nothing_else() {
    let Some((url, a, _b)) = common::two_nodes().await else { return };
    let db = seed::connect(&url).await;
    let alice = seed::account(&db, "alice@example.org", None).await;
    let _slot = a.acquire_session(alice, 5).await.unwrap().unwrap();
    let _lock = a.lock_maildrop(alice).await.unwrap().unwrap();
    // About to lapse; beside them, a row of the same node that no live slot stands for (its
    // DELETE was lost): the heartbeat must let that one lapse and clear it.
    let soon = "extract(epoch FROM clock_timestamp())::bigint + 2";
    db.execute(&format!("UPDATE session_slots SET expires = {soon}"), &[]).await.unwrap();
    db.execute(&format!("UPDATE maildrop_locks SET expires = {soon}"), &[]).await.unwrap();
    db.execute(
        &format!(
            "INSERT INTO session_slots(account_id, node, expires) SELECT account_id, node, {soon} FROM session_slots"
        ),
        &[],
    )
    .await
    .unwrap();
    let ahead =
        "SELECT (SELECT min(expires) FROM {} WHERE expires > 0) - extract(epoch FROM clock_timestamp())::bigint";
    // The next beat (every 15 s) renews the live rows a minute ahead and clears the stray one.
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let slots: i64 = db.query_one("SELECT count(*) FROM session_slots", &[]).await.unwrap().get(0);
        let slot_ahead: Option<i64> = db.query_one(&ahead.replace("{}", "session_slots"), &[]).await.unwrap().get(0);
        let lock_ahead: Option<i64> = db.query_one(&ahead.replace("{}", "maildrop_locks"), &[]).await.unwrap().get(0);
        if slots == 1 && slot_ahead.is_some_and(|s| s > 30) && lock_ahead.is_some_and(|s| s > 30) {
            break;
        }
        assert!(Instant::now() < deadline, "not renewed: {slots} slots, {slot_ahead:?} s, {lock_ahead:?} s ahead");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Still counted, still held.
    assert!(a.acquire_session(alice, 1).await.unwrap().is_none());
    assert!(a.lock_maildrop(alice).await.unwrap().is_none());
}
