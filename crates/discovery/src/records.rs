//! The DNS records a domain needs for mail to and from this server, each with what it is for,
//! written as zone-file lines ready to paste: MX; SPF, DKIM, DMARC, MTA-STS and TLS-RPT TXT
//! records; SRV records for the TLS mail services (RFC 6186, RFC 8314 §5.1) and "not offered"
//! (`.`) for the plaintext ones; CAA; the autoconfig, autodiscover and mta-sts names. What
//! cannot be published yet (no DKIM key, no HTTPS listener) is said in a note instead.

use crate::facts::{DomainFacts, ServerFacts};

/// The TTL written in the zone lines.
pub const TTL: u32 = 3600;

/// What a record is for; the checker judges each kind its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// The domain's mail goes to this server.
    Mx,
    /// RFC 7208: the server may send the domain's mail.
    Spf,
    /// RFC 6376: the public half of a signing key.
    Dkim { selector: String },
    /// RFC 7489.
    Dmarc,
    /// RFC 8461 §3.1: the policy id.
    MtaSts,
    /// RFC 8460 §3.
    TlsRpt,
    /// A TLS mail service clients may use (RFC 6186 §3, RFC 8314 §5.1).
    Service,
    /// A service that is not offered: target "." (RFC 2782, RFC 6186 §3.4).
    NotOffered,
    /// RFC 8659: which CA may issue certificates for the domain's names.
    Caa,
    /// A name clients look up (autoconfig., autodiscover., mta-sts.) that must reach the
    /// server's HTTPS listener.
    Alias,
}

/// A record's data, as typed as the checker needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Mx { preference: u16, exchange: String },
    Txt(String),
    Srv { priority: u16, weight: u16, port: u16, target: String },
    Caa { tag: String, value: String },
    Cname(String),
}

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Without the final dot.
    pub name: String,
    pub data: Data,
    pub purpose: Purpose,
}

/// Everything for one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub domain: String,
    pub records: Vec<Expected>,
    /// What is not in `records` and why, one sentence each (printed as zone-file comments).
    pub notes: Vec<String>,
}

impl Data {
    pub fn type_name(&self) -> &'static str {
        match self {
            Data::Mx { .. } => "MX",
            Data::Txt(_) => "TXT",
            Data::Srv { .. } => "SRV",
            Data::Caa { .. } => "CAA",
            Data::Cname(_) => "CNAME",
        }
    }

    /// The data as a zone file writes it.
    pub fn zone_text(&self) -> String {
        match self {
            Data::Mx { preference, exchange } => format!("{preference} {}", absolute(exchange)),
            Data::Txt(text) => quoted_strings(text),
            Data::Srv { priority, weight, port, target } => {
                format!("{priority} {weight} {port} {}", absolute(target))
            }
            Data::Caa { tag, value } => format!("0 {tag} {}", quoted_strings(value)),
            Data::Cname(target) => absolute(target),
        }
    }
}

impl Expected {
    /// `name. TTL IN TYPE data`, ready to paste into a zone file.
    pub fn zone_line(&self) -> String {
        format!("{} {TTL} IN {} {}", absolute(&self.name), self.data.type_name(), self.data.zone_text())
    }
}

impl Plan {
    /// The whole plan as zone-file text: notes as `;` comments, then one line per record.
    pub fn zone_text(&self) -> String {
        let mut text = format!("; Mail records for {} (portcullis dns)\n", self.domain);
        for note in &self.notes {
            text.push_str(&format!("; {note}\n"));
        }
        for record in &self.records {
            text.push_str(&record.zone_line());
            text.push('\n');
        }
        text
    }
}

/// "." stays "."; any other name gets its final dot.
fn absolute(name: &str) -> String {
    if name == "." {
        ".".into()
    } else {
        format!("{}.", name.trim_end_matches('.'))
    }
}

