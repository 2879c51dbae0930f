//! The HTTPS listener (`listen.https`, port 443): the documents mail clients set themselves up
//! from (Thunderbird's autoconfig, Microsoft's POX autodiscover, Apple profiles), the MTA-STS
//! policy, and the ACME TLS-ALPN-01 answers (RFC 8737). What is served is decided by
//! `Site::respond` (crates/discovery); this file is the thin, bounded loop around it.
//!
//! Each connection is admitted by the guard first, like every other listener (firewall rules,
//! bans, connection limits per source and in total), before any TLS work. Then:
//! - a client that speaks plain HTTP to this TLS port gets one `400` in plain HTTP saying so;
//! - a handshake that negotiated `acme-tls/1` is the CA's validator: it has seen the challenge
//!   certificate, and the connection is closed (RFC 8737 §3: no application data);
//! - everything else is HTTP/1.1 through hyper, the same server the admin listener runs, with
//!   its limits set: the request head ([`MAX_HEAD`], answered `431`), the body
//!   (`portcullis_discovery::MAX_BODY`, answered `413`), the time to send a head
//!   ([`HEADER_TIMEOUT`], then closed), requests per connection ([`MAX_REQUESTS`]) and the
//!   connection's whole life ([`CONNECTION_LIFETIME`]).
//!
//! Every answered request is one `http_request` event.
//!
//! The port-80 listener (`listen.http`, for ACME HTTP-01 only) is the same loop without TLS:
//! `Site::respond` with `tls: false` serves nothing there but `/.well-known/acme-challenge/`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper_util::rt::{TokioIo, TokioTimer};
use portcullis_acme::{https_alpn_protocols, is_challenge_connection, ChallengeResolver, Challenges};
use portcullis_discovery::{server_facts, Request, Response, ServerFacts, Site, MAX_BODY};
use portcullis_events::{Event, Listener};
use portcullis_guard::Now;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::admin::ListenerInfo;
use crate::state::Shared;
use crate::tls;

/// The largest request line and headers read; a larger head is answered `431`.
pub const MAX_HEAD: usize = 16 * 1024;
/// Header fields per request (a client's autoconfig request has a dozen).
const MAX_HEADERS: usize = 64;
/// How long a client may take to send a request's head; then the connection is closed
/// (a slowloris holds nothing for long).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests on one connection; the last is answered with `Connection: close`.
pub const MAX_REQUESTS: u32 = 100;
/// A connection is closed after this long, whatever it does.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// What of a request the event keeps.
const LOGGED_PATH: usize = 200;
const LOGGED_HOST: usize = 255;
/// How much of a plain-HTTP request is read to say what it asked for.
const PLAIN_PEEK: usize = 1024;

/// One listener of this file: the HTTPS one, or the port-80 one (`acceptor` `None`).
struct WebListener {
    shared: Arc<Shared>,
    site: Site,
    listener: Listener,
    /// `None` on the port-80 listener.
    acceptor: Option<TlsAcceptor>,
}

/// Starts serving on the bound `listen.https` sockets; emits a `listening` event for each and
/// returns them for the admin API's status. `mail` are the mail listeners as bound: the
/// documents give their ports.
pub fn start(
    shared: &Arc<Shared>,
    challenges: Arc<Challenges>,
    sockets: Vec<std::net::TcpListener>,
    mail: &[ListenerInfo],
) -> Result<Vec<ListenerInfo>, String> {
    let mut listening = Vec::new();
    let mut bound = Vec::new();
    for socket in sockets {
        let socket = TcpListener::from_std(socket).map_err(|e| format!("listen.https: {e}"))?;
        let addr = socket.local_addr().map_err(|e| format!("listen.https: {e}"))?;
        listening.push(ListenerInfo { name: Listener::Https.as_str().into(), addr, tls: true });
        bound.push((socket, addr));
    }
    // The CA's validator gets the challenge certificate; everyone else the listeners' choice.
    let resolver = Arc::new(ChallengeResolver::new(challenges, shared.tls.sni().clone()));
    let mut config = tls::server_config(resolver, shared.config.tls.min_version)?;
    config.alpn_protocols = https_alpn_protocols();
    let every: Vec<ListenerInfo> = mail.iter().chain(&listening).cloned().collect();
    let https = Arc::new(WebListener {
        shared: shared.clone(),
        site: Site::new(facts(&shared.config, &every)),
        listener: Listener::Https,
        acceptor: Some(TlsAcceptor::from(Arc::new(config))),
    });
    for (socket, addr) in bound {
        shared.events.emit(Event::Listening { listener: Listener::Https, addr });
        shared.tasks.spawn(accept_loop(https.clone(), socket));
    }
    Ok(listening)
}

