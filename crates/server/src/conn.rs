//! What every connection shares: the server state, accepting, admission, the TLS handshake,
//! reads with timeouts, and the events that frame a session.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_auth::Authenticator;
use portcullis_config::Config;
use portcullis_events::{CloseReason, Event, Events, Listener, RefuseReason};
use portcullis_guard::{Guard, Now, Policy};
use portcullis_store::Store;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app_sessions::AppSessions;
use crate::net::Stream;
use crate::sessions::{Sessions, Traffic};
use crate::tls::{self, Tls};
use crate::{imap, pop3, smtp};

/// Refusals answered politely at once (a refused SMTP client deserves a 421, not a reset);
/// beyond this many in flight, refused connections are just closed.
const MAX_POLITE_REFUSALS: usize = 64;
const READ_BUFFER: usize = 16 * 1024;

pub struct Shared {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub events: Events,
    pub guard: Guard,
    pub tls: Tls,
    /// Sessions opened with app passwords, closed when those are revoked.
    pub app_sessions: AppSessions,
    pub tasks: TaskTracker,
    /// Cancelled on SIGTERM: listeners stop accepting.
    pub stop_accepting: CancellationToken,
    /// Cancelled when the shutdown grace period is over: sessions say goodbye and close.
    pub close_sessions: CancellationToken,
    /// Live sessions, for the admin API (list, kill).
    pub sessions: Arc<Sessions>,
    next_conn: AtomicU64,
    polite_refusals: Semaphore,
}

impl Shared {
    pub fn new(config: Config, store: Arc<dyn Store>, auth: Authenticator, events: Events, tls: Tls) -> Shared {
        let guard = Guard::new(Policy::from_config(&config));
        Shared {
            config,
            store,
            auth,
            events,
            guard,
            tls,
            app_sessions: AppSessions::default(),
            tasks: TaskTracker::new(),
            stop_accepting: CancellationToken::new(),
            close_sessions: CancellationToken::new(),
            sessions: Arc::default(),
            next_conn: AtomicU64::new(1),
            polite_refusals: Semaphore::new(MAX_POLITE_REFUSALS),
        }
    }
}

/// What a line-protocol session (SMTP, POP3) does with the outcome of a read.
pub trait Reader {
    fn feed(&mut self, data: &[u8]);
    fn peer_closed(&mut self);
    fn timed_out(&mut self);
    fn shutting_down(&mut self);
}

macro_rules! reader {
    ($session:ty) => {
        impl Reader for $session {
            fn feed(&mut self, data: &[u8]) {
                <$session>::feed(self, data)
            }
            fn peer_closed(&mut self) {
                <$session>::peer_closed(self)
            }
            fn timed_out(&mut self) {
                <$session>::timed_out(self)
            }
            fn shutting_down(&mut self) {
                <$session>::shutting_down(self)
            }
        }
    };
}
reader!(portcullis_proto_smtp::Session);
reader!(portcullis_proto_pop3::Session);

/// One client connection, as the events describe it.
pub struct Conn {
    pub id: u64,
    pub listener: Listener,
    pub peer: SocketAddr,
    /// How long a read may wait for the client, and a write for the client to take our data.
    idle: Duration,
    /// Cancelled when the guard withdraws this connection's admission (a ban, new rules).
    revoked: CancellationToken,
    started: Instant,
    pub bytes_in: u64,
    pub bytes_out: u64,
    buf: Box<[u8]>,
    /// The same byte counts, live, for the admin API's session list.
    traffic: Arc<Traffic>,
    /// When the last input arrived that has not been answered yet (command latency).
    unanswered: Option<Instant>,
    /// When the last read returned data.
    last_input: Instant,
    /// Since when the client has been in the middle of a command: the rest of it must come
    /// within the idle timeout of then, not of the last byte (a slowloris sending a byte at a
    /// time would otherwise hold the session for ever).
    mid_command_since: Option<Instant>,
    /// Since when the client has been sending a message, and how many bytes of it have come
    /// since: see [`Conn::uploading`].
    upload: Option<(Instant, u64)>,
    events: Events,
}

