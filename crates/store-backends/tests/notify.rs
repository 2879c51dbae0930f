//! The notification hook: changes are announced after they commit, to the account's watchers.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use portcullis_store::*;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_change_is_readable_when_it_is_announced
);
async fn a_change_is_readable_when_it_is_announced(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let b = account(&store, "b@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await;
    let mut watching_a = store.watch(a);
    let mut watching_b = store.watch(b);

    let writer = store.clone();
    tokio::spawn(async move {
        let delivery = Delivery { recipients: vec![a], raw: message("news"), internal_date: 0 };
        writer.deliver(delivery).await.unwrap();
    });
    let change = tokio::time::timeout(Duration::from_secs(10), watching_a.recv()).await.unwrap().unwrap();
    assert_eq!((change.account, change.mailbox), (a, inbox.id));
    // Read through another connection right away: the change has committed.
    let index = message_index(&store, inbox.id).await;
    assert_eq!(uids(&index), vec![1]);
    assert_eq!(index[0].modseq, change.modseq);
    assert_eq!(store.mailbox_status(inbox.id).await.unwrap().highestmodseq, change.modseq);
    assert!(matches!(watching_b.try_recv(), Err(TryRecvError::Empty)), "other accounts hear nothing");
}

conformance!(every_mailbox_write_is_announced);
/// The announcement is sent before the writer's caller is answered, so a `try_recv` right
/// after each call must find it.
async fn every_mailbox_write_is_announced(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await.id;
    let trash = mailbox(&store, a, "Trash").await.id;
    let mut rx = store.watch(a);
    let mut next = || {
        let mut got = Vec::new();
        while let Ok(change) = rx.try_recv() {
            got.push(change.mailbox);
        }
        got
    };

    store.append(inbox, message("1"), Flags::default(), 0).await.unwrap();
    assert_eq!(next(), vec![inbox], "append");
    store.append(inbox, message("2"), Flags::default(), 0).await.unwrap();
    next();
    store.store_flags(inbox, &[1], FlagOp::Add, &Flags::system(Flags::DELETED), None).await.unwrap();
    assert_eq!(next(), vec![inbox], "store");
    store.store_flags(inbox, &[1], FlagOp::Add, &Flags::system(Flags::DELETED), None).await.unwrap();
    assert_eq!(next(), Vec::<MailboxId>::new(), "a STORE that changes nothing is not a change");
    store.copy_messages(inbox, &[1, 2], trash).await.unwrap();
    assert_eq!(next(), vec![trash], "copy");
    store.move_messages(trash, &[2], inbox).await.unwrap();
    assert_eq!(next(), vec![inbox, trash], "move: target, then source");
    store.expunge_deleted(inbox, None).await.unwrap();
    assert_eq!(next(), vec![inbox], "expunge");
    store.expunge(inbox, &[2]).await.unwrap();
    assert_eq!(next(), vec![inbox], "POP3 deletion");
    store.deliver(Delivery { recipients: vec![a], raw: message("3"), internal_date: 0 }).await.unwrap();
    assert_eq!(next(), vec![inbox], "delivery");
    let created = store.create_mailbox(a, "x", None).await.unwrap();
    assert_eq!(next(), vec![created], "create");
    store.rename_mailbox(a, "x", "y").await.unwrap();
    assert_eq!(next(), vec![created], "rename");
    store.delete_mailbox(a, "y").await.unwrap();
    assert_eq!(next(), vec![created], "delete");
    assert!(store.delete_mailbox(a, "y").await.is_err());
    assert_eq!(next(), Vec::<MailboxId>::new(), "a failed write announces nothing");
}

conformance!(a_lagging_watcher_does_not_hold_up_writers);
async fn a_lagging_watcher_does_not_hold_up_writers(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await.id;
    let mut idle = store.watch(a);
    let writes = async {
        for i in 0..200 {
            store.append(inbox, message(&i.to_string()), Flags::default(), 0).await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), writes).await.expect("writers were blocked");
    assert!(matches!(idle.recv().await, Err(RecvError::Lagged(_))), "the watcher learns it missed changes");
    assert!(idle.recv().await.is_ok(), "and then reads on");
}
