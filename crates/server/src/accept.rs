//! The accept loop of a mail listener: each connection is put to the guard before any TLS
//! work; an admitted one is handed to its protocol's driver, a refused one is closed, politely
//! when it is only over a connection limit.
//!
//! On a listener behind a load balancer (`[proxy]`), the connection must come from a trusted
//! balancer and open with a PROXY header; the client it names is the one the guard admits and
//! the peer of everything after (events, `Received:`, SPF, login failures).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_events::{CloseReason, Event, Listener, Protocol, ProxyRefusal, RefuseReason, TlsMode};
use portcullis_guard::Now;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::connection::Connection;
use crate::proxy_header::{self, Next, Origin};
use crate::socket::Stream;
use crate::state::Shared;
use crate::{imap, pop3, smtp};

/// Refusals answered politely at once (a refused SMTP client deserves a 421, not a reset);
/// beyond this many in flight, refused connections are just closed.
const MAX_POLITE_REFUSALS: usize = 64;

/// What the accept loops of all mail listeners share.
pub struct Acceptance {
    /// Connection numbers, unique for the process's life.
    next_conn: AtomicU64,
    /// Polite refusals in flight, at most [`MAX_POLITE_REFUSALS`].
    polite_refusals: Semaphore,
}

impl Acceptance {
    pub fn new() -> Arc<Acceptance> {
        Arc::new(Acceptance { next_conn: AtomicU64::new(1), polite_refusals: Semaphore::new(MAX_POLITE_REFUSALS) })
    }
}

/// Accepts on `socket` until the server stops accepting.
pub async fn accept_loop(shared: Arc<Shared>, acceptance: Arc<Acceptance>, listener: Listener, socket: TcpListener) {
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            _ = shared.stop_accepting.cancelled() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: say so, back off, keep serving.
                shared
                    .events
                    .emit(Event::InternalError { conn: None, what: format!("accept on {listener} failed: {e}") });
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        if shared.config.proxy.expects_header(listener) {
            proxied(&shared, &acceptance, listener, tcp, peer);
        } else {
            admit(&shared, &acceptance, listener, tcp, peer);
        }
    }
}

/// Puts the connection from `peer` to the guard: firewall, bans, connection limits.
fn admit(shared: &Arc<Shared>, acceptance: &Arc<Acceptance>, listener: Listener, tcp: TcpStream, peer: SocketAddr) {
    match shared.guard.admit(peer.ip(), listener, Now::current()) {
        Ok(admission) => {
            let id = acceptance.next_conn.fetch_add(1, Ordering::Relaxed);
            let shared2 = shared.clone();
            shared.tasks.spawn(async move {
                serve(&shared2, id, listener, tcp, peer, admission.revoked()).await;
                drop(admission);
            });
        }
        // Refused by the firewall or a ban: closed at once, no work spent on it.
        Err(reason @ (RefuseReason::Firewall | RefuseReason::Banned)) => {
            shared.events.emit(Event::ConnectionRefused { listener, peer, reason });
            drop(tcp);
        }
        Err(reason) => refuse(shared, acceptance, listener, tcp, peer, reason),
    }
}

/// A connection on a listener behind a balancer: only a trusted balancer may connect, and its
/// header (read in a task of its own, so a slow balancer cannot stall the loop) names the
/// client the guard then admits. Nothing is sent back on a refusal: the balancer, not a mail
/// client, is at the other end, or someone passing for one.
fn proxied(shared: &Arc<Shared>, acceptance: &Arc<Acceptance>, listener: Listener, tcp: TcpStream, proxy: SocketAddr) {
    if !shared.config.proxy.is_trusted(proxy.ip()) {
        let reason = ProxyRefusal::UntrustedSource;
        shared.events.emit(Event::ProxyRefused { listener, peer: proxy, reason });
        return;
    }
    let (shared, acceptance) = (shared.clone(), acceptance.clone());
    shared.clone().tasks.spawn(async move {
        let mut tcp = tcp;
        let read = tokio::time::timeout(shared.config.proxy.header_timeout, read_proxy_header(&mut tcp));
        let origin = read.await.unwrap_or(Err(ProxyRefusal::Timeout));
        match origin {
            Ok(Origin::Client(client)) => admit(&shared, &acceptance, listener, tcp, client),
            // The balancer's own health check: admitted, and served, as the balancer.
            Ok(Origin::Local) => admit(&shared, &acceptance, listener, tcp, proxy),
            Err(reason) => shared.events.emit(Event::ProxyRefused { listener, peer: proxy, reason }),
        }
    });
}