/// The average rate below which a message upload is cut off, once the idle timeout's worth
/// of grace is used up: an upload may take `idle + bytes / MIN_UPLOAD_RATE`. A slow real
/// client (a phone on a poor link) sends tens of KiB a second; a slowloris sending a byte at a
/// time gets the idle timeout and little more.
pub const MIN_UPLOAD_RATE: u64 = 1024;

pub enum Input {
    Data(usize),
    Closed,
    Timeout,
    Shutdown,
    /// The guard withdrew the admission: close without another word.
    Revoked,
    Failed,
}

impl Conn {
    pub fn who(&self) -> Who {
        Who { conn: self.id, listener: self.listener, peer: self.peer }
    }

    /// Cancelling it closes the session (at its next read): a ban, new firewall rules, or a
    /// revoked app password.
    pub fn closer(&self) -> CancellationToken {
        self.revoked.clone()
    }

    /// Unique per connection: "c" + connection number + random, for Received/Message-ID.
    pub fn session_id(&self) -> String {
        format!("{:x}{:08x}", self.id, rand::random::<u32>())
    }

    /// The protocol says whether the client is in the middle of a command (a partial line,
    /// an unfinished literal); call before each read. While it is, reads wait only for what
    /// is left of the idle timeout counted from the read that started the command.
    pub fn mid_command(&mut self, mid: bool) {
        if !mid {
            self.mid_command_since = None;
        } else if self.mid_command_since.is_none() {
            self.mid_command_since = Some(self.last_input);
        }
    }

    /// The protocol says whether the client is sending a message (DATA, BDAT; an APPEND
    /// literal); call before each read. A message is not a command, bounded by the idle
    /// timeout as a whole, since a big one takes long on a slow link; but it must keep coming
    /// at [`MIN_UPLOAD_RATE`] on average, beyond an idle timeout's worth of grace.
    pub fn uploading(&mut self, uploading: bool) {
        if !uploading {
            self.upload = None;
        } else if self.upload.is_none() {
            self.upload = Some((self.last_input, 0));
        }
    }

    /// How long the next read may wait: the idle timeout, or less in the middle of a command
    /// or an upload that has used up its time.
    fn wait(&self) -> Duration {
        let mut wait = self.idle;
        if let Some(since) = self.mid_command_since {
            wait = wait.min(self.idle.saturating_sub(since.elapsed()));
        }
        if let Some((since, bytes)) = self.upload {
            let allowed = self.idle + Duration::from_secs_f64(bytes as f64 / MIN_UPLOAD_RATE as f64);
            wait = wait.min(allowed.saturating_sub(since.elapsed()));
        }
        wait
    }

    /// Reads what is there, waiting at most the protocol's idle timeout (or, in the middle of
    /// a command or an upload, what is left of its time; see [`Conn::mid_command`] and
    /// [`Conn::uploading`]).
    pub async fn read(&mut self, stream: &mut Stream, shutdown: &CancellationToken) -> Input {
        let wait = self.wait();
        tokio::select! {
            read = tokio::time::timeout(wait, stream.read(&mut self.buf)) => match read {
                Err(_) => Input::Timeout,
                Ok(Ok(0)) => Input::Closed,
                Ok(Ok(n)) => {
                    self.bytes_in += n as u64;
                    self.traffic.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    let now = Instant::now();
                    self.unanswered = Some(now);
                    self.last_input = now;
                    if let Some((_, bytes)) = &mut self.upload {
                        *bytes += n as u64;
                    }
                    Input::Data(n)
                }
                Ok(Err(_)) => Input::Failed,
            },
            _ = shutdown.cancelled() => Input::Shutdown,
            _ = self.revoked.cancelled() => Input::Revoked,
        }
    }

    pub fn received(&self, n: usize) -> &[u8] {
        &self.buf[..n]
    }

