//! What submission does to a message before storing it (RFC 6409 §8, RFC 5321 §4.4): line
//! endings made CRLF, a Received trace header prepended, Date and Message-ID added when the
//! client left them out.

use std::net::IpAddr;

use crate::AccountId;

/// A message ready to be stored.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub from: String,
    /// Address as the client gave it, and the account it resolved to.
    pub recipients: Vec<(String, AccountId)>,
    /// The message as it will be stored, headers added.
    pub data: Vec<u8>,
}

/// The facts the Received header records.
pub struct Received<'a> {
    pub helo: &'a str,
    pub peer_ip: IpAddr,
    pub hostname: &'a str,
    pub id: &'a str,
    /// Ours ("TLSv1.3 TLS13_AES_256_GCM_SHA384"), written as is.
    pub tls: Option<&'a str>,
    /// Only a single recipient is named, so that Bcc recipients stay hidden.
    pub single_recipient: Option<&'a str>,
    pub now: i64,
}

pub fn prepare(body: &[u8], received: &Received<'_>) -> Vec<u8> {
    let body = crlf(body);
    let date = mail_parser::DateTime::from_timestamp(received.now).to_rfc822();
    let mut out = Vec::with_capacity(body.len() + 512);

    out.extend_from_slice(format!("Received: from {} ([{}])\r\n", clean(received.helo), received.peer_ip).as_bytes());
    out.extend_from_slice(
        format!("\tby {} (Portcullis) with ESMTPSA id {}", received.hostname, received.id).as_bytes(),
    );
    if let Some(tls) = received.tls {
        out.extend_from_slice(format!("\r\n\t(using {tls})").as_bytes());
    }
    if let Some(rcpt) = received.single_recipient {
        out.extend_from_slice(format!("\r\n\tfor <{}>", clean(rcpt)).as_bytes());
    }
    out.extend_from_slice(format!(";\r\n\t{date}\r\n").as_bytes());

    let (has_date, has_message_id) = present_headers(&body);
    if !has_date {
        out.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
    }
    if !has_message_id {
        out.extend_from_slice(format!("Message-ID: <{}@{}>\r\n", received.id, received.hostname).as_bytes());
    }
    out.extend_from_slice(&body);
    out
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
            hostname: "mail.example.org",
            id: "abc.1",
            tls: Some("TLSv1.3 TLS13_AES_256_GCM_SHA384"),
            single_recipient: Some("bob@example.org"),
            now: 1_764_291_600,
        }
    }

    #[test]
    fn adds_trace_date_and_message_id_when_missing() {
        let out = String::from_utf8(prepare(b"Subject: hi\r\n\r\nbody\r\n", &received())).unwrap();
        assert!(out.starts_with("Received: from client__evil___X-Injected:_1 ([127.0.0.2])\r\n\tby mail.example.org (Portcullis) with ESMTPSA id abc.1\r\n\t(using TLSv1.3 TLS13_AES_256_GCM_SHA384)\r\n\tfor <bob@example.org>;\r\n\tFri, 28 Nov 2025 01:00:00 +0000\r\n"), "{out}");
        assert!(out.contains("\r\nDate: Fri, 28 Nov 2025 01:00:00 +0000\r\n"), "{out}");
        assert!(out.contains("\r\nMessage-ID: <abc.1@mail.example.org>\r\n"), "{out}");
        assert!(out.ends_with("Subject: hi\r\n\r\nbody\r\n"));
    }

    #[test]
    fn keeps_the_clients_date_and_message_id() {
        let msg = b"DATE: Thu, 1 Jan 2026 00:00:00 +0000\r\nmessage-id: <x@y>\r\n\r\nMessage-ID: in the body\r\n";
        let out = String::from_utf8(prepare(msg, &received())).unwrap();
        assert_eq!(out.matches("Date:").count() + out.matches("DATE:").count(), 1);
        assert!(!out.contains("Message-ID: <abc.1"));
    }

    #[test]
    fn body_headers_do_not_count() {
        let out = String::from_utf8(prepare(b"Subject: x\r\n\r\nDate: not a header\r\n", &received())).unwrap();
        assert!(out.contains("\r\nDate: Fri"));
    }

    #[test]
    fn bare_lf_becomes_crlf_and_crlf_stays() {
        assert_eq!(crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert_eq!(crlf(b"\n"), b"\r\n");
        assert_eq!(crlf(b"a\r\nb"), b"a\r\nb");
        assert_eq!(crlf(b"bin\r\x00\xff"), b"bin\r\x00\xff");
    }
}
