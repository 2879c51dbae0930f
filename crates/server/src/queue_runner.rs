//! The queue runner (issue 15): the task that hands queued mail on. Every tick (and at once
//! when a submission queued something) it claims the due messages from the store, groups each
//! message's pending recipients by domain, asks the per-destination [`Limiter`] whether the
//! domain may be tried now, hands each domain's batch to the [`Courier`] (MX routing, TLS
//! policy, the SMTP client: `portcullis-delivery`), and records the outcomes: delivered and
//! failed recipients are settled, the others retried by the [`RetrySchedule`]; a failure or
//! delay notice (`portcullis_queue::notice`) goes to the sender's own mailbox in the same
//! transaction as the record. Never to the null sender: `notice` returns nothing for it.
//!
//! One message at a time: a first slice; the limiter is already keyed by destination, so
//! running several messages at once is a change to this file only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_delivery::{
    AttemptOutcome, Batch, Courier, DeliverySettings, IpPreference, RecipientReport, Relay, RemoteCourier, TrustRoots,
};
use portcullis_events::Event;
use portcullis_queue::{notice, DestinationLimits, Limiter, NextStep, NoticeSettings, Original, RecipientStatus};
use portcullis_queue::{Admission, ReportAction, RetrySchedule};
use portcullis_smtp_client::{
    Credentials, Disposition, Message, MessageParams, Notify, OriginalRecipient, Recipient, Ret,
};
use portcullis_store::{AttemptUpdate, Delivery, DeliveryError, QueuedMessage, RecipientState, RecipientUpdate};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use crate::outbound_labels;
use crate::state::Shared;
use crate::tls_reports::TlsReportBook;

/// How often the queue is looked at when nothing wakes the runner.
const TICK: Duration = Duration::from_secs(1);
/// How long a claimed message is the runner's: longer than any one attempt can take (the
/// waits of RFC 5321 §4.5.3.2 over a few exchangers), so no other runner takes it meanwhile.
const LEASE: Duration = Duration::from_secs(3600);
/// Messages claimed at once.
const CLAIM: usize = 32;
/// A domain the limiter holds back is looked at again this soon.
const HELD_BACK: Duration = Duration::from_secs(5);

pub struct QueueRunner {
    shared: Arc<Shared>,
    courier: Arc<dyn Courier>,
    schedule: RetrySchedule,
    limiter: Limiter<String>,
    notices: NoticeSettings,
    /// Where each attempt's connections are counted for TLS reports (`[tls_rpt]`).
    tls_reports: Option<Arc<TlsReportBook>>,
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn system_time(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64)
}

fn domain_of(address: &str) -> String {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("").trim_end_matches('.').to_ascii_lowercase()
}

impl QueueRunner {
    pub fn new(shared: Arc<Shared>, courier: Arc<dyn Courier>) -> QueueRunner {
        let schedule = shared.config.queue;
        let notices = NoticeSettings { reporting_mta: shared.config.hostname.clone(), ..NoticeSettings::default() };
        QueueRunner {
            shared,
            courier,
            schedule,
            limiter: Limiter::new(DestinationLimits::default()),
            notices,
            tls_reports: None,
        }
    }

    /// Counts every attempt's connections in `book` for TLS reports.
    pub fn with_tls_reports(mut self, book: Arc<TlsReportBook>) -> QueueRunner {
        self.tls_reports = Some(book);
        self
    }

