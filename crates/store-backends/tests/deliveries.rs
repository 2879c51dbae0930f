//! Local deliveries arriving together: SQLite's single writer and PostgreSQL's group commit
//! (`store-postgres/src/mail/batch.rs`) both run many in one transaction, and each must still
//! get its own UID, MODSEQ, quota decision and answer.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use portcullis_store::*;

/// Starts one delivery of `message(subject)` to `recipients` on a task of its own.
fn spawn_delivery(
    store: &Arc<dyn Store>,
    recipients: Vec<AccountId>,
    raw: Vec<u8>,
) -> tokio::task::JoinHandle<Result<(), DeliveryError>> {
    let store = store.clone();
    tokio::spawn(async move { store.deliver(Delivery { recipients, raw, internal_date: 7 }).await })
}

conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    concurrent_deliveries_to_one_account_get_ascending_uids_and_modseqs
);
async fn concurrent_deliveries_to_one_account_get_ascending_uids_and_modseqs(db: TestDb) {
    const N: usize = 40;
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let before = mailbox(&store, a, "INBOX").await;
    let status = store.mailbox_status(before.id).await.unwrap();
    // On PostgreSQL, the first delivery waits for the account's lock while the others queue up
    // behind it: they then go as one batch (one transaction, many savepoints).
    let held = hold_account_lock(&db, a).await;
    let mut tasks = vec![spawn_delivery(&store, vec![a], message("m0"))];
    if held.is_some() {
        until_waiting_for_a_lock(&db).await;
    }
    tasks.extend((1..N).map(|i| spawn_delivery(&store, vec![a], message(&format!("m{i}")))));
    if let Some(held) = held {
        tokio::time::sleep(Duration::from_millis(300)).await;
        held.batch_execute("ROLLBACK").await.unwrap();
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }

    let index = message_index(&store, before.id).await;
    assert_eq!(uids(&index), (1..=N as u32).collect::<Vec<_>>(), "every message once, UIDs dense and ascending");
    let modseqs: Vec<u64> = index.iter().map(|m| m.modseq).collect();
    assert!(modseqs.windows(2).all(|w| w[0] < w[1]), "one MODSEQ each, ascending with the UIDs: {modseqs:?}");
    assert!(modseqs[0] > status.highestmodseq, "after the mailbox's MODSEQ before the deliveries");
    let after = store.mailbox_status(before.id).await.unwrap();
    assert_eq!((after.messages, after.uidnext), (N as u32, N as u32 + 1));
    assert_eq!(after.highestmodseq, *modseqs.last().unwrap(), "the mailbox's MODSEQ is its newest message's");
    // Each UID holds the message that was delivered with it (no body given to another copy).
    let mut subjects: Vec<String> = Vec::new();
    for m in &index {
        let raw = store.message_raw(before.id, m.uid).await.unwrap().unwrap();
        let text = String::from_utf8(raw).unwrap();
        subjects.push(text.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap().to_string());
    }
    subjects.sort();
    let mut expected: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(subjects, expected);
    assert_eq!(count(&db, "SELECT count(*) FROM blobs").await, N as i64);
    let size: u64 = (0..N).map(|i| message(&format!("m{i}")).len() as u64).sum();
    assert_eq!(store.quota(a).await.unwrap().0, size, "usage counts every copy once");
}

conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_delivery_that_fails_fails_alone_among_concurrent_ones
);
async fn a_delivery_that_fails_fails_alone_among_concurrent_ones(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let full = account(&store, "full@example.org").await;
    let room = account(&store, "room@example.org").await;
    let worn = account(&store, "worn@example.org").await;
    store.set_quota("full@example.org", Quota::Bytes(10)).await.unwrap();
    // Exactly room for two of the messages below: the batch's own earlier copies count.
    let one = message("r0").len() as u64;
    store.set_quota("room@example.org", Quota::Bytes(2 * one)).await.unwrap();
    // An INBOX with one UID left: its second delivery fails in the database, not in a check.
    let worn_inbox = mailbox(&store, worn, "INBOX").await.id;
    execute(&db, &format!("UPDATE mailboxes SET uidnext = 4294967295 WHERE id = {worn_inbox}")).await;

    let held = hold_account_lock(&db, a).await;
    let first = spawn_delivery(&store, vec![a], message("a0"));
    if held.is_some() {
        until_waiting_for_a_lock(&db).await;
    }
    // Queued together (one batch on PostgreSQL): two for a; one over full's quota alone; one
    // to a and full (all or nothing: refused for a too); three for room, one too many; two for
    // worn, one too many.
    let ok_a = spawn_delivery(&store, vec![a], message("a1"));
    let over = spawn_delivery(&store, vec![full], message("over"));
    let both = spawn_delivery(&store, vec![a, full], message("both"));
    let ok_a2 = spawn_delivery(&store, vec![a], message("a2"));
    let to_room: Vec<_> = (0..3).map(|i| spawn_delivery(&store, vec![room], message(&format!("r{i}")))).collect();
    let to_worn: Vec<_> = (0..2).map(|i| spawn_delivery(&store, vec![worn], message(&format!("w{i}")))).collect();
    if let Some(held) = held {
        tokio::time::sleep(Duration::from_millis(300)).await;
        held.batch_execute("ROLLBACK").await.unwrap();
    }

    first.await.unwrap().unwrap();
    ok_a.await.unwrap().unwrap();
    ok_a2.await.unwrap().unwrap();
    let over = over.await.unwrap();
    assert!(matches!(over, Err(DeliveryError::QuotaExceeded(ref who)) if who == "full@example.org"), "{over:?}");
    let both = both.await.unwrap();
    assert!(matches!(both, Err(DeliveryError::QuotaExceeded(ref who)) if who == "full@example.org"), "{both:?}");
    let mut room_results = Vec::new();
    for t in to_room {
        room_results.push(t.await.unwrap());
    }
    let refused_room =
        |r: &&Result<(), DeliveryError>| matches!(r, Err(DeliveryError::QuotaExceeded(w)) if w == "room@example.org");
    assert_eq!(room_results.iter().filter(|r| r.is_ok()).count(), 2, "{room_results:?}");
    assert_eq!(room_results.iter().filter(refused_room).count(), 1, "{room_results:?}");
    let mut worn_results = Vec::new();
    for t in to_worn {
        worn_results.push(t.await.unwrap());
    }
    assert_eq!(worn_results.iter().filter(|r| r.is_ok()).count(), 1, "{worn_results:?}");
    assert_eq!(worn_results.iter().filter(|r| matches!(r, Err(DeliveryError::Store(_)))).count(), 1);

    let inbox_a = mailbox(&store, a, "INBOX").await;
    assert_eq!(uids(&message_index(&store, inbox_a.id).await), vec![1, 2, 3], "a's three, no UID lost to a refusal");
    assert_eq!(mailbox(&store, full, "INBOX").await.uidnext, 1, "nothing for full");
    assert_eq!(store.quota(full).await.unwrap().0, 0);
    assert_eq!(store.quota(room).await.unwrap(), (2 * one, Some(2 * one)));
    assert_eq!(uids(&message_index(&store, worn_inbox).await), vec![u32::MAX]);
    assert_eq!(count(&db, "SELECT count(*) FROM blobs").await, 6, "no body left by a failed delivery");
    assert_eq!(count(&db, "SELECT count(*) FROM summaries").await, 6);
}

conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_delivery_is_not_refused_for_room_a_failed_one_would_have_taken
);
async fn a_delivery_is_not_refused_for_room_a_failed_one_would_have_taken(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let x = account(&store, "x@example.org").await;
    let worn = account(&store, "worn@example.org").await;
    // Room for exactly one of the messages below.
    store.set_quota("x@example.org", Quota::Bytes(message("j1").len() as u64)).await.unwrap();
    // worn's INBOX with its last UID taken: a delivery there fails in the database.
    let worn_inbox = mailbox(&store, worn, "INBOX").await.id;
    execute(&db, &format!("UPDATE mailboxes SET uidnext = 4294967295 WHERE id = {worn_inbox}")).await;
    spawn_delivery(&store, vec![worn], message("last")).await.unwrap().unwrap();

    let held = hold_account_lock(&db, a).await;
    let first = spawn_delivery(&store, vec![a], message("first"));
    if held.is_some() {
        until_waiting_for_a_lock(&db).await;
    }
    // One batch on PostgreSQL: j1 counts against x's room and then fails at worn; j2 must not
    // be refused for the room j1 never took (whichever of the two is planned first).
    let j1 = spawn_delivery(&store, vec![x, worn], message("j1"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let j2 = spawn_delivery(&store, vec![x], message("j2"));
    if let Some(held) = held {
        tokio::time::sleep(Duration::from_millis(300)).await;
        held.batch_execute("ROLLBACK").await.unwrap();
    }
    first.await.unwrap().unwrap();
    assert!(j1.await.unwrap().is_err(), "worn has no UID left, or x no room");
    j2.await.unwrap().unwrap();
    let inbox_x = mailbox(&store, x, "INBOX").await;
    assert_eq!(uids(&message_index(&store, inbox_x.id).await).len(), 1, "j2 alone in x's INBOX");
}

conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_batch_that_cannot_commit_answers_every_delivery_with_an_error
);
async fn a_batch_that_cannot_commit_answers_every_delivery_with_an_error(db: TestDb) {
    if !is_postgres(&db) {
        // SQLite's writer has no connection to lose: nothing of this case applies.
        return;
    }
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let b = account(&store, "b@example.org").await;
    let held = hold_account_lock(&db, a).await.unwrap();
    let mut tasks = vec![spawn_delivery(&store, vec![a], message("first"))];
    until_waiting_for_a_lock(&db).await;
    // These queue behind the first, and form the next batch (b's too: one batch, one fate).
    tasks.extend((0..5).map(|i| spawn_delivery(&store, vec![a], message(&format!("m{i}")))));
    tasks.push(spawn_delivery(&store, vec![b], message("to b")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Each batch's server process dies while the batch is under way, before its COMMIT.
    let mut killed = 0;
    while tasks.iter().any(|t| !t.is_finished()) {
        killed += terminate_lock_waiters(&db).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    held.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(killed, 2, "the first delivery alone, then the six queued behind it as one batch");
    for t in tasks {
        let result = t.await.unwrap();
        assert!(matches!(result, Err(DeliveryError::Store(StoreError::Backend(_)))), "{result:?}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM messages").await, 0, "nothing stored for anyone");
    assert_eq!(count(&db, "SELECT count(*) FROM blobs").await, 0);
    assert_eq!(mailbox(&store, b, "INBOX").await.uidnext, 1);
    // The store goes on: the next delivery gets a new connection and commits.
    store.deliver(Delivery { recipients: vec![a, b], raw: message("after"), internal_date: 8 }).await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM messages").await, 2);
}
