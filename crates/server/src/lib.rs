//! The running server: listeners for every configured gate, TLS, the protocol drivers, signal
//! handling and an orderly shutdown. This file starts and stops it; what runs in between:
//!
//! - `state`: what every task shares; `sessions`: the registry of live sessions.
//! - `accept` admits each connection through the guard and hands it to its driver (`smtp`,
//!   `imap`, `pop3`), which talks over a `connection` (timeouts, handshake, session events) on
//!   a `socket`, with `tls` as configured; `mx` answers what the SMTP session asks on port 25
//!   (client and sender checks, the verdict on who really sent a message).
//! - `login`: every login through the guard; `bans`: bans between the guard and the store;
//!   `follow_store`: what the admin CLI writes into the store while the server runs.
//! - `https` serves the documents mail clients set themselves up from and answers ACME's
//!   TLS-ALPN-01 challenges; `acme` keeps a certificate from the CA in every listener's SNI
//!   choice (`tls`).
//! - `anomalies` raises alerts on unusual rates, `alert_delivery` sends alerts out, `monitor`
//!   and `admin` show it all to the operator.
#![forbid(unsafe_code)]

mod accept;
mod acme;
pub mod admin;
mod alert_delivery;
mod anomalies;
pub mod bans;
mod connection;
mod delivered_notice;
pub mod dkim;
mod follow_store;
mod https;
mod imap;
mod login;
mod monitor;
mod mx;
mod outbound_labels;
mod pop3;
pub mod process;
mod proxy_header;
mod queue_runner;
pub mod resolver;
mod sending_limits;
mod session_kill;
mod session_list;
mod sessions;
mod smtp;
mod socket;
mod state;
mod tls;
mod tls_reports;
mod unix_time;

use std::sync::Arc;
use std::time::Duration;

use portcullis_auth::{Authenticator, PasswordHasher};
use portcullis_config::{Config, LogFormat};
use portcullis_events::{Event, Events, Listener, LogSink, TlsMode};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use state::Shared;

/// After the grace period, how long sessions get to say goodbye before the process exits.
const FINAL_CLOSE: Duration = Duration::from_secs(5);

