//! `MailStore` on a real PostgreSQL: what only this backend can get wrong (what every backend
//! must do alike is the conformance suite's, crates/store-backends/tests, which runs on
//! PostgreSQL too): announcements on NOTIFY only after commit, and what matters only with
//! several nodes: two stores on one database appending, delivering, storing flags and
//! removing at once.

mod common;
mod seed;

use std::collections::HashSet;
use std::time::Duration;

use portcullis_store::*;
use portcullis_store_postgres::PgStore;
use seed::message;
use tokio_postgres::{AsyncMessage, NoTls};

/// A store and a plain connection to its database, to set up accounts (the directory is
/// another module's) and to look at the rows.
struct Db {
    store: PgStore,
    url: String,
    sql: tokio_postgres::Client,
}

async fn db(default_quota: Option<u64>) -> Option<Db> {
    let url = common::fresh_url()?;
    let store = PgStore::connect(&url, default_quota).await.expect("connect to the test database");
    let sql = seed::connect(&url).await;
    Some(Db { store, url, sql })
}

impl Db {
    /// An account with an INBOX; `quota` in bytes, `None` for the default.
    async fn account(&self, address: &str, quota: Option<i64>) -> AccountId {
        seed::account(&self.sql, address, quota).await
    }

    async fn mailbox(&self, account: AccountId, name: &str) -> Mailbox {
        self.store.mailbox(account, name).await.unwrap().unwrap_or_else(|| panic!("no mailbox {name}"))
    }

    async fn count(&self, sql: &str) -> i64 {
        self.sql.query_one(sql, &[]).await.unwrap().get(0)
    }
}

fn flags(system: u8, keywords: &[&str]) -> Flags {
    Flags { system, keywords: keywords.iter().map(|k| k.to_string()).collect() }
}

async fn fill(store: &PgStore, mailbox: MailboxId, n: usize) -> Vec<u32> {
    let mut uids = Vec::new();
    for i in 0..n {
        uids.push(store.append(mailbox, message(&format!("m{i}")), Flags::default(), 1_700_000_000).await.unwrap());
    }
    uids
}

/// A connection LISTENing on the mailbox channel, as another node's IDLE sessions would:
/// payloads arrive on `heard` while `_client` lives.
struct Listener {
    _client: tokio_postgres::Client,
    heard: tokio::sync::mpsc::UnboundedReceiver<String>,
}

async fn listen(url: &str) -> Listener {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let (tx, heard) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(n) = message {
                // The payload ends with the id of the node that made the change: not what
                // this test checks.
                let change = n.payload().rsplit_once(' ').map_or(n.payload(), |(change, _node)| change);
                if tx.send(format!("{} {change}", n.channel())).is_err() {
                    break;
                }
            }
        }
    });
    client.batch_execute("LISTEN portcullis_mailbox").await.unwrap();
    Listener { _client: client, heard }
}

impl Listener {
    async fn next(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.heard.recv()).await.expect("a notification").unwrap()
    }
}

