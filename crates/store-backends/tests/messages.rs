//! Messages as IMAP uses them: APPEND, FETCH, STORE, COPY, MOVE, EXPUNGE, CONDSTORE/QRESYNC.

#[macro_use]
mod common;

use common::*;
use portcullis_store::*;

conformance!(append_and_read_back);
async fn append_and_read_back(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let drafts = mailbox(&store, a, "Drafts").await;
    let raw = message("draft");
    let uid = store
        .append(drafts.id, raw.clone(), flags(Flags::DRAFT | Flags::SEEN, &["b", "A", "a", "bad word"]), 1_600_000_000)
        .await
        .unwrap();
    assert_eq!(uid, 1);
    assert_eq!(store.append(drafts.id, message("two"), Flags::default(), 0).await.unwrap(), 2);

    let records = store.message_records(drafts.id, &[2, 1, 99, 1]).await.unwrap();
    assert_eq!(records.iter().map(|r| r.uid).collect::<Vec<_>>(), vec![1, 2], "UID order, missing skipped");
    let first = &records[0];
    assert_eq!(first.flags, flags(Flags::DRAFT | Flags::SEEN, &["A", "b"]), "keywords once each, sorted");
    assert_eq!((first.size, first.internal_date), (raw.len() as u64, 1_600_000_000));
    let header_len = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(first.header_len, header_len as u64);
    let envelope = String::from_utf8_lossy(&first.envelope);
    assert!(envelope.starts_with('(') && envelope.contains("\"draft\""), "{envelope}");
    assert!(String::from_utf8_lossy(&first.bodystructure).to_ascii_lowercase().contains("\"text\" \"plain\""));
    assert!(!first.body.is_empty());
    assert_eq!(first.sent_date, Some(1_700_000_000));
    assert_eq!(first.modseq, message_index(&store, drafts.id).await[0].modseq);

    assert_eq!(store.message_headers(drafts.id, &[1]).await.unwrap().remove(0).1, raw[..header_len].to_vec());
    assert!(store.message_headers(drafts.id, &[9]).await.unwrap().is_empty());
    assert_eq!(store.message_raw(drafts.id, 1).await.unwrap().unwrap(), raw);
    // Pieces, as FETCH streams a large body: from anywhere, cut at the end, empty past it.
    let piece = |start, len| store.message_bytes(drafts.id, 1, start, len);
    assert_eq!(piece(0, raw.len()).await.unwrap().unwrap(), raw);
    assert_eq!(piece(5, 7).await.unwrap().unwrap(), raw[5..12].to_vec());
    assert_eq!(piece(raw.len() as u64 - 3, 100).await.unwrap().unwrap(), raw[raw.len() - 3..].to_vec());
    assert_eq!(piece(raw.len() as u64 + 10, 100).await.unwrap().unwrap(), Vec::<u8>::new());
    assert_eq!(store.message_bytes(drafts.id, 9, 0, 10).await.unwrap(), None, "no such message");
    assert!(matches!(store.append(4242, raw, Flags::default(), 0).await, Err(DeliveryError::Store(_))));
}

conformance!(delivery_stores_a_summary_once_per_body);
async fn delivery_stores_a_summary_once_per_body(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let b = account(&store, "b@example.org").await;
    let raw = message("to both");
    store.deliver(Delivery { recipients: vec![a, b], raw: raw.clone(), internal_date: 5 }).await.unwrap();
    let inbox_b = mailbox(&store, b, "INBOX").await;
    let record = &store.message_records(inbox_b.id, &[1]).await.unwrap()[0];
    assert!(!record.envelope.is_empty());
    assert_eq!(store.message_headers(inbox_b.id, &[1]).await.unwrap().remove(0).1.len() as u64, record.header_len);
    assert_eq!(count(&db, "SELECT count(*) FROM summaries").await, 1);
}

