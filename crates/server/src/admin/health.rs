//! `GET /health`: what a load balancer asks before sending a node connections. No token (a
//! balancer's health check cannot carry one), so it says nothing but whether this node is
//! serving: `200 ok` while it is and its store answers, `503 draining` once SIGTERM began the
//! drain (the balancer moves new clients elsewhere while the sessions here finish), and
//! `503 unavailable` when the store does not answer in time.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Admin;

/// How long the store may take to answer before the node is reported unavailable; well
/// inside a balancer's usual check timeout, so that the answer comes before it gives up.
const STORE_DEADLINE: Duration = Duration::from_secs(2);

pub async fn health(State(admin): State<Arc<Admin>>) -> Response {
    let shared = &admin.shared;
    let (status, body) = if shared.stop_accepting.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        match tokio::time::timeout(STORE_DEADLINE, shared.store.domains()).await {
            Ok(Ok(_)) => (StatusCode::OK, "ok\n"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n"),
        }
    };
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}
