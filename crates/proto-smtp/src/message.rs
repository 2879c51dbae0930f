//! What the session does to a message before handing it over (RFC 5321 §4.4, RFC 6409 §8):
//! line endings made CRLF, a Received trace header prepended (with the protocol words of
//! RFC 3848 and RFC 6531), and, on submission only, Date and Message-ID added when the client
//! left them out, Bcc and Return-Path removed. The drivers add Return-Path when they store a
//! copy in a mailbox ([`with_return_path`]), last, on top of their own fields.

use std::net::IpAddr;

use crate::AccountId;

/// A message ready to be stored.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// MAIL FROM; empty for the null sender (bounces, port 25).
    pub from: String,
    /// Address as the client gave it, and the account it resolved to.
    pub recipients: Vec<(String, AccountId)>,
    /// Recipients in other domains, to be queued (submission only, see
    /// [`crate::RecipientOutcome::Remote`]).
    pub remote_recipients: Vec<RemoteRecipient>,
    /// The EHLO/HELO name the client gave.
    pub helo: String,
    /// MAIL FROM carried REQUIRETLS (RFC 8689; over TLS only; on submission it goes with
    /// the queued copy).
    pub require_tls: bool,
    /// Local recipients whose NOTIFY asks for SUCCESS (RFC 3461 §4.1), with their ORCPT's
    /// address: once stored, the sender is owed a "delivered" notice about them (submission).
    pub notify_delivered: Vec<(String, Option<String>)>,
    /// RFC 3461 RET ("FULL" or "HDRS"; submission only).
    pub ret: Option<&'static str>,
    /// RFC 3461 ENVID, decoded from xtext (submission only).
    pub envid: Option<String>,
    /// The message as it will be stored, headers added.
    pub data: Vec<u8>,
    /// How many bytes at the start of `data` are our Received header: `data[trace_len..]` is
    /// the message as the client sent it (with CRLF line endings, and on submission Date and
    /// Message-ID added), which is what sender authentication verifies.
    pub trace_len: usize,
}

/// A recipient in another domain, with its RFC 3461 parameters (submission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRecipient {
    /// As the client gave it.
    pub address: String,
    /// NOTIFY as a parameter value: "NEVER", or some of "SUCCESS,FAILURE,DELAY".
    pub notify: Option<String>,
    /// ORCPT's rfc822 address, decoded from xtext.
    pub orcpt: Option<String>,
}

impl Envelope {
    /// The message as the client sent it, without our Received header.
    pub fn message(&self) -> &[u8] {
        &self.data[self.trace_len.min(self.data.len())..]
    }
}

/// The facts the Received header records.
pub struct Received<'a> {
    pub helo: &'a str,
    pub peer_ip: IpAddr,
    /// The client's forward-confirmed reverse DNS name, when known (port 25).
    pub peer_name: Option<&'a str>,
    pub hostname: &'a str,
    pub id: &'a str,
    /// "ESMTPSA", ...: the words of `protocol()` in this module.
    pub protocol: &'static str,
    /// Ours ("TLSv1.3 TLS13_AES_256_GCM_SHA384"), written as is.
    pub tls: Option<&'a str>,
    /// Only a single recipient is named, so that Bcc recipients stay hidden.
    pub single_recipient: Option<&'a str>,
    /// The account that logged in (submission), named so that the receiving side and the
    /// postmaster can tell which account sent it.
    pub account: Option<&'a str>,
    pub now: i64,
}

/// The `with` word of a Received header: SMTP after HELO, ESMTP after EHLO (RFC 3848 §2),
/// UTF8SMTP when the transaction used SMTPUTF8 (RFC 6531 §3.7.3), then S over TLS and A
/// once authenticated.
pub fn protocol(extended: bool, smtputf8: bool, tls: bool, authenticated: bool) -> &'static str {
    match (extended, smtputf8, tls, authenticated) {
        (false, _, _, _) => "SMTP",
        (true, false, false, false) => "ESMTP",
        (true, false, false, true) => "ESMTPA",
        (true, false, true, false) => "ESMTPS",
        (true, false, true, true) => "ESMTPSA",
        (true, true, false, false) => "UTF8SMTP",
        (true, true, false, true) => "UTF8SMTPA",
        (true, true, true, false) => "UTF8SMTPS",
        (true, true, true, true) => "UTF8SMTPSA",
    }
}