/// Starts the port-80 listener (`listen.http`): ACME HTTP-01 answers from `challenges`, a 404
/// for everything else.
pub fn start_http(
    shared: &Arc<Shared>,
    challenges: Arc<Challenges>,
    sockets: Vec<std::net::TcpListener>,
) -> Result<Vec<ListenerInfo>, String> {
    let site = Site::new(server_facts(&shared.config)).with_http01(Arc::new(move |token| challenges.http01(token)));
    let http = Arc::new(WebListener { shared: shared.clone(), site, listener: Listener::Http, acceptor: None });
    let mut listening = Vec::new();
    for socket in sockets {
        let socket = TcpListener::from_std(socket).map_err(|e| format!("listen.http: {e}"))?;
        let addr = socket.local_addr().map_err(|e| format!("listen.http: {e}"))?;
        listening.push(ListenerInfo { name: Listener::Http.as_str().into(), addr, tls: false });
        shared.events.emit(Event::Listening { listener: Listener::Http, addr });
        shared.tasks.spawn(accept_loop(http.clone(), socket));
    }
    Ok(listening)
}

/// The config's facts, with the ports the listeners really bound (a port 0 in the config is
/// one the system chose).
fn facts(config: &portcullis_config::Config, bound: &[ListenerInfo]) -> ServerFacts {
    let mut facts = server_facts(config);
    let port = |listener: Listener| bound.iter().find(|l| l.name == listener.as_str()).map(|l| l.addr.port());
    let ports = &mut facts.ports;
    for (slot, listener) in [
        (&mut ports.submissions, Listener::Submissions),
        (&mut ports.submission, Listener::Submission),
        (&mut ports.imaps, Listener::Imaps),
        (&mut ports.pop3s, Listener::Pop3s),
        (&mut ports.https, Listener::Https),
    ] {
        if let Some(bound) = port(listener) {
            *slot = Some(bound);
        }
    }
    if let Some(smtp) = Listener::named("smtp").and_then(port) {
        ports.smtp = Some(smtp);
    }
    facts
}

async fn accept_loop(https: Arc<WebListener>, socket: TcpListener) {
    let shared = &https.shared;
    let listener = https.listener;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    shared.events.emit(Event::InternalError { conn: None, what: format!("accept on {listener} failed: {e}") });
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shared.stop_accepting.cancelled() => return,
        };
        // Before any TLS or HTTP work; a refused connection is just closed (an HTTP client
        // retries, and a polite answer would cost a handshake).
        let admission = match shared.guard.admit(peer.ip(), listener, Now::current()) {
            Ok(admission) => admission,
            Err(reason) => {
                shared.events.emit(Event::ConnectionRefused { listener, peer, reason });
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let https = https.clone();
        shared.tasks.spawn(async move {
            let revoked = admission.revoked();
            https.serve(tcp, peer, revoked).await;
            drop(admission);
        });
    }
}

impl WebListener {
    /// One connection, until it ends, its lifetime is over, its admission is withdrawn (a
    /// ban, new firewall rules) or the server closes its sessions.
    async fn serve(self: &Arc<Self>, tcp: TcpStream, peer: SocketAddr, revoked: CancellationToken) {
        let work = async {
            let Some(acceptor) = &self.acceptor else {
                return self.serve_http(tcp, peer).await;
            };
            let handshake_timeout = self.shared.config.tls.handshake_timeout;
            // RFC 8446 §5.1: a TLS connection opens with a handshake record (content type 22).
            let mut first = [0u8; 1];
            match tokio::time::timeout(handshake_timeout, tcp.peek(&mut first)).await {
                Ok(Ok(1)) if first[0] == 22 => {}
                Ok(Ok(1)) => return self.refuse_plain_http(tcp, peer).await,
                _ => return,
            }
            let Ok(Ok(mut stream)) = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await else {
                return;
            };
            if is_challenge_connection(stream.get_ref().1.alpn_protocol()) {
                let _ = stream.shutdown().await;
                return;
            }
            self.serve_http(stream, peer).await;
        };
        tokio::select! {
            _ = tokio::time::timeout(CONNECTION_LIFETIME, work) => {}
            _ = revoked.cancelled() => {}
            _ = self.shared.close_sessions.cancelled() => {}
        }
    }

