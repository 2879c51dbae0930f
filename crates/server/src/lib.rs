//! The running server: listeners for every configured gate, TLS, the protocol drivers, signal
//! handling and an orderly shutdown.
#![forbid(unsafe_code)]

mod alerts;
mod conn;
mod defense;
mod imap;
mod net;
mod pop3;
pub mod process;
mod smtp;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use portcullis_auth::{Authenticator, PasswordHasher};
use portcullis_config::{Config, LogFormat};
use portcullis_events::{Event, Events, Listener, LogSink};
use portcullis_store::{SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use conn::Shared;

/// After the grace period, how long sessions get to say goodbye before the process exits.
const FINAL_CLOSE: Duration = Duration::from_secs(5);

/// Runs the server in the foreground until SIGTERM or SIGINT.
///
/// Order matters: the certificate is read and the ports are bound while still privileged;
/// then root is dropped; only then do threads start and the network is read.
pub fn serve(config: Config) -> Result<(), String> {
    if !config.listen.admin.is_empty() {
        return Err("listen.admin: this version has no admin listener yet; remove the key".into());
    }
    let tls = tls::load(&config.tls.cert, &config.tls.key, config.tls.min_version)?;
    let mut bound = Vec::new();
    for (listener, addrs) in [
        (Listener::Submissions, &config.listen.submissions),
        (Listener::Submission, &config.listen.submission),
        (Listener::Pop3s, &config.listen.pop3s),
        (Listener::Imaps, &config.listen.imaps),
    ] {
        for addr in addrs {
            let socket = net::bind(*addr).map_err(|e| format!("listen.{listener}: cannot listen on {addr}: {e}"))?;
            bound.push((listener, socket));
        }
    }
    if bound.is_empty() {
        return Err(format!(
            "{}: no listener is configured; set listen.submissions, listen.submission, listen.imaps or listen.pop3s",
            config.path.display()
        ));
    }
    process::drop_privileges(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("portcullis")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(run(config, tls::Tls::new(tls), bound))
}

fn log_sink(format: LogFormat) -> LogSink {
    let format = match format {
        LogFormat::Json => portcullis_events::LogFormat::Json,
        LogFormat::Text => portcullis_events::LogFormat::Text,
    };
    LogSink::spawn(format, Box::new(std::io::stdout()))
}

async fn run(config: Config, tls: tls::Tls, bound: Vec<(Listener, std::net::TcpListener)>) -> Result<(), String> {
    let store = SqliteStore::open(&config.store.sqlite_path, config.store.default_quota)
        .map_err(|e| format!("cannot open the store {}: {e}", config.store.sqlite_path.display()))?;
    let store: Arc<dyn Store> = Arc::new(store);
    // One event stream: the log, the anomaly detector and alert delivery all read it.
    let metrics = alerts::Metrics::new(&config.alerts);
    let (dispatcher, pending_alerts) = alerts::Dispatcher::new(config.alerts.notify);
    let events = Events::new(vec![Arc::new(log_sink(config.log.format)), metrics.clone(), Arc::new(dispatcher)]);
    let auth = Authenticator::new(store.clone(), PasswordHasher::new(&config.passwords)?)?;
    let shared = Arc::new(Shared::new(config, store.clone(), auth, events.clone(), tls));

    let mut signals = Signals::new()?;
    events.emit(Event::ServerStarted { version: env!("CARGO_PKG_VERSION") });
    defense::load_bans(&shared).await;
    tokio::spawn(defense::follow_bans(shared.clone()));
    tokio::spawn(alerts::watch(metrics, events.clone(), shared.config.alerts.bucket, shared.stop_accepting.clone()));
    tokio::spawn(alerts::deliver(
        pending_alerts,
        shared.config.alerts.clone(),
        shared.config.hostname.clone(),
        store.clone(),
        events.clone(),
    ));
    for (listener, socket) in bound {
        let socket = TcpListener::from_std(socket).map_err(|e| format!("listen.{listener}: {e}"))?;
        if let Ok(addr) = socket.local_addr() {
            events.emit(Event::Listening { listener, addr });
        }
        shared.tasks.spawn(conn::accept_loop(shared.clone(), listener, socket));
    }

    while let Signal::Reload = signals.next().await {
        reload(&shared);
    }

    // Drain: stop accepting, let sessions finish within the grace period, then close the rest.
    shared.stop_accepting.cancel();
    events.emit(Event::ServerStopping { sessions: shared.guard.active() });
    shared.tasks.close();
    let grace = shared.config.process.shutdown_grace;
    tokio::select! {
        _ = shared.tasks.wait() => {}
        _ = tokio::time::sleep(grace) => {
            shared.close_sessions.cancel();
            let _ = tokio::time::timeout(FINAL_CLOSE, shared.tasks.wait()).await;
        }
        // A second signal means "now".
        _ = signals.next() => shared.close_sessions.cancel(),
    }
    let _ = tokio::time::timeout(FINAL_CLOSE, shared.tasks.wait()).await;
    let closing = store.clone();
    let _ = tokio::task::spawn_blocking(move || closing.close()).await;
    events.emit(Event::ServerStopped);
    events.flush();
    Ok(())
}

/// SIGHUP: re-read the certificate and key, and the firewall and guard settings. Established
/// sessions keep what they negotiated, unless the new rules refuse their address; on failure
/// the old certificate or rules stay in service.
fn reload(shared: &Shared) {
    let (ok, error) = match Config::load(&shared.config.path) {
        Ok(config) => {
            let revoked = shared.guard.reload(portcullis_guard::Policy::from_config(&config));
            (true, (revoked > 0).then(|| format!("{revoked} sessions no longer admitted were closed")))
        }
        Err(e) => (false, Some(e.to_string())),
    };
    shared.events.emit(Event::ConfigReloaded { what: "firewall", ok, error });

    let tls = &shared.config.tls;
    let (ok, error) = match tls::load(&tls.cert, &tls.key, tls.min_version) {
        Ok(config) => {
            shared.tls.replace(config);
            (true, None)
        }
        Err(e) => (false, Some(e)),
    };
    shared.events.emit(Event::ConfigReloaded { what: "tls", ok, error });
}

enum Signal {
    Reload,
    Stop,
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals, String> {
        let install = |kind| signal(kind).map_err(|e| format!("cannot install signal handlers: {e}"));
        Ok(Signals {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
            hup: install(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}