/// The message with our Received header on top (and, when `complete`, Date and Message-ID
/// added if missing), and the length of that Received header.
pub fn prepare(body: &[u8], received: &Received<'_>, complete: bool) -> (Vec<u8>, usize) {
    let body = crlf(body);
    let date = mail_parser::DateTime::from_timestamp(received.now).to_rfc822();
    let mut out = Vec::with_capacity(body.len() + 512);

    let from = match received.peer_name {
        Some(name) => format!("{} ({} [{}])", clean(received.helo), clean(name), received.peer_ip),
        None => format!("{} ([{}])", clean(received.helo), received.peer_ip),
    };
    out.extend_from_slice(format!("Received: from {from}\r\n").as_bytes());
    out.extend_from_slice(
        format!("\tby {} (Portcullis) with {} id {}", received.hostname, received.protocol, received.id).as_bytes(),
    );
    if let Some(tls) = received.tls {
        out.extend_from_slice(format!("\r\n\t(using {tls})").as_bytes());
    }
    if let Some(account) = received.account {
        out.extend_from_slice(format!("\r\n\t(authenticated as {})", clean(account)).as_bytes());
    }
    if let Some(rcpt) = received.single_recipient {
        out.extend_from_slice(format!("\r\n\tfor <{}>", clean(rcpt)).as_bytes());
    }
    out.extend_from_slice(format!(";\r\n\t{date}\r\n").as_bytes());
    let trace_len = out.len();

    let (has_date, has_message_id) = present_headers(&body);
    if complete && !has_date {
        out.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
    }
    if complete && !has_message_id {
        out.extend_from_slice(format!("Message-ID: <{}@{}>\r\n", received.id, received.hostname).as_bytes());
    }
    if complete {
        // RFC 5322 §3.6.3: the blind recipients must not see each other, nor the others them.
        // RFC 5321 §4.4: a message being originated carries no Return-Path; final delivery
        // adds the one true one (`with_return_path`).
        out.extend_from_slice(&without_fields(&body, &[b"bcc", b"return-path"]));
    } else {
        out.extend_from_slice(&body);
    }
    (out, trace_len)
}

/// Bare LF becomes CRLF: stored messages are in canonical form, as IMAP and POP3 serve them.
fn crlf(body: &[u8]) -> Vec<u8> {
    let bare = body.iter().enumerate().filter(|&(i, &b)| b == b'\n' && (i == 0 || body[i - 1] != b'\r')).count();
    if bare == 0 {
        return body.to_vec();
    }
    let mut out = Vec::with_capacity(body.len() + bare);
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' && (i == 0 || body[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The message as a mailbox stores it (RFC 5321 §4.4): `Return-Path: <reverse-path>` on top,
/// the envelope sender as final delivery saw it (`<>` for the null sender), and no other
/// Return-Path field below it, so that there is never more than one.
pub fn with_return_path(reverse_path: &str, message: &[u8]) -> Vec<u8> {
    let path: String = reverse_path.chars().filter(|c| !c.is_control() && *c != '<' && *c != '>').collect();
    let header = format!("Return-Path: <{path}>\r\n");
    let rest = without_fields(message, &[b"return-path"]);
    let mut out = Vec::with_capacity(header.len() + rest.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&rest);
    out
}

/// The message without the fields named (lower case; continuation lines included); the body
/// is untouched.
fn without_fields(message: &[u8], names: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut dropping = false;
    let mut rest = message;
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            // The blank line that ends the header: the rest is body.
            out.extend_from_slice(rest);
            return out;
        }
        if content[0] == b' ' || content[0] == b'\t' {
            if !dropping {
                out.extend_from_slice(line);
            }
        } else {
            let name = content.iter().position(|&b| b == b':').map(|colon| content[..colon].trim_ascii());
            dropping = name.is_some_and(|n| names.iter().any(|drop| n.eq_ignore_ascii_case(drop)));
            if !dropping {
                out.extend_from_slice(line);
            }
        }
        rest = tail;
    }
    out
}

/// Whether the header section has a Date and a Message-ID field.
fn present_headers(message: &[u8]) -> (bool, bool) {
    let (mut date, mut message_id) = (false, false);
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = line[..colon].trim_ascii();
            date |= name.eq_ignore_ascii_case(b"date");
            message_id |= name.eq_ignore_ascii_case(b"message-id");
        }
    }
    (date, message_id)
}

