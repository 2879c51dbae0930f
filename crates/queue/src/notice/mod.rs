//! Delivery status notifications (RFC 3464) to the sender of a queued message: a failure
//! notice when recipients failed for good or the message expired, a delay notice while it
//! still waits, a success or "relayed" notice when the sender asked (RFC 3461 NOTIFY). Each
//! is a multipart/report (RFC 6522) with a human-readable part, a message/delivery-status
//! part with one block per recipient (Final-Recipient, Original-Recipient from ORCPT,
//! Action, Status, Remote-MTA, Diagnostic-Code with the remote server's reply), and the
//! original message or its header (RET=FULL or HDRS).
//!
//! Never a notice to the null sender, never a notice about an automatic message (an
//! Auto-Submitted one, or a report itself): [`notice`] returns `None` for those, so bounces
//! cannot loop. The notice itself is sent from the null sender (RFC 3461 §6.2, RFC 5321
//! §4.5.5), and carries `Auto-Submitted: auto-replied` (RFC 3834 §5).
//!
//! The caller provides the original envelope and content, one [`RecipientStatus`] per
//! recipient to report, the reporting host name, the time and a unique token (for the
//! Message-ID and the MIME boundary); it queues the [`Notice`] it gets like any message,
//! from `<>` to [`Notice::recipient`].

mod headers;

pub use headers::is_automatic;

use crate::date::rfc5322;
use portcullis_smtp_client::{EnhancedCode, Notify, OriginalRecipient, Reply, Ret};
use std::time::SystemTime;

/// What happened to a recipient (RFC 3464 §2.3.3 Action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportAction {
    /// Given up: a permanent failure, or the queue lifetime ended.
    Failed,
    /// Still being retried.
    Delayed,
    /// Delivered to a server that offers DSN, or stored locally (NOTIFY=SUCCESS).
    Delivered,
    /// Handed to a server that does not offer DSN: no further notice will come (RFC 3461
    /// §4.1, NOTIFY=SUCCESS).
    Relayed,
}

/// One recipient's line in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    pub address: String,
    pub original: Option<OriginalRecipient>,
    /// The recipient's NOTIFY (`None`: the default, failures and delays).
    pub notify: Option<Notify>,
    pub action: ReportAction,
    pub status: EnhancedCode,
    /// The server that answered (a host name), if one did.
    pub remote_mta: Option<String>,
    /// The server's reply, for Diagnostic-Code.
    pub reply: Option<Reply>,
    /// A sentence for the human-readable part when there is no reply (what the client
    /// found: "the server does not offer SMTPUTF8", "no answer").
    pub explanation: Option<String>,
    pub last_attempt: Option<SystemTime>,
    /// For delayed recipients: when the queue gives up.
    pub will_retry_until: Option<SystemTime>,
}

/// The message the report is about.
#[derive(Debug, Clone, Copy)]
pub struct Original<'a> {
    /// The envelope sender; empty for the null sender.
    pub sender: &'a str,
    pub envid: Option<&'a str>,
    pub ret: Option<Ret>,
    pub arrival: SystemTime,
    pub content: &'a [u8],
}

/// Settings of the notices (config: the server's `hostname`; `[queue] bounce_max_content`).
#[derive(Debug, Clone)]
pub struct NoticeSettings {
    /// This server's name: Reporting-MTA, the From address's domain, the Message-ID's right
    /// side.
    pub reporting_mta: String,
    /// A failure notice returns the whole message only up to this size; a bigger one has
    /// its header returned (RFC 3461 §4.3 leaves the choice to the MTA).
    pub max_returned_content: usize,
}

impl Default for NoticeSettings {
    fn default() -> Self {
        NoticeSettings { reporting_mta: "localhost".into(), max_returned_content: 1024 * 1024 }
    }
}

/// A notice to queue: from the null sender to `recipient`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub recipient: String,
    pub content: Vec<u8>,
    /// The recipients reported, each with its action (so the caller can record that a delay
    /// notice was sent, or that a success was reported).
    pub reported: Vec<(String, ReportAction)>,
}

/// Whether a message may cause a notice at all: not from the null sender, not automatic.
pub fn may_notify(sender: &str, content: &[u8]) -> bool {
    !sender.is_empty() && !is_automatic(content)
}

