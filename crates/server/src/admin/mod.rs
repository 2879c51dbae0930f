//! The admin listener (`listen.admin`): one HTTP/1.1 server for the admin API (JSON, described
//! by `crates/server/openapi.yaml`), Prometheus metrics at `/metrics`, and the dashboard at
//! `/`, whose files are compiled into the binary.
//!
//! Everything but the dashboard's static files, the OpenAPI description, the sign-in and
//! `/health` (for load balancers, `health.rs`) needs
//! `Authorization: Bearer <admin token>` (or a sign-in's session token). Loopback by default;
//! off loopback the config demands `admin.tls`, and the listener then speaks TLS with the
//! `[tls]` certificate (reloaded on SIGHUP like the mail listeners').
//!
//! Each connection is admitted by the guard like a mail client's (`guard.admit` with
//! `Listener::Admin`): firewall rules (`[firewall]` and `[firewall.admin]`), bans, and the
//! connection limits, per source and in total, shared with the mail listeners. A ban or new
//! rules close admitted connections too.

mod accounts;
mod aliases;
mod api;
pub mod client;
mod dashboard;
mod dns;
mod health;
mod queue;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use portcullis_events::{Event, Listener};
use portcullis_guard::Now;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::monitor::Monitor;
use crate::state::Shared;
pub use token::{AccountSignIn, AdminAuth, Caller, SignedIn, TotpSignIn};

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// An admin connection is closed after this long, whatever it does (the dashboard reconnects).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// A listener as the status endpoint shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerInfo {
    pub name: String,
    pub addr: SocketAddr,
    pub tls: bool,
}

pub struct Admin {
    pub shared: Arc<Shared>,
    pub monitor: Arc<Monitor>,
    pub auth: AdminAuth,
    pub listeners: Vec<ListenerInfo>,
}

/// The peer of the admin connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Starts serving on the bound admin sockets; emits a `listening` event for each.
pub fn start(
    shared: Arc<Shared>,
    monitor: Arc<Monitor>,
    auth: AdminAuth,
    mut listeners: Vec<ListenerInfo>,
    sockets: Vec<std::net::TcpListener>,
) -> Result<(), String> {
    let tls = shared.config.admin.tls;
    let mut bound = Vec::new();
    for socket in sockets {
        let socket = TcpListener::from_std(socket).map_err(|e| format!("listen.admin: {e}"))?;
        let addr = socket.local_addr().map_err(|e| format!("listen.admin: {e}"))?;
        listeners.push(ListenerInfo { name: "admin".into(), addr, tls });
        bound.push((socket, addr));
    }
    let admin = Arc::new(Admin { shared: shared.clone(), monitor, auth, listeners });
    let app = router(admin.clone());
    for (socket, addr) in bound {
        shared.events.emit(Event::AdminListening { listener: "admin", addr, tls });
        tokio::spawn(accept_loop(admin.clone(), app.clone(), socket, tls));
    }
    Ok(())
}

