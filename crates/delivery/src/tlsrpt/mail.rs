//! A TLS report as the message RFC 8460 §5.3 describes: `multipart/report;
//! report-type="tlsrpt"`, a short text for people, and the JSON report gzip-compressed as an
//! `application/tlsrpt+gzip` attachment named `submitter!policy-domain!begin!end!id.json.gz`
//! (§5.1), with the `TLS-Report-Domain` and `TLS-Report-Submitter` header fields and the
//! subject §5.3 gives. Pure: the caller queues the bytes.

use base64::Engine as _;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// What goes into one report message.
#[derive(Debug, Clone)]
pub struct ReportMail<'a> {
    /// The From address (`[tls_rpt] sender`).
    pub from: &'a str,
    /// The domain's mailto: addresses.
    pub to: &'a [String],
    /// This server's name: the report's submitter (§5.3 `TLS-Report-Submitter`).
    pub submitter: &'a str,
    pub policy_domain: &'a str,
    pub report_id: &'a str,
    /// The period the report covers.
    pub start: SystemTime,
    pub end: SystemTime,
    /// The report itself (§4.4).
    pub json: &'a str,
    /// When the message is written.
    pub date: SystemTime,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The whole message, CRLF line ends, 7-bit.
pub fn report_mail(m: &ReportMail<'_>) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(m.json.as_bytes());
    let compressed = gz.finish().unwrap_or_default();
    let encoded = base64::engine::general_purpose::STANDARD.encode(compressed);
    let (start, end) = (unix(m.start), unix(m.end));
    // §5.1: sender "!" policy-domain "!" begin-timestamp "!" end-timestamp "!" unique-id.
    let filename = format!("{}!{}!{start}!{end}!{}.json.gz", m.submitter, m.policy_domain, m.report_id);
    let boundary = format!("tlsrpt-{}-{start}", m.report_id);
    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    header("From", &format!("<{}>", m.from));
    header("To", &m.to.iter().map(|a| format!("<{a}>")).collect::<Vec<_>>().join(", "));
    header("Date", &portcullis_queue::rfc5322(m.date));
    // §5.3: "Report Domain: <domain> Submitter: <submitter> Report-ID: <report-id>".
    header(
        "Subject",
        &format!("Report Domain: {} Submitter: {} Report-ID: <{}>", m.policy_domain, m.submitter, m.report_id),
    );
    header("Message-ID", &format!("<{}@{}>", m.report_id, m.submitter));
    header("TLS-Report-Domain", m.policy_domain);
    header("TLS-Report-Submitter", m.submitter);
    header("Auto-Submitted", "auto-generated"); // RFC 3834: no automatic replies to it
    header("MIME-Version", "1.0");
    header("Content-Type", &format!("multipart/report; report-type=\"tlsrpt\"; boundary=\"{boundary}\""));
    out.push_str("\r\n");
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
         This is an aggregate TLS report (RFC 8460) from {} about the TLS sessions\r\n\
         it opened to the mail servers of {} between {} and {}.\r\n\r\n",
        m.submitter,
        m.policy_domain,
        humantime::format_rfc3339_seconds(m.start),
        humantime::format_rfc3339_seconds(m.end),
    ));
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: application/tlsrpt+gzip; name=\"{filename}\"\r\n\
         Content-Disposition: attachment; filename=\"{filename}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ));
    for line in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push_str("\r\n");
    }
    out.push_str(&format!("\r\n--{boundary}--\r\n"));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Duration;

    #[test]
    fn the_report_is_a_gzip_attachment_of_a_multipart_report() {
        let to = vec!["tls@example.net".to_string()];
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let json = "{\"policies\":[]}";
        let mail = report_mail(&ReportMail {
            from: "reports@example.org",
            to: &to,
            submitter: "mail.example.org",
            policy_domain: "example.net",
            report_id: "r1",
            start,
            end: start + Duration::from_secs(86400),
            json,
            date: start + Duration::from_secs(86400),
        });
        let text = String::from_utf8(mail).unwrap();
        assert!(text.contains("Content-Type: multipart/report; report-type=\"tlsrpt\""), "{text}");
        assert!(text.contains("Subject: Report Domain: example.net Submitter: mail.example.org Report-ID: <r1>\r\n"));
        assert!(text.contains("TLS-Report-Domain: example.net\r\nTLS-Report-Submitter: mail.example.org\r\n"));
        assert!(text.contains("filename=\"mail.example.org!example.net!1800000000!1800086400!r1.json.gz\""));
        assert!(text.lines().all(|l| l.len() <= 998 && l.is_ascii()), "7-bit, short lines");
        let body = text.split("Content-Transfer-Encoding: base64\r\n\r\n").nth(1).unwrap();
        let b64: String = body.split("\r\n\r\n--").next().unwrap().split("\r\n").collect();
        let gz = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        let mut back = String::new();
        flate2::read::GzDecoder::new(gz.as_slice()).read_to_string(&mut back).unwrap();
        assert_eq!(back, json);
    }
}