conformance!(uids_are_never_reused);
async fn uids_are_never_reused(db: TestDb) {
    let inbox;
    {
        let store = open(&db, None).await;
        let a = account(&store, "a@example.org").await;
        inbox = mailbox(&store, a, "INBOX").await.id;
        fill(&store, inbox, 3).await;
        store.store_flags(inbox, &[1, 2, 3], FlagOp::Add, &Flags::system(Flags::DELETED), None).await.unwrap();
        assert_eq!(store.expunge_deleted(inbox, None).await.unwrap(), vec![1, 2, 3]);
        assert_eq!(fill(&store, inbox, 1).await, vec![4]);
        store.expunge(inbox, &[4]).await.unwrap();
    }
    let store = open(&db, None).await;
    assert_eq!(fill(&store, inbox, 1).await, vec![5], "not even after a restart with an empty mailbox");
}

conformance!(store_flags_assigns_one_new_modseq_to_what_changed);
async fn store_flags_assigns_one_new_modseq_to_what_changed(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await.id;
    fill(&store, inbox, 4).await;
    store.store_flags(inbox, &[1], FlagOp::Add, &Flags::system(Flags::SEEN), None).await.unwrap();
    let before = message_index(&store, inbox).await;
    let highest = store.mailbox_status(inbox).await.unwrap().highestmodseq;

    // Message 1 already has \Seen: it keeps its MODSEQ and is not reported.
    let update =
        store.store_flags(inbox, &[1, 2, 3, 77], FlagOp::Add, &flags(Flags::SEEN, &["Work"]), None).await.unwrap();
    assert_eq!(uids(&update.updated), vec![1, 2, 3], "message 1 gains a keyword");
    assert!(update.modified.is_empty());
    assert!(update.updated.iter().all(|m| m.modseq == highest + 1), "one MODSEQ for the command");
    let update = store.store_flags(inbox, &[1, 2], FlagOp::Add, &flags(Flags::SEEN, &["WORK"]), None).await.unwrap();
    assert!(update.updated.is_empty(), "already as requested, whatever the keyword's case");

    let after = message_index(&store, inbox).await;
    assert_eq!(after[3], before[3], "message 4 untouched");
    assert_eq!(after[0].flags, flags(Flags::SEEN, &["Work"]));
    assert_eq!(store.mailbox_status(inbox).await.unwrap().highestmodseq, highest + 1);

    // Keywords keep the mailbox's first spelling; removal matches any case.
    store.store_flags(inbox, &[4], FlagOp::Replace, &flags(Flags::ANSWERED, &["work", "$x"]), None).await.unwrap();
    let fourth = &message_index(&store, inbox).await[3];
    assert_eq!(fourth.flags, flags(Flags::ANSWERED, &["$x", "Work"]));
    assert_eq!(fourth.modseq, highest + 2);
    let update = store.store_flags(inbox, &[1, 4], FlagOp::Remove, &flags(Flags::SEEN, &["WORK"]), None).await.unwrap();
    assert_eq!(update.updated[0].flags, Flags::default());
    assert_eq!(update.updated[1].flags, flags(Flags::ANSWERED, &["$x"]));
    assert_eq!(mailbox_keywords(&store, a, "INBOX").await, keywords(&["$x", "Work"]), "the list only grows");

    // Nothing changes: no new MODSEQ at all.
    let highest = store.mailbox_status(inbox).await.unwrap().highestmodseq;
    store.store_flags(inbox, &[1], FlagOp::Remove, &Flags::system(Flags::FLAGGED), None).await.unwrap();
    assert_eq!(store.mailbox_status(inbox).await.unwrap().highestmodseq, highest);
}

conformance!(unchangedsince_leaves_newer_messages_alone);
async fn unchangedsince_leaves_newer_messages_alone(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await.id;
    fill(&store, inbox, 3).await;
    let seen = message_index(&store, inbox).await;
    // Another session changes message 2 after we looked.
    store.store_flags(inbox, &[2], FlagOp::Add, &Flags::system(Flags::FLAGGED), None).await.unwrap();

    let since = seen.iter().map(|m| m.modseq).max().unwrap();
    let update =
        store.store_flags(inbox, &[1, 2, 3], FlagOp::Add, &Flags::system(Flags::DELETED), Some(since)).await.unwrap();
    assert_eq!(update.modified, vec![2]);
    assert_eq!(uids(&update.updated), vec![1, 3]);
    let now = message_index(&store, inbox).await;
    assert!(!now[1].flags.has(Flags::DELETED));

    // UNCHANGEDSINCE 0 fails for every message (RFC 7162 §3.1.3).
    let update = store.store_flags(inbox, &[1, 3], FlagOp::Add, &Flags::system(Flags::SEEN), Some(0)).await.unwrap();
    assert_eq!((update.modified, update.updated.len()), (vec![1, 3], 0));
}

