//! The outbound queue on a real PostgreSQL, where several nodes share it: two store handles on
//! one database are two nodes. Claims never overlap, however the two race; a node that dies
//! holding claims (its handle dropped without releasing them, as after SIGKILL) has them
//! picked up by the other once the lease ends; a submission's local copy is stored with its
//! queued message or not at all. What both backends must do alike is the conformance suite's
//! (crates/store-backends/tests, on PostgreSQL too); here only what several nodes change.

mod common;
mod seed;

use std::collections::HashSet;

use portcullis_store::*;
use portcullis_store_postgres::PgStore;

fn queued(recipients: &[&str], queued_at: i64) -> NewQueued {
    NewQueued {
        sender: "alice@example.org".into(),
        recipients: recipients
            .iter()
            .map(|a| NewRecipient { address: a.to_string(), notify: Some("FAILURE".into()), orcpt: None })
            .collect(),
        ret: Some("HDRS".into()),
        envid: Some("env-1".into()),
        smtputf8: false,
        eight_bit: true,
        requiretls: true,
        content: seed::message("outbound"),
        queued_at,
    }
}

fn holder(node: &str, run: &str) -> LeaseHolder {
    LeaseHolder { node: node.into(), run: run.into() }
}

#[tokio::test]
async fn two_nodes_claiming_at_once_never_claim_the_same_message() {
    let Some((_, a, b)) = common::two_nodes().await else { return };
    let mut all = HashSet::new();
    for i in 0..300 {
        all.insert(a.enqueue(queued(&["bob@remote.test"], 100 + i % 7), None).await.unwrap());
    }
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    // Four runners per node, each claiming small batches until nothing is left.
    let mut runners = Vec::new();
    for (n, store) in [a.clone(), b.clone()].into_iter().enumerate() {
        for r in 0..4 {
            let store = store.clone();
            runners.push(tokio::spawn(async move {
                let me = holder(&format!("node-{n}"), &format!("run-{r}"));
                let mut mine = Vec::new();
                loop {
                    let batch = store.claim_due(&me, 1_000, 5_000, 7).await.unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    for m in &batch {
                        // Claimed with its content and recipients, as it was before the lease.
                        assert_eq!(m.content, seed::message("outbound"));
                        assert_eq!(m.recipients.len(), 1);
                        assert!(m.next_attempt < 1_000, "{}", m.next_attempt);
                    }
                    assert!(batch.windows(2).all(|w| (w[0].next_attempt, w[0].id) < (w[1].next_attempt, w[1].id)));
                    mine.extend(batch.iter().map(|m| m.id));
                }
            }));
        }
    }
    let mut claimed = Vec::new();
    let mut per_node = [0usize; 2];
    for (i, runner) in runners.into_iter().enumerate() {
        let mine = runner.await.unwrap();
        per_node[i / 4] += mine.len();
        claimed.extend(mine);
    }
    let unique: HashSet<QueueId> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "a message was claimed twice");
    assert_eq!(unique, all, "every message claimed once");
    // Both nodes took part (or the race proved nothing).
    assert!(per_node.iter().all(|&n| n > 0), "{per_node:?}");
}

#[tokio::test]
async fn a_dead_nodes_claims_are_picked_up_once_its_lease_ends() {
    let Some((url, a, b)) = common::two_nodes().await else { return };
    let first = a.enqueue(queued(&["bob@remote.test"], 100), None).await.unwrap();
    let second = a.enqueue(queued(&["carol@remote.test"], 101), None).await.unwrap();
    let claimed = a.claim_due(&holder("node-a", "run-1"), 200, 500, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), [first, second]);
    // Node A dies: its handle goes without releasing or recording anything.
    drop(a);
    // While the lease lasts, node B leaves them alone, and so does an operator's retry.
    let b_holder = holder("node-b", "run-1");
    assert!(b.claim_due(&b_holder, 499, 900, 10).await.unwrap().is_empty());
    assert_eq!(b.retry_queued(QueueSelection::All, 499).await.unwrap(), 0);
    // Node B restarting takes back only its own node's leases, never A's.
    assert_eq!(b.take_back_leases(&holder("node-b", "run-2"), 499).await.unwrap(), 0);
    // Once the lease has ended, B claims both, and its lease is recorded for it.
    let taken = b.claim_due(&b_holder, 500, 900, 10).await.unwrap();
    assert_eq!(taken.iter().map(|m| m.id).collect::<Vec<_>>(), [first, second]);
    let db = seed::connect(&url).await;
    let leases = db.query("SELECT lease_node, lease_run, next_attempt FROM queue ORDER BY id", &[]).await.unwrap();
    for row in leases {
        assert_eq!(
            (row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, i64>(2)),
            ("node-b".into(), "run-1".into(), 900)
        );
    }
    // A restart of node A (a new run) takes back what an earlier run of A still held.
    let a_again = PgStore::connect(&url, None).await.unwrap();
    let third = a_again.enqueue(queued(&["dave@remote.test"], 102), None).await.unwrap();
    a_again.claim_due(&holder("node-a", "run-1"), 300, 10_000, 10).await.unwrap();
    assert_eq!(a_again.take_back_leases(&holder("node-a", "run-2"), 300).await.unwrap(), 1);
    let due = a_again.claim_due(&holder("node-a", "run-2"), 300, 10_000, 10).await.unwrap();
    assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [third]);
}

