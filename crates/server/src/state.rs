//! What the whole server shares, built once at start and handed to every task: the config,
//! the store, the authenticator, the event stream, the guard, the TLS configuration, the
//! registry of live sessions, and the tokens that drive shutdown.

use std::sync::Arc;

use portcullis_auth::Authenticator;
use portcullis_config::Config;
use portcullis_events::{AlertKind, Event, Events, Severity};
use portcullis_guard::{Guard, Policy};
use portcullis_store::{AliasStore, DkimKeyStore, QueueStore, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dkim::Signing;
use crate::sessions::{Sessions, Who};
use crate::tls::Tls;

pub struct Shared {
    pub config: Config,
    pub store: Arc<dyn Store>,
    /// The outbound queue, in the same database as `store`.
    pub queue: Arc<dyn QueueStore>,
    /// The DKIM keys of the local domains, in the same database as `store`.
    pub dkim_keys: Arc<dyn DkimKeyStore>,
    /// Signs what submission queues, with the keys of `dkim_keys` kept parsed.
    pub dkim: Signing,
    /// Accounts' other addresses, in the same database as `store`.
    pub aliases: Arc<dyn AliasStore>,
    /// Wakes the queue runner when a submission queued a message.
    pub queue_wakeup: tokio::sync::Notify,
    pub auth: Authenticator,
    pub events: Events,
    pub guard: Guard,
    pub tls: Tls,
    /// Who is really sending (SPF, DKIM, DMARC, ARC, FCrDNS, DNSBL) on the server's one DNS
    /// resolver: built when port 25 listens (`listen.smtp`), `None` otherwise.
    pub sender_auth: Option<portcullis_sender_auth::Authenticator>,
    /// Live sessions: the admin API lists and kills them, revoked app passwords close them.
    pub sessions: Arc<Sessions>,
    /// Every connection's task, so that shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Cancelled on SIGTERM: listeners stop accepting.
    pub stop_accepting: CancellationToken,
    /// Cancelled when the shutdown grace period is over: sessions say goodbye and close.
    pub close_sessions: CancellationToken,
}

impl Shared {
    /// `sessions` is made beforehand: it also reads the event stream that `events` feeds.
    /// `store` serves the mailboxes, the outbound queue, the DKIM keys and the aliases (one database).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        auth: Authenticator,
        events: Events,
        tls: Tls,
        sessions: Arc<Sessions>,
        sender_auth: Option<portcullis_sender_auth::Authenticator>,
    ) -> Shared {
        let guard = Guard::new(Policy::from_config(&config));
        let dkim = Signing::new(store.clone(), store.clone(), events.clone());
        Shared {
            config,
            store: store.clone(),
            dkim_keys: store.clone(),
            dkim,
            aliases: store.clone(),
            queue: store,
            queue_wakeup: tokio::sync::Notify::new(),
            auth,
            events,
            guard,
            tls,
            sender_auth,
            sessions,
            tasks: TaskTracker::new(),
            stop_accepting: CancellationToken::new(),
            close_sessions: CancellationToken::new(),
        }
    }

    /// Raises an alert about one account or connection (the anomaly detector raises its own).
    pub fn alert(
        &self,
        kind: AlertKind,
        severity: Severity,
        who: Option<Who>,
        account: Option<&str>,
        observed: f64,
        message: String,
    ) {
        self.events.emit(Event::AlertRaised {
            kind,
            severity,
            listener: who.map(|w| w.listener),
            account: account.map(str::to_string),
            peer: who.map(|w| w.peer.ip()),
            observed,
            baseline: None,
            threshold: None,
            message,
        });
    }
}
