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

/// Everything a mailbox row says, comparable.
fn row(m: &Mailbox) -> (MailboxId, &str, Option<&str>, u32, u32, u64, u32) {
    (m.id, &m.name, m.special_use.as_deref(), m.uidvalidity, m.uidnext, m.highestmodseq, m.recent_from)
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

conformance!(a_re_select_sees_what_another_handle_did);
async fn a_re_select_sees_what_another_handle_did(db: TestDb) {
    // A re-SELECT of a mailbox this handle selected before is answered from its kept list and
    // the changes since (one statement on PostgreSQL): another handle (another node) tells it
    // nothing, so everything must come from the database.
    let store = open(&db, None).await;
    let other = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await;
    let uids = fill(&store, inbox.id, 10).await;
    let first = selected(&store, a, "INBOX").await;
    assert_eq!(list(&first), truth(&store, inbox.id).await);

    // Unchanged: the same list, the same row.
    let again = selected(&store, a, "INBOX").await;
    assert_eq!(again.messages, first.messages);
    assert_eq!(row(&again.mailbox), row(&first.mailbox));

    // A flag, a new keyword, an APPEND, an EXPUNGE, each alone and then all together.
    other.store_flags(inbox.id, &uids[2..4], FlagOp::Add, &flags(Flags::FLAGGED, &["$Other"]), None).await.unwrap();
    let s = selected(&store, a, "INBOX").await;
    assert_eq!(list(&s), truth(&store, inbox.id).await);
    assert_eq!(s.keywords, keywords(&["$Other"]), "a keyword another handle added");
    assert_eq!(row(&s.mailbox), row(&store.mailbox(a, "INBOX").await.unwrap().unwrap()));
    let appended = other.append(inbox.id, message("appended"), Flags::system(Flags::SEEN), 0).await.unwrap();
    let s = selected(&store, a, "INBOX").await;
    assert_eq!(list(&s), truth(&store, inbox.id).await);
    assert_eq!(s.messages.last_uid(), Some(appended));
    other.expunge(inbox.id, &uids[..1]).await.unwrap();
    let s = selected(&store, a, "INBOX").await;
    assert_eq!(list(&s), truth(&store, inbox.id).await);
    assert_eq!(s.messages.len(), 10);
    other.store_flags(inbox.id, &uids[5..6], FlagOp::Replace, &flags(0, &["alpha"]), None).await.unwrap();
    other.expunge(inbox.id, &uids[1..2]).await.unwrap();
    other.append(inbox.id, message("another"), Flags::default(), 0).await.unwrap();
    let s = selected(&store, a, "INBOX").await;
    assert_eq!(list(&s), truth(&store, inbox.id).await);
    assert_eq!(s.keywords, keywords(&["$Other", "alpha"]));
    assert_eq!(row(&s.mailbox), row(&store.mailbox(a, "INBOX").await.unwrap().unwrap()));

    // The name now leads to another mailbox: renamed away, another created under it.
    store.create_mailbox(a, "Work", None).await.unwrap();
    let work = mailbox(&store, a, "Work").await;
    fill(&store, work.id, 3).await;
    let old = selected(&store, a, "Work").await;
    other.rename_mailbox(a, "Work", "Older").await.unwrap();
    other.create_mailbox(a, "Work", None).await.unwrap();
    let new = selected(&store, a, "Work").await;
    assert_ne!(new.mailbox.id, old.mailbox.id);
    assert!(new.messages.is_empty());
    assert_eq!(list(&selected(&store, a, "Older").await), list(&old));
    // And back: the old name finds the old mailbox's list, brought forward.
    other.delete_mailbox(a, "Work").await.unwrap();
    other.store_flags(old.mailbox.id, &[1], FlagOp::Add, &Flags::system(Flags::SEEN), None).await.unwrap();
    other.rename_mailbox(a, "Older", "Work").await.unwrap();
    let back = selected(&store, a, "Work").await;
    assert_eq!(back.mailbox.id, old.mailbox.id);
    assert_eq!(list(&back), truth(&store, old.mailbox.id).await);
    assert_eq!(back.messages.get(0).flags, Flags::system(Flags::SEEN));
}

conformance!(status_and_changes_since_agree_with_the_messages);
async fn status_and_changes_since_agree_with_the_messages(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await;
    let filled = fill(&store, inbox.id, 6).await;
    let start = store.mailbox_status(inbox.id).await.unwrap();
    assert_eq!((start.messages, start.unseen, start.deleted, start.recent), (6, 6, 0, 6));
    store.store_flags(inbox.id, &filled[..2], FlagOp::Add, &Flags::system(Flags::SEEN), None).await.unwrap();
    store.store_flags(inbox.id, &filled[2..3], FlagOp::Add, &flags(Flags::DELETED, &["k"]), None).await.unwrap();
    store.expunge(inbox.id, &filled[5..6]).await.unwrap();
    store.claim_recent(inbox.id).await.unwrap();
    let status = store.mailbox_status(inbox.id).await.unwrap();
    assert_eq!((status.messages, status.unseen, status.deleted, status.recent), (5, 3, 1, 0));
    assert_eq!(status.highestmodseq, start.highestmodseq + 3);
    assert_eq!((status.uidnext, status.uidvalidity), (start.uidnext, start.uidvalidity));

    let changes = store.changes_since(inbox.id, start.highestmodseq).await.unwrap();
    assert_eq!(uids(&changes.changed), filled[..3].to_vec());
    assert_eq!(changes.changed[2].flags, flags(Flags::DELETED, &["k"]));
    assert_eq!(changes.expunged, vec![filled[5]]);
    assert_eq!(changes.highestmodseq, status.highestmodseq);
    assert_eq!(changes.recent_from, status.uidnext);
    let none = store.changes_since(inbox.id, status.highestmodseq).await.unwrap();
    assert!(none.changed.is_empty() && none.expunged.is_empty());
    assert_eq!(none.highestmodseq, status.highestmodseq);
}

conformance!(a_store_that_changes_nothing_moves_no_modseq);
async fn a_store_that_changes_nothing_moves_no_modseq(db: TestDb) {
    // On PostgreSQL STORE takes its MODSEQ before it knows whether anything changes (that
    // UPDATE is its mailbox lock), and rolls back or gives it back when nothing does.
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await;
    let filled = fill(&store, inbox.id, 2).await;
    store.store_flags(inbox.id, &filled, FlagOp::Add, &flags(Flags::SEEN, &["old"]), None).await.unwrap();
    let highest = store.mailbox_status(inbox.id).await.unwrap().highestmodseq;
    let selected_before = selected(&store, a, "INBOX").await;
    for (uids, op, change) in [
        (vec![filled[0]], FlagOp::Add, Flags::system(Flags::SEEN)),
        (vec![filled[1]], FlagOp::Remove, Flags::system(Flags::FLAGGED)),
        (vec![99], FlagOp::Replace, Flags::system(Flags::DRAFT)),
        (filled.clone(), FlagOp::Add, flags(0, &["OLD"])),
        (vec![99], FlagOp::Add, flags(0, &["new"])),
    ] {
        let update = store.store_flags(inbox.id, &uids, op, &change, None).await.unwrap();
        assert!(update.updated.is_empty() && update.modified.is_empty(), "{uids:?} {op:?} {change:?}");
        assert_eq!(store.mailbox_status(inbox.id).await.unwrap().highestmodseq, highest, "{uids:?} {op:?}");
    }
    let after = selected(&store, a, "INBOX").await;
    assert_eq!(after.messages, selected_before.messages);
    assert_eq!(after.mailbox.highestmodseq, highest);
    assert_eq!(after.keywords, keywords(&["new", "old"]), "a keyword joins the list even so");
    // A real change after all that takes the next MODSEQ.
    let update = store.store_flags(inbox.id, &filled[..1], FlagOp::Add, &Flags::system(Flags::FLAGGED), None).await;
    assert_eq!(update.unwrap().updated[0].modseq, highest + 1);
}
