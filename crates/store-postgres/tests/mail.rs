//! `MailStore` on a real PostgreSQL: what proves this backend, not a second copy of the
//! store's conformance tests. UIDs, MODSEQs and flags as the SQLite backend hands them out;
//! bodies stored once; quota refusing everyone or no one; RENAME INBOX; a large body read in
//! pieces; announcements on NOTIFY only after commit; and what matters only with several
//! nodes: two stores on one database appending, delivering and storing flags at once.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use portcullis_store::*;
use portcullis_store_postgres::PgStore;
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
    let (sql, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(connection);
    Some(Db { store, url, sql })
}

impl Db {
    /// An account with an INBOX; `quota` in bytes, `None` for the default.
    async fn account(&self, address: &str, quota: Option<i64>) -> AccountId {
        let (local, domain) = address.split_once('@').unwrap();
        self.sql
            .execute("INSERT INTO domains(name, created) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING", &[&domain])
            .await
            .unwrap();
        let id: i64 = self
            .sql
            .query_one(
                "INSERT INTO accounts(domain_id, localpart, password_hash, quota, created)
                 SELECT id, $2, '$argon2id$fake', $3, 0 FROM domains WHERE name = $1 RETURNING id",
                &[&domain, &local, &quota],
            )
            .await
            .unwrap()
            .get(0);
        self.store.create_mailbox(id, "INBOX", None).await.unwrap();
        id
    }

    async fn mailbox(&self, account: AccountId, name: &str) -> Mailbox {
        self.store.mailbox(account, name).await.unwrap().unwrap_or_else(|| panic!("no mailbox {name}"))
    }

    async fn count(&self, sql: &str) -> i64 {
        self.sql.query_one(sql, &[]).await.unwrap().get(0)
    }
}

/// A small message whose Date: is 1,700,000,000 seconds after the epoch.
fn message(subject: &str) -> Vec<u8> {
    format!(
        "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nFrom: a@example.org\r\nSubject: {subject}\r\n\r\nHello, {subject}.\r\n"
    )
    .into_bytes()
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

#[tokio::test]
async fn append_reads_back_with_summary_header_and_pieces() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    let inbox = db.mailbox(a, "INBOX").await;
    let raw = message("first");
    let uid = db.store.append(inbox.id, raw.clone(), flags(Flags::SEEN, &["$Work"]), 1_700_000_123).await.unwrap();
    assert_eq!(uid, 1);

    let records = db.store.message_records(inbox.id, &[uid, 99]).await.unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!((record.uid, record.size, record.internal_date), (1, raw.len() as u64, 1_700_000_123));
    assert_eq!(record.flags, flags(Flags::SEEN, &["$Work"]));
    assert_eq!(record.sent_date, Some(1_700_000_000));
    let summary = portcullis_mime::summarize(&raw);
    assert_eq!((&record.envelope, record.header_len), (&summary.envelope, summary.header_len as u64));

    assert_eq!(db.store.message_raw(inbox.id, uid).await.unwrap(), Some(raw.clone()));
    assert_eq!(db.store.message_raw(inbox.id, 2).await.unwrap(), None);
    let header = &raw[..summary.header_len];
    assert_eq!(
        db.store.message_headers(inbox.id, &[7, uid, uid]).await.unwrap(),
        [(1, header.to_vec()), (1, header.to_vec())]
    );
    assert_eq!(db.store.message_raws(inbox.id, &[uid]).await.unwrap(), [(1, raw.clone())]);
    assert_eq!(db.store.message_header_caches(inbox.id, &[uid]).await.unwrap(), [(1, Some(summary.header_cache))]);
    assert_eq!(db.store.message_bytes(inbox.id, uid, 5, 3).await.unwrap(), Some(raw[5..8].to_vec()));
    assert_eq!(db.store.message_bytes(inbox.id, uid, 10_000, 3).await.unwrap(), Some(Vec::new()));
    assert_eq!(db.store.message_bytes(inbox.id, 2, 0, 3).await.unwrap(), None);
    assert_eq!(
        db.store.messages(inbox.id).await.unwrap(),
        [MessageMeta { uid: 1, size: raw.len() as u64, internal_date: 1_700_000_123 }]
    );

    let status = db.store.mailbox_status(inbox.id).await.unwrap();
    assert_eq!((status.messages, status.unseen, status.size, status.uidnext), (1, 0, raw.len() as u64, 2));
    assert_eq!((status.highestmodseq, status.recent), (2, 1));
    assert_eq!(db.store.quota(a).await.unwrap(), (raw.len() as u64, None));
}