/// Reads the PROXY header and not one byte more (`proxy_header` says how much).
async fn read_proxy_header(tcp: &mut TcpStream) -> Result<Origin, ProxyRefusal> {
    let mut read = Vec::with_capacity(64);
    loop {
        match proxy_header::next_read(&read)? {
            Next::Complete => return proxy_header::decode(&read),
            Next::Read(more) => {
                let start = read.len();
                read.resize(start + more, 0);
                // Closed before the header was whole: nothing to admit.
                if tcp.read_exact(&mut read[start..]).await.is_err() {
                    return Err(ProxyRefusal::MissingHeader);
                }
            }
        }
    }
}

/// Runs the listener's protocol on an admitted connection, from its opening to its close.
async fn serve(
    shared: &Shared,
    id: u64,
    listener: Listener,
    tcp: TcpStream,
    peer: SocketAddr,
    revoked: CancellationToken,
) {
    let limits = &shared.config.limits;
    let idle = match listener.spec().protocol {
        Protocol::Pop3 => limits.pop3_idle_timeout,
        Protocol::Imap => limits.imap_idle_timeout,
        Protocol::Smtp => limits.smtp_idle_timeout,
        // Served by its own accept loop (`admin`), never from here.
        Protocol::Http => return,
    };
    let mut conn = Connection::open(shared, id, listener, peer, idle, revoked);
    let reason = match listener.spec().protocol {
        Protocol::Smtp => smtp::run(shared, &mut conn, tcp).await,
        Protocol::Pop3 => pop3::run(shared, &mut conn, tcp).await,
        Protocol::Imap => imap::run(shared, &mut conn, tcp).await,
        Protocol::Http => CloseReason::Quit,
    };
    conn.close(reason);
}

/// Over a connection limit: tell the client in its own protocol (over TLS where the port
/// demands it), then close. Bounded: past [`MAX_POLITE_REFUSALS`] in flight, just close.
fn refuse(
    shared: &Arc<Shared>,
    acceptance: &Arc<Acceptance>,
    listener: Listener,
    tcp: TcpStream,
    peer: SocketAddr,
    reason: RefuseReason,
) {
    shared.events.emit(Event::ConnectionRefused { listener, peer, reason });
    let reply = match listener.spec().protocol {
        Protocol::Smtp => portcullis_proto_smtp::refused_connection(reason),
        Protocol::Pop3 => portcullis_proto_pop3::refused_connection(reason),
        Protocol::Imap => portcullis_proto_imap::refused_connection(reason),
        // The admin listener closes refused connections itself (`admin`).
        Protocol::Http => return,
    };
    let Ok(permit) = acceptance.polite_refusals.try_acquire() else { return };
    permit.forget();
    let (shared, acceptance) = (shared.clone(), acceptance.clone());
    shared.clone().tasks.spawn(async move {
        let deadline = shared.config.tls.handshake_timeout;
        let _ = tokio::time::timeout(deadline, async {
            let mut stream = match listener.spec().tls {
                TlsMode::StartTlsRequired | TlsMode::StartTlsOffered | TlsMode::AdminSetting | TlsMode::Never => {
                    Stream::Plain(tcp)
                }
                TlsMode::Implicit => match shared.tls.acceptor().accept(tcp).await {
                    Ok(tls) => Stream::Tls(Box::new(tls)),
                    Err(_) => return,
                },
            };
            let _ = stream.send(reply).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
        })
        .await;
        acceptance.polite_refusals.add_permits(1);
    });
}
