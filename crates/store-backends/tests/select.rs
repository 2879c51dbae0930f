//! SELECT's message lists, served from memory: never stale, whoever wrote (this store, or
//! another process on the same file such as the admin CLI).

#[macro_use]
mod common;

use std::sync::Arc;

use common::*;
use portcullis_store::*;

/// What the database says, read the slow way.
async fn truth(store: &Arc<dyn Store>, mailbox: MailboxId) -> Vec<MessageIndex> {
    message_index(store, mailbox).await
}

async fn selected(store: &Arc<dyn Store>, account: AccountId, name: &str) -> SelectedMailbox {
    store.select_mailbox(account, name).await.unwrap().unwrap()
}

fn list(selected: &SelectedMailbox) -> Vec<MessageIndex> {
    selected.messages.iter().map(|m| m.to_index()).collect()
}

conformance!(select_mailbox_follows_every_write);
async fn select_mailbox_follows_every_write(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await;
    let trash = mailbox(&store, a, "Trash").await;
    assert!(store.select_mailbox(a, "nowhere").await.unwrap().is_none());
    assert!(store.select_mailbox(a, "bad\u{0}name").await.unwrap().is_none());

    let first = selected(&store, a, "inbox").await;
    assert!(first.messages.is_empty());
    assert_eq!(first.mailbox.id, inbox.id);

    let uids = fill(&store, inbox.id, 30).await;
    let s = selected(&store, a, "INBOX").await;
    assert_eq!(list(&s), truth(&store, inbox.id).await);
    assert_eq!(s.mailbox.highestmodseq, store.mailbox(a, "INBOX").await.unwrap().unwrap().highestmodseq);
    let kept = s.messages.clone();

    // Flags and keywords, expunge, copy, move, delivery.
    store.store_flags(inbox.id, &uids[..5], FlagOp::Add, &flags(Flags::SEEN, &["$Label1"]), None).await.unwrap();
    store.store_flags(inbox.id, &uids[3..4], FlagOp::Add, &Flags::system(Flags::DELETED), None).await.unwrap();
    store.expunge_deleted(inbox.id, None).await.unwrap();
    store.copy_messages(inbox.id, &uids[10..12], inbox.id).await.unwrap();
    store.move_messages(inbox.id, &uids[20..25], trash.id).await.unwrap();
    store.expunge(inbox.id, &uids[28..29]).await.unwrap();
    store.deliver(Delivery { recipients: vec![a], raw: message("delivered"), internal_date: 0 }).await.unwrap();
    let s = selected(&store, a, "INBOX").await;
    assert_eq!(list(&s), truth(&store, inbox.id).await);
    assert_eq!(s.keywords, keywords(&["$Label1"]));
    assert_eq!(s.messages.len(), 30 - 1 + 2 - 5 - 1 + 1);
    let t = selected(&store, a, "Trash").await;
    assert_eq!(list(&t), truth(&store, trash.id).await);
    assert_eq!(t.messages.len(), 5);
    // A list handed out before is unchanged by all that.
    assert_eq!(kept.len(), 30);
    assert!(kept.iter().all(|m| m.system == 0));

    // Another process on the same file (the admin CLI): it does not tell this one anything.
    let other = open(&db, None).await;
    other.store_flags(inbox.id, &[uids[0]], FlagOp::Replace, &Flags::system(Flags::FLAGGED), None).await.unwrap();
    other.append(inbox.id, message("from the CLI"), Flags::system(Flags::DRAFT), 0).await.unwrap();
    other.expunge(inbox.id, &[uids[1]]).await.unwrap();
    let s = selected(&store, a, "INBOX").await;
    assert_eq!(list(&s), truth(&store, inbox.id).await);
    assert_eq!(s.messages.get(0).flags, Flags::system(Flags::FLAGGED));

    // Deleted and created again: same name, new UIDVALIDITY, nothing of the old list.
    store.rename_mailbox(a, "Trash", "Old trash").await.unwrap();
    assert_eq!(list(&selected(&store, a, "Old trash").await), truth(&store, trash.id).await);
    store.delete_mailbox(a, "Old trash").await.unwrap();
    assert!(store.select_mailbox(a, "Old trash").await.unwrap().is_none());
    store.create_mailbox(a, "Old trash", None).await.unwrap();
    let again = selected(&store, a, "Old trash").await;
    assert!(again.messages.is_empty());
    assert_ne!(again.mailbox.uidvalidity, t.mailbox.uidvalidity);
}

conformance!(selecting_twice_shares_the_messages);
async fn selecting_twice_shares_the_messages(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await;
    fill(&store, inbox.id, 3).await;
    let one = selected(&store, a, "INBOX").await;
    assert!(one.messages.is_shared(), "the store keeps a reference for the next SELECT");
    let two = selected(&store, a, "INBOX").await;
    assert_eq!(one.messages, two.messages);
    let mut changed = two.messages.clone();
    changed.set(0, &MessageIndex { uid: 1, flags: Flags::system(Flags::SEEN), modseq: 99 });
    assert_ne!(changed, one.messages);
    assert_eq!(list(&selected(&store, a, "INBOX").await), truth(&store, inbox.id).await);
}