#[tokio::test]
async fn a_large_body_is_read_in_pieces() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    let inbox = db.mailbox(a, "INBOX").await;
    let mut raw = b"Subject: big\r\n\r\n".to_vec();
    raw.extend((0..6_000_000u32).map(|i| b'a' + (i % 26) as u8));
    let uid = db.store.append(inbox.id, raw.clone(), Flags::default(), 0).await.unwrap();
    let mut read = Vec::new();
    let piece = 1 << 20;
    loop {
        let got = db.store.message_bytes(inbox.id, uid, read.len() as u64, piece).await.unwrap().unwrap();
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= piece);
        read.extend(got);
    }
    assert!(read == raw, "the pieces make up the message");
    assert_eq!(db.store.message_headers(inbox.id, &[uid]).await.unwrap()[0].1, b"Subject: big\r\n\r\n");
    assert_eq!(
        db.store.message_bytes(inbox.id, uid, raw.len() as u64 - 2, 10).await.unwrap().unwrap(),
        raw[raw.len() - 2..]
    );
}

#[tokio::test]
async fn delivery_stores_one_body_and_quota_refuses_everyone_or_no_one() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    let b = db.account("b@example.org", Some(100)).await;
    let small = message("hi");
    db.store.deliver(Delivery { recipients: vec![b, a, b], raw: small.clone(), internal_date: 5 }).await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM blobs").await, 1, "one body for both");
    assert_eq!(db.count("SELECT count(*) FROM summaries").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM messages").await, 2, "one copy each, b once");

    let big = vec![b'x'; 200];
    let refused = db.store.deliver(Delivery { recipients: vec![a, b], raw: big, internal_date: 6 }).await;
    assert!(matches!(refused, Err(DeliveryError::QuotaExceeded(ref who)) if who == "b@example.org"), "{refused:?}");
    assert_eq!(db.count("SELECT count(*) FROM messages").await, 2, "nothing for a either");
    assert_eq!(db.count("SELECT count(*) FROM blobs").await, 1);
    assert_eq!(db.mailbox(a, "INBOX").await.uidnext, 2, "no UID taken");
    assert_eq!(db.store.quota(b).await.unwrap(), (small.len() as u64, Some(100)));

    db.store.deliver(Delivery { recipients: Vec::new(), raw: message("nobody"), internal_date: 7 }).await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM blobs").await, 1, "no body for no recipient");

    // The body goes with its last copy.
    db.store.expunge(db.mailbox(a, "INBOX").await.id, &[1]).await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM blobs").await, 1);
    db.store.expunge(db.mailbox(b, "INBOX").await.id, &[1]).await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM blobs").await, 0);
    assert_eq!(db.store.quota(b).await.unwrap().0, 0);
}

#[tokio::test]
async fn uids_and_modseqs_only_grow_and_expunges_are_recorded() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    let inbox = db.mailbox(a, "INBOX").await;
    assert_eq!(fill(&db.store, inbox.id, 3).await, [1, 2, 3]);
    db.store.expunge(inbox.id, &[3, 2, 42]).await.unwrap();
    assert_eq!(fill(&db.store, inbox.id, 1).await, [4], "3 is never handed out again");
    let changes = db.store.changes_since(inbox.id, 4).await.unwrap();
    assert_eq!(changes.expunged, [2, 3]);
    assert_eq!(changes.changed.iter().map(|m| (m.uid, m.modseq)).collect::<Vec<_>>(), [(4, 6)]);
    assert_eq!(changes.highestmodseq, 6);

    // POP3's expunge and IMAP's EXPUNGE of \Deleted within the given UIDs.
    fill(&db.store, inbox.id, 2).await; // 5, 6
    db.store.store_flags(inbox.id, &[1, 4, 5], FlagOp::Add, &flags(Flags::DELETED, &[]), None).await.unwrap();
    assert_eq!(db.store.expunge_deleted(inbox.id, Some(&[4, 5, 6])).await.unwrap(), [4, 5]);
    assert_eq!(db.store.expunge_deleted(inbox.id, None).await.unwrap(), [1]);
    assert_eq!(db.store.expunge_deleted(inbox.id, None).await.unwrap(), Vec::<u32>::new());
    let status = db.store.mailbox_status(inbox.id).await.unwrap();
    assert_eq!((status.messages, status.deleted, status.uidnext), (1, 0, 7));
}