conformance!(a_store_naming_no_keyword_keeps_or_clears_keywords_and_moves_nothing_for_nothing);
/// The STORE clients send most (system flags only, which PostgreSQL does in one statement):
/// Add and Remove leave keywords alone, Replace clears them (an invalid keyword is no
/// keyword); a STORE that changes nothing leaves HIGHESTMODSEQ where it was, even when
/// UNCHANGEDSINCE is what stops it, and still reports what it stopped.
async fn a_store_naming_no_keyword_keeps_or_clears_keywords_and_moves_nothing_for_nothing(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await.id;
    fill(&store, inbox, 3).await;
    store.store_flags(inbox, &[1, 2, 3], FlagOp::Add, &flags(Flags::SEEN, &["Work"]), None).await.unwrap();
    let highest = || async { store.mailbox_status(inbox).await.unwrap().highestmodseq };
    let h = highest().await;

    let update = store.store_flags(inbox, &[2], FlagOp::Add, &Flags::system(Flags::ANSWERED), None).await.unwrap();
    let answered = flags(Flags::SEEN | Flags::ANSWERED, &["Work"]);
    assert_eq!(update.updated, [MessageIndex { uid: 2, flags: answered, modseq: h + 1 }]);
    let update = store.store_flags(inbox, &[2, 3], FlagOp::Remove, &Flags::system(Flags::SEEN), None).await.unwrap();
    let expected = [(2, flags(Flags::ANSWERED, &["Work"])), (3, flags(0, &["Work"]))];
    assert_eq!(update.updated.iter().map(|m| (m.uid, m.flags.clone())).collect::<Vec<_>>(), expected);
    assert!(update.updated.iter().all(|m| m.modseq == h + 2));

    // Replace: message 1 keeps \Seen but loses its keyword; message 3 gets \Flagged only.
    let update =
        store.store_flags(inbox, &[3, 1], FlagOp::Replace, &flags(Flags::SEEN, &["bad word"]), None).await.unwrap();
    assert_eq!(uids(&update.updated), [1, 3]);
    assert!(update.updated.iter().all(|m| m.flags == Flags::system(Flags::SEEN) && m.modseq == h + 3));
    let now = message_index(&store, inbox).await;
    assert_eq!(
        now.iter().map(|m| m.flags.clone()).collect::<Vec<_>>(),
        [Flags::system(Flags::SEEN), flags(Flags::ANSWERED, &["Work"]), Flags::system(Flags::SEEN)]
    );
    assert_eq!(highest().await, h + 3);

    // Nothing to change: already so, no such message, no flag named.
    for (uids, op, change) in [
        (&[1, 3][..], FlagOp::Replace, Flags::system(Flags::SEEN)),
        (&[1, 2, 3], FlagOp::Remove, Flags::system(Flags::DELETED | Flags::DRAFT)),
        (&[2], FlagOp::Add, flags(Flags::ANSWERED, &["bad word"])),
        (&[99], FlagOp::Add, Flags::system(Flags::SEEN)),
        (&[1, 2, 3], FlagOp::Add, Flags::default()),
    ] {
        let update = store.store_flags(inbox, uids, op, &change, None).await.unwrap();
        assert_eq!(update, FlagsUpdate::default(), "{uids:?} {op:?} {change:?}");
        assert_eq!(highest().await, h + 3, "{uids:?} {op:?} {change:?}");
    }
    // UNCHANGEDSINCE stops the one message that would change (1, changed at h + 3); 2 would
    // not change anyway: reported as modified, and still nothing moves.
    let update =
        store.store_flags(inbox, &[1, 2], FlagOp::Remove, &Flags::system(Flags::SEEN), Some(h + 2)).await.unwrap();
    assert_eq!(update, FlagsUpdate { updated: Vec::new(), modified: vec![1] });
    assert_eq!(highest().await, h + 3);
    assert_eq!(message_index(&store, inbox).await, now, "nothing written");
}

