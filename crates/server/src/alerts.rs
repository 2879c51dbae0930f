//! Alerts: the anomaly detector reads the event stream (connection attempts, refusals, failed
//! logins, bans, per listener and overall) and raises one `alert_raised` event per anomaly
//! episode; every alert then goes to the operator's webhook (POST, JSON, with retries) and,
//! if configured, into a local mailbox.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_config::NotifySeverity;
use portcullis_events::{escape, AlertKind, Event, Events, Record, Severity, Sink};
use portcullis_guard::anomaly::{Anomaly, Detector, Metric, Series, Settings};
use portcullis_store::{Delivery, Store};
use tokio::sync::mpsc;

/// Alerts waiting for delivery; beyond this, new ones are only logged (alerts are rare: one
/// per episode).
const QUEUE: usize = 1024;
/// Webhook attempts: the first, then retries after 1, 2, 4, 8 s.
const WEBHOOK_ATTEMPTS: u32 = 5;
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Feeds the detector from the event stream.
pub struct Metrics {
    detector: Mutex<Detector>,
}

const METRICS: [Metric; 4] =
    [Metric::ConnectionAttempts, Metric::AuthFailures, Metric::RefusedConnections, Metric::Bans];
const SCOPES: [Option<&str>; 5] = [None, Some("submissions"), Some("submission"), Some("imaps"), Some("pop3s")];

impl Metrics {
    pub fn new(config: &portcullis_config::Alerts) -> Arc<Metrics> {
        let settings = Settings {
            bucket: config.bucket,
            half_life: config.baseline_half_life,
            k: config.deviations,
            floor: config.floor,
            warmup_buckets: config.warmup_buckets,
            ..Settings::default()
        };
        Arc::new(Metrics { detector: Mutex::new(Detector::new(settings, Instant::now())) })
    }

    /// The learned baseline of a series: (mean, standard deviation) per bucket.
    pub fn baseline(&self, series: &Series) -> Option<(f64, f64)> {
        self.detector.lock().ok().and_then(|d| d.baseline(series))
    }

    fn count(&self, metric: Metric, listener: Option<&'static str>) {
        let now = Instant::now();
        if let Ok(mut d) = self.detector.lock() {
            if listener.is_some() {
                d.record(&Series { metric, listener }, 1, now);
            }
            d.record(&Series { metric, listener: None }, 1, now);
        }
    }

    /// Closes finished buckets; the anomalies that start an incident now. A spike on one
    /// listener is also a spike overall, possibly a bucket later: an incident is a metric
    /// being anomalous in any scope, and it is reported once, when it starts.
    pub fn tick(&self) -> Vec<Anomaly> {
        let Ok(mut d) = self.detector.lock() else { return Vec::new() };
        let ongoing: Vec<Metric> = METRICS
            .into_iter()
            .filter(|&metric| SCOPES.iter().any(|&listener| d.in_episode(&Series { metric, listener })))
            .collect();
        let mut reported: Vec<Metric> = Vec::new();
        let mut incidents = Vec::new();
        for anomaly in d.tick(Instant::now()) {
            let metric = anomaly.series.metric;
            if !ongoing.contains(&metric) && !reported.contains(&metric) {
                reported.push(metric);
                incidents.push(anomaly);
            }
        }
        incidents
    }
}

impl Sink for Metrics {
    fn accept(&self, record: &Record) {
        match &record.event {
            Event::ConnectionOpened { listener, .. } => self.count(Metric::ConnectionAttempts, Some(listener.as_str())),
            Event::ConnectionRefused { listener, .. } => {
                self.count(Metric::ConnectionAttempts, Some(listener.as_str()));
                self.count(Metric::RefusedConnections, Some(listener.as_str()));
            }
            Event::AuthFailed { listener, .. } => self.count(Metric::AuthFailures, Some(listener.as_str())),
            Event::BanAdded { .. } => self.count(Metric::Bans, None),
            _ => {}
        }
    }
}

fn describe(anomaly: &Anomaly, bucket: Duration) -> (AlertKind, String) {
    let (kind, what) = match anomaly.series.metric {
        Metric::ConnectionAttempts => (AlertKind::ConnectionSpike, "connection attempts"),
        Metric::AuthFailures => (AlertKind::AuthFailureSpike, "failed logins"),
        Metric::RefusedConnections => (AlertKind::RefusalSpike, "refused connections"),
        Metric::Bans => (AlertKind::BanSpike, "bans"),
    };
    let scope = anomaly.series.listener.map(|l| format!(" on {l}")).unwrap_or_default();
    let message = format!(
        "{} {what}{scope} in {}, against a baseline of {:.1} (threshold {:.1})",
        anomaly.observed,
        humantime::format_duration(bucket),
        anomaly.mean,
        anomaly.threshold
    );
    (kind, message)
}

