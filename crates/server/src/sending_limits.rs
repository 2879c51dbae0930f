//! The hourly sending limits between the store and the guard (issue 17): the store counts each
//! message for every node at once, the guard decides from that count, and a refused message is
//! taken back. Three nodes behind a balancer so give an account its hourly limit once, not
//! three times. Counting first and deciding after costs one round trip per message, and lets
//! no node miss another's message (the store orders additions to one account's minute); at
//! worst a message another node is about to take back makes this one wait for the next
//! minute's room, which errs on the side of the limit.

use portcullis_events::{AlertKind, Event, Severity};
use portcullis_guard::{Now, SendingLimit, Sent};

use crate::sessions::Who;
use crate::state::Shared;

/// Whether `account` may send a message to `recipients` more; past its hourly limits the
/// guard says no, and its first refusal raises an alert (a compromised account, likely). When
/// the store cannot count it, the guard refuses for now ([`SendingLimit::Uncounted`]).
pub(crate) async fn check(
    shared: &Shared,
    who: Who,
    account_id: i64,
    account: &str,
    recipients: u32,
) -> Result<(), SendingLimit> {
    let now = Now::current();
    let buckets = shared.guard.buckets(now);
    let counted = shared.store.add_sent(account_id, buckets.minute, 1, i64::from(recipients), buckets.sent_since).await;
    let before = match &counted {
        Ok(totals) => Some(Sent {
            messages: clamp(totals.messages - 1),
            recipients: clamp(totals.recipients - i64::from(recipients)),
        }),
        Err(e) => {
            let what = format!("counting a message for the sending limits failed: {e}");
            shared.events.emit(Event::InternalError { conn: Some(who.conn), what });
            None
        }
    };
    let Err(hit) = shared.guard.message(account_id, recipients, before, now) else { return Ok(()) };
    if counted.is_ok() {
        // Not sent, so not counted: the account's hour is what it sent. Should this fail, the
        // message stays counted, which errs on the side of the limit.
        let taken_back =
            shared.store.add_sent(account_id, buckets.minute, -1, -i64::from(recipients), buckets.sent_since).await;
        if let Err(e) = taken_back {
            let what = format!("taking back a refused message's count failed: {e}");
            shared.events.emit(Event::InternalError { conn: Some(who.conn), what });
        }
    }
    let reached = match hit.limit {
        SendingLimit::Messages(n) => Some(("messages", n)),
        SendingLimit::Recipients(n) => Some(("recipients", n)),
        SendingLimit::Uncounted => None,
    };
    if let (true, Some((what, limit))) = (hit.first, reached) {
        let message =
            format!("{account} reached its sending limit of {limit} {what} per hour (from {})", who.peer.ip());
        let (kind, severity) = (AlertKind::SendingLimit, Severity::Critical);
        shared.alert(kind, severity, Some(who), Some(account), limit as f64, message);
    }
    Err(hit.limit)
}

fn clamp(count: i64) -> u32 {
    count.clamp(0, u32::MAX as i64) as u32
}