conformance!(copy_maps_uids_and_shares_bodies);
async fn copy_maps_uids_and_shares_bodies(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await.id;
    let archive = mailbox(&store, a, "Archive").await.id;
    fill(&store, inbox, 4).await;
    fill(&store, archive, 2).await;
    store.store_flags(inbox, &[3], FlagOp::Add, &flags(Flags::FLAGGED, &["Later"]), None).await.unwrap();
    let used = store.quota(a).await.unwrap().0;

    let map = store.copy_messages(inbox, &[4, 3, 1, 100], archive).await.unwrap();
    assert_eq!(map, vec![(1, 3), (3, 4), (4, 5)], "source UID order");
    let copied = store.message_records(archive, &[4]).await.unwrap();
    assert_eq!(copied[0].flags, flags(Flags::FLAGGED, &["Later"]));
    assert_eq!(copied[0].internal_date, 1_700_000_002);
    assert_eq!(mailbox_keywords(&store, a, "Archive").await, keywords(&["Later"]));
    assert_eq!(count(&db, "SELECT count(*) FROM blobs").await, 6, "bodies are shared, not copied");
    let copied_size: u64 = store.message_records(archive, &[3, 4, 5]).await.unwrap().iter().map(|r| r.size).sum();
    assert_eq!(store.quota(a).await.unwrap().0, used + copied_size, "copies count against the quota");
    assert_eq!(message_index(&store, inbox).await.len(), 4, "the source stays");
    assert!(store.copy_messages(inbox, &[99], archive).await.unwrap().is_empty());
    assert!(matches!(store.copy_messages(inbox, &[1], 4242).await, Err(DeliveryError::Store(_))));
}

conformance!(move_is_copy_and_expunge_in_one);
async fn move_is_copy_and_expunge_in_one(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await;
    let trash = mailbox(&store, a, "Trash").await.id;
    fill(&store, inbox.id, 3).await;
    let used = store.quota(a).await.unwrap().0;

    let map = store.move_messages(inbox.id, &[3, 1], trash).await.unwrap();
    assert_eq!(map, vec![(1, 1), (3, 2)]);
    assert_eq!(uids(&message_index(&store, inbox.id).await), vec![2]);
    assert_eq!(uids(&message_index(&store, trash).await), vec![1, 2]);
    let changes = store.changes_since(inbox.id, inbox.highestmodseq + 3).await.unwrap();
    assert_eq!(changes.expunged, vec![1, 3], "moved UIDs are recorded as expunged");
    assert_eq!(store.quota(a).await.unwrap().0, used);
    assert_eq!(count(&db, "SELECT count(*) FROM blobs").await, 3);
    assert!(store.move_messages(inbox.id, &[1], trash).await.unwrap().is_empty(), "already gone");
    assert!(store.move_messages(inbox.id, &[2], 4242).await.is_err());
    assert_eq!(uids(&message_index(&store, inbox.id).await), vec![2], "a failed move changes nothing");
}

conformance!(expunge_deleted_only_within_the_given_uids);
async fn expunge_deleted_only_within_the_given_uids(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await.id;
    fill(&store, inbox, 5).await;
    store.store_flags(inbox, &[2, 3, 5], FlagOp::Add, &Flags::system(Flags::DELETED), None).await.unwrap();
    assert_eq!(store.expunge_deleted(inbox, Some(&[1, 2, 5])).await.unwrap(), vec![2, 5]);
    assert_eq!(uids(&message_index(&store, inbox).await), vec![1, 3, 4]);
    assert_eq!(store.expunge_deleted(inbox, None).await.unwrap(), vec![3]);
    assert!(store.expunge_deleted(inbox, None).await.unwrap().is_empty());
    // POP3's deletion is recorded too.
    store.expunge(inbox, &[4]).await.unwrap();
    assert_eq!(store.changes_since(inbox, 0).await.unwrap().expunged, vec![2, 3, 4, 5]);
}