/// Runs the server in the foreground until SIGTERM or SIGINT.
///
/// Order matters: the certificate is read and the ports are bound while still privileged;
/// then root is dropped; only then do threads start and the network is read.
pub fn serve(config: Config) -> Result<(), String> {
    let files = tls::CertFiles { cert: config.tls.cert.clone(), key: config.tls.key.clone() };
    let tls = tls::Tls::load(&files, config.tls.min_version)?;
    // While still root, who may raise it furthest.
    if let Some(warning) = process::raise_open_file_limit(&config) {
        eprintln!("{warning}");
    }
    let mut bound = Vec::new();
    for (listener, addrs) in config.listen.mail() {
        for addr in addrs {
            let socket = socket::bind(*addr)
                .map_err(|e| format!("{}: cannot listen on {addr}: {e}", listener.spec().listen_key))?;
            bound.push((listener, socket));
        }
    }
    let mut admin_sockets = Vec::new();
    for addr in config.listen.admin() {
        let socket = socket::bind(*addr).map_err(|e| format!("listen.admin: cannot listen on {addr}: {e}"))?;
        admin_sockets.push(socket);
    }
    let mut https_sockets = Vec::new();
    for addr in config.listen.addresses(Listener::Https) {
        let socket = socket::bind(*addr).map_err(|e| format!("listen.https: cannot listen on {addr}: {e}"))?;
        https_sockets.push(socket);
    }
    let mut http_sockets = Vec::new();
    for addr in config.listen.addresses(Listener::Http) {
        let socket = socket::bind(*addr).map_err(|e| format!("listen.http: cannot listen on {addr}: {e}"))?;
        http_sockets.push(socket);
    }
    if bound.is_empty() {
        let keys: Vec<&str> = Listener::ALL.iter().map(|l| l.spec().listen_key).collect();
        return Err(format!(
            "{}: no mail listener is configured; set one of {}",
            config.path.display(),
            keys.join(", ")
        ));
    }
    process::drop_privileges(&config)?;
    // Opened as the service user, who must be able to rotate it.
    let log = log_sink(&config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("portcullis")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let sockets = Sockets { mail: bound, https: https_sockets, http: http_sockets, admin: admin_sockets };
    runtime.block_on(run(config, tls, sockets, log))
}

/// The log: standard output, or `log.file` rotated by size.
fn log_sink(log: &portcullis_config::Log) -> Result<LogSink, String> {
    let format = match log.format {
        LogFormat::Json => portcullis_events::LogFormat::Json,
        LogFormat::Text => portcullis_events::LogFormat::Text,
    };
    let out: Box<dyn std::io::Write + Send> = match &log.file {
        Some(path) => Box::new(
            portcullis_events::RotatingFile::open(path, log.max_size, log.keep)
                .map_err(|e| format!("log.file: cannot open {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    Ok(LogSink::spawn(format, out))
}

/// The listening sockets, bound while still privileged.
struct Sockets {
    mail: Vec<(Listener, std::net::TcpListener)>,
    https: Vec<std::net::TcpListener>,
    http: Vec<std::net::TcpListener>,
    admin: Vec<std::net::TcpListener>,
}

async fn run(config: Config, tls: tls::Tls, sockets: Sockets, log: LogSink) -> Result<(), String> {
    let Sockets { mail: bound, https: https_sockets, http: http_sockets, admin: admin_sockets } = sockets;
    let options = portcullis_store_backends::Options { max_mailboxes: Some(config.limits.max_mailboxes_per_account) };
    let store = portcullis_store_backends::open(&config.store, options)
        .await
        .map_err(|e| format!("cannot open the store {}: {e}", config.store.describe()))?;
    // One event stream: the log, the anomaly detector and alert delivery all read it.
    let detector = anomalies::AnomalyDetector::new(&config.alerts);
    let (alert_queue, pending_alerts) = alert_delivery::AlertQueue::new(config.alerts.notify);
    // What the admin listener shows (metrics, charts, alerts, live sessions) reads it too.
    let monitor = monitor::Monitor::new(&config, detector.clone());
    let (sessions, abandoned_scram) = sessions::Sessions::new();
    let events =
        Events::new(vec![Arc::new(log), detector.clone(), Arc::new(alert_queue), monitor.clone(), sessions.clone()]);
    let auth =
        Authenticator::new(store.clone(), PasswordHasher::new(&config.passwords)?, config.passwords.scram_iterations)?;
    // One resolver for the whole server: port 25's checks and outbound delivery. Port 25
    // cannot run without it; without port 25 a resolver that cannot be built only leaves the
    // queue waiting (said in the log), since local mail does not need it.
    let resolver = match resolver::build(&config) {
        Ok(resolver) => Some(resolver),
        Err(e) if config.listen.is_on(Listener::Smtp) => return Err(e),
        Err(e) => {
            events.emit(Event::InternalError { conn: None, what: format!("outbound delivery is off: {e}") });
            None
        }
    };
    let sender_auth = match &resolver {
        Some(resolver) if config.listen.is_on(Listener::Smtp) => Some(mx::authenticator(&config, resolver.clone())),
        _ => None,
    };
    let courier = match resolver {
        Some(resolver) => Some((queue_runner::courier(&config, resolver.clone())?, resolver)),
        None => None,
    };
    let shared = Arc::new(Shared::new(config, store.clone(), auth, events.clone(), tls, sessions, sender_auth));
    let admin_auth = if admin_sockets.is_empty() {
        None
    } else {
        let (mut auth, source) = admin::AdminAuth::load(&shared.config.admin.token)?;
        if !shared.config.admin.accounts.is_empty() {
            auth = auth.with_account_sign_in(Arc::new(admin::TotpSignIn(shared.clone())));
        }
        Some((auth, source))
    };

    let mut signals = Signals::new()?;
    events.emit(Event::ServerStarted { version: env!("CARGO_PKG_VERSION") });
    if let Some((_, Some(source))) = &admin_auth {
        events.emit(Event::AdminToken { path: source.path.display().to_string(), created: source.created });
    }
    if let Some((courier, resolver)) = courier {
        let mut runner = queue_runner::QueueRunner::new(shared.clone(), Arc::new(courier));
        if shared.config.tls_rpt.enabled {
            let book = tls_reports::TlsReportBook::new(std::time::SystemTime::now());
            runner = runner.with_tls_reports(book.clone());
            tokio::spawn(tls_reports::run(shared.clone(), resolver, book));
        }
        // Tracked with the sessions, so a shutdown lets in-flight deliveries end within the grace.
        shared.tasks.spawn(runner.run());
    }
    let bans_seen = bans::load(&shared).await;
    tokio::spawn(follow_store::run(shared.clone(), bans_seen));
    let counting = shared.clone();
    tokio::spawn(async move { login::count_abandoned(&counting, abandoned_scram).await });
    tokio::spawn(anomalies::watch(
        detector,
        events.clone(),
        shared.config.alerts.bucket,
        shared.stop_accepting.clone(),
    ));
    tokio::spawn(alert_delivery::deliver(
        pending_alerts,
        shared.config.alerts.clone(),
        shared.config.hostname.clone(),
        store.clone(),
        events.clone(),
    ));
    let mut listening = Vec::new();
    let acceptance = accept::Acceptance::new();
    for (listener, socket) in bound {
        let socket = TcpListener::from_std(socket).map_err(|e| format!("listen.{listener}: {e}"))?;
        if let Ok(addr) = socket.local_addr() {
            events.emit(Event::Listening { listener, addr });
            // Whether every session on it is encrypted: not where STARTTLS is only offered (25).
            let tls = matches!(listener.spec().tls, TlsMode::Implicit | TlsMode::StartTlsRequired);
            listening.push(admin::ListenerInfo { name: listener.as_str().into(), addr, tls });
        }
        shared.tasks.spawn(accept::accept_loop(shared.clone(), acceptance.clone(), listener, socket));
    }
    // The HTTPS listener answers the CA's challenges, so it runs before the manager asks.
    let challenges = portcullis_acme::Challenges::new();
    let https = https::start(&shared, challenges.clone(), https_sockets, &listening)?;
    listening.extend(https);
    listening.extend(https::start_http(&shared, challenges.clone(), http_sockets)?);
    acme::start(&shared, challenges).await?;
    if let Some((auth, _)) = admin_auth {
        admin::start(shared.clone(), monitor, auth, listening, admin_sockets)?;
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

    // The default certificate is replaced in the SNI choice every listener shares, so that a
    // certificate from the ACME CA stays beside it.
    let files = tls::CertFiles { cert: shared.config.tls.cert.clone(), key: shared.config.tls.key.clone() };
    let (ok, error) = match tls::certified_key(&files) {
        Ok(key) => {
            shared.tls.sni().set_default(Arc::new(key));
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
