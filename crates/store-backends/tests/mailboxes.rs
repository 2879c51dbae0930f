//! Mailboxes, hierarchy, subscriptions, STATUS, quota and session slots.

#[macro_use]
mod common;

use common::*;
use portcullis_store::*;
use portcullis_store_backends::Options;

fn names(list: &[Mailbox]) -> Vec<&str> {
    list.iter().map(|m| m.name.as_str()).collect()
}

conformance!(create_builds_the_hierarchy_and_checks_names);
async fn create_builds_the_hierarchy_and_checks_names(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;

    let id = store.create_mailbox(a, "Work/2024/Q1", Some("\\Archive")).await.unwrap();
    let all = store.mailboxes(a).await.unwrap();
    for name in ["Work", "Work/2024", "Work/2024/Q1"] {
        assert!(names(&all).contains(&name), "{name} in {:?}", names(&all));
    }
    let q1 = mailbox(&store, a, "Work/2024/Q1").await;
    assert_eq!((q1.id, q1.special_use.as_deref(), q1.uidnext), (id, Some("\\Archive"), 1));
    assert_eq!(mailbox(&store, a, "Work").await.special_use, None, "created parents have no role");
    let mut validities: Vec<u32> = all.iter().map(|m| m.uidvalidity).collect();
    validities.sort();
    validities.dedup();
    assert_eq!(validities.len(), all.len(), "every mailbox has its own UIDVALIDITY");

    assert!(matches!(store.create_mailbox(a, "Work/2024", None).await, Err(MailboxError::AlreadyExists)));
    assert!(matches!(store.create_mailbox(a, "inbox", None).await, Err(MailboxError::AlreadyExists)));
    // A parent that already exists is fine; a child of INBOX is an ordinary mailbox.
    store.create_mailbox(a, "Work/2025", None).await.unwrap();
    store.create_mailbox(a, "Inbox/Receipts", None).await.unwrap();
    assert_eq!(mailbox(&store, a, "INBOX/Receipts").await.name, "INBOX/Receipts");
    assert_eq!(mailbox(&store, a, "iNbOx").await.name, "INBOX");
    store.create_mailbox(a, "Entwürfe ✉", None).await.unwrap();

    let too_long = "x".repeat(MAX_MAILBOX_NAME + 1);
    for bad in ["", "/a", "a/", "a//b", "a*", "50%", "tab\there", too_long.as_str()] {
        assert!(matches!(store.create_mailbox(a, bad, None).await, Err(MailboxError::InvalidName)), "{bad:?}");
    }
    assert!(matches!(
        store.create_mailbox(999, "x", None).await,
        Err(MailboxError::Store(StoreError::NoSuchAccount(_)))
    ));
}