/// Ticks the detector every half bucket and raises an alert for each new anomaly.
pub async fn watch(metrics: Arc<Metrics>, events: Events, bucket: Duration, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval((bucket / 2).max(Duration::from_millis(50)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        for anomaly in metrics.tick() {
            let (kind, message) = describe(&anomaly, bucket);
            let listener = anomaly.series.listener.and_then(listener_named);
            events.emit(Event::AlertRaised {
                kind,
                severity: Severity::Warning,
                listener,
                account: None,
                peer: None,
                observed: anomaly.observed,
                baseline: Some(anomaly.mean),
                threshold: Some(anomaly.threshold),
                message,
            });
        }
    }
}

fn listener_named(name: &str) -> Option<portcullis_events::Listener> {
    use portcullis_events::Listener::*;
    [Submissions, Submission, Imaps, Pop3s].into_iter().find(|l| l.as_str() == name)
}

/// Hands every `alert_raised` record at or above the notify severity to the delivery task.
pub struct Dispatcher {
    queue: mpsc::Sender<Record>,
    notify: NotifySeverity,
}

impl Sink for Dispatcher {
    fn accept(&self, record: &Record) {
        if let Event::AlertRaised { severity, .. } = &record.event {
            let level = match severity {
                Severity::Info => NotifySeverity::Info,
                Severity::Warning => NotifySeverity::Warning,
                Severity::Critical => NotifySeverity::Critical,
            };
            if level >= self.notify {
                let _ = self.queue.try_send(record.clone());
            }
        }
    }
}

impl Dispatcher {
    /// The sink, and the task that delivers what it queues (start it once the store exists).
    pub fn new(notify: NotifySeverity) -> (Dispatcher, mpsc::Receiver<Record>) {
        let (queue, pending) = mpsc::channel(QUEUE);
        (Dispatcher { queue, notify }, pending)
    }
}

/// Delivers queued alerts: each to the webhook (with retries, not holding up the next) and
/// into the `mail_to` mailbox.
pub async fn deliver(
    mut pending: mpsc::Receiver<Record>,
    config: portcullis_config::Alerts,
    hostname: String,
    store: Arc<dyn Store>,
    events: Events,
) {
    let client = webhook_client();
    while let Some(record) = pending.recv().await {
        let json = portcullis_events::escape::to_strict_json(&record).into_bytes();
        if let Some(url) = config.webhook.clone() {
            let client = client.clone();
            let events = events.clone();
            let body = json.clone();
            tokio::spawn(async move {
                if let Err(e) = post(&client, &url, body).await {
                    events.emit(Event::InternalError { conn: None, what: format!("alert webhook {url} failed: {e}") });
                }
            });
        }
        if let Some(address) = &config.mail_to {
            if let Err(e) = mail(&*store, address, &hostname, &record).await {
                events.emit(Event::InternalError { conn: None, what: format!("alert mail to {address} failed: {e}") });
            }
        }
    }
}

type HttpsClient =
    Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>;

fn webhook_client() -> HttpsClient {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .expect("the ring provider supports the default protocol versions");
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new()).build(https)
}

async fn post(client: &HttpsClient, url: &str, body: Vec<u8>) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..WEBHOOK_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
        }
        let request = hyper::Request::post(url)
            .header("content-type", "application/json")
            .header("user-agent", "Portcullis")
            .body(Full::new(Bytes::from(body.clone())))
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(WEBHOOK_TIMEOUT, client.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => {
                let _ = response.into_body().collect().await;
                return Ok(());
            }
            Ok(Ok(response)) => last = format!("HTTP {}", response.status()),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
    }
    Err(format!("{last} after {WEBHOOK_ATTEMPTS} attempts"))
}

/// The alert as a plain-text message in the operator's mailbox.
async fn mail(store: &dyn Store, address: &str, hostname: &str, record: &Record) -> Result<(), String> {
    let account = store.account(address).await.map_err(|e| e.to_string())?.ok_or("no such local account")?;
    let Event::AlertRaised { kind, severity, message, .. } = &record.event else { return Ok(()) };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let kind = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let severity = serde_json::to_value(severity).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let details = serde_json::to_string_pretty(record).unwrap_or_default();
    // The message may quote names a client chose: no line breaks or escape sequences in the
    // header or the body (the pretty JSON below is escaped by serde).
    let subject: String = message.chars().filter(|c| !escape::is_unsafe(*c)).take(120).collect();
    let message = escape::printable(message);
    let raw = format!(
        "From: Portcullis <postmaster@{hostname}>\r\nTo: <{address}>\r\nSubject: [Portcullis {severity}] {kind}: {subject}\r\n\
         Date: {}\r\nMessage-ID: <alert.{}.{}@{hostname}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Auto-Submitted: auto-generated\r\n\r\n{message}\r\n\r\n{}\r\n",
        mail_parser::DateTime::from_timestamp(now).to_rfc822(),
        record.ts_ms,
        rand::random::<u32>(),
        details.replace('\n', "\r\n")
    );
    store
        .deliver(Delivery { recipients: vec![account.id], raw: raw.into_bytes(), internal_date: now })
        .await
        .map_err(|e| e.to_string())
}
