//! The outbound queue in SQLite: a submission's queued copy and its local copies are one
//! durable transaction; claiming leases a message to a node's run, and a restart on that node
//! takes its leases back; an attempt's record moves recipients on,
//! stores its notice with it, and removes the message when nobody is left pending.

#[macro_use]
mod common;

use std::sync::Arc;

use common::*;
use portcullis_store::*;

fn queued(sender: &str, recipients: &[&str], queued_at: i64) -> NewQueued {
    NewQueued {
        sender: sender.into(),
        recipients: recipients
            .iter()
            .map(|a| NewRecipient { address: a.to_string(), notify: Some("FAILURE,DELAY".into()), orcpt: None })
            .collect(),
        ret: Some("HDRS".into()),
        envid: Some("env-1".into()),
        smtputf8: false,
        eight_bit: false,
        requiretls: true,
        content: message("outbound"),
        queued_at,
    }
}

fn update(id: QueueId, outcomes: &[(&str, RecipientState)], next_attempt: i64) -> AttemptUpdate {
    AttemptUpdate {
        id,
        recipients: outcomes
            .iter()
            .map(|(a, s)| RecipientUpdate { address: a.to_string(), state: *s, reply: Some(format!("{s:?}")) })
            .collect(),
        next_attempt,
        delay_notice_sent: false,
        notice: None,
    }
}

conformance!(a_submission_is_queued_with_its_local_copy_in_one_durable_transaction);
async fn a_submission_is_queued_with_its_local_copy_in_one_durable_transaction(db: TestDb) {
    let store = open(&db, None).await;
    let alice = account(&store, "alice@example.org").await;
    let local = Delivery { recipients: vec![alice], raw: message("outbound"), internal_date: 1_700_000_000 };
    let id = store
        .enqueue(queued("alice@example.org", &["bob@remote.test", "carol@remote.test"], 100), Some(local))
        .await
        .unwrap();
    // On disk, seen through another connection: the message once, both recipients, the copy.
    assert_eq!(count(&db, "SELECT count(*) FROM queue").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM queue_recipients").await, 2);
    assert_eq!(store.messages(mailbox(&store, alice, "INBOX").await.id).await.unwrap().len(), 1);

    let listed = store.queued().await.unwrap();
    assert_eq!(listed.len(), 1);
    let m = &listed[0];
    assert_eq!(
        (m.id, m.sender.as_str(), m.queued_at, m.next_attempt, m.attempts),
        (id, "alice@example.org", 100, 100, 0)
    );
    assert_eq!((m.ret.as_deref(), m.envid.as_deref()), (Some("HDRS"), Some("env-1")));
    assert!(m.requiretls, "REQUIRETLS is kept (RFC 8689)");
    assert_eq!(m.size, message("outbound").len() as u64);
    assert!(m.content.is_empty(), "listings leave the content out");
    assert_eq!(m.recipients[1].address, "carol@remote.test");
    assert_eq!(m.recipients[1].notify.as_deref(), Some("FAILURE,DELAY"));
    assert_eq!(m.recipients[1].state, RecipientState::Pending);
}

conformance!(a_local_copy_over_quota_queues_nothing);
async fn a_local_copy_over_quota_queues_nothing(db: TestDb) {
    let store = open(&db, Some(10)).await;
    let alice = account(&store, "alice@example.org").await;
    let local = Delivery { recipients: vec![alice], raw: message("too big"), internal_date: 1 };
    let err = store.enqueue(queued("alice@example.org", &["bob@remote.test"], 1), Some(local)).await.unwrap_err();
    assert!(matches!(err, DeliveryError::QuotaExceeded(_)), "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM queue").await, 0, "nothing queued either");
}

fn holder(node: &str, run: &str) -> LeaseHolder {
    LeaseHolder { node: node.into(), run: run.into() }
}

conformance!(claiming_leases_due_messages_only);
async fn claiming_leases_due_messages_only(db: TestDb) {
    let store = open(&db, None).await;
    let me = holder("node-a", "run-1");
    let early = store.enqueue(queued("a@example.org", &["x@remote.test"], 100), None).await.unwrap();
    let late = store.enqueue(queued("a@example.org", &["y@remote.test"], 500), None).await.unwrap();
    let due = store.claim_due(&me, 200, 260, 10).await.unwrap();
    assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [early]);
    assert_eq!(due[0].content, message("outbound"), "claimed with its content");
    assert!(store.claim_due(&me, 200, 260, 10).await.unwrap().is_empty(), "leased: not claimed twice");
    // A retry leaves a leased message alone: its attempt is under way.
    assert_eq!(store.retry_queued(QueueSelection::All, 201).await.unwrap(), 1, "only the unclaimed one");
    assert_eq!(store.claim_due(&me, 201, 260, 10).await.unwrap()[0].id, late);
    // The leases run out (the runner died): due again, whoever claims them.
    let ids: Vec<_> =
        store.claim_due(&holder("node-b", "run-9"), 260, 320, 10).await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(ids, [early, late]);
    // Released untried: due when the runner said, no attempt counted, no longer leased.
    store.release_claim(early, 300).await.unwrap();
    assert_eq!(
        store.retry_queued(QueueSelection::All, 261).await.unwrap(),
        1,
        "the released one is not leased any more"
    );
    let again = store.claim_due(&me, 261, 400, 10).await.unwrap();
    assert_eq!((again.len(), again[0].id, again[0].attempts), (1, early, 0));
}

