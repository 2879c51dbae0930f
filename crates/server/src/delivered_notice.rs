//! "Delivered" notices for submission's local recipients (RFC 3461 §4.1): a recipient here
//! whose RCPT TO said NOTIFY=SUCCESS gets its copy stored, and the sender (a local account,
//! as submission makes sure) a multipart/report with `Action: delivered`, built by
//! `portcullis_queue::notice` like the queue's notices (ENVID and ORCPT echoed, the header
//! returned, never to the null sender nor about an automatic message). Stored after the
//! message is durable, best effort: a store failure here is an internal error, never a
//! refusal of the message already acknowledged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use portcullis_events::Event;
use portcullis_queue::{notice, NoticeSettings, Original, RecipientStatus, ReportAction};
use portcullis_smtp_client::{EnhancedCode, OriginalRecipient};
use portcullis_store::Delivery;

use portcullis_proto_smtp::RecipientOutcome;

use crate::smtp::lookup_recipient;
use crate::state::Shared;
use crate::unix_time;

/// Makes each notice's Message-ID unique, also for several messages of one connection in one
/// second.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// What the notice is about: the message as stored and its envelope's RFC 3461 parameters.
pub struct Delivered<'a> {
    pub sender: &'a str,
    pub envid: Option<&'a str>,
    /// Each recipient and its ORCPT's address.
    pub recipients: &'a [(String, Option<String>)],
    pub content: &'a [u8],
    /// For the notice's Message-ID and MIME boundary (a sequence number is added).
    pub unique: &'a str,
}

pub async fn send(shared: &Shared, delivered: Delivered<'_>) {
    let now = SystemTime::now();
    let statuses: Vec<RecipientStatus> = delivered
        .recipients
        .iter()
        .map(|(address, orcpt)| RecipientStatus {
            address: address.clone(),
            original: orcpt.as_deref().map(OriginalRecipient::rfc822),
            notify: Some(portcullis_smtp_client::Notify { success: true, failure: false, delay: false }),
            action: ReportAction::Delivered,
            status: EnhancedCode::new(2, 0, 0),
            remote_mta: None,
            reply: None,
            explanation: Some("stored in the recipient's mailbox".into()),
            last_attempt: Some(now),
            will_retry_until: None,
        })
        .collect();
    let settings = NoticeSettings { reporting_mta: shared.config.hostname.clone(), ..NoticeSettings::default() };
    let original = Original {
        sender: delivered.sender,
        envid: delivered.envid,
        // RFC 3461 §4.3: a success notice returns the header only, whatever RET says.
        ret: None,
        arrival: now,
        content: delivered.content,
    };
    let unique = format!("{}.{}", delivered.unique, SEQUENCE.fetch_add(1, Ordering::Relaxed));
    let Some(notice) = notice(&settings, &original, &statuses, now, &unique) else { return };
    let dropped = |why: String| {
        let what = format!("a delivery notice for {} was dropped: {why}", notice.recipient);
        shared.events.emit(Event::InternalError { conn: None, what });
    };
    // The sender is the account or one of its aliases.
    let account = match lookup_recipient(shared, &notice.recipient).await {
        RecipientOutcome::Local(account) => account,
        other => return dropped(format!("the sender's mailbox cannot take it ({other:?})")),
    };
    // From the null sender, delivered here: Return-Path: <> (RFC 5321 §4.4).
    let raw = portcullis_proto_smtp::with_return_path("", &notice.content);
    let delivery = Delivery { recipients: vec![account], raw, internal_date: unix_time::now_seconds() };
    if let Err(e) = shared.store.deliver(delivery).await {
        dropped(e.to_string());
    }
}