conformance!(changes_since_reports_flag_changes_and_expunges);
async fn changes_since_reports_flag_changes_and_expunges(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await.id;
    fill(&store, inbox, 5).await;
    let mark = store.mailbox_status(inbox).await.unwrap().highestmodseq;
    assert_eq!(
        store.changes_since(inbox, mark).await.unwrap(),
        Changes { changed: vec![], expunged: vec![], highestmodseq: mark, recent_from: 1 }
    );

    store.store_flags(inbox, &[4, 2], FlagOp::Add, &Flags::system(Flags::SEEN), None).await.unwrap();
    store.expunge(inbox, &[5]).await.unwrap();
    store.store_flags(inbox, &[1], FlagOp::Add, &Flags::system(Flags::ANSWERED), None).await.unwrap();
    store.expunge(inbox, &[1]).await.unwrap();
    let changes = store.changes_since(inbox, mark).await.unwrap();
    assert_eq!(uids(&changes.changed), vec![2, 4]);
    assert!(changes.changed.iter().all(|m| m.modseq > mark && m.flags.has(Flags::SEEN)));
    assert_eq!(changes.expunged, vec![1, 5]);
    assert_eq!(changes.highestmodseq, mark + 4);

    let later = store.changes_since(inbox, mark + 2).await.unwrap();
    assert!(later.changed.is_empty());
    assert_eq!(later.expunged, vec![1], "only what happened after that MODSEQ");
    assert_eq!(store.changes_since(inbox, 0).await.unwrap().changed.len(), 3, "everything since the start");
}

conformance!(quota_applies_to_append_and_copy);
async fn quota_applies_to_append_and_copy(db: TestDb) {
    let store = open(&db, Some(100)).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await.id;
    let archive = mailbox(&store, a, "Archive").await.id;
    store.append(inbox, vec![b'x'; 60], Flags::default(), 0).await.unwrap();
    assert!(matches!(
        store.append(inbox, vec![b'y'; 41], Flags::default(), 0).await,
        Err(DeliveryError::QuotaExceeded(who)) if who == "a@example.org"
    ));
    assert!(matches!(store.copy_messages(inbox, &[1], archive).await, Err(DeliveryError::QuotaExceeded(_))));
    assert!(message_index(&store, archive).await.is_empty());
    // Moving needs no room: the total stays the same.
    assert_eq!(store.move_messages(inbox, &[1], archive).await.unwrap(), vec![(1, 1)]);
    store.append(inbox, vec![b'z'; 40], Flags::default(), 0).await.unwrap();
    assert_eq!(store.quota(a).await.unwrap(), (100, Some(100)));
}

conformance!(a_mailbox_out_of_uids_refuses_more);
async fn a_mailbox_out_of_uids_refuses_more(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await.id;
    execute(&db, &format!("UPDATE mailboxes SET uidnext = 4294967295 WHERE id = {inbox}")).await;
    assert_eq!(store.append(inbox, message("last"), Flags::default(), 0).await.unwrap(), u32::MAX);
    assert!(store.append(inbox, message("one more"), Flags::default(), 0).await.is_err());
    assert!(store.copy_messages(inbox, &[u32::MAX], inbox).await.is_err());
    assert_eq!(uids(&message_index(&store, inbox).await), vec![u32::MAX]);
}

conformance!(a_large_body_is_read_in_pieces);
async fn a_large_body_is_read_in_pieces(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await;
    let mut raw = b"Subject: big\r\n\r\n".to_vec();
    raw.extend((0..6_000_000u32).map(|i| b'a' + (i % 26) as u8));
    let uid = store.append(inbox.id, raw.clone(), Flags::default(), 0).await.unwrap();
    let mut read = Vec::new();
    let piece = 1 << 20;
    loop {
        let got = store.message_bytes(inbox.id, uid, read.len() as u64, piece).await.unwrap().unwrap();
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= piece);
        read.extend(got);
    }
    assert!(read == raw, "the pieces make up the message");
    assert_eq!(store.message_headers(inbox.id, &[uid]).await.unwrap()[0].1, b"Subject: big\r\n\r\n");
    assert_eq!(
        store.message_bytes(inbox.id, uid, raw.len() as u64 - 2, 10).await.unwrap().unwrap(),
        raw[raw.len() - 2..]
    );
}

