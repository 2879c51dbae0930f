//! Which mail protocol a port speaks and what it advertises, read from its lines as pure
//! functions: greetings, SMTP replies and EHLO keywords, IMAP and POP3 capabilities.

use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    Imap,
    Pop3,
}

/// The services of the checklist: a protocol, how TLS starts, and (for SMTP) whether the port
/// is for submission (clients must authenticate) or for relay (port 25, anyone may send to
/// local users).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// SMTP relay (MX), port 25.
    Smtp,
    Submission,
    Submissions,
    Imap,
    Imaps,
    Pop3,
    Pop3s,
}

impl Service {
    pub const ALL: [Service; 7] = [
        Service::Smtp,
        Service::Submission,
        Service::Submissions,
        Service::Imap,
        Service::Imaps,
        Service::Pop3,
        Service::Pop3s,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Submission => "submission",
            Service::Submissions => "submissions",
            Service::Imap => "imap",
            Service::Imaps => "imaps",
            Service::Pop3 => "pop3",
            Service::Pop3s => "pop3s",
        }
    }

    pub fn protocol(self) -> Protocol {
        match self {
            Service::Smtp | Service::Submission | Service::Submissions => Protocol::Smtp,
            Service::Imap | Service::Imaps => Protocol::Imap,
            Service::Pop3 | Service::Pop3s => Protocol::Pop3,
        }
    }

    pub fn implicit_tls(self) -> bool {
        matches!(self, Service::Submissions | Service::Imaps | Service::Pop3s)
    }

    pub fn standard_port(self) -> u16 {
        match self {
            Service::Smtp => 25,
            Service::Submission => 587,
            Service::Submissions => 465,
            Service::Imap => 143,
            Service::Imaps => 993,
            Service::Pop3 => 110,
            Service::Pop3s => 995,
        }
    }

    /// The service a port number conventionally carries: the standard ports, and the same plus
    /// 10000 (the convention of `portcullis init --dev`).
    pub fn for_port(port: u16) -> Option<Service> {
        Service::ALL.into_iter().find(|s| port == s.standard_port() || port == s.standard_port() + 10000)
    }

    /// The name of what was observed: protocol, whether TLS was implicit, and the relay or
    /// submission role of an SMTP port.
    pub fn observed(protocol: Protocol, implicit: bool, relay: bool) -> Service {
        match (protocol, implicit) {
            (Protocol::Smtp, true) => Service::Submissions,
            (Protocol::Smtp, false) if relay => Service::Smtp,
            (Protocol::Smtp, false) => Service::Submission,
            (Protocol::Imap, true) => Service::Imaps,
            (Protocol::Imap, false) => Service::Imap,
            (Protocol::Pop3, true) => Service::Pop3s,
            (Protocol::Pop3, false) => Service::Pop3,
        }
    }
}

impl FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Service, String> {
        Service::ALL.into_iter().find(|svc| svc.name().eq_ignore_ascii_case(s)).ok_or_else(|| {
            format!("unknown service {s:?}; use smtp, submission, submissions, imap, imaps, pop3 or pop3s")
        })
    }
}

/// A port to audit, with the service when the operator named it (`10993/imaps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub port: u16,
    pub service: Option<Service>,
}

/// The checklist: SMTP relay and submission, IMAP and POP3 over TLS, and the legacy plaintext
/// IMAP and POP3 ports.
pub const DEFAULT_PORTS: [u16; 7] = [25, 465, 587, 993, 995, 110, 143];

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Target, String> {
        let (port, service) = match s.trim().split_once('/') {
            Some((port, service)) => (port, Some(service.parse()?)),
            None => (s.trim(), None),
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{s:?} is not a port; give PORT or PORT/SERVICE, e.g. 993 or 10993/imaps"))?;
        Ok(Target { port, service })
    }
}

/// The protocol a server's first line belongs to.
pub fn classify_greeting(line: &str) -> Option<Protocol> {
    let code = line.get(..3).filter(|c| c.bytes().all(|b| b.is_ascii_digit()));
    if code.is_some() && matches!(line.as_bytes().get(3), None | Some(b' ' | b'-')) {
        return Some(Protocol::Smtp);
    }
    let upper = line.to_ascii_uppercase();
    if upper.starts_with("* OK") || upper.starts_with("* PREAUTH") || upper.starts_with("* BYE") {
        return Some(Protocol::Imap);
    }
    if upper.starts_with("+OK") || upper.starts_with("-ERR") {
        return Some(Protocol::Pop3);
    }
    None
}

/// The reply code of an SMTP reply line, and whether it is the last line of the reply.
pub fn smtp_line(line: &str) -> Option<(u16, bool)> {
    let code = line.get(..3)?.parse().ok()?;
    match line.as_bytes().get(3) {
        None | Some(b' ') => Some((code, true)),
        Some(b'-') => Some((code, false)),
        _ => None,
    }
}