conformance!(a_restarted_runner_takes_back_its_nodes_leases_only);
async fn a_restarted_runner_takes_back_its_nodes_leases_only(db: TestDb) {
    let store = open(&db, None).await;
    let ids: Vec<QueueId> = queue_several(&store, 3).await;
    let killed = holder("node-a", "run-1");
    let other_node = holder("node-b", "run-7");
    let restarted = holder("node-a", "run-2");
    let claimed = store.claim_due(&killed, 200, 3800, 2).await.unwrap();
    assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), ids[..2]);
    assert_eq!(store.claim_due(&other_node, 200, 3800, 10).await.unwrap()[0].id, ids[2]);
    // The new run on node-a takes back the two its killed predecessor held, at once; node-b's
    // lease may belong to a live runner and stays until it runs out.
    assert_eq!(store.take_back_leases(&restarted, 201).await.unwrap(), 2);
    let due: Vec<_> = store.claim_due(&restarted, 201, 3801, 10).await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(due, ids[..2]);
    // Its own leases are not taken back by itself.
    assert_eq!(store.take_back_leases(&restarted, 202).await.unwrap(), 0);
    // An attempt recorded ends the lease: the message is not taken back after a later restart.
    store.record_attempt(update(ids[0], &[("x0@remote.test", RecipientState::Pending)], 5000)).await.unwrap();
    assert_eq!(store.take_back_leases(&holder("node-a", "run-3"), 203).await.unwrap(), 1, "only the one still held");
    assert!(store.claim_due(&restarted, 203, 4000, 10).await.unwrap().iter().all(|m| m.id == ids[1]));
}

async fn queue_several(store: &Arc<dyn Store>, n: usize) -> Vec<QueueId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let to = format!("x{i}@remote.test");
        ids.push(store.enqueue(queued("a@example.org", &[&to], 100 + i as i64), None).await.unwrap());
    }
    ids
}

conformance!(attempts_move_recipients_on_and_the_message_leaves_when_none_is_pending);
async fn attempts_move_recipients_on_and_the_message_leaves_when_none_is_pending(db: TestDb) {
    let store = open(&db, None).await;
    let alice = account(&store, "alice@example.org").await;
    let id = store.enqueue(queued("alice@example.org", &["b@remote.test", "c@remote.test"], 100), None).await.unwrap();

    let first =
        update(id, &[("b@remote.test", RecipientState::Delivered), ("c@remote.test", RecipientState::Pending)], 400);
    assert!(store.record_attempt(first).await.unwrap());
    let m = &store.queued().await.unwrap()[0];
    assert_eq!((m.attempts, m.next_attempt), (1, 400));
    assert_eq!(m.recipients[0].state, RecipientState::Delivered);
    assert_eq!(m.recipients[1].last_reply.as_deref(), Some("Pending"));

    // A delivered recipient stays delivered whatever a later record says.
    let mut last =
        update(id, &[("b@remote.test", RecipientState::Failed), ("c@remote.test", RecipientState::Failed)], 0);
    last.notice = Some(Delivery { recipients: vec![alice], raw: message("notice"), internal_date: 2 });
    assert!(store.record_attempt(last).await.unwrap());
    assert!(store.queued().await.unwrap().is_empty(), "nobody pending: out of the queue");
    assert_eq!(count(&db, "SELECT count(*) FROM queue_recipients").await, 0);
    let inbox = mailbox(&store, alice, "INBOX").await.id;
    assert_eq!(store.messages(inbox).await.unwrap().len(), 1, "the notice went to the sender with the record");

    // Removed meanwhile: nothing is stored, the notice neither.
    let gone = store.enqueue(queued("alice@example.org", &["d@remote.test"], 100), None).await.unwrap();
    assert!(store.remove_queued(gone).await.unwrap());
    assert!(!store.remove_queued(gone).await.unwrap());
    let mut late = update(gone, &[("d@remote.test", RecipientState::Failed)], 0);
    late.notice = Some(Delivery { recipients: vec![alice], raw: message("notice"), internal_date: 3 });
    assert!(!store.record_attempt(late).await.unwrap());
    assert_eq!(store.messages(inbox).await.unwrap().len(), 1);
}