    /// Reads for a line-protocol session and tells it what happened: data, the peer leaving,
    /// silence past the timeout, or shutdown. Returns the close reason that implies, if any;
    /// `Err` when the connection failed.
    pub async fn read_for(
        &mut self,
        stream: &mut Stream,
        shutdown: &CancellationToken,
        session: &mut impl Reader,
    ) -> Result<Option<CloseReason>, ()> {
        match self.read(stream, shutdown).await {
            Input::Data(n) => {
                session.feed(&self.buf[..n]);
                Ok(None)
            }
            Input::Closed => {
                session.peer_closed();
                Ok(Some(CloseReason::PeerClosed))
            }
            Input::Timeout => {
                session.timed_out();
                Ok(Some(CloseReason::Timeout))
            }
            Input::Shutdown => {
                session.shutting_down();
                Ok(Some(CloseReason::Shutdown))
            }
            Input::Revoked => {
                session.peer_closed();
                Ok(Some(CloseReason::Revoked))
            }
            Input::Failed => Err(()),
        }
    }

    /// Sends `data`; a client that does not take it within the idle timeout (a slow reader
    /// holding a session open) is cut off.
    pub async fn send(&mut self, stream: &mut Stream, data: &[u8]) -> std::io::Result<()> {
        self.bytes_out += data.len() as u64;
        self.traffic.bytes_out.fetch_add(data.len() as u64, Ordering::Relaxed);
        if !data.is_empty() {
            if let Some(since) = self.unanswered.take() {
                let latency_us = since.elapsed().as_micros() as u64;
                self.events.emit(Event::CommandAnswered { conn: self.id, listener: self.listener, latency_us });
            }
        }
        match tokio::time::timeout(self.idle, stream.send(data)).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading")),
        }
    }

    /// The server side of a TLS handshake, bounded by `tls.handshake_timeout`.
    pub async fn handshake(&self, shared: &Shared, tcp: TcpStream) -> Result<Stream, ()> {
        let timeout = shared.config.tls.handshake_timeout;
        let started = Instant::now();
        let took = || started.elapsed().as_secs_f64() * 1000.0;
        let failed = |reason: String| Event::TlsFailed {
            conn: self.id,
            listener: self.listener,
            peer: self.peer,
            reason,
            handshake_ms: took(),
        };
        match tokio::time::timeout(timeout, shared.tls.acceptor().accept(tcp)).await {
            Ok(Ok(tls)) => {
                let handshake_ms = took();
                let (version, cipher) = tls::describe(tls.get_ref().1);
                let sni = tls.get_ref().1.server_name().map(str::to_string);
                shared.events.emit(Event::TlsEstablished {
                    conn: self.id,
                    listener: self.listener,
                    peer: self.peer,
                    version,
                    cipher,
                    sni,
                    handshake_ms,
                });
                Ok(Stream::Tls(Box::new(tls)))
            }
            Ok(Err(e)) => {
                shared.events.emit(failed(e.to_string()));
                Err(())
            }
            Err(_) => {
                shared.events.emit(failed(format!("handshake not completed within {}s", timeout.as_secs())));
                Err(())
            }
        }
    }
}

/// Which connection an event is about.
#[derive(Debug, Clone, Copy)]
pub struct Who {
    pub conn: u64,
    pub listener: Listener,
    pub peer: SocketAddr,
}

/// "TLSv1.3 TLS13_AES_256_GCM_SHA384" for the SMTP Received header.
/// The TLS connection's `tls-exporter` channel binding, for SCRAM-SHA-256-PLUS.
pub fn channel_binding(stream: &Stream) -> Option<Vec<u8>> {
    stream.tls_connection().and_then(tls::channel_binding)
}

pub fn tls_summary(stream: &Stream) -> Option<String> {
    stream.tls_connection().map(|c| {
        let (version, cipher) = tls::describe(c);
        format!("{version} {cipher}")
    })
}