#[tokio::test]
async fn changes_are_announced_on_notify_only_when_committed() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    let b = db.account("b@example.org", Some(10)).await;
    let inbox = db.mailbox(a, "INBOX").await;
    let mut listener = listen(&db.url).await;

    db.store.append(inbox.id, message("one"), Flags::default(), 0).await.unwrap();
    assert_eq!(listener.next().await, format!("portcullis_mailbox {a} {} 2", inbox.id));
    db.store.store_flags(inbox.id, &[1], FlagOp::Add, &flags(Flags::SEEN, &[]), None).await.unwrap();
    assert_eq!(listener.next().await, format!("portcullis_mailbox {a} {} 3", inbox.id));
    let archive = db.store.create_mailbox(a, "Archive", None).await.unwrap();
    assert_eq!(listener.next().await, format!("portcullis_mailbox {a} {archive} 1"));
    db.store.move_messages(inbox.id, &[1], archive).await.unwrap();
    // In the order of the changes, as SQLite's backend announces them: the target first.
    let moved = vec![listener.next().await, listener.next().await];
    assert_eq!(
        moved,
        [format!("portcullis_mailbox {a} {archive} 2"), format!("portcullis_mailbox {a} {} 4", inbox.id)]
    );

    // Refused for b: nothing stored and nothing announced, not even a's part.
    let refused = db.store.deliver(Delivery { recipients: vec![a, b], raw: vec![b'x'; 100], internal_date: 0 }).await;
    assert!(matches!(refused, Err(DeliveryError::QuotaExceeded(_))));
    db.store.expunge(archive, &[1]).await.unwrap();
    assert_eq!(listener.next().await, format!("portcullis_mailbox {a} {archive} 3"), "the expunge, nothing before it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_writing_one_mailbox_never_share_a_uid() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    let b = db.account("b@example.org", None).await;
    let inbox = db.mailbox(a, "INBOX").await;
    let b_inbox = db.mailbox(b, "INBOX").await.id;
    let other = std::sync::Arc::new(PgStore::connect(&db.url, None).await.unwrap());
    let this = std::sync::Arc::new(db.store);
    let nodes = [this.clone(), other.clone()];

    // Each node: 200 appends, 8 at a time, and 20 deliveries to both accounts.
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for lane in 0..8 {
            let node = node.clone();
            tasks.push(tokio::spawn(async move {
                let mut uids = Vec::new();
                for i in (lane..200).step_by(8) {
                    let raw = message(&format!("node {n} message {i}"));
                    uids.push(node.append(inbox.id, raw, Flags::default(), 0).await.unwrap());
                }
                uids
            }));
        }
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let raw = message(&format!("delivery {n}.{i}"));
                node.deliver(Delivery { recipients: vec![b, a], raw, internal_date: 0 }).await.unwrap();
            }
            Vec::new()
        }));
    }
    let mut appended = Vec::new();
    for task in tasks {
        appended.extend(task.await.unwrap());
    }
    let distinct: HashSet<u32> = appended.iter().copied().collect();
    assert_eq!((appended.len(), distinct.len()), (400, 400), "no UID handed out twice");

    let messages = this.changes_since(inbox.id, 0).await.unwrap().changed;
    assert_eq!(messages.len(), 440);
    assert_eq!(messages.iter().map(|m| m.uid).collect::<Vec<_>>(), (1..=440).collect::<Vec<_>>());
    // UIDs and MODSEQs are allocated together under the row lock: in UID order, MODSEQs grow.
    assert!(messages.windows(2).all(|w| w[0].modseq < w[1].modseq), "MODSEQ only grows");
    let mailbox = this.mailbox(a, "INBOX").await.unwrap().unwrap();
    assert_eq!((mailbox.uidnext, mailbox.highestmodseq), (441, 441));
    assert_eq!(this.messages(b_inbox).await.unwrap().len(), 40);

    // Flags stored on the same messages from both nodes at once: neither change is lost.
    let all: Vec<u32> = (1..=440).collect();
    let store = |node: &std::sync::Arc<PgStore>, change: Flags| {
        let (node, all) = (node.clone(), all.clone());
        tokio::spawn(async move { node.store_flags(inbox.id, &all, FlagOp::Add, &change, None).await })
    };
    let x = store(&this, flags(Flags::SEEN, &["fromA"]));
    let y = store(&other, flags(Flags::FLAGGED, &["fromB"]));
    let (x, y) = (x.await.unwrap().unwrap(), y.await.unwrap().unwrap());
    assert_ne!(x.updated[0].modseq, y.updated[0].modseq);
    let now = this.select_mailbox(a, "INBOX").await.unwrap().unwrap();
    assert!(now.messages.iter().all(|m| m.system == Flags::SEEN | Flags::FLAGGED && m.keywords == ["fromA", "fromB"]));
    assert_eq!(now.mailbox.highestmodseq, 443);

    // \Recent is claimed once, by one node.
    let claim = |node: &std::sync::Arc<PgStore>| {
        let node = node.clone();
        tokio::spawn(async move { node.claim_recent(inbox.id).await.unwrap() })
    };
    let (x, y) = (claim(&this), claim(&other));
    let claims: Vec<(u32, u32)> = [x.await.unwrap(), y.await.unwrap()].into_iter().flatten().collect();
    assert_eq!(claims, [(1, 441)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_body_goes_with_its_last_copy_when_two_nodes_remove_them_at_once() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    let b = db.account("b@example.org", None).await;
    db.store.deliver(Delivery { recipients: vec![a, b], raw: message("shared"), internal_date: 0 }).await.unwrap();
    let (a_inbox, b_inbox) = (db.mailbox(a, "INBOX").await.id, db.mailbox(b, "INBOX").await.id);

    // Two nodes each remove one of the two copies; neither has committed when the other
    // looks for remaining copies. Without a lock on the body, each would see the other's
    // copy still there and the body would outlive both.
    let (mut first, connection) = tokio_postgres::connect(&db.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let (mut second, connection) = tokio_postgres::connect(&db.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let one = first.transaction().await.unwrap();
    one.execute("DELETE FROM messages WHERE mailbox_id = $1", &[&a_inbox]).await.unwrap();
    let other = tokio::spawn(async move {
        let two = second.transaction().await.unwrap();
        two.execute("DELETE FROM messages WHERE mailbox_id = $1", &[&b_inbox]).await.unwrap();
        two.commit().await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    one.commit().await.unwrap();
    other.await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM blobs").await, 0, "the body went with its last copy");
    assert_eq!(db.count("SELECT count(*) FROM summaries").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expunge_waits_for_a_store_in_progress_on_another_node() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    let inbox = db.mailbox(a, "INBOX").await.id;
    fill(&db.store, inbox, 2).await;
    db.store.store_flags(inbox, &[1, 2], FlagOp::Add, &flags(Flags::DELETED, &[]), None).await.unwrap();

    // Another node is in the middle of STORE -FLAGS (\Deleted) on message 1, as `store_flags`
    // does it: the mailbox row locked first, then the message changed.
    let (mut node, connection) = tokio_postgres::connect(&db.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let store = node.transaction().await.unwrap();
    store.execute("SELECT 1 FROM mailboxes WHERE id = $1 FOR NO KEY UPDATE", &[&inbox]).await.unwrap();
    store.execute("UPDATE messages SET flags = 0 WHERE mailbox_id = $1 AND uid = 1", &[&inbox]).await.unwrap();
    let this = std::sync::Arc::new(db.store);
    let expunge = {
        let this = this.clone();
        tokio::spawn(async move { this.expunge_deleted(inbox, None).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.commit().await.unwrap();
    // Had EXPUNGE read the flags before the STORE committed, it would remove message 1 too.
    assert_eq!(expunge.await.unwrap(), [2]);
    assert_eq!(this.messages(inbox).await.unwrap().iter().map(|m| m.uid).collect::<Vec<_>>(), [1]);
}

/// Another node in the middle of a STORE on `inbox`: the mailbox row locked by its MODSEQ
/// allocation (as `store_system_flags` and `store_flags` take it), message `uid` given the
/// flags `system` and that MODSEQ; not committed. Returns its transaction's connection and
/// the MODSEQ.
async fn store_in_progress(url: &str, inbox: MailboxId, uid: i64, system: i32) -> (tokio_postgres::Client, i64) {
    let node = seed::connect(url).await;
    node.batch_execute("BEGIN").await.unwrap();
    let modseq: i64 = node
        .query_one(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 RETURNING highestmodseq",
            &[&inbox],
        )
        .await
        .unwrap()
        .get(0);
    node.execute(
        "UPDATE messages SET flags = $3, modseq = $4 WHERE mailbox_id = $1 AND uid = $2",
        &[&inbox, &uid, &system, &modseq],
    )
    .await
    .unwrap();
    (node, modseq)
}

/// Waits until a session of the database waits for a lock (a STORE queued behind another
/// node's): a test that went on before would not test what it says.
async fn until_someone_waits_for_a_lock(db: &Db) {
    for _ in 0..1000 {
        if db.count("SELECT count(*) FROM pg_locks WHERE NOT granted").await > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nobody waited for the lock within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_waiting_for_another_node_s_builds_on_its_result() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    let inbox = db.mailbox(a, "INBOX").await.id;
    fill(&db.store, inbox, 3).await;
    let before = db.store.mailbox_status(inbox).await.unwrap().highestmodseq;

    // The other node sets \Seen on message 1; this one adds \Flagged to 1 and 2 meanwhile.
    let (node, theirs) = store_in_progress(&db.url, inbox, 1, i32::from(Flags::SEEN)).await;
    let flag = flags(Flags::FLAGGED, &[]);
    let (update, ()) = tokio::join!(db.store.store_flags(inbox, &[1, 2], FlagOp::Add, &flag, None), async {
        until_someone_waits_for_a_lock(&db).await;
        node.batch_execute("COMMIT").await.unwrap();
    });
    let update = update.unwrap();
    assert_eq!(theirs as u64, before + 1);
    let ours = before + 2;
    assert_eq!(
        update.updated,
        [
            MessageIndex { uid: 1, flags: flags(Flags::SEEN | Flags::FLAGGED, &[]), modseq: ours },
            MessageIndex { uid: 2, flags: flags(Flags::FLAGGED, &[]), modseq: ours },
        ]
    );
    let now = db.store.changes_since(inbox, 0).await.unwrap().changed;
    assert_eq!(now[0].flags, flags(Flags::SEEN | Flags::FLAGGED, &[]), "the other node's \\Seen kept");

    // UNCHANGEDSINCE is decided once the lock is ours: message 3, unchanged when the STORE
    // began, is changed by the other node first.
    let (node, theirs) = store_in_progress(&db.url, inbox, 3, i32::from(Flags::ANSWERED)).await;
    let deleted = flags(Flags::DELETED, &[]);
    let (update, ()) = tokio::join!(db.store.store_flags(inbox, &[2, 3], FlagOp::Add, &deleted, Some(ours)), async {
        until_someone_waits_for_a_lock(&db).await;
        node.batch_execute("COMMIT").await.unwrap();
    });
    let update = update.unwrap();
    assert_eq!(update.modified, [3]);
    assert_eq!(
        update.updated,
        [MessageIndex { uid: 2, flags: flags(Flags::FLAGGED | Flags::DELETED, &[]), modseq: theirs as u64 + 1 }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_another_node_made_needless_gives_its_modseq_back_and_announces_nothing() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    let inbox = db.mailbox(a, "INBOX").await.id;
    fill(&db.store, inbox, 1).await;
    let mut listener = listen(&db.url).await;
    let mut watching = db.store.watch(a);

    // This node's STORE sees message 1 without \Flagged and queues for the lock; the other
    // node's, ahead of it, sets \Flagged. Nothing is left to change.
    let (node, theirs) = store_in_progress(&db.url, inbox, 1, i32::from(Flags::FLAGGED)).await;
    let flag = flags(Flags::FLAGGED, &[]);
    let (update, ()) = tokio::join!(db.store.store_flags(inbox, &[1], FlagOp::Add, &flag, None), async {
        until_someone_waits_for_a_lock(&db).await;
        node.batch_execute("COMMIT").await.unwrap();
    });
    assert_eq!(update.unwrap(), FlagsUpdate::default());
    assert_eq!(db.store.mailbox_status(inbox).await.unwrap().highestmodseq, theirs as u64, "the MODSEQ given back");
    assert!(watching.try_recv().is_err(), "nothing announced on this node");
    // Nor to the others: the next thing they hear is the next change.
    db.store.store_flags(inbox, &[1], FlagOp::Remove, &flag, None).await.unwrap();
    assert_eq!(listener.next().await, format!("portcullis_mailbox {a} {inbox} {}", theirs + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_storing_system_flags_on_the_same_messages_both_land_in_modseq_order() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    let inbox = db.mailbox(a, "INBOX").await.id;
    fill(&db.store, inbox, 5).await;
    let other = std::sync::Arc::new(PgStore::connect(&db.url, None).await.unwrap());
    let this = std::sync::Arc::new(db.store);
    let all = [1, 2, 3, 4, 5];
    let store = |node: &std::sync::Arc<PgStore>, op: FlagOp, system: u8| {
        let node = node.clone();
        tokio::spawn(async move { node.store_flags(inbox, &all, op, &flags(system, &[]), None).await.unwrap() })
    };
    for _ in 0..20 {
        let highest = this.mailbox_status(inbox).await.unwrap().highestmodseq;
        let x = store(&this, FlagOp::Add, Flags::SEEN);
        let y = store(&other, FlagOp::Add, Flags::FLAGGED);
        let (x, y) = (x.await.unwrap(), y.await.unwrap());
        assert_eq!((x.updated.len(), y.updated.len()), (5, 5), "neither lost its change");
        let mut modseqs = [x.updated[0].modseq, y.updated[0].modseq];
        modseqs.sort_unstable();
        assert_eq!(modseqs, [highest + 1, highest + 2], "one MODSEQ each, one after the other");
        // The one that committed second saw the first's flag, and its MODSEQ is the messages'.
        let later = if x.updated[0].modseq > y.updated[0].modseq { &x } else { &y };
        assert!(later.updated.iter().all(|m| m.flags == Flags::system(Flags::SEEN | Flags::FLAGGED)));
        let now = this.changes_since(inbox, 0).await.unwrap().changed;
        assert!(now.iter().all(|m| m.flags == Flags::system(Flags::SEEN | Flags::FLAGGED)));
        assert!(now.iter().all(|m| m.modseq == highest + 2));
        assert_eq!(this.mailbox_status(inbox).await.unwrap().highestmodseq, highest + 2);
        store(&other, FlagOp::Replace, 0).await.unwrap();
    }
}

/// Deliveries queued while a batch holds their accounts' locks join that batch (one
/// transaction, one WAL flush) instead of waiting for the next; one to an account the batch does
/// not hold waits for the next batch rather than lock more (which could wait in a cycle).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_queued_during_a_batch_join_it_when_it_holds_their_accounts() {
    let Some(db) = db(None).await else { return };
    let (a, b) = (db.account("a@example.org", None).await, db.account("b@example.org", None).await);
    let (inbox_a, inbox_b) = (db.mailbox(a, "INBOX").await.id, db.mailbox(b, "INBOX").await.id);
    let Db { store, url, sql } = db;
    let store = std::sync::Arc::new(store);
    let count = |query: String| {
        let sql = &sql;
        async move { sql.query_one(&query, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let deliver = |to: AccountId, subject: String| {
        let store = store.clone();
        tokio::spawn(async move {
            store.deliver(Delivery { recipients: vec![to], raw: message(&subject), internal_date: 7 }).await
        })
    };
    // The first batch gets a's account lock, then waits at a's INBOX row, held here.
    let holder = seed::connect(&url).await;
    holder.batch_execute(&format!("BEGIN; SELECT 1 FROM mailboxes WHERE id = {inbox_a} FOR UPDATE")).await.unwrap();
    let first = deliver(a, "first".into());
    let waiting = "SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND wait_event_type = 'Lock'";
    for _ in 0..1000 {
        if count(waiting.to_string()).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(count(waiting.to_string()).await, 1, "the first batch waits for the INBOX row");
    let later: Vec<_> = (0..4).map(|i| deliver(a, format!("later {i}"))).collect();
    let other = deliver(b, "other".into());
    // Queued behind the running batch (each is summarized first, on a blocking thread).
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    first.await.unwrap().unwrap();
    for d in later {
        d.await.unwrap().unwrap();
    }
    other.await.unwrap().unwrap();
    // Rows one transaction inserted share its xmin.
    let transactions =
        |mailbox: MailboxId| format!("SELECT count(DISTINCT xmin::text) FROM messages WHERE mailbox_id = {mailbox}");
    assert_eq!(count(format!("SELECT count(*) FROM messages WHERE mailbox_id = {inbox_a}")).await, 5);
    assert_eq!(count(transactions(inbox_a)).await, 1, "a's five deliveries in the first batch");
    let same = format!(
        "SELECT count(*) FROM messages x JOIN messages y ON x.xmin::text = y.xmin::text
          WHERE x.mailbox_id = {inbox_a} AND y.mailbox_id = {inbox_b}"
    );
    assert_eq!(count(same).await, 0, "b's delivery in a batch of its own");
    let uids: Vec<i64> = sql
        .query(&format!("SELECT uid FROM messages WHERE mailbox_id = {inbox_a} ORDER BY uid"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(uids, [1, 2, 3, 4, 5]);
}