/// Client-chosen text inside a header: printable ASCII only, no comment delimiters.
fn clean(text: &str) -> String {
    text.chars()
        .take(255)
        .map(|c| if c.is_ascii_graphic() && c != '(' && c != ')' && c != '\\' { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received() -> Received<'static> {
        Received {
            helo: "client (evil)\r\nX-Injected: 1",
            peer_ip: "127.0.0.2".parse().unwrap(),
            peer_name: None,
            hostname: "mail.example.org",
            id: "abc.1",
            protocol: "ESMTPSA",
            tls: Some("TLSv1.3 TLS13_AES_256_GCM_SHA384"),
            single_recipient: Some("bob@example.org"),
            account: None,
            now: 1_764_291_600,
        }
    }

    #[test]
    fn adds_trace_date_and_message_id_when_missing() {
        let (out, trace_len) = prepare(b"Subject: hi\r\n\r\nbody\r\n", &received(), true);
        let out = String::from_utf8(out).unwrap();
        assert!(out[trace_len..].starts_with("Date: "), "{out}");
        assert!(out.starts_with("Received: from client__evil___X-Injected:_1 ([127.0.0.2])\r\n\tby mail.example.org (Portcullis) with ESMTPSA id abc.1\r\n\t(using TLSv1.3 TLS13_AES_256_GCM_SHA384)\r\n\tfor <bob@example.org>;\r\n\tFri, 28 Nov 2025 01:00:00 +0000\r\n"), "{out}");
        assert!(out.contains("\r\nDate: Fri, 28 Nov 2025 01:00:00 +0000\r\n"), "{out}");
        assert!(out.contains("\r\nMessage-ID: <abc.1@mail.example.org>\r\n"), "{out}");
        assert!(out.ends_with("Subject: hi\r\n\r\nbody\r\n"));
    }

    #[test]
    fn submission_names_the_account_and_drops_bcc() {
        let mut r = received();
        r.account = Some("alice@example.org");
        let msg = b"To: bob@example.org\r\nBcc: hidden@example.net,\r\n other@example.net\r\nSubject: x\r\n\r\nBcc: in the body\r\n";
        let out = String::from_utf8(prepare(msg, &r, true).0).unwrap();
        assert!(out.contains("\r\n\t(authenticated as alice@example.org)\r\n\tfor <bob@example.org>;"), "{out}");
        assert!(!out.contains("hidden@") && !out.contains("other@"), "{out}");
        assert!(out.ends_with("To: bob@example.org\r\nSubject: x\r\n\r\nBcc: in the body\r\n"), "{out}");
        let from_a_server = String::from_utf8(prepare(msg, &received(), false).0).unwrap();
        assert!(from_a_server.contains("hidden@"), "mail from other servers is left as it came");
    }

    #[test]
    fn return_path_is_added_once_on_top() {
        let msg = b"Return-Path: <forged@evil.test>\r\nSubject: x\r\nreturn-path:\r\n <also@evil.test>\r\n\r\nReturn-Path: body\r\n";
        let out = String::from_utf8(with_return_path("alice@example.org", msg)).unwrap();
        assert_eq!(out, "Return-Path: <alice@example.org>\r\nSubject: x\r\n\r\nReturn-Path: body\r\n");
        assert!(String::from_utf8(with_return_path("", b"S: x\r\n\r\n")).unwrap().starts_with("Return-Path: <>\r\n"));
        // Submission drops the client's before anything is stored or queued.
        let (out, _) = prepare(msg, &received(), true);
        assert!(!String::from_utf8(out).unwrap().contains("evil.test"));
        let (out, _) = prepare(msg, &received(), false);
        assert!(String::from_utf8(out).unwrap().contains("forged@evil.test"), "port 25: as it came, until delivery");
    }

    #[test]
    fn keeps_the_clients_date_and_message_id() {
        let msg = b"DATE: Thu, 1 Jan 2026 00:00:00 +0000\r\nmessage-id: <x@y>\r\n\r\nMessage-ID: in the body\r\n";
        let out = String::from_utf8(prepare(msg, &received(), true).0).unwrap();
        assert_eq!(out.matches("Date:").count() + out.matches("DATE:").count(), 1);
        assert!(!out.contains("Message-ID: <abc.1"));
    }

    #[test]
    fn body_headers_do_not_count() {
        let out = String::from_utf8(prepare(b"Subject: x\r\n\r\nDate: not a header\r\n", &received(), true).0).unwrap();
        assert!(out.contains("\r\nDate: Fri"));
    }

    #[test]
    fn mail_from_other_servers_gets_only_its_trace_header() {
        let mut r = received();
        r.helo = "mx.sender.test";
        r.peer_name = Some("mx.sender.test");
        r.protocol = protocol(true, false, true, false);
        let body = b"Subject: signed\r\n\r\nbody\r\n";
        let (out, trace_len) = prepare(body, &r, false);
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with("Received: from mx.sender.test (mx.sender.test [127.0.0.2])\r\n\tby mail.example.org (Portcullis) with ESMTPS id abc.1\r\n"),
            "{out}"
        );
        assert_eq!(&out[trace_len..], "Subject: signed\r\n\r\nbody\r\n", "no Date, no Message-ID added");
    }

    #[test]
    fn protocol_words_follow_rfc_3848_and_6531() {
        assert_eq!(protocol(false, false, true, true), "SMTP");
        assert_eq!(protocol(true, false, false, false), "ESMTP");
        assert_eq!(protocol(true, false, true, false), "ESMTPS");
        assert_eq!(protocol(true, false, true, true), "ESMTPSA");
        assert_eq!(protocol(true, true, true, false), "UTF8SMTPS");
    }

    #[test]
    fn bare_lf_becomes_crlf_and_crlf_stays() {
        assert_eq!(crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert_eq!(crlf(b"\n"), b"\r\n");
        assert_eq!(crlf(b"a\r\nb"), b"a\r\nb");
        assert_eq!(crlf(b"bin\r\x00\xff"), b"bin\r\x00\xff");
    }
}
