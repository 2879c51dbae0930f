//! TLS reports (RFC 8460, `[tls_rpt]`): the queue runner hands every delivery attempt's
//! connection records to the [`TlsReportBook`]; once a period (a day by default) [`run`] closes
//! the period, and for each recipient domain with sessions in it that publishes
//! `_smtp._tls` with a `mailto:` address, queues the domain's report (built by
//! `portcullis-delivery`: JSON, gzip, multipart/report) as an ordinary outbound message, with
//! NOTIFY=NEVER so a report that cannot be delivered does not bounce to the sender. The sums
//! of the open period live in memory: a restart begins a new period.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_delivery::{mailto_recipients, report_mail, AttemptRecord, ReportMail, TlsReportAggregate};
use portcullis_dns::{DnsError, Resolver};
use portcullis_events::Event;
use portcullis_store::{NewQueued, NewRecipient};

use crate::dkim::Outcome;
use crate::state::Shared;

/// The sessions of the open period.
pub struct TlsReportBook {
    period: Mutex<(SystemTime, TlsReportAggregate)>,
}

impl TlsReportBook {
    pub fn new(start: SystemTime) -> Arc<TlsReportBook> {
        Arc::new(TlsReportBook { period: Mutex::new((start, TlsReportAggregate::new())) })
    }

    /// Counts the connections of one delivery attempt.
    pub fn record(&self, attempts: &[AttemptRecord]) {
        let mut period = self.period.lock().unwrap_or_else(PoisonError::into_inner);
        for attempt in attempts {
            period.1.record(attempt);
        }
    }

    /// Closes the period at `now`: its start and its sums; a new period begins.
    fn close(&self, now: SystemTime) -> (SystemTime, TlsReportAggregate) {
        let mut period = self.period.lock().unwrap_or_else(PoisonError::into_inner);
        let (start, sums) = std::mem::replace(&mut *period, (now, TlsReportAggregate::new()));
        (start, sums)
    }
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Every `tls_rpt.period`, the reports of the period that ended; until shutdown.
pub async fn run(shared: Arc<Shared>, resolver: Resolver, book: Arc<TlsReportBook>) {
    let settings = shared.config.tls_rpt.clone();
    let Some(sender) = settings.sender.clone() else { return }; // the config requires one when on
    loop {
        tokio::select! {
            _ = shared.stop_accepting.cancelled() => return,
            _ = tokio::time::sleep(settings.period) => {}
        }
        let end = SystemTime::now();
        let (start, sums) = book.close(end);
        for domain in sums.domains() {
            queue_report(&shared, &resolver, &sender, &domain, &sums.for_domain(&domain), start, end).await;
        }
    }
}

/// Queues `domain`'s report if the domain asks for reports by mail.
async fn queue_report(
    shared: &Shared,
    resolver: &Resolver,
    sender: &str,
    domain: &str,
    sums: &TlsReportAggregate,
    start: SystemTime,
    end: SystemTime,
) {
    let internal = |what: String| shared.events.emit(Event::InternalError { conn: None, what });
    // RFC 8460 §3: the reporting policy is a TXT record at _smtp._tls.DOMAIN.
    let records = match resolver.txt(&format!("_smtp._tls.{domain}")).await {
        Ok(records) => records,
        Err(DnsError::NotFound(_)) => return,
        Err(e) => return internal(format!("no TLS report for {domain}: its _smtp._tls record: {e}")),
    };
    let Ok(recipients) = mailto_recipients(&records) else { return };
    let submitter = shared.config.hostname.clone();
    let report_id = format!("{}.{}.{domain}", unix(start), unix(end));
    let json = sums.to_json(&submitter, sender, &report_id, start, end);
    let content = report_mail(&ReportMail {
        from: sender,
        to: &recipients,
        submitter: &submitter,
        policy_domain: domain,
        report_id: &report_id,
        start,
        end,
        json: &json,
        date: end,
    });
    // RFC 8460 §5.3: a report by mail must carry a DKIM signature of the reporting domain.
    let content = match shared.dkim.sign(content, unix(end)).await {
        Outcome::Signed { message, .. } => message,
        Outcome::Unsigned { message, from_domain, reason, detail } => {
            let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
            internal(format!(
                "the TLS report for {domain} goes unsigned ({reason:?} for the sender's domain \"{from_domain}\"{detail}); \
                 receivers may discard it: give [tls_rpt] sender an address of a local domain with DKIM keys"
            ));
            message
        }
    };
    let (successful, failed) = sums.totals();
    let message = NewQueued {
        sender: sender.to_string(),
        recipients: recipients
            .iter()
            .map(|address| NewRecipient { address: address.clone(), notify: Some("NEVER".into()), orcpt: None })
            .collect(),
        ret: None,
        envid: None,
        smtputf8: false,
        eight_bit: false,
        requiretls: false,
        content,
        queued_at: unix(end),
    };
    match shared.queue.enqueue(message, None).await {
        Ok(queue_id) => {
            shared.events.emit(Event::TlsReportQueued {
                queue_id,
                domain: domain.to_string(),
                recipients: recipients.len(),
                successful,
                failed,
            });
            shared.queue_wakeup.notify_one();
        }
        Err(e) => internal(format!("the TLS report for {domain} could not be queued: {e}")),
    }
}
