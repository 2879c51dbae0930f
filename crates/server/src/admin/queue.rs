//! The admin API's queue handlers: what `portcullis queue list|show|retry|hold|release|remove`
//! does, for the dashboard's Queue page and for scripts, through the same `QueueStore` calls,
//! and the queue's summary (size, oldest entry, backlog by destination, held messages) that
//! the page's header and the metrics show. A change wakes the queue runner, so a retry or a
//! release is tried at once rather than at the runner's next tick.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use portcullis_discovery::percent_decode;
use portcullis_store::{MessageState, QueueId, QueuePage, QueueSelection, QueueSummary, QueuedMessage};
use serde_json::{json, Value};

use super::api::{audit, flag, ApiError, ApiResult};
use super::{Admin, Peer};
use crate::unix_time;

type Shared = State<Arc<Admin>>;

/// The value of `name` in a query string, percent-decoded; `None` when absent or empty.
fn param(query: &Option<String>, name: &str) -> ApiResult<Option<String>> {
    let Some(query) = query else { return Ok(None) };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            let decoded =
                percent_decode(value).ok_or_else(|| ApiError::bad(format!("{name}: bad percent-encoding")))?;
            return Ok(Some(decoded).filter(|v| !v.is_empty()));
        }
    }
    Ok(None)
}

fn queue_id(id: &str) -> ApiResult<QueueId> {
    id.parse::<QueueId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad(format!("\"{id}\" is not a queued message id")))
}

fn no_such(id: QueueId) -> ApiError {
    ApiError::not_found(format!("there is no queued message {id}"))
}

/// A message as the API shows it: the envelope, each recipient's state and last answer, when
/// it was queued and is next tried (Unix seconds; `null` while held).
fn message_view(m: &QueuedMessage) -> Value {
    let recipients: Vec<Value> = m
        .recipients
        .iter()
        .map(|r| {
            json!({
                "address": r.address,
                "state": r.state.as_str(),
                "last_reply": r.last_reply,
                "notify": r.notify,
                "orcpt": r.orcpt,
            })
        })
        .collect();
    json!({
        "id": m.id,
        "sender": m.sender,
        "state": m.state().as_str(),
        "held": m.held,
        "size": m.size,
        "queued_at": m.queued_at,
        "next_attempt": if m.held { None } else { Some(m.next_attempt) },
        "attempts": m.attempts,
        "ret": m.ret,
        "envid": m.envid,
        "smtputf8": m.smtputf8,
        "eight_bit": m.eight_bit,
        "requiretls": m.requiretls,
        "recipients": recipients,
    })
}

/// A page of the listing when `limit` is not given: a screenful, and a small answer.
const PAGE_DEFAULT: usize = 100;
/// The largest page: with 100,000 queued messages, no request reads them all at once.
const PAGE_MAX: usize = 1000;

/// `GET /api/v1/queue`: one page, in id order (oldest first), `next_after` naming where the
/// next one starts (absent on the last page).
pub async fn list(State(admin): Shared, RawQuery(query): RawQuery) -> ApiResult<Json<Value>> {
    let domain = param(&query, "domain")?;
    let state = match param(&query, "state")? {
        Some(s) => Some(MessageState::parse(&s).ok_or_else(|| {
            ApiError::bad(format!(
                "state: expected new, deferred or held, not \"{}\"",
                s.chars().take(40).collect::<String>()
            ))
        })?),
        None => None,
    };
    let limit = match param(&query, "limit")? {
        Some(l) => l.parse::<usize>().ok().filter(|n| (1..=PAGE_MAX).contains(n)).ok_or_else(|| {
            ApiError::bad(format!(
                "limit: expected a number from 1 to {PAGE_MAX}, not \"{}\"",
                l.chars().take(40).collect::<String>()
            ))
        })?,
        None => PAGE_DEFAULT,
    };
    let after = match param(&query, "after")? {
        Some(a) => Some(a.parse::<QueueId>().ok().filter(|id| *id >= 0).ok_or_else(|| {
            ApiError::bad(format!(
                "after: expected a queued message id, not \"{}\"",
                a.chars().take(40).collect::<String>()
            ))
        })?),
        None => None,
    };
    let page = admin.shared.queue.queued_page(QueuePage { after, limit, state, domain }).await?;
    let messages: Vec<Value> = page.messages.iter().map(message_view).collect();
    let mut answer = json!({ "messages": messages });
    if let Some(next) = page.next_after {
        answer["next_after"] = json!(next);
    }
    Ok(Json(answer))
}

pub async fn summary(State(admin): Shared) -> ApiResult<Json<Value>> {
    let queued = admin.shared.queue.queued().await?;
    Ok(Json(summary_view(&QueueSummary::of(&queued), unix_time::now_seconds())))
}