pub fn router(admin: Arc<Admin>) -> Router {
    let v1 = |path: &str| format!("/api/v1{path}");
    let protected = Router::new()
        .route("/metrics", get(api::metrics))
        .route(&v1("/status"), get(api::status))
        .route(&v1("/sessions"), get(api::sessions))
        .route(&v1("/sessions/{id}"), delete(api::kill_session))
        .route(&v1("/bans"), get(api::bans).post(api::add_ban))
        .route(&v1("/bans/{network}"), delete(api::remove_ban))
        .route(&v1("/alerts"), get(api::alerts))
        .route(&v1("/alerts/{id}/ack"), post(api::acknowledge))
        .route(&v1("/domains"), get(accounts::domains).post(accounts::add_domain))
        .route(&v1("/domains/{domain}"), delete(accounts::remove_domain))
        .route(&v1("/domains/{domain}/dns"), get(dns::checklist))
        .route(&v1("/accounts"), get(accounts::accounts).post(accounts::add_account))
        .route(&v1("/accounts/{address}"), get(accounts::account).delete(accounts::remove_account))
        .route(&v1("/accounts/{address}/quota"), put(accounts::set_quota))
        .route(&v1("/accounts/{address}/password"), post(accounts::reset_password))
        .route(&v1("/accounts/{address}/app-passwords"), get(accounts::app_passwords))
        .route(&v1("/accounts/{address}/app-passwords/{name}"), delete(accounts::revoke_app_password))
        .route(&v1("/accounts/{address}/aliases"), get(aliases::aliases).post(aliases::add_alias))
        .route(&v1("/accounts/{address}/aliases/{alias}"), delete(aliases::remove_alias))
        .route(&v1("/accounts/{address}/totp"), delete(accounts::reset_totp))
        .route(&v1("/accounts/{address}/totp/unlock"), post(accounts::unlock_totp))
        .route(&v1("/queue"), get(queue::list))
        .route(&v1("/queue/summary"), get(queue::summary))
        .route(&v1("/queue/retry"), post(queue::retry_all))
        .route(&v1("/queue/{id}"), get(queue::show).delete(queue::remove))
        .route(&v1("/queue/{id}/retry"), post(queue::retry))
        .route(&v1("/queue/{id}/hold"), post(queue::hold))
        .route(&v1("/queue/{id}/release"), post(queue::release))
        .route(&v1("/series"), get(api::series))
        .route_layer(middleware::from_fn_with_state(admin.clone(), require_token));
    Router::new()
        .route("/", get(dashboard::index))
        .route("/health", get(health::health))
        .route("/assets/{file}", get(dashboard::asset))
        .route(&v1("/openapi.yaml"), get(dashboard::openapi))
        .route(&v1("/signin"), post(api::sign_in))
        .merge(protected)
        .fallback(api::not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(admin)
}

/// `Authorization: Bearer <token>`, or 401. A sign-in's session token is good while its
/// account keeps the credentials it signed in with.
async fn require_token(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let accepted = match presented.and_then(|t| admin.auth.caller(t)) {
        Some(Caller::Operator) => true,
        Some(Caller::Account(signed_in)) => still_signed_in(&admin, signed_in).await,
        None => false,
    };
    if accepted {
        return next.run(request).await;
    }
    if let Some(Peer(peer)) = request.extensions().get::<Peer>().copied() {
        let path: String = request.uri().path().chars().take(200).collect();
        admin.shared.events.emit(Event::AdminAuthFailed { peer, path, account: None, reason: None });
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({"error": "this needs the admin token: send Authorization: Bearer <token>"})),
    )
        .into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"portcullis\""));
    response
}

/// Whether the account behind a session token still has the credentials it signed in with
/// (the store is asked each time: the CLI may have changed them); if not, its sessions end.
/// A store that cannot answer refuses the request.
async fn still_signed_in(admin: &Admin, signed_in: SignedIn) -> bool {
    match admin.shared.store.credentials_generations(&[signed_in.account]).await {
        Ok(current) if current == [(signed_in.account, signed_in.generation)] => true,
        Ok(_) => {
            admin.auth.end_sessions(signed_in.account);
            false
        }
        Err(_) => false,
    }
}

/// The dashboard runs only our own files: no inline script, no third party, no framing.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn accept_loop(admin: Arc<Admin>, app: Router, socket: TcpListener, tls: bool) {
    let shared = &admin.shared;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    shared.events.emit(Event::InternalError { conn: None, what: format!("accept on admin failed: {e}") });
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            // Not `stop_accepting`: during the drain `/health` must go on answering "draining",
            // so that the balancer sends new clients to other nodes.
            _ = shared.close_sessions.cancelled() => return,
        };
        // Before any TLS or HTTP work, as on the mail listeners; a refused connection is just
        // closed (no polite answer: HTTP clients retry, and nothing here is owed to them).
        let admission = match shared.guard.admit(peer.ip(), Listener::Admin, Now::current()) {
            Ok(admission) => admission,
            Err(reason) => {
                shared.events.emit(Event::ConnectionRefused { listener: Listener::Admin, peer, reason });
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone().layer(Extension(Peer(peer)));
        let admin = admin.clone();
        tokio::spawn(async move {
            let revoked = admission.revoked();
            if tls {
                let handshake = admin.shared.tls.acceptor().accept(tcp);
                if let Ok(Ok(stream)) = tokio::time::timeout(admin.shared.config.tls.handshake_timeout, handshake).await
                {
                    serve_http(app, stream, revoked).await;
                }
            } else {
                serve_http(app, tcp, revoked).await;
            }
            drop(admission);
        });
    }
}

/// Serves HTTP/1.1 on one connection until the client leaves, its lifetime is over, or its
/// admission is withdrawn (a ban, new firewall rules).
async fn serve_http<S>(app: Router, io: S, revoked: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = tokio::time::timeout(CONNECTION_LIFETIME, connection) => {}
        _ = revoked.cancelled() => {}
    }
}