/// RFC 1035 §3.3.14, §5.1: character-strings of at most 255 octets, quoted, with `"` and `\`
/// escaped; a long record (an RSA DKIM key) becomes several strings that receivers join.
fn quoted_strings(text: &str) -> String {
    let mut strings = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if current.len() + c.len_utf8() > 255 {
            strings.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    strings.push(current);
    strings
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The mail services that have SRV records: (service label, the port if on, priority).
/// RFC 6186 §3.4: a client that finds both IMAP and POP3 takes the lower priority, so IMAP
/// comes first.
fn services(server: &ServerFacts) -> [(&'static str, Option<u16>, u16); 4] {
    let p = &server.ports;
    [
        ("_submissions", p.submissions, 0),
        ("_submission", p.submission, 0),
        ("_imaps", p.imaps, 0),
        ("_pop3s", p.pop3s, 10),
    ]
}

/// Every record `domain` needs on `server`.
pub fn plan(server: &ServerFacts, domain: &DomainFacts) -> Plan {
    let d = domain.domain.as_str();
    let host = server.hostname.as_str();
    let mut records = Vec::new();
    let mut notes = Vec::new();
    let mut add = |name: String, data: Data, purpose: Purpose| records.push(Expected { name, data, purpose });

    // Mail for the domain comes here (RFC 5321 §5.1); SPF lets this server send it, by the MX
    // mechanism so that it follows the MX record (RFC 7208 §5.4).
    add(d.into(), Data::Mx { preference: 10, exchange: host.into() }, Purpose::Mx);
    if server.ports.smtp.is_none() {
        notes.push("listen.smtp is off: the MX record takes effect once port 25 accepts mail".into());
    }
    add(d.into(), Data::Txt("v=spf1 mx -all".into()), Purpose::Spf);
    for key in &domain.dkim {
        add(
            format!("{}._domainkey.{d}", key.selector),
            Data::Txt(key.record.clone()),
            Purpose::Dkim { selector: key.selector.clone() },
        );
    }
    if domain.dkim.is_empty() {
        notes.push(format!(
            "no DKIM key yet, so mail goes out unsigned: make one with `portcullis dkim rotate {d} --grace 0`"
        ));
    }
    // RFC 7489 §6.3: reject what fails, strict alignment on both identifiers (this server
    // signs with d=DOMAIN and sends with the domain's own return path).
    add(
        format!("_dmarc.{d}"),
        Data::Txt(format!("v=DMARC1; p=reject; adkim=s; aspf=s; rua=mailto:{}", domain.dmarc_rua())),
        Purpose::Dmarc,
    );
    match server.mta_sts_policy() {
        Some(policy) => {
            add(format!("_mta-sts.{d}"), Data::Txt(policy.txt_record()), Purpose::MtaSts);
            add(format!("mta-sts.{d}"), Data::Cname(host.into()), Purpose::Alias);
        }
        None => notes.push(
            "no MTA-STS records: they need port 25 (listen.smtp) and the HTTPS listener that serves the policy".into(),
        ),
    }
    add(
        format!("_smtp._tls.{d}"),
        Data::Txt(format!("v=TLSRPTv1; rua=mailto:{}", domain.tls_rpt_rua())),
        Purpose::TlsRpt,
    );

    for (service, port, priority) in services(server) {
        let name = format!("{service}._tcp.{d}");
        match port {
            Some(port) => add(name, Data::Srv { priority, weight: 1, port, target: host.into() }, Purpose::Service),
            None => add(name, not_offered(), Purpose::NotOffered),
        }
    }
    // RFC 8314 §5.1 / RFC 6186 §3.4: the cleartext services are not offered here at all.
    for service in ["_imap", "_pop3"] {
        add(format!("{service}._tcp.{d}"), not_offered(), Purpose::NotOffered);
    }

    if let Some(issuer) = &server.caa_issuer {
        // RFC 8659 §3: the tree is climbed, so the domain's record covers autoconfig. and
        // mta-sts.; the host name needs its own when it lies outside the domain.
        add(d.into(), Data::Caa { tag: "issue".into(), value: issuer.clone() }, Purpose::Caa);
        if !host.ends_with(&format!(".{d}")) && host != d {
            add(host.into(), Data::Caa { tag: "issue".into(), value: issuer.clone() }, Purpose::Caa);
        }
    } else {
        notes.push("no CAA record: the server's certificate does not come from a CA it knows ([tls] acme)".into());
    }
    match server.ports.https {
        Some(port) => {
            add(format!("autoconfig.{d}"), Data::Cname(host.into()), Purpose::Alias);
            add(format!("autodiscover.{d}"), Data::Cname(host.into()), Purpose::Alias);
            add(
                format!("_autodiscover._tcp.{d}"),
                Data::Srv { priority: 0, weight: 1, port, target: host.into() },
                Purpose::Service,
            );
        }
        None => notes
            .push("no autoconfig or autodiscover names: they need the HTTPS listener that serves the documents".into()),
    }
    Plan { domain: d.into(), records, notes }
}

fn not_offered() -> Data {
    Data::Srv { priority: 0, weight: 0, port: 0, target: ".".into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{DkimKey, Ports};

    fn server(https: bool) -> ServerFacts {
        let ports = Ports {
            submissions: Some(465),
            submission: Some(587),
            imaps: Some(993),
            pop3s: None,
            smtp: Some(25),
            https: https.then_some(443),
        };
        let mut facts = ServerFacts::new("mail.example.org", ports);
        facts.caa_issuer = Some("letsencrypt.org".into());
        facts
    }

    fn lines(plan: &Plan) -> Vec<String> {
        plan.records.iter().map(Expected::zone_line).collect()
    }

    #[test]
    fn every_record_of_the_issue_is_listed() {
        let mut domain = DomainFacts::new("example.org");
        domain.dkim.push(DkimKey { selector: "s1".into(), record: "v=DKIM1; k=ed25519; p=abc".into() });
        let plan = plan(&server(true), &domain);
        let lines = lines(&plan);
        for expected in [
            "example.org. 3600 IN MX 10 mail.example.org.",
            "example.org. 3600 IN TXT \"v=spf1 mx -all\"",
            "s1._domainkey.example.org. 3600 IN TXT \"v=DKIM1; k=ed25519; p=abc\"",
            "_dmarc.example.org. 3600 IN TXT \"v=DMARC1; p=reject; adkim=s; aspf=s; rua=mailto:postmaster@example.org\"",
            "_smtp._tls.example.org. 3600 IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@example.org\"",
            "_submissions._tcp.example.org. 3600 IN SRV 0 1 465 mail.example.org.",
            "_submission._tcp.example.org. 3600 IN SRV 0 1 587 mail.example.org.",
            "_imaps._tcp.example.org. 3600 IN SRV 0 1 993 mail.example.org.",
            "_pop3s._tcp.example.org. 3600 IN SRV 0 0 0 .",
            "_imap._tcp.example.org. 3600 IN SRV 0 0 0 .",
            "_pop3._tcp.example.org. 3600 IN SRV 0 0 0 .",
            "example.org. 3600 IN CAA 0 issue \"letsencrypt.org\"",
            "autoconfig.example.org. 3600 IN CNAME mail.example.org.",
            "autodiscover.example.org. 3600 IN CNAME mail.example.org.",
            "mta-sts.example.org. 3600 IN CNAME mail.example.org.",
            "_autodiscover._tcp.example.org. 3600 IN SRV 0 1 443 mail.example.org.",
        ] {
            assert!(lines.contains(&expected.to_string()), "{expected} missing from {lines:#?}");
        }
        assert!(lines.iter().any(|l| l.starts_with("_mta-sts.example.org. 3600 IN TXT \"v=STSv1; id=")));
        assert_eq!(plan.notes, Vec::<String>::new());
    }

    #[test]
    fn what_cannot_be_published_yet_is_a_note_not_a_record() {
        let mut facts = server(false);
        facts.caa_issuer = None;
        let plan = plan(&facts, &DomainFacts::new("example.org"));
        let text = plan.zone_text();
        let records: String = text.lines().filter(|l| !l.starts_with(';')).collect();
        assert!(!records.contains("_mta-sts") && !records.contains("autoconfig.") && !records.contains("CAA"));
        assert!(!records.contains("_domainkey"));
        assert_eq!(plan.notes.len(), 4, "{:?}", plan.notes);
        assert!(text.lines().filter(|l| !l.starts_with(';')).all(|l| l.contains(" IN ")));
    }

    #[test]
    fn a_long_txt_record_is_split_into_strings_of_255() {
        let data = Data::Txt(format!("v=DKIM1; k=rsa; p={}", "A".repeat(400)));
        let text = data.zone_text();
        let strings: Vec<&str> = text.split("\" \"").collect();
        assert_eq!(strings.len(), 2);
        assert_eq!(strings[0].len(), 256); // the opening quote and 255 octets
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(Data::Txt("a\"b\\c".into()).zone_text(), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn a_host_outside_the_domain_gets_its_own_caa_record() {
        let mut facts = server(true);
        facts.hostname = "mx.provider.net".into();
        let lines = lines(&plan(&facts, &DomainFacts::new("example.org")));
        assert!(lines.contains(&"mx.provider.net. 3600 IN CAA 0 issue \"letsencrypt.org\"".to_string()));
    }
}
