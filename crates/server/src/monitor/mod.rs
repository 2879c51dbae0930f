//! What the admin listener shows, all derived from the one event stream by one [`Sink`]: the
//! Prometheus metrics, the last hour of connection attempts and failed logins per listener
//! (with the anomaly detector's baseline), the recent alerts with their acknowledgement, and
//! the mail from other servers (port 25) by verdict.

mod prometheus;
pub mod series;

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use portcullis_events::{AlertKind, BanOrigin, Event, Listener, Record, RefuseReason, Severity, Sink};
use portcullis_guard::anomaly::{Metric, Series as DetectorSeries};
use serde::Serialize;

use portcullis_store::QueueTotals;

use crate::anomalies::AnomalyDetector;
use crate::unix_time;
use prometheus::{Kind, Labels, Registry};
use series::{Measure, Series, Snapshot};

/// Alerts kept for the API and the dashboard (oldest dropped first).
const ALERTS_KEPT: usize = 500;

const HANDSHAKE_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const COMMAND_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// One alert as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEntry {
    pub id: u64,
    pub ts_ms: u64,
    pub kind: AlertKind,
    pub severity: Severity,
    pub listener: Option<Listener>,
    pub account: Option<String>,
    pub peer: Option<IpAddr>,
    pub observed: f64,
    pub baseline: Option<f64>,
    pub threshold: Option<f64>,
    pub message: String,
    pub acknowledged: bool,
    pub acknowledged_ms: Option<u64>,
}

/// Command latencies of one listener, counted without a lock: commands are the hot path.
struct CommandLatency {
    /// Per bucket of [`COMMAND_BUCKETS`], then one for +Inf; not cumulative.
    buckets: Vec<AtomicU64>,
    sum_us: AtomicU64,
}

