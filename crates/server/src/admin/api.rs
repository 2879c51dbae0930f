//! The admin API's handlers: JSON in and out, errors as `{"error": "..."}` with a status that
//! says what kind of error it is. Every change is reported as an `admin_action` event. The
//! domain and account handlers are in `accounts.rs`; what they share with these is here.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use portcullis_events::{BanOrigin, Event};
use portcullis_guard::{Ban, Now};
use portcullis_store::{StoreError, StoredBan};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Admin, Peer};
use crate::session_kill::{self, KillOutcome};
use crate::session_list;
use crate::{bans, unix_time};

type Shared = State<Arc<Admin>>;

pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
    pub(super) fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub(super) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub(super) fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
    pub(super) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let message = e.to_string();
        match e {
            StoreError::NoSuchDomain(_) | StoreError::NoSuchAccount(_) | StoreError::NoSuchAlias(_) => {
                ApiError::not_found(message)
            }
            StoreError::DomainExists(_)
            | StoreError::AliasExists(_)
            | StoreError::DomainInUse(_)
            | StoreError::AccountExists(_)
            | StoreError::AppPasswordExists(_)
            | StoreError::DkimSelectorExists(_) => ApiError::conflict(message),
            StoreError::InvalidAddress(_) | StoreError::InvalidDomain(_) => ApiError::bad(message),
            #[allow(unreachable_patterns)]
            _ => ApiError::internal(message),
        }
    }
}

pub(super) type ApiResult<T> = Result<T, ApiError>;

/// A JSON request body whose errors answer in the API's error format. Only a body that says
/// it is JSON (`Content-Type: application/json`) is read, 415 otherwise: an HTML form on any
/// web page can post `text/plain` or form data across origins without asking, but not JSON.
pub struct Body<T>(pub T);

/// Whether the request says its body is `application/json` (parameters such as a charset
/// allowed).
fn is_json(request: &Request) -> bool {
    let Some(value) = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = value.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&request) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON, with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|e| ApiError::bad(e.body_text()))?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
    }
}

pub(super) fn flag(query: &Option<String>, name: &str) -> ApiResult<bool> {
    let Some(query) = query else { return Ok(false) };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        if key == name {
            return match value {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                other => Err(ApiError::bad(format!("{name}: expected true or false, not \"{other}\""))),
            };
        }
    }
    Ok(false)
}

pub(super) fn audit(admin: &Admin, peer: &Peer, action: &'static str, target: impl Into<String>) {
    admin.shared.events.emit(Event::AdminAction { peer: peer.0, action, target: target.into() });
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such page")
}

pub async fn metrics(State(admin): Shared) -> Response {
    let queue = match admin.shared.queue.queue_totals().await {
        Ok(totals) => Some(totals),
        Err(e) => {
            let what = format!("reading the queue for the metrics failed: {e}");
            admin.shared.events.emit(Event::InternalError { conn: None, what });
            None
        }
    };
    let text = admin.monitor.metrics_text(admin.shared.guard.bans().len(), queue);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

pub async fn status(State(admin): Shared) -> Json<Value> {
    let shared = &admin.shared;
    let mut by_listener = BTreeMap::new();
    for &listener in admin.monitor.listeners() {
        by_listener.insert(listener.as_str(), shared.sessions.count(listener));
    }
    let started_ms = admin.monitor.started_ms();
    let now_ms = unix_time::now_millis();
    let recent: Vec<_> = admin.monitor.alerts(false).into_iter().take(5).collect();
    let mut status = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "hostname": shared.config.hostname,
        "started_ms": started_ms,
        "uptime_seconds": now_ms.saturating_sub(started_ms) / 1000,
        "listeners": admin.listeners,
        "sessions": { "total": by_listener.values().sum::<usize>(), "by_listener": by_listener },
        "bans": { "active": shared.guard.bans().len() },
        "alerts": { "unacknowledged": admin.monitor.unacknowledged(), "recent": recent },
        "inbound": admin.monitor.inbound(),
    });
    if shared.config.tls.acme.is_some() {
        status["acme"] = json!(admin.monitor.acme());
    }
    Json(status)
}

/// The live sessions of every node sharing the store (see `session_list`), or with
/// `?node=local` of this node only.
pub async fn sessions(State(admin): Shared, RawQuery(query): RawQuery) -> ApiResult<Json<Value>> {
    let mut only_local = false;
    for pair in query.as_deref().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("node", "local")) => only_local = true,
            Some(("node", other)) => {
                return Err(ApiError::bad(format!("node: only \"local\" is known, not \"{other}\"")))
            }
            _ => {} // Other parameters are ignored, as elsewhere in the API.
        }
    }
    let list =
        if only_local { session_list::local(&admin.shared) } else { session_list::everywhere(&admin.shared).await? };
    Ok(Json(json!(list)))
}

