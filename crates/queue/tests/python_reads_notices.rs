//! A notice read by a parser nobody here wrote: Python's `email` package must see a
//! multipart/report with a message/delivery-status part whose per-recipient fields are the
//! ones reported, and the returned message as message/rfc822.

use portcullis_queue::{notice, NoticeSettings, Original, RecipientStatus, ReportAction};
use portcullis_smtp_client::{EnhancedCode, Notify, OriginalRecipient, Reply, Ret};
use std::process::Command;
use std::time::{Duration, SystemTime};

const READER: &str = r#"
import email, json, sys
from email import policy
msg = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=policy.compat32)
out = {
    "type": msg.get_content_type(),
    "report_type": msg.get_param("report-type"),
    "auto": msg["Auto-Submitted"],
    "to": msg["To"],
    "defects": [str(d) for d in msg.defects],
    "parts": [p.get_content_type() for p in msg.get_payload()],
}
status = msg.get_payload()[1]
# message/delivery-status: a list of header blocks, the per-message one first.
blocks = status.get_payload()
out["per_message"] = dict(blocks[0].items())
# RFC 5322 §2.2.3: unfolding removes the CRLF of a folded line, keeping the space.
unfold = lambda v: v.replace("\r\n", "").replace("\n", "")
out["recipients"] = [dict((k, unfold(v)) for k, v in b.items()) for b in blocks[1:]]
returned = msg.get_payload()[2]
out["returned_subject"] = returned.get_payload()[0]["Subject"] if returned.get_content_type() == "message/rfc822" else None
for p in msg.walk():
    out["defects"] += [str(d) for d in p.defects]
print(json.dumps(out))
"#;

fn python() -> Option<&'static str> {
    let found = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("PORTCULLIS_REQUIRE_ALL").is_some() {
        panic!("python3 is required (PORTCULLIS_REQUIRE_ALL is set)");
    }
    found.then_some("python3")
}

#[test]
fn python_reads_a_failure_notice_as_a_delivery_report() {
    let Some(python) = python() else {
        eprintln!("SKIPPED: python3 is not installed");
        return;
    };
    let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s);
    let content = b"From: alice@example.org\r\nTo: bob@remote.example\r\nSubject: the plans\r\n\r\nbody\r\n.\r\n";
    let original =
        Original { sender: "alice@example.org", envid: Some("ENV-7"), ret: Some(Ret::Full), arrival: at(0), content };
    let rejected = RecipientStatus {
        address: "bob@remote.example".into(),
        original: Some(OriginalRecipient::rfc822("Bob@Remote.example")),
        notify: Some(Notify { success: false, failure: true, delay: false }),
        action: ReportAction::Failed,
        status: EnhancedCode::new(5, 1, 1),
        remote_mta: Some("mx.remote.example".into()),
        reply: Some(Reply {
            code: 550,
            enhanced: Some(EnhancedCode::new(5, 1, 1)),
            lines: vec![
                "5.1.1 <bob@remote.example>: Recipient address rejected: User unknown in virtual mailbox table".into(),
            ],
        }),
        explanation: None,
        last_attempt: Some(at(60)),
        will_retry_until: None,
    };
    let delayed = RecipientStatus {
        address: "carol@slow.example".into(),
        original: None,
        notify: None,
        action: ReportAction::Delayed,
        status: EnhancedCode::new(4, 4, 1),
        remote_mta: None,
        reply: None,
        explanation: Some("no answer from any exchanger".into()),
        last_attempt: Some(at(60)),
        will_retry_until: Some(at(432_000)),
    };
    let settings = NoticeSettings { reporting_mta: "mail.example.org".into(), ..NoticeSettings::default() };
    let n = notice(&settings, &original, &[rejected, delayed], at(120), "abc123").expect("a notice is owed");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notice.eml");
    std::fs::write(&path, &n.content).unwrap();
    let out = Command::new(python).arg("-c").arg(READER).arg(&path).output().unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    let json = String::from_utf8(out.stdout).unwrap();
    let v: Json = parse(&json);
    assert_eq!(v.get("type"), "multipart/report", "{json}");
    assert_eq!(v.get("report_type"), "delivery-status");
    assert_eq!(v.get("auto"), "auto-replied");
    assert_eq!(v.get("to"), "<alice@example.org>");
    assert_eq!(v.get("parts"), r#"["text/plain", "message/delivery-status", "message/rfc822"]"#);
    assert_eq!(v.get("defects"), "[]", "{json}");
    assert_eq!(v.get("returned_subject"), "the plans");
    let per_message = v.get("per_message");
    assert!(per_message.contains(r#""Reporting-MTA": "dns; mail.example.org""#), "{per_message}");
    assert!(per_message.contains(r#""Original-Envelope-Id": "ENV-7""#), "{per_message}");
    let recipients = v.get("recipients");
    for expected in [
        r#""Original-Recipient": "rfc822; Bob@Remote.example""#,
        r#""Final-Recipient": "rfc822; bob@remote.example""#,
        r#""Action": "failed""#,
        r#""Status": "5.1.1""#,
        r#""Remote-MTA": "dns; mx.remote.example""#,
        r#""Final-Recipient": "rfc822; carol@slow.example""#,
        r#""Action": "delayed""#,
        r#""Status": "4.4.1""#,
        r#""Will-Retry-Until": "Wed, 20 Jan 2027 08:00:00 +0000""#,
    ] {
        assert!(recipients.contains(expected), "missing {expected} in {recipients}");
    }
    // The reply survives folding: Python unfolds it back to one line.
    assert!(
        recipients.contains(
            "smtp; 550 5.1.1 <bob@remote.example>: Recipient address rejected: User unknown in virtual mailbox table"
        ),
        "{recipients}"
    );
}

/// Just enough JSON reading for the flat object the script prints (no JSON crate needed in
/// this crate): top-level values as their JSON text, strings unquoted.
struct Json(Vec<(String, String)>);

impl Json {
    fn get(&self, key: &str) -> String {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_else(|| panic!("no {key}"))
    }
}

fn parse(text: &str) -> Json {
    let bytes = text.trim().as_bytes();
    let mut fields = Vec::new();
    let mut i = 1; // after '{'
    while i < bytes.len() - 1 {
        let key_start = text.trim()[i..].find('"').unwrap() + i + 1;
        let key_end = text.trim()[key_start..].find('"').unwrap() + key_start;
        let key = text.trim()[key_start..key_end].to_string();
        let mut j = key_end + 1;
        while bytes[j] == b':' || bytes[j] == b' ' {
            j += 1;
        }
        let start = j;
        let (mut depth, mut in_string) = (0i32, false);
        while j < bytes.len() {
            let c = bytes[j];
            if in_string {
                if c == b'\\' {
                    j += 1;
                } else if c == b'"' {
                    in_string = false;
                }
            } else if c == b'"' {
                in_string = true;
            } else if c == b'[' || c == b'{' {
                depth += 1;
            } else if c == b']' || c == b'}' {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            } else if c == b',' && depth == 0 {
                break;
            }
            j += 1;
        }
        let raw = text.trim()[start..j].trim();
        let value = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw).to_string();
        fields.push((key, value));
        i = j + 1;
    }
    Json(fields)
}