/// EHLO keywords with their parameters, upper-cased ("STARTTLS", "AUTH PLAIN LOGIN").
pub fn ehlo_keywords(reply: &[String]) -> Vec<String> {
    reply.iter().skip(1).filter_map(|l| l.get(4..)).map(|k| k.trim().to_ascii_uppercase()).collect()
}

/// The SASL mechanisms an EHLO reply advertises (also the old `AUTH=` form); None without AUTH.
pub fn smtp_auth_mechanisms(keywords: &[String]) -> Option<Vec<String>> {
    let mut found = None;
    for k in keywords {
        if let Some(rest) = k.strip_prefix("AUTH").filter(|r| r.is_empty() || r.starts_with([' ', '='])) {
            let list: &mut Vec<String> = found.get_or_insert_with(Vec::new);
            for m in rest.trim_start_matches('=').split_whitespace() {
                if !list.iter().any(|x| x == m) {
                    list.push(m.to_string());
                }
            }
        }
    }
    found
}

/// IMAP capabilities from a `* CAPABILITY ...` line or a `[CAPABILITY ...]` response code.
pub fn imap_capabilities(line: &str) -> Option<Vec<String>> {
    let upper = line.to_ascii_uppercase();
    let start = if let Some(i) = upper.find("[CAPABILITY ") {
        i + "[CAPABILITY ".len()
    } else if upper.starts_with("* CAPABILITY ") {
        "* CAPABILITY ".len()
    } else {
        return None;
    };
    let rest = &upper[start..];
    let end = if upper[..start].ends_with("[CAPABILITY ") { rest.find(']').unwrap_or(rest.len()) } else { rest.len() };
    Some(rest[..end].split_whitespace().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings() {
        assert_eq!(classify_greeting("220 mail.example.org ESMTP Postfix"), Some(Protocol::Smtp));
        assert_eq!(classify_greeting("220-mail.example.org ESMTP"), Some(Protocol::Smtp));
        assert_eq!(classify_greeting("554 5.7.1 go away"), Some(Protocol::Smtp));
        assert_eq!(classify_greeting("* OK [CAPABILITY IMAP4rev1] Dovecot ready."), Some(Protocol::Imap));
        assert_eq!(classify_greeting("* PREAUTH hello"), Some(Protocol::Imap));
        assert_eq!(classify_greeting("+OK Dovecot ready."), Some(Protocol::Pop3));
        assert_eq!(classify_greeting("SSH-2.0-OpenSSH_9.2"), None);
        assert_eq!(classify_greeting("HTTP/1.1 400 Bad Request"), None);
        assert_eq!(classify_greeting("2200"), None);
    }

    #[test]
    fn smtp_replies_and_ehlo() {
        assert_eq!(smtp_line("250-PIPELINING"), Some((250, false)));
        assert_eq!(smtp_line("250 OK"), Some((250, true)));
        assert_eq!(smtp_line("334"), Some((334, true)));
        assert_eq!(smtp_line("hello"), None);
        let reply: Vec<String> =
            ["250-mail.example.org", "250-STARTTLS", "250-AUTH PLAIN LOGIN", "250-AUTH=LOGIN", "250 8BITMIME"]
                .map(String::from)
                .to_vec();
        let k = ehlo_keywords(&reply);
        assert!(k.contains(&"STARTTLS".to_string()));
        assert_eq!(smtp_auth_mechanisms(&k), Some(vec!["PLAIN".to_string(), "LOGIN".to_string()]));
        assert_eq!(smtp_auth_mechanisms(&["AUTHX".to_string(), "STARTTLS".to_string()]), None);
    }

    #[test]
    fn imap_capability_forms() {
        assert_eq!(
            imap_capabilities("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready."),
            Some(vec!["IMAP4REV1".into(), "STARTTLS".into(), "AUTH=PLAIN".into()])
        );
        assert_eq!(
            imap_capabilities("* CAPABILITY IMAP4rev2 LOGINDISABLED STARTTLS"),
            Some(vec!["IMAP4REV2".into(), "LOGINDISABLED".into(), "STARTTLS".into()])
        );
        assert_eq!(imap_capabilities("* OK ready"), None);
    }

    #[test]
    fn targets_and_services() {
        assert_eq!("993".parse(), Ok(Target { port: 993, service: None }));
        assert_eq!("10587/Submission".parse(), Ok(Target { port: 10587, service: Some(Service::Submission) }));
        assert!("0".parse::<Target>().is_err());
        assert!("99999".parse::<Target>().is_err());
        assert!("25/http".parse::<Target>().is_err());
        assert_eq!(Service::for_port(10993), Some(Service::Imaps));
        assert_eq!(Service::for_port(143), Some(Service::Imap));
        assert_eq!(Service::for_port(2525), None);
        assert_eq!(Service::observed(Protocol::Smtp, false, true), Service::Smtp);
        assert_eq!(Service::observed(Protocol::Smtp, false, false), Service::Submission);
    }
}