conformance!(delete_refuses_inbox_and_parents_and_frees_space);
async fn delete_refuses_inbox_and_parents_and_frees_space(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    store.create_mailbox(a, "a/b", None).await.unwrap();
    let b = mailbox(&store, a, "a/b").await;
    store.append(b.id, vec![b'x'; 100], Flags::default(), 0).await.unwrap();
    store.set_subscribed(a, "a/b", true).await.unwrap();
    assert_eq!(store.quota(a).await.unwrap().0, 100);

    assert!(matches!(store.delete_mailbox(a, "Inbox").await, Err(MailboxError::InboxCannotBeDeleted)));
    assert!(matches!(store.delete_mailbox(a, "a").await, Err(MailboxError::HasChildren)));
    assert!(matches!(store.delete_mailbox(a, "nope").await, Err(MailboxError::NoSuchMailbox)));
    store.delete_mailbox(a, "a/b").await.unwrap();
    store.delete_mailbox(a, "a").await.unwrap();
    assert!(store.mailbox(a, "a/b").await.unwrap().is_none());
    assert_eq!(store.quota(a).await.unwrap().0, 0, "the messages went, with their quota");
    assert_eq!(count(&db, "SELECT count(*) FROM blobs").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM summaries").await, 0);
    assert!(store.message_records(b.id, &[1]).await.unwrap().is_empty());
    assert!(store.subscriptions(a).await.unwrap().contains(&"a/b".to_string()), "subscriptions outlive mailboxes");

    // A re-created mailbox is a new one: new UIDVALIDITY.
    store.create_mailbox(a, "a/b", None).await.unwrap();
    assert_ne!(mailbox(&store, a, "a/b").await.uidvalidity, b.uidvalidity);
}

conformance!(rename_moves_children_and_keeps_uidvalidity);
async fn rename_moves_children_and_keeps_uidvalidity(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    store.create_mailbox(a, "a/x/deep", None).await.unwrap();
    store.create_mailbox(a, "ab", None).await.unwrap();
    let id = mailbox(&store, a, "a/x").await.id;
    let uid = store.append(id, message("kept"), flags(Flags::SEEN, &[]), 0).await.unwrap();
    let before = mailbox(&store, a, "a/x").await;
    store.set_subscribed(a, "a/x", true).await.unwrap();

    assert!(matches!(store.rename_mailbox(a, "a", "ab").await, Err(MailboxError::AlreadyExists)));
    assert!(matches!(store.rename_mailbox(a, "a", "INBOX").await, Err(MailboxError::AlreadyExists)));
    assert!(matches!(store.rename_mailbox(a, "a", "a/y").await, Err(MailboxError::InvalidName)));
    assert!(matches!(store.rename_mailbox(a, "zz", "yy").await, Err(MailboxError::NoSuchMailbox)));

    store.rename_mailbox(a, "a", "p/q/b").await.unwrap();
    let all = store.mailboxes(a).await.unwrap();
    assert_eq!(
        names(&all).into_iter().filter(|n| !DEFAULT_MAILBOXES.iter().any(|(d, _)| d == n)).collect::<Vec<_>>(),
        vec!["ab", "p", "p/q", "p/q/b", "p/q/b/x", "p/q/b/x/deep"]
    );
    let after = mailbox(&store, a, "p/q/b/x").await;
    assert_eq!((after.id, after.uidvalidity, after.uidnext), (before.id, before.uidvalidity, before.uidnext));
    assert_eq!(uids(&message_index(&store, after.id).await), vec![uid]);
    let subscribed = store.subscriptions(a).await.unwrap();
    assert!(subscribed.contains(&"p/q/b/x".to_string()) && !subscribed.contains(&"a/x".to_string()));

    // A child's new name that is taken stops the whole rename.
    store.create_mailbox(a, "c/x", None).await.unwrap();
    assert!(matches!(store.rename_mailbox(a, "p/q/b", "c").await, Err(MailboxError::AlreadyExists)));
    assert!(store.mailbox(a, "p/q/b/x/deep").await.unwrap().is_some());
}

conformance!(renaming_inbox_moves_its_messages_and_leaves_it_empty);
async fn renaming_inbox_moves_its_messages_and_leaves_it_empty(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await;
    store.create_mailbox(a, "INBOX/child", None).await.unwrap();
    fill(&store, inbox.id, 3).await;
    store.expunge(inbox.id, &[1]).await.unwrap();
    store.store_flags(inbox.id, &[3], FlagOp::Add, &flags(Flags::FLAGGED, &["todo"]), None).await.unwrap();
    let used = store.quota(a).await.unwrap().0;

    store.rename_mailbox(a, "inbox", "Old/Mail").await.unwrap();
    let old = mailbox(&store, a, "Old/Mail").await;
    assert_ne!(old.uidvalidity, inbox.uidvalidity);
    let moved = message_index(&store, old.id).await;
    assert_eq!(uids(&moved), vec![1, 2], "new UIDs in the new mailbox");
    assert_eq!(moved[1].flags, flags(Flags::FLAGGED, &["todo"]));
    assert_eq!(store.message_records(old.id, &[2]).await.unwrap()[0].internal_date, 1_700_000_002);

    let inbox_after = mailbox(&store, a, "INBOX").await;
    assert_eq!(inbox_after.id, inbox.id);
    assert_eq!(inbox_after.uidvalidity, inbox.uidvalidity);
    assert!(message_index(&store, inbox.id).await.is_empty());
    assert_eq!(inbox_after.uidnext, 4, "INBOX's UIDs are not reused");
    let changes = store.changes_since(inbox.id, inbox.highestmodseq).await.unwrap();
    assert_eq!(changes.expunged, vec![1, 2, 3]);
    assert!(store.mailbox(a, "INBOX/child").await.unwrap().is_some(), "INBOX's children stay");
    assert_eq!(store.quota(a).await.unwrap().0, used, "nothing was copied twice");
}

conformance!(subscriptions_are_names);
async fn subscriptions_are_names(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let mut defaults: Vec<String> = DEFAULT_MAILBOXES.iter().map(|(n, _)| n.to_string()).collect();
    defaults.sort();
    assert_eq!(store.subscriptions(a).await.unwrap(), defaults, "new accounts see their default mailboxes");

    store.set_subscribed(a, "Not/There/Yet", true).await.unwrap();
    store.set_subscribed(a, "Not/There/Yet", true).await.unwrap();
    store.set_subscribed(a, "Junk", false).await.unwrap();
    store.set_subscribed(a, "inbox", false).await.unwrap();
    let now = store.subscriptions(a).await.unwrap();
    assert!(now.contains(&"Not/There/Yet".to_string()));
    assert!(!now.contains(&"Junk".to_string()) && !now.contains(&"INBOX".to_string()));
    assert!(matches!(store.set_subscribed(a, "a%", true).await, Err(MailboxError::InvalidName)));

    store.remove_account("a@example.org").await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM subscriptions").await, 0);
}

conformance!(status_keywords_and_quota);
async fn status_keywords_and_quota(db: TestDb) {
    let store = open(&db, Some(10_000)).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await;
    let empty = store.mailbox_status(inbox.id).await.unwrap();
    assert_eq!((empty.messages, empty.unseen, empty.deleted, empty.size, empty.uidnext), (0, 0, 0, 0, 1));
    assert_eq!(empty.uidvalidity, inbox.uidvalidity);

    store.append(inbox.id, vec![b'a'; 10], flags(Flags::SEEN, &["Work"]), 0).await.unwrap();
    store.append(inbox.id, vec![b'b'; 20], flags(Flags::DELETED, &["$Junk"]), 0).await.unwrap();
    store.append(inbox.id, vec![b'c'; 30], Flags::default(), 0).await.unwrap();
    let status = store.mailbox_status(inbox.id).await.unwrap();
    assert_eq!((status.messages, status.unseen, status.deleted, status.size, status.uidnext), (3, 2, 1, 60, 4));
    assert!(status.highestmodseq > empty.highestmodseq);
    assert_eq!(mailbox_keywords(&store, a, "INBOX").await, keywords(&["$Junk", "Work"]));
    assert_eq!(store.quota(a).await.unwrap(), (60, Some(10_000)));
    store.set_quota("a@example.org", Quota::Unlimited).await.unwrap();
    assert_eq!(store.quota(a).await.unwrap(), (60, None));
    assert!(store.mailbox_status(12345).await.is_err());
    assert!(matches!(store.quota(12345).await, Err(StoreError::NoSuchAccount(_))));
}

conformance!(session_slots_are_counted_per_account);
async fn session_slots_are_counted_per_account(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let b = account(&store, "b@example.org").await;
    let first = store.acquire_session(a, 2).await.unwrap().unwrap();
    let second = store.acquire_session(a, 2).await.unwrap().unwrap();
    assert!(store.acquire_session(a, 2).await.unwrap().is_none());
    assert!(store.acquire_session(b, 2).await.unwrap().is_some(), "other accounts are not affected");
    drop(first);
    let third = store.acquire_session(a, 2).await.unwrap();
    assert!(third.is_some());
    drop((second, third));
    assert!(store.acquire_session(a, 0).await.unwrap().is_none());
    assert!(store.acquire_session(a, 1).await.unwrap().is_some());
}

conformance!(recent_messages_are_claimed_once_across_processes);
/// RFC 3501 §2.3.2: a message is recent in the one session that first hears of it. The claim
/// is a write in the database, so it holds across processes sharing the file too.
async fn recent_messages_are_claimed_once_across_processes(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await.id;
    assert_eq!(store.claim_recent(inbox).await.unwrap(), None, "nothing to claim yet");
    fill(&store, inbox, 3).await;
    assert_eq!(store.mailbox_status(inbox).await.unwrap().recent, 3);
    let other = open(&db, None).await;
    assert_eq!(other.claim_recent(inbox).await.unwrap(), Some((1, 4)));
    assert_eq!(store.claim_recent(inbox).await.unwrap(), None, "the other process took them");
    assert_eq!(store.mailbox_status(inbox).await.unwrap().recent, 0);
    fill(&store, inbox, 2).await;
    let (first, second) = tokio::join!(store.claim_recent(inbox), other.claim_recent(inbox));
    let mut claims: Vec<_> = [first.unwrap(), second.unwrap()].into_iter().flatten().collect();
    assert_eq!(claims.pop(), Some((4, 6)));
    assert!(claims.is_empty(), "claimed twice: {claims:?}");
    // The claim is no change to the messages: no MODSEQ is spent on it.
    let before = store.mailbox_status(inbox).await.unwrap().highestmodseq;
    fill(&store, inbox, 1).await;
    store.claim_recent(inbox).await.unwrap();
    assert_eq!(store.mailbox_status(inbox).await.unwrap().highestmodseq, before + 1);
}

conformance!(mailboxes_and_subscriptions_per_account_are_bounded);
/// Issue 13, item 3: mailboxes (parents included) and subscriptions are bounded per account,
/// in the write transaction, and a refused CREATE or RENAME leaves nothing behind.
async fn mailboxes_and_subscriptions_per_account_are_bounded(db: TestDb) {
    let store = open_with(&db, None, Options { max_mailboxes: Some(9) }).await;
    let a = account(&store, "a@example.org").await;
    let b = account(&store, "b@example.org").await;
    assert_eq!(store.mailboxes(a).await.unwrap().len(), DEFAULT_MAILBOXES.len());
    // Three places left: "x/y/z" takes them all, "w" finds none.
    assert!(matches!(store.create_mailbox(a, "p/q/r/s", None).await, Err(MailboxError::TooManyMailboxes(9))));
    assert_eq!(store.mailboxes(a).await.unwrap().len(), 6, "a refused CREATE made no parents");
    store.create_mailbox(a, "x/y/z", None).await.unwrap();
    assert!(matches!(store.create_mailbox(a, "w", None).await, Err(MailboxError::TooManyMailboxes(9))));
    // Renaming within the count is fine; renaming INBOX or into new parents needs room.
    store.rename_mailbox(a, "x/y/z", "x/y/zz").await.unwrap();
    assert!(matches!(store.rename_mailbox(a, "Junk", "new/Junk").await, Err(MailboxError::TooManyMailboxes(9))));
    assert!(matches!(store.rename_mailbox(a, "INBOX", "Old").await, Err(MailboxError::TooManyMailboxes(9))));
    assert!(store.mailbox(a, "new").await.unwrap().is_none());
    store.delete_mailbox(a, "x/y/zz").await.unwrap();
    store.create_mailbox(a, "w", None).await.unwrap();
    // Another account counts its own.
    store.create_mailbox(b, "x/y/z", None).await.unwrap();

    // Subscriptions: six come with the account; three more, then none, except again.
    for name in ["s1", "s2", "Not/There"] {
        store.set_subscribed(a, name, true).await.unwrap();
    }
    assert!(matches!(store.set_subscribed(a, "s4", true).await, Err(MailboxError::TooManySubscriptions(9))));
    store.set_subscribed(a, "s1", true).await.unwrap();
    store.set_subscribed(a, "s1", false).await.unwrap();
    store.set_subscribed(a, "s4", true).await.unwrap();
    assert_eq!(store.subscriptions(a).await.unwrap().len(), 9);
}