#[tokio::test]
async fn store_gives_one_modseq_to_what_changed_and_respects_unchangedsince() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    let inbox = db.mailbox(a, "INBOX").await;
    fill(&db.store, inbox.id, 3).await; // MODSEQs 2, 3, 4
    db.store.store_flags(inbox.id, &[1], FlagOp::Add, &flags(Flags::SEEN, &[]), None).await.unwrap(); // 5

    let update = db
        .store
        .store_flags(inbox.id, &[1, 2, 3], FlagOp::Add, &flags(Flags::SEEN, &["Work", "work"]), None)
        .await
        .unwrap();
    assert!(update.modified.is_empty());
    assert_eq!(update.updated.len(), 3);
    assert!(update.updated.iter().all(|m| m.modseq == 6 && m.flags == flags(Flags::SEEN, &["Work"])));
    // Already so: nothing changes, no MODSEQ spent.
    let again = db.store.store_flags(inbox.id, &[1], FlagOp::Add, &flags(0, &["WORK"]), None).await.unwrap();
    assert_eq!(again, FlagsUpdate::default());
    assert_eq!(db.mailbox(a, "INBOX").await.highestmodseq, 6);

    db.store.store_flags(inbox.id, &[2], FlagOp::Add, &flags(Flags::FLAGGED, &[]), None).await.unwrap(); // 7
    let conditional =
        db.store.store_flags(inbox.id, &[1, 2], FlagOp::Remove, &flags(Flags::SEEN, &[]), Some(6)).await.unwrap();
    assert_eq!(conditional.modified, [2]);
    assert_eq!(conditional.updated.iter().map(|m| (m.uid, m.modseq)).collect::<Vec<_>>(), [(1, 8)]);

    let selected = db.store.select_mailbox(a, "inbox").await.unwrap().unwrap();
    assert_eq!(selected.keywords, ["Work"]);
    assert_eq!(selected.mailbox.highestmodseq, 8);
    let listed: Vec<MessageIndex> = selected.messages.iter().map(|m| m.to_index()).collect();
    assert_eq!(listed, db.store.changes_since(inbox.id, 0).await.unwrap().changed);
    assert_eq!(listed[0].flags, flags(0, &["Work"]));
}

#[tokio::test]
async fn copy_and_move_map_uids_share_bodies_and_count_quota() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", Some(1_000)).await;
    let inbox = db.mailbox(a, "INBOX").await;
    let archive = db.store.create_mailbox(a, "Archive", None).await.unwrap();
    fill(&db.store, inbox.id, 3).await;
    db.store.store_flags(inbox.id, &[2], FlagOp::Add, &flags(Flags::FLAGGED, &["$Label"]), None).await.unwrap();

    let pairs = db.store.copy_messages(inbox.id, &[3, 2, 9], archive).await.unwrap();
    assert_eq!(pairs, [(2, 1), (3, 2)]);
    assert_eq!(db.count("SELECT count(*) FROM blobs").await, 3, "copies share their bodies");
    let copied = db.store.message_records(archive, &[1]).await.unwrap();
    assert_eq!(copied[0].flags, flags(Flags::FLAGGED, &["$Label"]));
    assert_eq!(db.store.select_mailbox(a, "Archive").await.unwrap().unwrap().keywords, ["$Label"]);

    let moved = db.store.move_messages(inbox.id, &[1, 2], archive).await.unwrap();
    assert_eq!(moved, [(1, 3), (2, 4)]);
    assert_eq!(db.store.messages(inbox.id).await.unwrap().iter().map(|m| m.uid).collect::<Vec<_>>(), [3]);
    assert_eq!(db.store.changes_since(inbox.id, 0).await.unwrap().expunged, [1, 2]);

    // Copies count against the quota: 5 messages of ~90 bytes now, 1,000 allowed.
    let (used, _) = db.store.quota(a).await.unwrap();
    let each = message("m0").len() as u64;
    assert_eq!(used, 5 * each);
    let many: Vec<u32> = (1..=4).collect();
    let mut copies = 0;
    let refused = loop {
        match db.store.copy_messages(archive, &many, archive).await {
            Ok(_) => copies += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(refused, DeliveryError::QuotaExceeded(_)), "{refused:?}");
    assert_eq!(db.store.quota(a).await.unwrap().0, (5 + 4 * copies) * each);
    assert!(db.store.move_messages(inbox.id, &[3], 999_999).await.is_err(), "a missing target");
}