conformance!(whole_messages_are_read_exactly_in_the_order_asked);
/// Whole messages (SEARCH BODY, FETCH, RETR): PostgreSQL reads a large one in pieces, so sizes
/// around and across its pieces (256 KiB) must come back byte for byte, beside small ones read
/// together, a UID asked for twice answered twice and a missing one omitted.
async fn whole_messages_are_read_exactly_in_the_order_asked(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let inbox = mailbox(&store, a, "INBOX").await;
    let mut raws = Vec::new();
    for size in [10usize, 256 * 1024 - 20, 256 * 1024, 700_001, 3 << 20] {
        let mut raw = format!("Subject: {size}\r\n\r\n").into_bytes();
        raw.extend((0..size as u32).map(|i| b'a' + (i % 23) as u8));
        let uid = store.append(inbox.id, raw.clone(), Flags::default(), 0).await.unwrap();
        raws.push((uid, raw));
    }
    let uid = |i: usize| raws[i].0;
    let asked = [uid(3), uid(0), 999, uid(4), uid(3), uid(1), uid(2)];
    let got = store.message_raws(inbox.id, &asked).await.unwrap();
    let expected: Vec<&(u32, Vec<u8>)> = [3, 0, 4, 3, 1, 2].iter().map(|&i| &raws[i]).collect();
    assert_eq!(got.len(), expected.len());
    for ((got_uid, bytes), (want_uid, want)) in got.iter().zip(expected) {
        assert_eq!(got_uid, want_uid);
        assert!(bytes == want, "message {got_uid}: {} bytes read, {} stored", bytes.len(), want.len());
    }
    assert!(store.message_raw(inbox.id, uid(4)).await.unwrap().unwrap() == raws[4].1);
    assert_eq!(store.message_raw(inbox.id, 999).await.unwrap(), None);
    assert!(store.message_raws(inbox.id, &[]).await.unwrap().is_empty());
}

conformance!(delivery_stores_one_body_and_quota_refuses_everyone_or_no_one);
async fn delivery_stores_one_body_and_quota_refuses_everyone_or_no_one(db: TestDb) {
    let store = open(&db, None).await;
    let a = account(&store, "a@example.org").await;
    let b = account(&store, "b@example.org").await;
    store.set_quota("b@example.org", Quota::Bytes(100)).await.unwrap();
    let small = message("hi");
    store.deliver(Delivery { recipients: vec![b, a, b], raw: small.clone(), internal_date: 5 }).await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM blobs").await, 1, "one body for both");
    assert_eq!(count(&db, "SELECT count(*) FROM summaries").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM messages").await, 2, "one copy each, b once");

    let big = vec![b'x'; 200];
    let refused = store.deliver(Delivery { recipients: vec![a, b], raw: big, internal_date: 6 }).await;
    assert!(matches!(refused, Err(DeliveryError::QuotaExceeded(ref who)) if who == "b@example.org"), "{refused:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM messages").await, 2, "nothing for a either");
    assert_eq!(count(&db, "SELECT count(*) FROM blobs").await, 1);
    assert_eq!(mailbox(&store, a, "INBOX").await.uidnext, 2, "no UID taken");
    assert_eq!(store.quota(b).await.unwrap(), (small.len() as u64, Some(100)));

    store.deliver(Delivery { recipients: Vec::new(), raw: message("nobody"), internal_date: 7 }).await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM blobs").await, 1, "no body for no recipient");

    // The body goes with its last copy.
    store.expunge(mailbox(&store, a, "INBOX").await.id, &[1]).await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM blobs").await, 1);
    store.expunge(mailbox(&store, b, "INBOX").await.id, &[1]).await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM blobs").await, 0);
    assert_eq!(store.quota(b).await.unwrap().0, 0);
}
