//! One client connection as the protocol drivers see it: reads bounded by the idle timeout
//! (tighter in the middle of a command or an upload, and before login by what is left of the
//! login timeout), writes bounded the same way, the TLS handshake, the byte counts, and the
//! events that open and close the session.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_events::{CloseReason, Event, Events, Listener};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::sessions::{Registration, Traffic, Who};
use crate::socket::Stream;
use crate::state::Shared;
use crate::tls;

const READ_BUFFER: usize = 16 * 1024;

/// The average rate below which a message upload is cut off, once the idle timeout's worth
/// of grace is used up: an upload may take `idle + bytes / MIN_UPLOAD_RATE`. A slow real
/// client (a phone on a poor link) sends tens of KiB a second; a slowloris sending a byte at a
/// time gets the idle timeout and little more.
pub const MIN_UPLOAD_RATE: u64 = 1024;

/// What a line-protocol session (SMTP, POP3) does with the outcome of a read; see
/// [`Connection::read_for`].
pub trait Reader {
    fn feed(&mut self, data: &[u8]);
    fn peer_closed(&mut self);
    fn timed_out(&mut self);
    fn shutting_down(&mut self);
}

/// How a read ended.
pub enum Input {
    /// This many bytes came; see [`Connection::received`].
    Data(usize),
    Closed,
    Timeout,
    Shutdown,
    /// The admission was withdrawn (a ban, new firewall rules, a revoked app password, the
    /// admin API): close without another word.
    Revoked,
    Failed,
}

/// One client connection, from its admission to its close.
pub struct Connection {
    pub id: u64,
    pub listener: Listener,
    pub peer: SocketAddr,
    /// How long a read may wait for the client, and a write for the client to take our data.
    idle: Duration,
    /// Until the client logs in: when `limits.login_timeout` runs out, on the listeners where
    /// clients log in (the listener table's `login`). Every protocol's idle timeout is long
    /// (IMAP's 30 minutes); a connection that never logs in must not hold its slot that long,
    /// busy or not.
    login_deadline: Option<Instant>,
    /// Cancelled when the connection must close at its next read (see [`Input::Revoked`]).
    revoked: CancellationToken,
    started: Instant,
    bytes_in: u64,
    bytes_out: u64,
    buf: Box<[u8]>,
    /// The same byte counts, live, for the admin API's session list.
    traffic: Arc<Traffic>,
    /// The entry in the registry of live sessions, removed when the connection closes.
    registration: Registration,
    /// When the last input arrived that has not been answered yet (command latency).
    unanswered: Option<Instant>,
    /// When the last read returned data.
    last_input: Instant,
    /// Since when the client has been in the middle of a command: the rest of it must come
    /// within the idle timeout of then, not of the last byte (a slowloris sending a byte at a
    /// time would otherwise hold the session for ever).
    mid_command_since: Option<Instant>,
    /// Since when the client has been sending a message, and how many bytes of it have come
    /// since: see [`Connection::uploading`].
    upload: Option<(Instant, u64)>,
    events: Events,
}

impl Connection {
    /// A connection the guard admitted: registered as a live session and announced
    /// (`connection_opened`). `revoked` is its admission's token, `idle` its protocol's timeout.
    pub fn open(
        shared: &Shared,
        id: u64,
        listener: Listener,
        peer: SocketAddr,
        idle: Duration,
        revoked: CancellationToken,
    ) -> Connection {
        let traffic = Arc::new(Traffic::default());
        let registration = shared.sessions.register(id, listener, peer, revoked.clone(), traffic.clone());
        shared.events.emit(Event::ConnectionOpened { conn: id, listener, peer });
        let now = Instant::now();
        Connection {
            id,
            listener,
            peer,
            idle,
            // Only where clients log in: on 25 other servers deliver without logging in, and
            // a long message from a slow one must not be cut off by a login deadline.
            login_deadline: listener.spec().login.then(|| now + shared.config.limits.login_timeout),
            revoked,
            started: now,
            bytes_in: 0,
            bytes_out: 0,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            traffic,
            registration,
            unanswered: None,
            last_input: now,
            mid_command_since: None,
            upload: None,
            events: shared.events.clone(),
        }
    }

    /// The session is over (the socket is closed or about to be): it leaves the registry, then
    /// `connection_closed` says why, how long it lasted and what it moved.
    pub fn close(self, reason: CloseReason) {
        drop(self.registration);
        // A send cut short by the revocation fails like a broken connection; say why it broke.
        let reason = match reason {
            CloseReason::IoError if self.revoked.is_cancelled() => CloseReason::Revoked,
            other => other,
        };
        self.events.emit(Event::ConnectionClosed {
            conn: self.id,
            listener: self.listener,
            peer: self.peer,
            duration_ms: self.started.elapsed().as_millis() as u64,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            reason,
        });
    }

    pub fn who(&self) -> Who {
        Who { conn: self.id, listener: self.listener, peer: self.peer }
    }

    /// Unique per connection, for Received and Message-ID: the connection number and a
    /// random part, in hex.
    pub fn session_id(&self) -> String {
        format!("{:x}{:08x}", self.id, rand::random::<u32>())
    }

    /// The client has logged in: from now on only the idle timeout bounds its silence.
    pub fn logged_in(&mut self) {
        self.login_deadline = None;
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

    /// How long the next read (or write) may wait: the idle timeout, or less before login, in
    /// the middle of a command or in an upload that has used up its time.
    fn wait(&self) -> Duration {
        let mut wait = self.idle;
        if let Some(deadline) = self.login_deadline {
            wait = wait.min(deadline.saturating_duration_since(Instant::now()));
        }
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
    /// a command or an upload, what is left of its time; see [`Connection::mid_command`] and
    /// [`Connection::uploading`]).
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

    /// What the last read returned as [`Input::Data`]`(n)`.
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

    /// Sends `data`; a client that does not take it within the idle timeout, or before login
    /// the login timeout (a slow reader holding a session open), is cut off. A revoked session
    /// sends nothing more, not even the rest of what it was sending: what a removed account's
    /// long FETCH had left is not delivered, whatever the client does (the command itself stops
    /// at its next batch, whose output can no longer be sent).
    pub async fn send(&mut self, stream: &mut Stream, data: &[u8]) -> std::io::Result<()> {
        let revoked = || std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "the session was revoked");
        if self.revoked.is_cancelled() {
            return Err(revoked());
        }
        self.bytes_out += data.len() as u64;
        self.traffic.bytes_out.fetch_add(data.len() as u64, Ordering::Relaxed);
        if !data.is_empty() {
            if let Some(since) = self.unanswered.take() {
                let latency_us = since.elapsed().as_micros() as u64;
                self.events.emit(Event::CommandAnswered { conn: self.id, listener: self.listener, latency_us });
            }
        }
        let limit = match self.login_deadline {
            Some(deadline) => self.idle.min(deadline.saturating_duration_since(Instant::now())),
            None => self.idle,
        };
        tokio::select! {
            sent = tokio::time::timeout(limit, stream.send(data)) => match sent {
                Ok(result) => result,
                Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading")),
            },
            _ = self.revoked.cancelled() => Err(revoked()),
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