#[tokio::test]
async fn mailboxes_create_rename_delete_and_subscribe_as_sqlite_does() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    db.store.create_mailbox(a, "b/c/d", None).await.unwrap();
    db.store.create_mailbox(a, "B", Some("\\Archive")).await.unwrap();
    assert!(matches!(db.store.create_mailbox(a, "b/c", None).await, Err(MailboxError::AlreadyExists)));
    assert!(matches!(
        db.store.create_mailbox(999_999, "x", None).await,
        Err(MailboxError::Store(StoreError::NoSuchAccount(_)))
    ));
    // Bytewise order, as SQLite's BINARY collation.
    let names: Vec<String> = db.store.mailboxes(a).await.unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["B", "INBOX", "b", "b/c", "b/c/d"]);
    assert_eq!(db.store.mailbox(a, "B").await.unwrap().unwrap().special_use.as_deref(), Some("\\Archive"));

    // Rename keeps UIDVALIDITY and UIDs, moves children and subscriptions along.
    let before = db.mailbox(a, "b/c/d").await;
    let bc = db.mailbox(a, "b/c").await;
    fill(&db.store, before.id, 2).await;
    db.store.set_subscribed(a, "b/c/d", true).await.unwrap();
    db.store.rename_mailbox(a, "b/c", "x/y").await.unwrap();
    let after = db.mailbox(a, "x/y/d").await;
    assert_eq!((after.id, after.uidvalidity, after.uidnext), (before.id, before.uidvalidity, 3));
    assert!(db.store.mailbox(a, "b/c").await.unwrap().is_none());
    assert!(db.mailbox(a, "x").await.uidvalidity > bc.uidvalidity, "a new parent, a new UIDVALIDITY");
    assert_eq!(db.store.subscriptions(a).await.unwrap(), ["x/y/d"]);
    assert!(matches!(db.store.rename_mailbox(a, "x", "x/z").await, Err(MailboxError::InvalidName)));
    assert!(matches!(db.store.rename_mailbox(a, "x", "B").await, Err(MailboxError::AlreadyExists)));

    // Delete: not INBOX, not with children; frees the space; subscriptions stay.
    assert!(matches!(db.store.delete_mailbox(a, "inbox").await, Err(MailboxError::InboxCannotBeDeleted)));
    assert!(matches!(db.store.delete_mailbox(a, "x/y").await, Err(MailboxError::HasChildren)));
    assert!(db.store.quota(a).await.unwrap().0 > 0);
    db.store.delete_mailbox(a, "x/y/d").await.unwrap();
    assert_eq!(db.store.quota(a).await.unwrap().0, 0);
    assert_eq!(db.count("SELECT count(*) FROM blobs").await, 0);
    assert_eq!(db.store.subscriptions(a).await.unwrap(), ["x/y/d"]);
    assert!(matches!(db.store.delete_mailbox(a, "x/y/d").await, Err(MailboxError::NoSuchMailbox)));
    db.store.set_subscribed(a, "x/y/d", false).await.unwrap();
    assert!(db.store.subscriptions(a).await.unwrap().is_empty());
}

#[tokio::test]
async fn renaming_inbox_moves_its_messages_and_leaves_it_empty() {
    let Some(db) = db(None).await else { return };
    let a = db.account("a@example.org", None).await;
    let inbox = db.mailbox(a, "INBOX").await;
    fill(&db.store, inbox.id, 3).await;
    db.store.create_mailbox(a, "INBOX/child", None).await.unwrap();
    db.store.rename_mailbox(a, "INBOX", "Old/Inbox").await.unwrap();
    let old = db.mailbox(a, "Old/Inbox").await;
    assert_eq!(db.store.messages(old.id).await.unwrap().len(), 3);
    assert_ne!(old.uidvalidity, inbox.uidvalidity);
    let inbox_now = db.mailbox(a, "INBOX").await;
    assert_eq!((inbox_now.id, inbox_now.uidvalidity, inbox_now.uidnext), (inbox.id, inbox.uidvalidity, 4));
    assert!(db.store.messages(inbox.id).await.unwrap().is_empty());
    assert_eq!(db.store.changes_since(inbox.id, 0).await.unwrap().expunged, [1, 2, 3]);
    assert!(db.store.mailbox(a, "INBOX/child").await.unwrap().is_some());
    assert_eq!(db.count("SELECT count(*) FROM blobs").await, 3);
}

#[tokio::test]
async fn mailboxes_and_subscriptions_per_account_are_bounded() {
    let Some(url) = common::fresh_url() else { return };
    let store = PgStore::connect(&url, None).await.unwrap().with_max_mailboxes(3);
    let (sql, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let db = Db { store, url, sql };
    let a = db.account("a@example.org", None).await;
    db.store.create_mailbox(a, "one", None).await.unwrap();
    assert!(matches!(db.store.create_mailbox(a, "x/y", None).await, Err(MailboxError::TooManyMailboxes(3))));
    assert!(db.store.mailbox(a, "x").await.unwrap().is_none(), "no parent left behind");
    db.store.create_mailbox(a, "two", None).await.unwrap();
    for name in ["a", "b", "c"] {
        db.store.set_subscribed(a, name, true).await.unwrap();
    }
    db.store.set_subscribed(a, "c", true).await.unwrap();
    assert!(matches!(db.store.set_subscribed(a, "d", true).await, Err(MailboxError::TooManySubscriptions(3))));
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
                if tx.send(format!("{} {}", n.channel(), n.payload())).is_err() {
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