    /// Plain HTTP on the TLS port: one `400` that says to use https, then close. Nothing is
    /// served without TLS, so nothing can be altered on the way.
    async fn refuse_plain_http(&self, mut tcp: TcpStream, peer: SocketAddr) {
        let mut head = vec![0u8; PLAIN_PEEK];
        let read = tokio::time::timeout(HEADER_TIMEOUT, tcp.read(&mut head)).await;
        let head = match read {
            Ok(Ok(n)) => String::from_utf8_lossy(&head[..n]).into_owned(),
            _ => String::new(),
        };
        let mut words = head.lines().next().unwrap_or("").split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let body = "This port speaks HTTPS only: ask again with https://\n";
        let response = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tcp.write_all(response.as_bytes()).await;
        let _ = tcp.shutdown().await;
        self.emitted(peer, None, method, target, 400);
    }

    async fn serve_http<S>(self: &Arc<Self>, stream: S, peer: SocketAddr)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let requests = Arc::new(AtomicU32::new(0));
        let https = self.clone();
        let service = hyper::service::service_fn(move |request| {
            let https = https.clone();
            let number = requests.fetch_add(1, Ordering::Relaxed) + 1;
            async move { Ok::<_, Infallible>(https.answer(request, peer, number >= MAX_REQUESTS).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_header_size(MAX_HEAD)
            .max_headers(MAX_HEADERS)
            // The read buffer: a head, or a body being read (at most MAX_BODY is kept).
            .max_buf_size(MAX_HEAD + MAX_BODY);
        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
    }

    /// One request: its body read up to the limit, answered by the site for the local domains
    /// of the moment.
    async fn answer(
        &self,
        request: hyper::Request<Incoming>,
        peer: SocketAddr,
        last: bool,
    ) -> hyper::Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let host = parts
            .headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()));
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let declared =
            parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        let mut close = last;
        let response = if declared.is_some_and(|n| n > MAX_BODY as u64) {
            close = true;
            too_large()
        } else {
            match Limited::new(body, MAX_BODY).collect().await {
                Err(_) => {
                    // Over the limit, or a broken body: what is left of it is never read.
                    close = true;
                    too_large()
                }
                Ok(collected) => {
                    let body = collected.to_bytes();
                    match self.shared.store.domains().await {
                        Ok(domains) => {
                            let request = Request {
                                host: host.as_deref(),
                                method: parts.method.as_str(),
                                target,
                                body: &body,
                                tls: self.acceptor.is_some(),
                            };
                            self.site.respond(&request, &domains)
                        }
                        Err(e) => {
                            self.shared.events.emit(Event::InternalError {
                                conn: None,
                                what: format!("{}: cannot read the local domains: {e}", self.listener),
                            });
                            plain(503, "The server cannot answer now; try again later.\n")
                        }
                    }
                }
            }
        };
        self.emitted(peer, host.as_deref(), parts.method.as_str(), target, response.status);
        to_hyper(response, close)
    }

    fn emitted(&self, peer: SocketAddr, host: Option<&str>, method: &str, target: &str, status: u16) {
        let path = target.split('?').next().unwrap_or("");
        self.shared.events.emit(Event::HttpRequest {
            listener: self.listener,
            peer,
            host: host.map(|h| h.chars().take(LOGGED_HOST).collect()),
            method: method.chars().take(16).collect(),
            path: path.chars().take(LOGGED_PATH).collect(),
            status,
        });
    }
}

fn plain(status: u16, text: &str) -> Response {
    Response { status, content_type: "text/plain; charset=utf-8", headers: Vec::new(), body: text.as_bytes().to_vec() }
}

fn too_large() -> Response {
    plain(413, "The request body is too large (at most 16 KiB).\n")
}

fn to_hyper(response: Response, close: bool) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(response.status).header(CONTENT_TYPE, response.content_type);
    for (name, value) in &response.headers {
        builder = builder.header(*name, value);
    }
    if close {
        builder = builder.header(CONNECTION, HeaderValue::from_static("close"));
    }
    builder.body(Full::new(Bytes::from(response.body))).unwrap_or_else(|_| {
        // A header value the site made that HTTP cannot carry: say so rather than panic.
        let mut failed = hyper::Response::new(Full::new(Bytes::from_static(b"internal error\n")));
        *failed.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        failed
    })
}