pub(crate) fn summary_view(summary: &QueueSummary, now: i64) -> Value {
    let domains: Vec<Value> = summary
        .domains
        .iter()
        .map(|d| {
            json!({
                "domain": d.domain,
                "messages": d.messages,
                "recipients": d.recipients,
                "last_error": d.last_error,
            })
        })
        .collect();
    json!({
        "messages": summary.messages,
        "held": summary.held,
        "size": summary.size,
        "oldest_queued_at": summary.oldest_queued_at,
        "oldest_age_seconds": summary.oldest_queued_at.map(|t| (now - t).max(0)),
        "domains": domains,
    })
}

pub async fn show(State(admin): Shared, Path(id): Path<String>, RawQuery(query): RawQuery) -> ApiResult<Json<Value>> {
    let id = queue_id(&id)?;
    let with_body = flag(&query, "body")?;
    let m = admin.shared.queue.queued_message(id).await?.ok_or_else(|| no_such(id))?;
    let header_end = m.content.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 2);
    let (headers, body) = match header_end {
        Some(end) => (&m.content[..end], &m.content[end + 2..]),
        None => (&m.content[..], &[][..]),
    };
    let mut view = message_view(&m);
    view["headers"] = json!(String::from_utf8_lossy(headers));
    if with_body {
        view["body"] = json!(String::from_utf8_lossy(body));
    }
    Ok(Json(view))
}

/// Makes due now every message with a recipient pending at `?domain=`, or every message.
pub async fn retry_all(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let domain = param(&query, "domain")?;
    let selection = match &domain {
        Some(d) => QueueSelection::Domain(d.clone()),
        None => QueueSelection::All,
    };
    let n = admin.shared.queue.retry_queued(selection, unix_time::now_seconds()).await?;
    admin.shared.queue_wakeup.notify_one();
    audit(&admin, &peer, "queue_retry", domain.map(|d| format!("domain {d}")).unwrap_or_else(|| "all".into()));
    Ok(Json(json!({ "made_due": n })))
}

pub async fn retry(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = queue_id(&id)?;
    let queue = &admin.shared.queue;
    if queue.retry_queued(QueueSelection::Message(id), unix_time::now_seconds()).await? == 0 {
        return Err(match queue.queued_message(id).await? {
            Some(m) if m.held => ApiError::conflict(format!("queued message {id} is held: release it first")),
            _ => no_such(id),
        });
    }
    admin.shared.queue_wakeup.notify_one();
    audit(&admin, &peer, "queue_retry", id.to_string());
    changed(&admin, id).await
}

pub async fn hold(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_held(&admin, &peer, &id, true).await
}

pub async fn release(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_held(&admin, &peer, &id, false).await
}

async fn set_held(admin: &Admin, peer: &Peer, id: &str, held: bool) -> ApiResult<Json<Value>> {
    let id = queue_id(id)?;
    if !admin.shared.queue.set_held(id, held).await? {
        return Err(no_such(id));
    }
    if !held {
        admin.shared.queue_wakeup.notify_one();
    }
    audit(admin, peer, if held { "queue_hold" } else { "queue_release" }, id.to_string());
    changed(admin, id).await
}

/// The message as it is after a change (it may have left the queue meanwhile: then 404).
async fn changed(admin: &Admin, id: QueueId) -> ApiResult<Json<Value>> {
    let m = admin.shared.queue.queued_message(id).await?.ok_or_else(|| no_such(id))?;
    Ok(Json(message_view(&m)))
}

pub async fn remove(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = queue_id(&id)?;
    if !admin.shared.queue.remove_queued(id).await? {
        return Err(no_such(id));
    }
    audit(&admin, &peer, "queue_remove", id.to_string());
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded_and_bad_escapes_refused() {
        let q = |s: &str| Some(s.to_string());
        assert_eq!(
            param(&q("domain=ex%41mple.test&state=held"), "domain").ok().flatten().as_deref(),
            Some("exAmple.test")
        );
        assert_eq!(param(&q("domain=&state=held"), "domain").ok().flatten(), None);
        assert_eq!(param(&None, "domain").ok().flatten(), None);
        assert!(param(&q("domain=%zz"), "domain").is_err());
        assert!(param(&q("domain=%ff"), "domain").is_err(), "not UTF-8");
        assert!(param(&q("domain=%4"), "domain").is_err(), "cut short");
        assert!(queue_id("0").is_err() && queue_id("x").is_err() && queue_id("-3").is_err());
        assert_eq!(queue_id("12").ok(), Some(12));
    }
}
