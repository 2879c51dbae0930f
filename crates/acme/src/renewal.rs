//! The manager: keeps a certificate from the CA in service. At start it hands the stored
//! certificate (if any) to the swap hook; it obtains one at once when there is none, and
//! otherwise when two thirds of its lifetime have passed; a failed attempt is retried with
//! doubling waits, the old certificate staying in service meanwhile. Everything that happens
//! is an [`AcmeEvent`] handed to the event hook, which the server turns into its own events
//! and alerts; a new certificate goes to the swap hook, which installs it for new handshakes
//! without touching established sessions.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::sign::CertifiedKey;

use crate::challenges::Challenges;
use crate::issue::obtain;
use crate::settings::AcmeSettings;
use crate::storage::{CertStore, Issued};
use crate::validity::{backoff, Validity};

/// What the manager reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcmeEvent {
    /// The stored certificate was put in service at start.
    Loaded { names: Vec<String>, not_after: SystemTime, renewal_due: SystemTime },
    /// A new certificate was obtained, stored, and handed to the swap hook.
    Issued { names: Vec<String>, not_after: SystemTime, renewal_due: SystemTime },
    /// An attempt failed; the certificate in service (if any) stays. `expires_in` is `None`
    /// when there is none yet.
    Failed { error: String, failures: u32, retry_in: Duration, expires_in: Option<Duration>, urgency: Urgency },
}

/// How soon an operator must act on a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// Retries go on and there is time: at least a sixth of the lifetime is left.
    Warning,
    /// Less than a sixth of the lifetime (15 days of 90) is left, or there is no certificate
    /// from the CA at all.
    Critical,
}

/// The two hooks.
pub struct Hooks {
    pub on_event: Box<dyn Fn(AcmeEvent) + Send + Sync>,
    /// Installs a certificate for new handshakes (the server's TLS reload, as on SIGHUP).
    pub on_certificate: Box<dyn Fn(Arc<CertifiedKey>) + Send + Sync>,
}

pub struct Manager {
    settings: AcmeSettings,
    store: CertStore,
    challenges: Arc<Challenges>,
    hooks: Hooks,
}

impl Manager {
    pub fn new(settings: AcmeSettings, store: CertStore, challenges: Arc<Challenges>, hooks: Hooks) -> Manager {
        Manager { settings, store, challenges, hooks }
    }

    pub fn store(&self) -> &CertStore {
        &self.store
    }

    /// The certificate in the store, if any (what `portcullis status` shows).
    pub fn current(&self) -> Result<Option<Issued>, String> {
        self.store.load_certificate()
    }

    /// One attempt now: obtain, store, install. The old certificate stays on failure.
    pub async fn renew_now(&self) -> Result<Issued, String> {
        let issued = obtain(&self.settings, &self.store, &self.challenges).await?;
        (self.hooks.on_certificate)(issued.key.clone());
        (self.hooks.on_event)(AcmeEvent::Issued {
            names: self.settings.names.clone(),
            not_after: issued.validity.not_after,
            renewal_due: issued.validity.renewal_due(self.settings.renew_at),
        });
        Ok(issued)
    }

    /// Runs until `stop` completes.
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut current: Option<Validity> = match self.store.load_certificate() {
            Ok(Some(issued)) => {
                (self.hooks.on_certificate)(issued.key.clone());
                (self.hooks.on_event)(AcmeEvent::Loaded {
                    names: self.settings.names.clone(),
                    not_after: issued.validity.not_after,
                    renewal_due: issued.validity.renewal_due(self.settings.renew_at),
                });
                Some(issued.validity)
            }
            // An unreadable file is replaced by the next certificate; until then it is a failure.
            Ok(None) | Err(_) => None,
        };
        let mut failures = 0u32;
        loop {
            let due = current.map_or(SystemTime::now(), |v| v.renewal_due(self.settings.renew_at));
            let wait = due.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let attempt = tokio::select! {
                _ = &mut stop => return,
                attempt = self.renew_now() => attempt,
            };
            match attempt {
                Ok(issued) => {
                    current = Some(issued.validity);
                    failures = 0;
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let retry_in = backoff(failures, self.settings.retry_first, self.settings.retry_max);
                    let expires_in = current.map(|v| v.remaining(SystemTime::now()));
                    let urgency = urgency(current, SystemTime::now());
                    (self.hooks.on_event)(AcmeEvent::Failed { error, failures, retry_in, expires_in, urgency });
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(retry_in) => {}
                    }
                    // The renewal is still due, so the loop tries again at once.
                }
            }
        }
    }
}

/// A failure is critical when less than a sixth of the lifetime is left, or nothing from the
/// CA is in service.
pub fn urgency(current: Option<Validity>, now: SystemTime) -> Urgency {
    match current {
        Some(v) if v.remaining(now) >= v.lifetime() / 6 => Urgency::Warning,
        _ => Urgency::Critical,
    }
}
