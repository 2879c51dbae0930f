//! Live sessions, for the admin API: who is connected on which listener, since when, as which
//! account, how many bytes each way, and a way to close one. Closing reuses the guard's
//! mechanism: cancelling the session's admission token makes its next read end with
//! `CloseReason::Revoked`, exactly as when a ban cuts it.
//!
//! Registered by the connection itself (it alone has the token); the account and TLS details
//! come from the event stream (this is also a [`Sink`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use portcullis_events::{Event, Listener, Record, Sink};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Bytes moved by one session so far, updated by its reads and writes.
#[derive(Default)]
pub struct Traffic {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

struct Entry {
    listener: Listener,
    peer: SocketAddr,
    started_ms: u64,
    account: Option<String>,
    tls: Option<String>,
    traffic: Arc<Traffic>,
    close: CancellationToken,
}

#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<u64, Entry>>,
}

/// One live session as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    pub id: u64,
    pub listener: Listener,
    pub protocol: &'static str,
    pub peer: SocketAddr,
    pub account: Option<String>,
    /// "TLSv1.3 TLS13_AES_256_GCM_SHA384" once TLS is up.
    pub tls: Option<String>,
    pub started_ms: u64,
    pub duration_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Removes the session from the registry when dropped (the connection ended).
pub struct Registration {
    sessions: Arc<Sessions>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut live) = self.sessions.live.lock() {
            live.remove(&self.id);
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Sessions {
    pub fn register(
        self: &Arc<Self>,
        id: u64,
        listener: Listener,
        peer: SocketAddr,
        close: CancellationToken,
        traffic: Arc<Traffic>,
    ) -> Registration {
        if let Ok(mut live) = self.live.lock() {
            live.insert(id, Entry { listener, peer, started_ms: now_ms(), account: None, tls: None, traffic, close });
        }
        Registration { sessions: self.clone(), id }
    }

    /// Every live session, oldest first.
    pub fn list(&self) -> Vec<SessionInfo> {
        let now = now_ms();
        let mut all: Vec<SessionInfo> = match self.live.lock() {
            Ok(live) => live
                .iter()
                .map(|(&id, e)| SessionInfo {
                    id,
                    listener: e.listener,
                    protocol: e.listener.protocol(),
                    peer: e.peer,
                    account: e.account.clone(),
                    tls: e.tls.clone(),
                    started_ms: e.started_ms,
                    duration_ms: now.saturating_sub(e.started_ms),
                    bytes_in: e.traffic.bytes_in.load(Ordering::Relaxed),
                    bytes_out: e.traffic.bytes_out.load(Ordering::Relaxed),
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        all.sort_by_key(|s| s.id);
        all
    }

    /// Live sessions per listener.
    pub fn count(&self, listener: Listener) -> usize {
        self.live.lock().map(|l| l.values().filter(|e| e.listener == listener).count()).unwrap_or(0)
    }

    /// Closes the session `id` (at its next read, at once when it is waiting for the client);
    /// whether there was one.
    pub fn kill(&self, id: u64) -> bool {
        match self.live.lock() {
            Ok(live) => match live.get(&id) {
                Some(e) => {
                    e.close.cancel();
                    true
                }
                None => false,
            },
            Err(_) => false,
        }
    }
}

impl Sink for Sessions {
    fn accept(&self, record: &Record) {
        match &record.event {
            Event::AuthSucceeded { conn, account, .. } => self.update(*conn, |e| e.account = Some(account.clone())),
            Event::TlsEstablished { conn, version, cipher, .. } => {
                self.update(*conn, |e| e.tls = Some(format!("{version} {cipher}")))
            }
            _ => {}
        }
    }
}

impl Sessions {
    fn update(&self, conn: u64, change: impl FnOnce(&mut Entry)) {
        if let Ok(mut live) = self.live.lock() {
            if let Some(entry) = live.get_mut(&conn) {
                change(entry);
            }
        }
    }
}