conformance!(a_held_message_is_never_claimed_until_released);
async fn a_held_message_is_never_claimed_until_released(db: TestDb) {
    let store = open(&db, None).await;
    let held = store.enqueue(queued("a@example.org", &["x@remote.test"], 100), None).await.unwrap();
    let other = store.enqueue(queued("a@example.org", &["y@remote.test"], 100), None).await.unwrap();
    assert!(store.set_held(held, true).await.unwrap());
    assert!(!store.set_held(999, true).await.unwrap(), "no such message");
    assert_eq!(store.queued().await.unwrap()[0].state(), MessageState::Held);
    assert_eq!(count(&db, "SELECT held FROM queue WHERE id = 1").await, 1, "on disk");

    let ids = |due: Vec<QueuedMessage>| due.iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(ids(store.claim_due(&holder("node-a", "run-1"), 200, 300, 10).await.unwrap()), [other]);
    // A retry leaves a held message alone, whichever way it is asked.
    assert_eq!(store.retry_queued(QueueSelection::All, 400).await.unwrap(), 1);
    assert_eq!(store.retry_queued(QueueSelection::Message(held), 400).await.unwrap(), 0);
    assert_eq!(store.retry_queued(QueueSelection::Domain("remote.test".into()), 400).await.unwrap(), 1);
    assert_eq!(ids(store.claim_due(&holder("node-a", "run-1"), 400, 500, 10).await.unwrap()), [other]);
    assert!(
        store.claim_due(&holder("node-a", "run-1"), 10_000, 10_100, 10).await.unwrap().iter().all(|m| m.id != held),
        "even long after"
    );

    assert!(store.set_held(held, false).await.unwrap());
    let due = store.claim_due(&holder("node-a", "run-1"), 10_000, 10_100, 10).await.unwrap();
    assert!(ids(due).contains(&held), "released: due at its retry time, long past");
}

conformance!(a_retry_by_message_or_destination_makes_only_those_due);
async fn a_retry_by_message_or_destination_makes_only_those_due(db: TestDb) {
    let store = open(&db, None).await;
    let to_a = store.enqueue(queued("s@example.org", &["x@a.test", "y@b.test"], 100), None).await.unwrap();
    let to_b = store.enqueue(queued("s@example.org", &["z@B.Test."], 100), None).await.unwrap();
    let to_c = store.enqueue(queued("s@example.org", &["w@c.test"], 100), None).await.unwrap();
    // All three tried, and due again only at 1000; a.test's recipient of the first delivered.
    for id in [to_a, to_b, to_c] {
        assert_eq!(
            store.claim_due(&holder("node-a", "run-1"), 100, 150, 10).await.unwrap().len(),
            if id == to_a { 3 } else { 0 }
        );
    }
    let outcomes = |id, list: &[(&str, RecipientState)]| update(id, list, 1000);
    store
        .record_attempt(outcomes(
            to_a,
            &[("x@a.test", RecipientState::Delivered), ("y@b.test", RecipientState::Pending)],
        ))
        .await
        .unwrap();
    store.record_attempt(outcomes(to_b, &[("z@B.Test.", RecipientState::Pending)])).await.unwrap();
    store.record_attempt(outcomes(to_c, &[("w@c.test", RecipientState::Pending)])).await.unwrap();
    assert!(store.claim_due(&holder("node-a", "run-1"), 500, 600, 10).await.unwrap().is_empty());

    // a.test has nobody pending left: nothing to retry there.
    assert_eq!(store.retry_queued(QueueSelection::Domain("a.test".into()), 500).await.unwrap(), 0);
    // b.test, whatever its case: the first two.
    assert_eq!(store.retry_queued(QueueSelection::Domain("b.TEST".into()), 500).await.unwrap(), 2);
    let mut due: Vec<_> =
        store.claim_due(&holder("node-a", "run-1"), 500, 2000, 10).await.unwrap().iter().map(|m| m.id).collect();
    due.sort();
    assert_eq!(due, [to_a, to_b]);
    assert_eq!(store.retry_queued(QueueSelection::Message(to_c), 700).await.unwrap(), 1);
    assert_eq!(store.retry_queued(QueueSelection::Message(999), 700).await.unwrap(), 0);
    assert_eq!(store.claim_due(&holder("node-a", "run-1"), 700, 800, 10).await.unwrap()[0].id, to_c);

    // One message with its content, for `queue show`.
    let shown = store.queued_message(to_a).await.unwrap().unwrap();
    assert_eq!(shown.content, message("outbound"));
    assert_eq!((shown.recipients.len(), shown.attempts, shown.state()), (2, 1, MessageState::Deferred));
    assert!(store.queued_message(999).await.unwrap().is_none());
}