#[tokio::test]
async fn a_submission_and_its_local_copy_are_stored_together_or_not_at_all() {
    let Some((url, a, _b)) = common::two_nodes().await else { return };
    let db = seed::connect(&url).await;
    let alice = seed::account(&db, "alice@example.org", None).await;
    let full = seed::account(&db, "full@example.org", Some(10)).await;
    let local = Delivery { recipients: vec![alice, alice], raw: seed::message("copy"), internal_date: 1_700_000_000 };
    let id = a.enqueue(queued(&["bob@remote.test", "carol@remote.test"], 100), Some(local)).await.unwrap();
    let count = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM queue").await, 1);
    assert_eq!(count("SELECT count(*) FROM queue_recipients").await, 2);
    // One copy for the recipient named twice, with its summary, counted in its usage.
    let (inbox, messages, modseq) = seed::inbox(&db, alice).await;
    assert_eq!((messages, modseq), (1, 2));
    let row = db
        .query_one(
            "SELECT m.uid, m.size, a.used_bytes, s.header_len > 0 FROM messages m
               JOIN accounts a ON a.id = $2 JOIN summaries s ON s.blob_id = m.blob_id WHERE m.mailbox_id = $1",
            &[&inbox, &alice],
        )
        .await
        .unwrap();
    let size = seed::message("copy").len() as i64;
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2), row.get(3)), (1, size, size, true));
    let listed = a.queued_message(id).await.unwrap().unwrap();
    assert_eq!(
        (listed.sender.as_str(), listed.recipients.len(), listed.eight_bit, listed.requiretls, listed.attempts),
        ("alice@example.org", 2, true, true, 0)
    );

    // A copy that does not fit: neither the copy nor the queued message is stored.
    let local = Delivery { recipients: vec![alice, full], raw: seed::message("too big"), internal_date: 0 };
    let err = a.enqueue(queued(&["bob@remote.test"], 100), Some(local)).await.unwrap_err();
    assert!(matches!(err, DeliveryError::QuotaExceeded(ref who) if who == "full@example.org"), "{err}");
    assert_eq!(count("SELECT count(*) FROM queue").await, 1);
    assert_eq!(seed::inbox(&db, alice).await.1, 1);
    assert_eq!(count("SELECT count(*) FROM blobs").await, 1);
}

#[tokio::test]
async fn an_attempt_is_recorded_with_its_notice_and_a_removed_message_takes_neither() {
    let Some((url, a, b)) = common::two_nodes().await else { return };
    let db = seed::connect(&url).await;
    let alice = seed::account(&db, "alice@example.org", None).await;
    let id = a.enqueue(queued(&["bob@remote.test", "carol@other.test"], 100), None).await.unwrap();
    a.claim_due(&holder("n", "r"), 100, 400, 10).await.unwrap();
    let notice = || Some(Delivery { recipients: vec![alice], raw: seed::message("notice"), internal_date: 0 });
    let outcome = |address: &str, state| RecipientUpdate { address: address.into(), state, reply: Some("550".into()) };
    // One recipient failed for good, one is deferred: a notice, an attempt counted, the lease gone.
    let update = AttemptUpdate {
        id,
        recipients: vec![outcome("bob@remote.test", RecipientState::Failed)],
        next_attempt: 700,
        delay_notice_sent: true,
        notice: notice(),
    };
    assert!(b.record_attempt(update).await.unwrap());
    assert_eq!(seed::inbox(&db, alice).await.1, 1);
    let m = b.queued_message(id).await.unwrap().unwrap();
    assert_eq!((m.attempts, m.next_attempt, m.delay_notice_sent), (1, 700, true));
    assert_eq!(m.recipients[0].state, RecipientState::Failed);
    assert_eq!(m.recipients[1].state, RecipientState::Pending);
    let lease: Option<String> = db.query_one("SELECT lease_node FROM queue", &[]).await.unwrap().get(0);
    assert_eq!(lease, None);

    // The operator's view, filtered in SQL: only carol's domain is still pending, in any case.
    for domain in ["other.test", "OTHER.test.", " other.test"] {
        let page = b
            .queued_page(QueuePage { after: None, limit: 10, state: None, domain: Some(domain.into()) })
            .await
            .unwrap();
        assert_eq!(page.messages.len(), 1, "{domain}");
    }
    for domain in ["remote.test", "other_test", "%"] {
        let page = b
            .queued_page(QueuePage { after: None, limit: 10, state: None, domain: Some(domain.into()) })
            .await
            .unwrap();
        assert!(page.messages.is_empty(), "{domain}");
        assert_eq!(b.retry_queued(QueueSelection::Domain(domain.into()), 500).await.unwrap(), 0, "{domain}");
    }
    let deferred = QueuePage { after: None, limit: 10, state: Some(MessageState::Deferred), domain: None };
    assert_eq!(b.queued_page(deferred.clone()).await.unwrap().messages.len(), 1);
    assert_eq!(b.retry_queued(QueueSelection::Domain("Other.Test".into()), 500).await.unwrap(), 1);
    assert_eq!(b.queued_message(id).await.unwrap().unwrap().next_attempt, 500);
    assert!(b.set_held(id, true).await.unwrap());
    assert!(b.queued_page(deferred).await.unwrap().messages.is_empty());
    let totals = b.queue_totals().await.unwrap();
    let size = seed::message("outbound").len() as u64;
    assert_eq!(totals, QueueTotals { messages: 1, held: 1, bytes: size, oldest_queued_at: Some(100) });

    // Removed by an operator while an attempt was under way: the attempt stores nothing.
    assert!(a.remove_queued(id).await.unwrap());
    let update = AttemptUpdate {
        id,
        recipients: vec![outcome("carol@other.test", RecipientState::Failed)],
        next_attempt: 0,
        delay_notice_sent: false,
        notice: notice(),
    };
    assert!(!b.record_attempt(update).await.unwrap());
    assert_eq!(seed::inbox(&db, alice).await.1, 1);
    assert_eq!(b.queue_totals().await.unwrap(), QueueTotals::default());
}
