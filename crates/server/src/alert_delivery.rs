//! Alert delivery: every `alert_raised` event at or above `alerts.notify` goes to the
//! operator's webhook (POST, JSON, with retries) and, if configured, into a local mailbox as a
//! message. A bounded queue between the event stream and the delivering task keeps a slow
//! webhook from holding up anything else.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_config::NotifySeverity;
use portcullis_events::{escape, Event, Events, Record, Severity, Sink};
use portcullis_store::{Delivery, Store};
use tokio::sync::mpsc;

use crate::unix_time;

/// Alerts waiting for delivery; beyond this, new ones are only logged (alerts are rare: one
/// per episode).
const QUEUE: usize = 1024;
/// Webhook attempts: the first, then retries after 1, 2, 4, 8 s.
const WEBHOOK_ATTEMPTS: u32 = 5;
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Hands every `alert_raised` record at or above the notify severity to the delivery task.
pub struct AlertQueue {
    queue: mpsc::Sender<Record>,
    notify: NotifySeverity,
}

impl Sink for AlertQueue {
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

impl AlertQueue {
    /// The sink, and the task that delivers what it queues (start it once the store exists).
    pub fn new(notify: NotifySeverity) -> (AlertQueue, mpsc::Receiver<Record>) {
        let (queue, pending) = mpsc::channel(QUEUE);
        (AlertQueue { queue, notify }, pending)
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
    let now = unix_time::now_seconds();
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