/// Whether this recipient's NOTIFY asks for a report of this action (RFC 3461 §4.1).
pub fn wanted(notify: Option<Notify>, action: ReportAction) -> bool {
    let notify = Notify::effective(notify);
    match action {
        ReportAction::Failed => notify.failure,
        ReportAction::Delayed => notify.delay,
        ReportAction::Delivered | ReportAction::Relayed => notify.success,
    }
}

/// The notice for these recipients, or `None` when nobody is owed one (null sender,
/// automatic message, or no recipient whose NOTIFY asks for its action).
pub fn notice(
    settings: &NoticeSettings,
    original: &Original<'_>,
    recipients: &[RecipientStatus],
    now: SystemTime,
    unique: &str,
) -> Option<Notice> {
    if !may_notify(original.sender, original.content) {
        return None;
    }
    let reported: Vec<&RecipientStatus> = recipients.iter().filter(|r| wanted(r.notify, r.action)).collect();
    if reported.is_empty() {
        return None;
    }
    let any = |action: ReportAction| reported.iter().any(|r| r.action == action);
    let failed = any(ReportAction::Failed);
    let subject = if failed {
        "Undelivered Mail Returned to Sender"
    } else if any(ReportAction::Delayed) {
        "Delayed Mail (still being retried)"
    } else {
        "Successful Mail Delivery Report"
    };
    // RFC 3461 §4.3: RET=FULL returns the whole message in a *failure* report only.
    let full = failed && original.ret != Some(Ret::Headers) && original.content.len() <= settings.max_returned_content;
    let returned = if full { original.content } else { headers::header_block(original.content) };
    let utf8 = !original.sender.is_ascii() || reported.iter().any(|r| !r.address.is_ascii());
    let boundary = boundary(unique, returned);
    let host = clean(&settings.reporting_mta);

    let mut out = String::new();
    let mut field = |name: &str, value: &str| out.push_str(&fold(&format!("{name}: {value}")));
    field("From", &format!("Mail Delivery System <MAILER-DAEMON@{host}>"));
    field("To", &format!("<{}>", clean(original.sender)));
    field("Subject", subject);
    field("Date", &rfc5322(now));
    field("Message-ID", &format!("<{}.dsn@{host}>", clean(unique)));
    field("Auto-Submitted", "auto-replied"); // RFC 3834 §5
    field("MIME-Version", "1.0");
    field("Content-Type", &format!("multipart/report; report-type=delivery-status;\r\n boundary=\"{boundary}\""));
    out.push_str("\r\nThis is a MIME-encapsulated message.\r\n\r\n");

    // Part 1: for people.
    out.push_str(&format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"));
    out.push_str(&human_part(&host, subject, &reported));

    // Part 2: for programs (RFC 3464 §2).
    let status_type = if utf8 { "message/global-delivery-status" } else { "message/delivery-status" };
    out.push_str(&format!("\r\n--{boundary}\r\nContent-Type: {status_type}\r\n\r\n"));
    out.push_str(&fold(&format!("Reporting-MTA: dns; {host}")));
    if let Some(envid) = original.envid {
        out.push_str(&fold(&format!("Original-Envelope-Id: {}", clean(envid))));
    }
    out.push_str(&fold(&format!("Arrival-Date: {}", rfc5322(original.arrival))));
    for r in &reported {
        out.push_str("\r\n");
        out.push_str(&recipient_block(r));
    }

    // Part 3: the message, or its header.
    let eight_bit = returned.iter().any(|&b| b >= 0x80);
    let part_type = match (full, utf8 || (eight_bit && !full)) {
        (true, true) => "message/global", // RFC 6532 §3.7
        (true, false) => "message/rfc822",
        (false, true) => "message/global-headers", // RFC 6533 §6.3
        (false, false) => "text/rfc822-headers",   // RFC 6522 §4
    };
    out.push_str(&format!("\r\n--{boundary}\r\nContent-Type: {part_type}\r\n"));
    if eight_bit {
        out.push_str("Content-Transfer-Encoding: 8bit\r\n");
    }
    out.push_str("\r\n");
    let mut content = out.into_bytes();
    content.extend_from_slice(returned);
    if !content.ends_with(b"\r\n") {
        content.extend_from_slice(b"\r\n");
    }
    content.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Some(Notice {
        recipient: original.sender.to_string(),
        content,
        reported: reported.iter().map(|r| (r.address.clone(), r.action)).collect(),
    })
}

fn human_part(host: &str, subject: &str, reported: &[&RecipientStatus]) -> String {
    let mut text = format!("This is the mail system at host {host}.\r\n\r\n{subject}.\r\n\r\n");
    for r in reported {
        let what = match r.action {
            ReportAction::Failed => "could not be delivered to",
            ReportAction::Delayed => "has not yet been delivered to",
            ReportAction::Delivered => "was delivered to",
            ReportAction::Relayed => "was handed on (no further notice will come) for",
        };
        text.push_str(&format!("Your message {what} <{}>", clean(&r.address)));
        match (&r.reply, &r.remote_mta, &r.explanation) {
            (Some(reply), Some(mta), _) => {
                text.push_str(&format!(".\r\n{} said: {}", clean(mta), clean(&reply.one_line())))
            }
            (Some(reply), None, _) => text.push_str(&format!(": {}", clean(&reply.one_line()))),
            (None, _, Some(why)) => text.push_str(&format!(": {}", clean(why))),
            (None, _, None) => {}
        }
        text.push_str("\r\n");
        if let Some(until) = r.will_retry_until {
            text.push_str(&format!("Delivery will be tried until {}.\r\n", rfc5322(until)));
        }
        text.push_str("\r\n");
    }
    text
}

/// One per-recipient block of the delivery-status part (RFC 3464 §2.3).
fn recipient_block(r: &RecipientStatus) -> String {
    let mut block = String::new();
    let address_field = |address: &str| {
        // RFC 6533 §3: a UTF-8 address has the type "utf-8".
        if address.is_ascii() {
            format!("rfc822; {}", clean(address))
        } else {
            format!("utf-8; {}", clean(address))
        }
    };
    if let Some(orcpt) = &r.original {
        block.push_str(&fold(&format!("Original-Recipient: {}; {}", clean(&orcpt.addr_type), clean(&orcpt.address))));
    }
    block.push_str(&fold(&format!("Final-Recipient: {}", address_field(&r.address))));
    let action = match r.action {
        ReportAction::Failed => "failed",
        ReportAction::Delayed => "delayed",
        ReportAction::Delivered => "delivered",
        ReportAction::Relayed => "relayed",
    };
    block.push_str(&format!("Action: {action}\r\n"));
    block.push_str(&format!("Status: {}\r\n", r.status));
    if let Some(mta) = &r.remote_mta {
        block.push_str(&fold(&format!("Remote-MTA: dns; {}", clean(mta))));
    }
    if let Some(reply) = &r.reply {
        block.push_str(&fold(&format!("Diagnostic-Code: smtp; {}", clean(&reply.one_line()))));
    }
    if let Some(at) = r.last_attempt {
        block.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc5322(at)));
    }
    if let Some(until) = r.will_retry_until.filter(|_| r.action == ReportAction::Delayed) {
        block.push_str(&format!("Will-Retry-Until: {}\r\n", rfc5322(until)));
    }
    block
}