/// Closes a session: `ID` of this node, or `NODE:ID` of any node sharing the store. 204 when it
/// was closed, 404 when its node has no such session, 202 when another node was signalled but
/// did not answer within `session_kill::ANSWER_WAIT`.
pub async fn kill_session(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let (node, id) = session_kill::parse_session_name(&name)
        .ok_or_else(|| ApiError::bad(format!("\"{name}\" is not a session id")))?;
    let node = node.unwrap_or(admin.shared.store.node()).to_string();
    let target = session_kill::session_name(&node, id);
    match session_kill::kill(&admin.shared, &node, id).await? {
        KillOutcome::Killed => {
            audit(&admin, &peer, "session_kill", target);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        KillOutcome::NoSuchSession => Err(ApiError::not_found(format!("there is no live session {name}"))),
        KillOutcome::Signalled => {
            audit(&admin, &peer, "session_kill", target.clone());
            let body = json!({ "status": "signalled", "session": target });
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
    }
}

#[derive(Serialize)]
struct BanView {
    network: String,
    /// Unix seconds; null for a permanent ban.
    until: Option<i64>,
    reason: String,
    origin: &'static str,
    offence: u32,
    created: i64,
    active: bool,
}

fn ban_view(b: &StoredBan, now: i64) -> BanView {
    BanView {
        network: b.network.clone(),
        until: b.until,
        reason: b.reason.clone(),
        origin: if b.manual { "admin" } else { "auto" },
        offence: b.offence,
        created: b.created,
        active: b.until.is_none_or(|u| u > now),
    }
}

pub async fn bans(State(admin): Shared, RawQuery(query): RawQuery) -> ApiResult<Json<Value>> {
    let all = flag(&query, "all")?;
    let now = unix_time::now_seconds();
    let stored = admin.shared.store.bans().await?;
    let list: Vec<BanView> = stored.iter().map(|b| ban_view(b, now)).filter(|b| all || b.active).collect();
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBan {
    network: String,
    /// "1h", "7d"; absent: permanent.
    duration: Option<String>,
    reason: Option<String>,
}

pub async fn add_ban(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Body(new): Body<NewBan>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let shared = &admin.shared;
    let network = portcullis_config::parse_network(&new.network).map_err(ApiError::bad)?;
    if !shared.guard.may_ban(&network) {
        return Err(ApiError::conflict(format!(
            "{network} overlaps firewall.trusted_networks, which are never banned; remove it from there first"
        )));
    }
    let now = unix_time::now_seconds();
    let until = match &new.duration {
        Some(d) => Some(
            now + portcullis_config::parse_duration(d).map_err(|e| ApiError::bad(format!("duration: {e}")))?.as_secs()
                as i64,
        ),
        None => None,
    };
    let ban = Ban::manual(network, until.map(unix_time::from_seconds), new.reason.as_deref().unwrap_or(""));
    let stored = bans::to_stored(&ban);
    shared.store.put_ban(stored.clone()).await?;
    shared.guard.add_ban(ban.clone(), Now::current());
    bans::announce(shared, &ban);
    audit(&admin, &peer, "ban_add", stored.network.clone());
    Ok((StatusCode::CREATED, Json(json!(ban_view(&stored, now)))))
}

pub async fn remove_ban(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(network): Path<String>,
) -> ApiResult<StatusCode> {
    let shared = &admin.shared;
    let network = portcullis_config::parse_network(&network).map_err(ApiError::bad)?;
    if !shared.store.delete_ban(&network.to_string()).await? {
        return Err(ApiError::not_found(format!("there is no ban on exactly {network}")));
    }
    shared.guard.remove_ban(&network);
    shared.events.emit(Event::BanRemoved { network: network.to_string(), origin: BanOrigin::Admin });
    audit(&admin, &peer, "ban_remove", network.to_string());
    Ok(StatusCode::NO_CONTENT)
}

pub async fn alerts(State(admin): Shared, RawQuery(query): RawQuery) -> ApiResult<Json<Value>> {
    let unacknowledged = flag(&query, "unacknowledged")?;
    Ok(Json(json!(admin.monitor.alerts(unacknowledged))))
}

pub async fn acknowledge(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id: u64 = id.parse().map_err(|_| ApiError::bad(format!("\"{id}\" is not an alert id")))?;
    let alert = admin.monitor.acknowledge(id).ok_or_else(|| ApiError::not_found(format!("there is no alert {id}")))?;
    audit(&admin, &peer, "alert_ack", id.to_string());
    Ok(Json(json!(alert)))
}

pub async fn series(State(admin): Shared) -> Json<Value> {
    let snapshot = admin.monitor.series();
    Json(json!({
        "bucket_ms": snapshot.bucket_ms,
        "start_ms": snapshot.start_ms,
        "points": snapshot.points,
        "deviations": admin.monitor.deviations,
        "floor": admin.monitor.floor,
        "lines": snapshot.lines,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    account: String,
    password: String,
    totp: String,
}

/// An administrator account's password and TOTP code for a session token (see
/// [`super::token::AccountSignIn`]).
pub async fn sign_in(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Body(request): Body<SignIn>,
) -> ApiResult<Json<Value>> {
    let Some(verifier) = admin.auth.account_sign_in() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "no account may sign in here: list administrators (with TOTP on) in admin.accounts, or use the admin token",
        ));
    };
    // The refusal is logged (admin_auth_failed, with its reason) where it is decided.
    let Some(signed_in) = verifier.verify(&request.account, &request.password, &request.totp, peer.0).await else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong account, password or code"));
    };
    let (token, lifetime) = admin.auth.mint_session(signed_in);
    audit(&admin, &peer, "sign_in", request.account);
    Ok(Json(json!({ "token": token, "expires_in": lifetime.as_secs() })))
}