conformance!(the_summary_counts_messages_bytes_age_and_the_backlog_by_domain);
async fn the_summary_counts_messages_bytes_age_and_the_backlog_by_domain(db: TestDb) {
    let store = open(&db, None).await;
    assert_eq!(
        QueueSummary::of(&store.queued().await.unwrap()),
        QueueSummary { messages: 0, held: 0, size: 0, oldest_queued_at: None, domains: vec![] }
    );
    assert_eq!(store.queue_totals().await.unwrap(), QueueTotals::default());
    let first = store.enqueue(queued("s@example.org", &["x@a.test", "y@b.test", "v@b.test"], 300), None).await.unwrap();
    let second = store.enqueue(queued("s@example.org", &["z@b.test"], 200), None).await.unwrap();
    store.claim_due(&holder("node-a", "run-1"), 300, 400, 10).await.unwrap();
    let mut one = update(first, &[("x@a.test", RecipientState::Delivered), ("y@b.test", RecipientState::Pending)], 900);
    one.recipients[1].reply = Some("451 first".into());
    store.record_attempt(one).await.unwrap();
    let mut two = update(second, &[("z@b.test", RecipientState::Pending)], 900);
    two.recipients[0].reply = Some("421 second".into());
    store.record_attempt(two).await.unwrap();
    store.set_held(second, true).await.unwrap();

    let summary = QueueSummary::of(&store.queued().await.unwrap());
    assert_eq!((summary.messages, summary.held), (2, 1));
    let totals = store.queue_totals().await.unwrap();
    let (messages, held, bytes) = (summary.messages, summary.held, summary.size);
    assert_eq!(totals, QueueTotals { messages, held, bytes, oldest_queued_at: Some(200) }, "the metrics' query agrees");
    assert_eq!(summary.size, 2 * message("outbound").len() as u64);
    assert_eq!(summary.oldest_queued_at, Some(200));
    assert_eq!(
        summary.domains,
        [DomainBacklog { domain: "b.test".into(), messages: 2, recipients: 3, last_error: Some("421 second".into()) }],
        "a.test is delivered; b.test's last answer is the newest message's"
    );
}

conformance!(the_listing_pages_in_id_order_with_its_filters_in_the_query);
async fn the_listing_pages_in_id_order_with_its_filters_in_the_query(db: TestDb) {
    let store = open(&db, None).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let to = if n % 2 == 0 { "x@Far.Test." } else { "y@near_by.test" };
        ids.push(store.enqueue(queued("a@example.org", &[to], 100 + n), None).await.unwrap());
    }
    assert!(store.set_held(ids[4], true).await.unwrap());
    let page = |after, limit, state, domain: Option<&str>| QueuePage {
        after,
        limit,
        state,
        domain: domain.map(str::to_string),
    };
    let ids_of = |p: &QueuedPage| p.messages.iter().map(|m| m.id).collect::<Vec<_>>();

    let first = store.queued_page(page(None, 2, None, None)).await.unwrap();
    assert_eq!((ids_of(&first), first.next_after), (ids[..2].to_vec(), Some(ids[1])));
    assert_eq!(first.messages[0].recipients.len(), 1, "recipients come with the page");
    let second = store.queued_page(page(first.next_after, 2, None, None)).await.unwrap();
    assert_eq!((ids_of(&second), second.next_after), (ids[2..4].to_vec(), Some(ids[3])));
    let last = store.queued_page(page(second.next_after, 2, None, None)).await.unwrap();
    assert_eq!((ids_of(&last), last.next_after), (vec![ids[4]], None), "a short page is the last");
    let exact = store.queued_page(page(None, 5, None, None)).await.unwrap();
    assert_eq!(exact.next_after, None, "a full page with nothing after it is the last too");

    // The domain as domain_of compares it (case and a final dot aside); `_` is no wildcard.
    let far = store.queued_page(page(None, 10, None, Some("far.TEST"))).await.unwrap();
    assert_eq!(ids_of(&far), [ids[0], ids[2], ids[4]]);
    let near = store.queued_page(page(None, 10, None, Some("near_by.test"))).await.unwrap();
    assert_eq!(ids_of(&near), [ids[1], ids[3]]);
    assert!(store.queued_page(page(None, 10, None, Some("nearxby.test"))).await.unwrap().messages.is_empty());
    let held = store.queued_page(page(None, 10, Some(MessageState::Held), Some("far.test"))).await.unwrap();
    assert_eq!(ids_of(&held), [ids[4]]);
    let new = store.queued_page(page(None, 10, Some(MessageState::New), None)).await.unwrap();
    assert_eq!(ids_of(&new), ids[..4].to_vec());
    assert!(store.queued_page(page(None, 10, Some(MessageState::Deferred), None)).await.unwrap().messages.is_empty());
}