/// Text from outside (a remote reply, an address, an envelope id) made safe for a header
/// field: no control characters (no CR or LF to end the field early), bounded length.
fn clean(text: &str) -> String {
    text.chars().take(1000).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A field line folded at spaces to stay under 78 characters where possible (RFC 5322
/// §2.2.3), ended by CRLF. A field that already holds CRLF SP (the Content-Type built here)
/// is left as it is.
fn fold(line: &str) -> String {
    if line.contains("\r\n") || line.chars().count() <= 78 {
        return format!("{line}\r\n");
    }
    let mut out = String::new();
    let mut current = String::new();
    for word in line.split(' ') {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > 78 {
            out.push_str(&current);
            out.push_str("\r\n");
            current = String::from(" ");
            current.push_str(word);
        } else {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
    }
    out.push_str(&current);
    out.push_str("\r\n");
    out
}

/// A boundary that does not occur in the returned content (RFC 2046 §5.1.1).
fn boundary(unique: &str, returned: &[u8]) -> String {
    let base: String = unique.chars().filter(|c| c.is_ascii_alphanumeric()).take(40).collect();
    let mut n = 0u32;
    loop {
        let candidate = format!("=_portcullis_{base}_{n}");
        if !returned.windows(candidate.len()).any(|w| w == candidate.as_bytes()) {
            return candidate;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests;