pub async fn accept_loop(shared: Arc<Shared>, listener: Listener, socket: TcpListener) {
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
        match shared.guard.admit(peer.ip(), listener, Now::current()) {
            Ok(admission) => {
                let shared2 = shared.clone();
                shared.tasks.spawn(async move {
                    let revoked = admission.revoked();
                    serve_connection(&shared2, listener, tcp, peer, revoked).await;
                    drop(admission);
                });
            }
            // Refused by the firewall or a ban: closed at once, no work spent on it.
            Err(reason @ (RefuseReason::Firewall | RefuseReason::Banned)) => {
                shared.events.emit(Event::ConnectionRefused { listener, peer, reason });
                drop(tcp);
            }
            Err(reason) => refuse(&shared, listener, tcp, peer, reason),
        }
    }
}

async fn serve_connection(
    shared: &Shared,
    listener: Listener,
    tcp: TcpStream,
    peer: SocketAddr,
    revoked: CancellationToken,
) {
    let limits = &shared.config.limits;
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let traffic = Arc::new(Traffic::default());
    let _registration = shared.sessions.register(id, listener, peer, revoked.clone(), traffic.clone());
    let mut conn = Conn {
        id,
        listener,
        peer,
        idle: match listener {
            Listener::Pop3s => limits.pop3_idle_timeout,
            Listener::Imaps => limits.imap_idle_timeout,
            Listener::Submissions | Listener::Submission => limits.smtp_idle_timeout,
        },
        revoked,
        started: Instant::now(),
        bytes_in: 0,
        bytes_out: 0,
        buf: vec![0; READ_BUFFER].into_boxed_slice(),
        traffic,
        unanswered: None,
        last_input: Instant::now(),
        mid_command_since: None,
        upload: None,
        events: shared.events.clone(),
    };
    shared.events.emit(Event::ConnectionOpened { conn: conn.id, listener, peer });
    let reason = match listener {
        Listener::Submissions => smtp::run(shared, &mut conn, tcp, true).await,
        Listener::Submission => smtp::run(shared, &mut conn, tcp, false).await,
        Listener::Pop3s => pop3::run(shared, &mut conn, tcp).await,
        Listener::Imaps => imap::run(shared, &mut conn, tcp).await,
    };
    shared.app_sessions.ended(conn.id);
    shared.events.emit(Event::ConnectionClosed {
        conn: conn.id,
        listener,
        peer,
        duration_ms: conn.started.elapsed().as_millis() as u64,
        bytes_in: conn.bytes_in,
        bytes_out: conn.bytes_out,
        reason,
    });
}

/// Over a connection limit: tell the client in its own protocol (over TLS where the port
/// demands it), then close. Bounded: past [`MAX_POLITE_REFUSALS`] in flight, just close.
fn refuse(shared: &Arc<Shared>, listener: Listener, tcp: TcpStream, peer: SocketAddr, reason: RefuseReason) {
    shared.events.emit(Event::ConnectionRefused { listener, peer, reason });
    let Ok(permit) = shared.polite_refusals.try_acquire() else { return };
    permit.forget();
    let shared = shared.clone();
    shared.clone().tasks.spawn(async move {
        let line: &[u8] = match (listener, reason) {
            (Listener::Pop3s, _) => b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
            (Listener::Imaps, _) => b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
            (_, RefuseReason::TooManyConnectionsFromPeer) => {
                b"421 4.7.0 Too many connections from your address, try again later\r\n"
            }
            _ => b"421 4.3.2 Too many connections, try again later\r\n",
        };
        let deadline = shared.config.tls.handshake_timeout;
        let _ = tokio::time::timeout(deadline, async {
            let mut stream = match listener {
                Listener::Submission => Stream::Plain(tcp),
                _ => match shared.tls.acceptor().accept(tcp).await {
                    Ok(tls) => Stream::Tls(Box::new(tls)),
                    Err(_) => return,
                },
            };
            let _ = stream.send(line).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
        })
        .await;
        shared.polite_refusals.add_permits(1);
    });
}
