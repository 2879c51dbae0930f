//! A 100,000-message mailbox: what SELECT and a resynchronising client do must stay fast.
//! The bounds are loose (debug build, shared CI machine); they catch a lost index or
//! per-message queries, not small regressions.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use portcullis_store::*;

const MESSAGES: usize = 100_000;

async fn timed<T>(what: &str, limit: Duration, f: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let result = f.await;
    let took = start.elapsed();
    eprintln!("{what}: {took:?}");
    assert!(took < limit, "{what} took {took:?}");
    result
}

conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    select_and_resync_of_100k_messages
);
async fn select_and_resync_of_100k_messages(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await.id;
    // Grow by copying the mailbox into itself: 1, 2, 4, … messages.
    fill(&store, inbox, 1).await;
    let start = Instant::now();
    let mut have = 1;
    while have < MESSAGES {
        let take: Vec<u32> = (1..=(MESSAGES - have).min(have) as u32).collect();
        have += store.copy_messages(inbox, &take, inbox).await.unwrap().len();
    }
    eprintln!("filling: {:?}", start.elapsed());

    // The first SELECT reads every message row.
    let start = Instant::now();
    let selected = timed("select_mailbox, first", Duration::from_secs(5), store.select_mailbox(a, "INBOX")).await;
    // A SELECT from memory, even one that brings the changes forward, takes a small part of
    // that (1/100 to 1/15 here, with and without load); reading every row again would take
    // about as long. Measured against it, not against a fixed number of milliseconds, which
    // depends on the machine and its load.
    let from_memory = start.elapsed() / 3;
    let index: Vec<MessageIndex> = selected.unwrap().unwrap().messages.iter().map(|m| m.to_index()).collect();
    assert_eq!(index.len(), MESSAGES);
    // From memory: no message row is read.
    let selected = timed("select_mailbox, again", from_memory, store.select_mailbox(a, "INBOX")).await;
    assert_eq!(selected.unwrap().unwrap().messages.len(), MESSAGES);
    let status = timed("mailbox_status", Duration::from_secs(2), store.mailbox_status(inbox)).await.unwrap();
    assert_eq!(status.unseen as usize, MESSAGES);

    let every: Vec<u32> = uids(&index);
    let scattered: Vec<u32> = every.iter().copied().step_by(997).collect();
    let update = timed(
        "store_flags on scattered UIDs",
        Duration::from_secs(2),
        store.store_flags(inbox, &scattered, FlagOp::Add, &Flags::system(Flags::FLAGGED | Flags::DELETED), None),
    )
    .await
    .unwrap();
    assert_eq!(update.updated.len(), scattered.len());
    let changes =
        timed("changes_since", Duration::from_secs(1), store.changes_since(inbox, status.highestmodseq)).await.unwrap();
    assert_eq!(uids(&changes.changed), scattered);
    let status = timed("mailbox_status", Duration::from_secs(2), store.mailbox_status(inbox)).await.unwrap();
    assert_eq!(status.deleted as usize, scattered.len());
    let removed = timed("expunge_deleted", Duration::from_secs(2), store.expunge_deleted(inbox, None)).await.unwrap();
    assert_eq!(removed, scattered);
    // Brought forward with the changes only.
    let selected = timed("select_mailbox after changes", from_memory, store.select_mailbox(a, "INBOX")).await;
    let selected: Vec<MessageIndex> = selected.unwrap().unwrap().messages.iter().map(|m| m.to_index()).collect();
    assert_eq!(selected, message_index(&store, inbox).await);
    let records =
        timed("message_records, all", Duration::from_secs(10), store.message_records(inbox, &every)).await.unwrap();
    assert_eq!(records.len(), MESSAGES - scattered.len());
    timed(
        "store_flags 1:* +\\Seen",
        Duration::from_secs(20),
        store.store_flags(inbox, &every, FlagOp::Add, &Flags::system(Flags::SEEN), None),
    )
    .await
    .unwrap();
}