impl CommandLatency {
    fn new() -> CommandLatency {
        CommandLatency {
            buckets: (0..=COMMAND_BUCKETS.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    fn observe(&self, latency_us: u64) {
        let seconds = latency_us as f64 / 1e6;
        let i = COMMAND_BUCKETS.iter().position(|&b| seconds <= b).unwrap_or(COMMAND_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(latency_us, Ordering::Relaxed);
    }
}

struct AlertLog {
    next_id: u64,
    kept: VecDeque<AlertEntry>,
}

/// Mail from other servers (port 25) since the start, by verdict: what the dashboard shows.
#[derive(Debug, Default, Serialize)]
pub struct Inbound {
    /// Messages by decision: accept, junk, reject, tempfail.
    pub messages: BTreeMap<&'static str, u64>,
    /// Per method (spf, spf_helo, dkim, dmarc, arc, iprev), messages by result.
    pub results: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
}

/// The certificate from the ACME CA, as its events told (`portcullis status` shows it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AcmeState {
    /// Unix seconds; absent until a certificate from the CA is in service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_due: Option<u64>,
    /// When the last certificate was obtained from the CA (Unix milliseconds); absent when
    /// the one in service was loaded from the store at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_issued_ms: Option<u64>,
    /// The last failed attempt since the last success: when (Unix milliseconds) and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

pub struct Monitor {
    started_ms: u64,
    acme: Mutex<AcmeState>,
    listeners: Vec<Listener>,
    registry: Mutex<Registry>,
    series: Mutex<Series>,
    alerts: Mutex<AlertLog>,
    inbound: Mutex<Inbound>,
    detector: Arc<AnomalyDetector>,
    /// Per mail listener, in the order of `Listener::ALL`.
    commands: [CommandLatency; Listener::ALL.len()],
    /// The detector's k and floor, for drawing its threshold.
    pub deviations: f64,
    pub floor: f64,
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

fn as_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The credential kind of an auth event: its `credential` field when it has one, else
/// "app_password" when it names an app password, else "password". Read through the serialised
/// event so that this follows the auth events' fields as they grow (auth events are rare next
/// to commands: the cost does not matter).
fn credential(event: &Event) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(event) else { return "password".into() };
    match (fields.get("credential"), fields.get("app_password")) {
        (Some(serde_json::Value::String(kind)), _) => kind.clone(),
        (_, Some(serde_json::Value::String(_))) => "app_password".into(),
        _ => "password".into(),
    }
}

fn detector_metric(measure: Measure) -> Metric {
    match measure {
        Measure::ConnectionAttempts => Metric::ConnectionAttempts,
        Measure::AuthFailures => Metric::AuthFailures,
    }
}

impl Monitor {
    pub fn new(config: &portcullis_config::Config, detector: Arc<AnomalyDetector>) -> Arc<Monitor> {
        let listeners: Vec<Listener> = config.listen.mail().map(|(listener, _)| listener).collect();
        let mut r = Registry::default();
        use Kind::*;
        r.declare("portcullis_build_info", Gauge, "Always 1; the version is a label.");
        r.declare("portcullis_start_time_seconds", Gauge, "When the server started, Unix seconds.");
        r.declare(
            "portcullis_connections_total",
            Counter,
            "Connections by listener and outcome: accepted, or the reason it was refused.",
        );
        r.declare("portcullis_connections_closed_total", Counter, "Sessions ended, by listener and reason.");
        r.declare(
            "portcullis_proxy_refused_total",
            Counter,
            "Connections on PROXY-protocol listeners closed before the guard saw a client, by listener and reason.",
        );
        r.declare("portcullis_sessions_active", Gauge, "Sessions open now, by listener and protocol.");
        r.declare(
            "portcullis_session_bytes_total",
            Counter,
            "Bytes moved by ended sessions, by listener and direction (in, out).",
        );
        r.declare(
            "portcullis_tls_handshakes_total",
            Counter,
            "TLS handshakes completed, by listener, version and cipher.",
        );
        r.declare("portcullis_tls_failures_total", Counter, "TLS handshakes that failed or timed out, by listener.");
        r.declare(
            "portcullis_tls_handshake_seconds",
            Histogram(HANDSHAKE_BUCKETS),
            "Duration of completed TLS handshakes, by listener.",
        );
        r.declare(
            "portcullis_auth_total",
            Counter,
            "Authentications by listener, mechanism, credential kind and outcome (success, failure).",
        );
        r.declare("portcullis_messages_total", Counter, "Messages submitted, by outcome (accepted, rejected).");
        r.declare(
            "portcullis_outbound_recipients_total",
            Counter,
            "Recipients of queued mail per delivery attempt, by result (delivered, deferred, failed) and reason \
             (delivered, rejected, deferred, expired, no_route, tls_policy).",
        );
        r.declare(
            "portcullis_outbound_tls_total",
            Counter,
            "Delivery attempts by the TLS policy of their last connection (none, mta-sts-testing, mta-sts-enforce, dane, relay) and its \
             result (verified, encrypted, plaintext, failed).",
        );
        r.declare("portcullis_queue_messages", Gauge, "Messages in the outbound queue, held ones included.");
        r.declare("portcullis_queue_held_messages", Gauge, "Messages in the outbound queue held by an operator.");
        r.declare("portcullis_queue_bytes", Gauge, "Bytes of the messages in the outbound queue.");
        r.declare(
            "portcullis_queue_oldest_seconds",
            Gauge,
            "Age of the oldest message in the outbound queue (0 when it is empty).",
        );
        r.declare("portcullis_message_bytes_total", Counter, "Bytes of submitted messages, by outcome.");
        r.declare("portcullis_message_recipients_total", Counter, "Recipients of submitted messages, by outcome.");
        r.declare(
            "portcullis_command_seconds",
            Histogram(COMMAND_BUCKETS),
            "Time from a command's last input byte to its answer, by listener.",
        );
        r.declare("portcullis_protocol_violations_total", Counter, "Protocol rules or limits broken, by listener.");
        r.declare(
            "portcullis_inbound_messages_total",
            Counter,
            "Messages from other servers (port 25) at the end of DATA, by decision (accept, junk, reject, tempfail).",
        );
        r.declare(
            "portcullis_sender_auth_results_total",
            Counter,
            "Sender-authentication results of messages from other servers, by method (spf, spf_helo, dkim, dmarc, arc, iprev) and result.",
        );
        r.declare(
            "portcullis_messages_received_total",
            Counter,
            "Messages from other servers stored, by mailbox (INBOX, Junk) and whether they came over TLS.",
        );
        r.declare(
            "portcullis_client_checks_total",
            Counter,
            "Port-25 clients checked at connect, by iprev result and decision.",
        );
        r.declare("portcullis_sender_checks_total", Counter, "MAIL FROM checks on port 25, by result and decision.");
        r.declare("portcullis_recipients_refused_total", Counter, "Recipients refused, by listener and reason.");
        r.declare(
            "portcullis_rate_limited_total",
            Counter,
            "Refusals for a per-minute rate of a source, by listener and limit.",
        );
        r.declare("portcullis_bans_active", Gauge, "Bans in force now.");
        r.declare("portcullis_bans_added_total", Counter, "Bans added, by origin (auto, admin).");
        r.declare("portcullis_bans_removed_total", Counter, "Bans lifted by an administrator.");
        r.declare("portcullis_bans_expired_total", Counter, "Bans that ran out.");
        r.declare("portcullis_alerts_total", Counter, "Alerts raised, by kind and severity.");
        r.declare("portcullis_alerts_unacknowledged", Gauge, "Recent alerts nobody acknowledged yet.");
        r.declare("portcullis_config_reloads_total", Counter, "Reloads (SIGHUP), by what and outcome (ok, error).");
        r.declare("portcullis_internal_errors_total", Counter, "Errors on the server's side (store, I/O).");
        r.declare("portcullis_admin_auth_failures_total", Counter, "Admin API requests refused for a bad token.");
        r.declare("portcullis_http_requests_total", Counter, "HTTPS listener requests, by listener and status.");
        r.declare(
            "portcullis_acme_certificate_expiry_seconds",
            Gauge,
            "When the certificate from the ACME CA in service expires, Unix seconds.",
        );
        r.declare("portcullis_acme_failures_total", Counter, "Failed attempts to get a certificate from the ACME CA.");
        let started_ms = unix_time::now_millis();
        r.set("portcullis_build_info", labels(&[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
        r.set("portcullis_start_time_seconds", vec![], (started_ms / 1000) as f64);
        for &l in &listeners {
            r.add("portcullis_connections_total", labels(&[("listener", l.as_str()), ("outcome", "accepted")]), 0.0);
            r.add("portcullis_sessions_active", labels(&[("listener", l.as_str()), ("protocol", l.protocol())]), 0.0);
        }
        r.set("portcullis_bans_active", vec![], 0.0);
        let bucket_ms = config.alerts.bucket.as_millis().max(1) as u64;
        Arc::new(Monitor {
            started_ms,
            acme: Mutex::new(AcmeState::default()),
            listeners,
            registry: Mutex::new(r),
            series: Mutex::new(Series::new(bucket_ms, started_ms)),
            alerts: Mutex::new(AlertLog { next_id: 1, kept: VecDeque::new() }),
            inbound: Mutex::default(),
            detector,
            commands: std::array::from_fn(|_| CommandLatency::new()),
            deviations: config.alerts.deviations,
            floor: config.alerts.floor,
        })
    }

    /// The certificate from the ACME CA, when `tls.acme` is set.
    pub fn acme(&self) -> AcmeState {
        self.acme.lock().map(|a| a.clone()).unwrap_or_default()
    }

    fn remember_acme(&self, ts_ms: u64, event: &Event) {
        let Ok(mut acme) = self.acme.lock() else { return };
        match event {
            Event::AcmeCertificate { not_after, renewal_due, new, .. } => {
                acme.not_after = Some(*not_after);
                acme.renewal_due = Some(*renewal_due);
                if *new {
                    acme.last_issued_ms = Some(ts_ms);
                }
                acme.last_failure_ms = None;
                acme.last_error = None;
            }
            Event::AcmeFailed { error, .. } => {
                acme.last_failure_ms = Some(ts_ms);
                acme.last_error = Some(error.clone());
            }
            _ => {}
        }
    }

    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// The mail listeners this server runs.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    fn baseline(&self, measure: Measure, listener: Listener) -> series::Baseline {
        self.detector.baseline(&DetectorSeries { metric: detector_metric(measure), listener: Some(listener) })
    }

    fn count(&self, ts_ms: u64, measure: Measure, listener: Listener) {
        // The charts are of the mail listeners; the admin listener's refusals are in /metrics.
        if !listener.is_mail() {
            return;
        }
        if let Ok(mut s) = self.series.lock() {
            s.advance(ts_ms, &|m, l| self.baseline(m, l));
            s.count(measure, listener);
        }
    }

    /// The Prometheus text; `bans_active` is read from the guard at scrape time.
    /// The metrics page; `queue` is the outbound queue as the store has it now (`None` when
    /// the store could not say: its gauges keep their last values).
    pub fn metrics_text(&self, bans_active: usize, queue: Option<QueueTotals>) -> String {
        let unacknowledged = self.unacknowledged();
        match self.registry.lock() {
            Ok(mut r) => {
                for (listener, latency) in Listener::ALL.iter().zip(&self.commands) {
                    let buckets: Vec<u64> = latency.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
                    if buckets.iter().any(|&n| n > 0) {
                        let sum = latency.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
                        let labels = labels(&[("listener", listener.as_str())]);
                        r.set_histogram("portcullis_command_seconds", labels, &buckets, sum);
                    }
                }
                r.set("portcullis_bans_active", vec![], bans_active as f64);
                r.set("portcullis_alerts_unacknowledged", vec![], unacknowledged as f64);
                if let Some(q) = queue {
                    let now = (unix_time::now_millis() / 1000) as i64;
                    r.set("portcullis_queue_messages", vec![], q.messages as f64);
                    r.set("portcullis_queue_held_messages", vec![], q.held as f64);
                    r.set("portcullis_queue_bytes", vec![], q.bytes as f64);
                    let oldest = q.oldest_queued_at.map_or(0, |t| (now - t).max(0));
                    r.set("portcullis_queue_oldest_seconds", vec![], oldest as f64);
                }
                r.render()
            }
            Err(_) => String::new(),
        }
    }

    pub fn series(&self) -> Snapshot {
        match self.series.lock() {
            Ok(mut s) => {
                s.advance(unix_time::now_millis(), &|m, l| self.baseline(m, l));
                s.snapshot(&self.listeners)
            }
            Err(_) => Series::new(1000, unix_time::now_millis()).snapshot(&[]),
        }
    }

    /// Recent alerts, newest first.
    pub fn alerts(&self, unacknowledged_only: bool) -> Vec<AlertEntry> {
        match self.alerts.lock() {
            Ok(log) => log.kept.iter().rev().filter(|a| !(unacknowledged_only && a.acknowledged)).cloned().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Mail from other servers since the start, by verdict.
    pub fn inbound(&self) -> serde_json::Value {
        self.inbound.lock().map(|i| serde_json::to_value(&*i).unwrap_or_default()).unwrap_or_default()
    }

    pub fn unacknowledged(&self) -> usize {
        self.alerts.lock().map(|log| log.kept.iter().filter(|a| !a.acknowledged).count()).unwrap_or(0)
    }

    /// Marks an alert as seen; the alert, or None if no such alert is kept.
    pub fn acknowledge(&self, id: u64) -> Option<AlertEntry> {
        let mut log = self.alerts.lock().ok()?;
        let alert = log.kept.iter_mut().find(|a| a.id == id)?;
        if !alert.acknowledged {
            alert.acknowledged = true;
            alert.acknowledged_ms = Some(unix_time::now_millis());
        }
        Some(alert.clone())
    }

    fn remember_alert(&self, ts_ms: u64, event: &Event) {
        let Event::AlertRaised { kind, severity, listener, account, peer, observed, baseline, threshold, message } =
            event
        else {
            return;
        };
        if let Ok(mut log) = self.alerts.lock() {
            let id = log.next_id;
            log.next_id += 1;
            if log.kept.len() == ALERTS_KEPT {
                log.kept.pop_front();
            }
            log.kept.push_back(AlertEntry {
                id,
                ts_ms,
                kind: *kind,
                severity: *severity,
                listener: *listener,
                account: account.clone(),
                peer: *peer,
                observed: *observed,
                baseline: *baseline,
                threshold: *threshold,
                message: message.clone(),
                acknowledged: false,
                acknowledged_ms: None,
            });
        }
    }
}

impl Sink for Monitor {
    fn accept(&self, record: &Record) {
        let event = &record.event;
        if let Event::CommandAnswered { listener, latency_us, .. } = event {
            if let Some(latency) = self.commands.get(listener.index()) {
                latency.observe(*latency_us);
            }
            return;
        }
        match event {
            Event::ConnectionOpened { listener, .. } | Event::ConnectionRefused { listener, .. } => {
                self.count(record.ts_ms, Measure::ConnectionAttempts, *listener)
            }
            Event::AuthFailed { listener, .. } => self.count(record.ts_ms, Measure::AuthFailures, *listener),
            Event::AlertRaised { .. } => self.remember_alert(record.ts_ms, event),
            Event::AcmeCertificate { .. } | Event::AcmeFailed { .. } => self.remember_acme(record.ts_ms, event),
            _ => {}
        }
        let Ok(mut r) = self.registry.lock() else { return };
        match event {
            Event::ConnectionOpened { listener, .. } => {
                let l = listener.as_str();
                r.add("portcullis_connections_total", labels(&[("listener", l), ("outcome", "accepted")]), 1.0);
                r.add("portcullis_sessions_active", labels(&[("listener", l), ("protocol", listener.protocol())]), 1.0);
            }
            Event::ConnectionRefused { listener, reason, .. } => {
                let outcome = match reason {
                    RefuseReason::Firewall => "firewall",
                    RefuseReason::Banned => "banned",
                    RefuseReason::TooManyConnections => "too_many_connections",
                    RefuseReason::TooManyConnectionsFromPeer => "too_many_connections_from_peer",
                    RefuseReason::TooManyConnectionsPerMinute => "too_many_connections_per_minute",
                    RefuseReason::ShuttingDown => "shutting_down",
                };
                r.add(
                    "portcullis_connections_total",
                    labels(&[("listener", listener.as_str()), ("outcome", outcome)]),
                    1.0,
                );
            }
            // Counted apart from the clients' connections: these are the balancers' (or forgers').
            Event::ProxyRefused { listener, reason, .. } => {
                r.add(
                    "portcullis_proxy_refused_total",
                    labels(&[("listener", listener.as_str()), ("reason", &as_text(reason))]),
                    1.0,
                );
            }
            Event::ConnectionClosed { listener, reason, bytes_in, bytes_out, .. } => {
                let l = listener.as_str();
                r.add(
                    "portcullis_connections_closed_total",
                    labels(&[("listener", l), ("reason", &as_text(reason))]),
                    1.0,
                );
                r.add(
                    "portcullis_sessions_active",
                    labels(&[("listener", l), ("protocol", listener.protocol())]),
                    -1.0,
                );
                r.add(
                    "portcullis_session_bytes_total",
                    labels(&[("listener", l), ("direction", "in")]),
                    *bytes_in as f64,
                );
                r.add(
                    "portcullis_session_bytes_total",
                    labels(&[("listener", l), ("direction", "out")]),
                    *bytes_out as f64,
                );
            }
            Event::TlsEstablished { listener, version, cipher, handshake_ms, .. } => {
                let l = listener.as_str();
                r.add(
                    "portcullis_tls_handshakes_total",
                    labels(&[("listener", l), ("version", version), ("cipher", cipher)]),
                    1.0,
                );
                r.observe("portcullis_tls_handshake_seconds", labels(&[("listener", l)]), handshake_ms / 1000.0);
            }
            Event::TlsFailed { listener, .. } => {
                r.add("portcullis_tls_failures_total", labels(&[("listener", listener.as_str())]), 1.0);
            }
            Event::AuthSucceeded { listener, mechanism, .. } | Event::AuthFailed { listener, mechanism, .. } => {
                let outcome = if matches!(event, Event::AuthSucceeded { .. }) { "success" } else { "failure" };
                let credential = credential(event);
                r.add(
                    "portcullis_auth_total",
                    labels(&[
                        ("listener", listener.as_str()),
                        ("mechanism", mechanism),
                        ("credential", &credential),
                        ("outcome", outcome),
                    ]),
                    1.0,
                );
            }
            Event::MessageAccepted { size, recipients, .. } | Event::MessageRejected { size, recipients, .. } => {
                let outcome = if matches!(event, Event::MessageAccepted { .. }) { "accepted" } else { "rejected" };
                r.add("portcullis_messages_total", labels(&[("outcome", outcome)]), 1.0);
                r.add("portcullis_message_bytes_total", labels(&[("outcome", outcome)]), *size as f64);
                r.add("portcullis_message_recipients_total", labels(&[("outcome", outcome)]), *recipients as f64);
            }
            Event::DeliveryAttempt { outcomes, tls_policy, tls_result, .. } => {
                for o in outcomes {
                    let labels = labels(&[("result", o.result.as_str()), ("reason", o.reason.as_str())]);
                    r.add("portcullis_outbound_recipients_total", labels, o.count as f64);
                }
                if let (Some(policy), Some(result)) = (tls_policy, tls_result) {
                    let labels = labels(&[("policy", policy.as_str()), ("result", result.as_str())]);
                    r.add("portcullis_outbound_tls_total", labels, 1.0);
                }
            }
            Event::ProtocolViolation { listener, .. } => {
                r.add("portcullis_protocol_violations_total", labels(&[("listener", listener.as_str())]), 1.0);
            }
            Event::SenderVerdict { spf, spf_helo, dkim, dmarc, arc, iprev, decision, .. } => {
                r.add("portcullis_inbound_messages_total", labels(&[("decision", decision)]), 1.0);
                let methods = [
                    ("spf", *spf),
                    ("spf_helo", *spf_helo),
                    ("dkim", *dkim),
                    ("dmarc", *dmarc),
                    ("arc", *arc),
                    ("iprev", *iprev),
                ];
                for (method, result) in methods {
                    r.add(
                        "portcullis_sender_auth_results_total",
                        labels(&[("method", method), ("result", result)]),
                        1.0,
                    );
                }
                if let Ok(mut inbound) = self.inbound.lock() {
                    *inbound.messages.entry(decision).or_default() += 1;
                    for (method, result) in methods {
                        *inbound.results.entry(method).or_default().entry(result).or_default() += 1;
                    }
                }
            }
            Event::MessageReceived { mailbox, tls_version, .. } => {
                let tls = if tls_version.is_some() { "yes" } else { "no" };
                r.add("portcullis_messages_received_total", labels(&[("mailbox", mailbox), ("tls", tls)]), 1.0);
            }
            Event::ClientChecked { iprev, decision, .. } => {
                r.add("portcullis_client_checks_total", labels(&[("iprev", iprev), ("decision", decision)]), 1.0);
            }
            Event::SenderChecked { result, decision, .. } => {
                r.add("portcullis_sender_checks_total", labels(&[("result", result), ("decision", decision)]), 1.0);
            }
            Event::RecipientRefused { listener, reason, .. } => {
                let labels = labels(&[("listener", listener.as_str()), ("reason", reason.as_str())]);
                r.add("portcullis_recipients_refused_total", labels, 1.0);
            }
            Event::RateLimited { listener, limit, .. } => {
                r.add(
                    "portcullis_rate_limited_total",
                    labels(&[("listener", listener.as_str()), ("limit", limit)]),
                    1.0,
                );
            }
            Event::BanAdded { origin, .. } => {
                let origin = if *origin == BanOrigin::Auto { "auto" } else { "admin" };
                r.add("portcullis_bans_added_total", labels(&[("origin", origin)]), 1.0);
            }
            Event::BanRemoved { .. } => r.add("portcullis_bans_removed_total", vec![], 1.0),
            Event::BanExpired { .. } => r.add("portcullis_bans_expired_total", vec![], 1.0),
            Event::AlertRaised { kind, severity, .. } => {
                r.add(
                    "portcullis_alerts_total",
                    labels(&[("kind", &as_text(kind)), ("severity", &as_text(severity))]),
                    1.0,
                );
            }
            Event::ConfigReloaded { what, ok, .. } => {
                let outcome = if *ok { "ok" } else { "error" };
                r.add("portcullis_config_reloads_total", labels(&[("what", what), ("outcome", outcome)]), 1.0);
            }
            Event::InternalError { .. } => r.add("portcullis_internal_errors_total", vec![], 1.0),
            Event::AdminAuthFailed { .. } => r.add("portcullis_admin_auth_failures_total", vec![], 1.0),
            Event::HttpRequest { listener, status, .. } => r.add(
                "portcullis_http_requests_total",
                labels(&[("listener", listener.as_str()), ("status", &status.to_string())]),
                1.0,
            ),
            Event::AcmeCertificate { not_after, .. } => {
                r.set("portcullis_acme_certificate_expiry_seconds", vec![], *not_after as f64)
            }
            Event::AcmeFailed { .. } => r.add("portcullis_acme_failures_total", vec![], 1.0),
            _ => {}
        }
    }
}