    /// Runs until the server stops accepting (shutdown).
    pub async fn run(mut self) {
        loop {
            tokio::select! {
                _ = self.shared.stop_accepting.cancelled() => return,
                _ = self.shared.queue_wakeup.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
            let now = SystemTime::now();
            let due = match self.shared.queue.claim_due(unix(now), unix(now + LEASE), CLAIM).await {
                Ok(due) => due,
                Err(e) => {
                    self.shared
                        .events
                        .emit(Event::InternalError { conn: None, what: format!("queue read failed: {e}") });
                    continue;
                }
            };
            for message in due {
                if self.shared.stop_accepting.is_cancelled() {
                    return; // its lease runs out, and the next start takes it again
                }
                self.attempt(message).await;
            }
        }
    }

    async fn attempt(&mut self, queued: QueuedMessage) {
        let content: Arc<[u8]> = Arc::from(queued.content.as_slice());
        let mut by_domain: BTreeMap<String, Vec<Recipient>> = BTreeMap::new();
        for r in queued.recipients.iter().filter(|r| r.state == RecipientState::Pending) {
            by_domain.entry(domain_of(&r.address)).or_default().push(Recipient {
                address: r.address.clone(),
                notify: r.notify.as_deref().and_then(|n| Notify::parse(n).ok()),
                original: r.orcpt.as_deref().and_then(|o| OriginalRecipient::parse(o).ok()),
            });
        }
        let params = MessageParams {
            ret: queued.ret.as_deref().and_then(|r| Ret::parse(r).ok()),
            envid: queued.envid.clone(),
            requiretls: queued.requiretls,
            smtputf8: queued.smtputf8,
            eight_bit: queued.eight_bit,
        };
        let now = SystemTime::now();
        let queued_at = system_time(queued.queued_at);
        let failed_attempts = queued.attempts + 1;
        let give_up = self.schedule.after_temporary_failure(queued_at, failed_attempts, now) == NextStep::GiveUp;
        let mut updates = Vec::new();
        let mut statuses = Vec::new();
        let mut next: Option<SystemTime> = None;
        let retry = |at: SystemTime, next: &mut Option<SystemTime>| *next = Some(next.map_or(at, |n| n.min(at)));

        for (domain, recipients) in by_domain {
            match self.limiter.try_start(&domain, Instant::now()) {
                Admission::Go => {}
                Admission::Busy | Admission::NotBefore(_) => {
                    retry(now + HELD_BACK, &mut next);
                    continue;
                }
            }
            let message = Message {
                sender: queued.sender.clone(),
                recipients: recipients.clone(),
                params: params.clone(),
                content: content.clone(),
            };
            let report = self.courier.deliver(Batch { domain: domain.clone(), messages: vec![message] }).await;
            if let Some(book) = &self.tls_reports {
                book.record(&report.attempts);
            }
            let connected = report.attempts.iter().any(|a| matches!(a.outcome, AttemptOutcome::Completed));
            let connect_failed =
                !connected && report.attempts.iter().any(|a| matches!(a.outcome, AttemptOutcome::ConnectFailed(_)));
            self.limiter.finish(&domain, connect_failed, Instant::now());

            let reports: Vec<RecipientReport> = report.messages.into_iter().next().unwrap_or_default();
            let (mut delivered, mut deferred, mut failed) = (0, 0, 0);
            let mut reason = None;
            let mut tally = outbound_labels::Tally::default();
            for r in &reports {
                let original = recipients.iter().find(|x| x.address == r.address);
                let (state, action) = match r.disposition {
                    // RFC 3461 §4.1: a server that offers DSN took NOTIFY along and reports
                    // success itself; one that does not leaves us to say "relayed" (sent only
                    // to a recipient whose NOTIFY asks for SUCCESS: `notice` checks).
                    Disposition::Delivered if r.peer_offers_dsn => (RecipientState::Delivered, None),
                    Disposition::Delivered => (RecipientState::Delivered, Some(ReportAction::Relayed)),
                    Disposition::Permanent => (RecipientState::Failed, Some(ReportAction::Failed)),
                    Disposition::Temporary if give_up => (RecipientState::Failed, Some(ReportAction::Failed)),
                    Disposition::Temporary => (RecipientState::Pending, None),
                };
                tally.add(outbound_labels::recipient(r.disposition, &r.why, give_up));
                match state {
                    RecipientState::Delivered => delivered += 1,
                    RecipientState::Pending => deferred += 1,
                    RecipientState::Failed => failed += 1,
                }
                if state != RecipientState::Delivered && reason.is_none() {
                    reason = Some(r.why.to_string());
                }
                updates.push(RecipientUpdate { address: r.address.clone(), state, reply: Some(r.why.to_string()) });
                let status = |action: ReportAction| RecipientStatus {
                    address: r.address.clone(),
                    original: original.and_then(|o| o.original.clone()),
                    notify: original.and_then(|o| o.notify),
                    action,
                    status: r.status,
                    remote_mta: r.remote_mta.clone(),
                    reply: r.why.reply().cloned(),
                    explanation: r.why.reply().is_none().then(|| r.why.to_string()),
                    last_attempt: Some(now),
                    will_retry_until: (action == ReportAction::Delayed).then(|| self.schedule.expires_at(queued_at)),
                };
                if let Some(action) = action {
                    statuses.push(status(action));
                } else if state == RecipientState::Pending {
                    statuses.push(status(ReportAction::Delayed));
                }
            }
            let last = report.attempts.iter().rev().find(|a| a.address.is_some()).or(report.attempts.last());
            self.shared.events.emit(Event::DeliveryAttempt {
                queue_id: queued.id,
                domain: domain.clone(),
                host: last.map(|a| a.host.clone()).unwrap_or_default(),
                address: last.and_then(|a| a.address),
                tls_version: last.and_then(|a| a.tls.as_ref()).map(|t| t.version.clone()),
                tls_cipher: last.and_then(|a| a.tls.as_ref()).map(|t| t.cipher.clone()),
                tls_failure: last.and_then(|a| a.tls_failure).map(|f| f.to_string()),
                delivered,
                deferred,
                failed,
                reason,
                expired: give_up && failed > 0,
                outcomes: tally.outcomes(),
                tls_policy: last.map(|a| outbound_labels::tls(a).0),
                tls_result: last.map(|a| outbound_labels::tls(a).1),
            });
            if deferred > 0 {
                if let NextStep::RetryAt(at) = self.schedule.after_temporary_failure(queued_at, failed_attempts, now) {
                    retry(at, &mut next);
                }
            }
        }

        let bounced = updates.iter().filter(|u| u.state == RecipientState::Failed).count();
        crate::anomalies::permanent_failures(&self.shared, &queued.sender, bounced);

        // One notice for what this attempt settled (failures, and successes asked for), and
        // the delay of the rest if it is due; each recipient's NOTIFY picks among them.
        let delay_due = self.schedule.delay_notice_due(queued_at, now, queued.delay_notice_sent);
        statuses.retain(|s| s.action != ReportAction::Delayed || delay_due);
        let original = Original {
            sender: &queued.sender,
            envid: queued.envid.as_deref(),
            ret: params.ret,
            arrival: queued_at,
            content: &content,
        };
        let unique = format!("{}.{}.{}", queued.id, failed_attempts, unix(now));
        let notice = notice(&self.notices, &original, &statuses, now, &unique);
        let delay_notice_sent =
            notice.as_ref().is_some_and(|n| n.reported.iter().any(|(_, a)| *a == ReportAction::Delayed));
        let notice = match notice {
            Some(n) => self.notice_delivery(n.recipient, n.content).await,
            None => None,
        };
        let update = AttemptUpdate {
            id: queued.id,
            recipients: updates,
            next_attempt: unix(next.unwrap_or(now + HELD_BACK)),
            delay_notice_sent,
            notice,
        };
        let mut result = self.shared.queue.record_attempt(update.clone()).await;
        if let Err(DeliveryError::QuotaExceeded(who)) = &result {
            // The sender's mailbox is full: the record must not wait for it.
            let what = format!("a delivery notice for {who} was dropped: the mailbox is full");
            self.shared.events.emit(Event::InternalError { conn: None, what });
            result = self.shared.queue.record_attempt(AttemptUpdate { notice: None, ..update }).await;
        }
        if let Err(e) = result {
            self.shared.events.emit(Event::InternalError {
                conn: None,
                what: format!("recording a delivery attempt of queued message {} failed: {e}", queued.id),
            });
        }
    }

    /// The notice as a local delivery to the sender's mailbox; the sender of submitted mail is
    /// always a local account or one of its aliases (the session checks it), so a missing one
    /// is an error to report.
    async fn notice_delivery(&self, to: String, content: Vec<u8>) -> Option<Delivery> {
        let account = match self.shared.aliases.alias_target(&to).await {
            Ok(Some(account)) => self.shared.store.account(&account).await,
            Ok(None) => self.shared.store.account(&to).await,
            Err(e) => Err(e),
        };
        match account {
            Ok(Some(account)) => {
                // From the null sender, delivered here: Return-Path: <> (RFC 5321 §4.4).
                let raw = portcullis_proto_smtp::with_return_path("", &content);
                Some(Delivery { recipients: vec![account.id], raw, internal_date: unix(SystemTime::now()) })
            }
            Ok(None) => {
                let what = format!("a delivery notice for {to} was dropped: no such local account");
                self.shared.events.emit(Event::InternalError { conn: None, what });
                None
            }
            Err(e) => {
                let what = format!("a delivery notice for {to} was dropped: {e}");
                self.shared.events.emit(Event::InternalError { conn: None, what });
                None
            }
        }
    }
}

/// The remote courier from `[delivery]`, `[relay]`, `[mta_sts]` and `[dane]`, on the server's
/// one resolver, trusting the Web PKI roots and `delivery.trust_roots`. Files it names (the
/// extra roots, the smart host's password) are read here, once, at start: a missing or
/// unreadable one stops the start with a sentence naming the key.
pub fn courier(
    config: &portcullis_config::Config,
    resolver: portcullis_dns::Resolver,
) -> Result<RemoteCourier, String> {
    let d = &config.delivery;
    let mut settings = DeliverySettings::new(&config.hostname);
    settings.port = d.port;
    settings.ip_preference = match d.ip_preference {
        portcullis_config::IpPreference::Ipv4Only => IpPreference::Ipv4Only,
        portcullis_config::IpPreference::Ipv6Only => IpPreference::Ipv6Only,
        portcullis_config::IpPreference::PreferIpv4 => IpPreference::PreferIpv4,
        portcullis_config::IpPreference::PreferIpv6 => IpPreference::PreferIpv6,
    };
    settings.source_ipv4 = d.source_ipv4;
    settings.source_ipv6 = d.source_ipv6;
    if let Some(limit) = d.reply_timeout {
        settings.timeouts = settings.timeouts.capped(limit);
        settings.mta_sts_timeout = settings.mta_sts_timeout.min(limit);
    }
    settings.attempt_timeout = d.attempt_timeout;
    settings.mta_sts = config.mta_sts.enabled;
    settings.mta_sts_port = config.mta_sts.port;
    settings.dane = config.dane.enabled;
    settings.relay = match &config.relay {
        Some(relay) => Some(Relay {
            host: relay.host.clone(),
            port: relay.port,
            implicit_tls: relay.tls == portcullis_config::RelayTls::Implicit,
            credentials: match &relay.login {
                Some(login) => Some(Credentials {
                    username: login.username.clone(),
                    password: read_password(&login.password_file)?,
                }),
                None => None,
            },
        }),
        None => None,
    };
    let extra = match &d.trust_roots {
        Some(path) => read_roots(path)?,
        None => Vec::new(),
    };
    let roots = TrustRoots::new(&extra).map_err(|e| format!("delivery.trust_roots: {e}"))?;
    Ok(RemoteCourier::new(settings, resolver, roots))
}

/// The first line of the smart host's password file.
fn read_password(path: &std::path::Path) -> Result<Zeroizing<String>, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("relay.password_file: cannot read {}: {e}", path.display()))?,
    );
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(format!("relay.password_file: {} holds no password on its first line", path.display()));
    }
    Ok(Zeroizing::new(line.to_string()))
}

/// Every certificate of a PEM file, for `delivery.trust_roots`.
fn read_roots(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("delivery.trust_roots: cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("delivery.trust_roots: {} is not PEM certificates: {e}", path.display()))?;
    if roots.is_empty() {
        return Err(format!("delivery.trust_roots: {} holds no certificate", path.display()));
    }
    Ok(roots)
}
