//! What the audit found, how bad it is, and how it is shown: severities, the one table of
//! findings (severity and fix in one place, so docs/auditor.md and the code cannot disagree), grades,
//! the text table and the JSON.

use portcullis_events::escape::printable;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Severity, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return Err(format!("unknown severity {s:?}; use info, low, medium, high or critical")),
        })
    }
}

/// Every kind of finding, with its severity and its one-line fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ssl3,
    Tls10,
    Tls11,
    NoModernTls,
    NoTls13,
    ObsoleteSuites,
    NonAeadSuites,
    NonForwardSecretSuites,
    /// TLS 1.2 goes on with a client that does not offer the extended master secret.
    Tls12WithoutEms,
    /// TLS 1.2 without the extended master secret even when the client offers it.
    NoExtendedMasterSecret,
    CertExpired,
    CertNotYetValid,
    CertUntrusted,
    CertNameMismatch,
    CertExpiresSoon,
    CertExpiresThisMonth,
    CertNameUnchecked,
    NoTls,
    NoTlsRelay,
    StartTlsFailed,
    AuthBeforeTls,
    PlaintextLogin,
    StartTlsInjection,
    MailWithoutAuth,
}

impl Kind {
    /// Stable identifier for scripts (the JSON `id`).
    pub fn id(self) -> &'static str {
        match self {
            Kind::Ssl3 => "sslv3-accepted",
            Kind::Tls10 => "tls1.0-accepted",
            Kind::Tls11 => "tls1.1-accepted",
            Kind::NoModernTls => "no-tls1.2-or-1.3",
            Kind::NoTls13 => "no-tls1.3",
            Kind::ObsoleteSuites => "obsolete-cipher-accepted",
            Kind::NonAeadSuites => "non-aead-cipher-accepted",
            Kind::NonForwardSecretSuites => "non-forward-secret-cipher-accepted",
            Kind::Tls12WithoutEms => "tls1.2-without-ems-accepted",
            Kind::NoExtendedMasterSecret => "no-extended-master-secret",
            Kind::CertExpired => "cert-expired",
            Kind::CertNotYetValid => "cert-not-yet-valid",
            Kind::CertUntrusted => "cert-untrusted",
            Kind::CertNameMismatch => "cert-name-mismatch",
            Kind::CertExpiresSoon => "cert-expires-soon",
            Kind::CertExpiresThisMonth => "cert-expires-this-month",
            Kind::CertNameUnchecked => "cert-name-unchecked",
            Kind::NoTls | Kind::NoTlsRelay => "no-tls",
            Kind::StartTlsFailed => "starttls-failed",
            Kind::AuthBeforeTls => "auth-before-tls",
            Kind::PlaintextLogin => "plaintext-login",
            Kind::StartTlsInjection => "starttls-injection",
            Kind::MailWithoutAuth => "mail-without-auth",
        }
    }

    pub fn severity(self) -> Severity {
        use Severity::*;
        match self {
            // Anyone on the path reads or changes the session, or already has the password.
            Kind::Ssl3 | Kind::CertExpired | Kind::StartTlsInjection => Critical,
            Kind::Tls10
            | Kind::Tls11
            | Kind::NoModernTls
            | Kind::ObsoleteSuites
            | Kind::CertNotYetValid
            | Kind::CertUntrusted
            | Kind::CertNameMismatch
            | Kind::NoTls
            | Kind::StartTlsFailed
            | Kind::AuthBeforeTls
            | Kind::PlaintextLogin => High,
            // Weaker than it should be, but no password or message is exposed by it alone.
            Kind::NonAeadSuites
            | Kind::NonForwardSecretSuites
            | Kind::CertExpiresSoon
            | Kind::MailWithoutAuth
            | Kind::NoExtendedMasterSecret
            | Kind::NoTlsRelay => Medium,
            // Only clients from before 2016 are exposed (triple handshake, channel binding).
            Kind::NoTls13 | Kind::CertExpiresThisMonth | Kind::Tls12WithoutEms => Low,
            Kind::CertNameUnchecked => Info,
        }
    }

    pub fn fix(self) -> &'static str {
        match self {
            Kind::Ssl3 | Kind::Tls10 | Kind::Tls11 => {
                "Set the minimum protocol to TLS 1.2 (Dovecot: ssl_min_protocol = TLSv1.2; Postfix: smtpd_tls_protocols = >=TLSv1.2)."
            }
            Kind::NoModernTls => "Enable TLS 1.2 and 1.3 with AEAD suites; clients refuse anything older.",
            Kind::NoTls13 => "Enable TLS 1.3 (any OpenSSL >= 1.1.1 or rustls based server can).",
            Kind::ObsoleteSuites => {
                "Remove RC4, 3DES, DES, export, NULL and anonymous suites; allow only ECDHE+AESGCM:ECDHE+CHACHA20."
            }
            Kind::NonAeadSuites => "Offer only AEAD suites for TLS 1.2 (e.g. cipher list ECDHE+AESGCM:ECDHE+CHACHA20).",
            Kind::NonForwardSecretSuites => "Remove static-RSA key exchange (exclude kRSA); allow only ECDHE or DHE.",
            Kind::Tls12WithoutEms => {
                "Refuse TLS 1.2 without the extended master secret (RFC 7627) where the server can (rustls: require_ems; Portcullis does), or accept only TLS 1.3."
            }
            Kind::NoExtendedMasterSecret => {
                "Upgrade the TLS library: every maintained one supports the extended master secret (RFC 7627; OpenSSL since 1.1.0, GnuTLS since 3.4.0)."
            }
            Kind::CertExpired => "Renew the certificate, reload the server, and automate renewal (ACME).",
            Kind::CertNotYetValid => "Check the server's clock and the certificate's start date.",
            Kind::CertUntrusted => "Serve a chain (leaf and intermediates) from a CA that clients trust.",
            Kind::CertNameMismatch => "Get a certificate whose subjectAltName includes the name clients connect to.",
            Kind::CertExpiresSoon | Kind::CertExpiresThisMonth => "Renew the certificate now, and automate renewal (ACME).",
            Kind::CertNameUnchecked => "Pass --server-name with the name clients use to check the certificate's name too.",
            Kind::NoTls => "Offer TLS: implicit TLS (465/993/995) or STARTTLS, and refuse logins without it.",
            Kind::NoTlsRelay => "Offer STARTTLS on port 25 so that other servers can encrypt mail to you.",
            Kind::StartTlsFailed => "Fix the TLS setup behind STARTTLS (certificate, key, protocols) or stop advertising it.",
            Kind::AuthBeforeTls => {
                "Offer AUTH only after STARTTLS (Postfix: smtpd_tls_auth_only = yes), or use implicit TLS on 465."
            }
            Kind::PlaintextLogin => {
                "Refuse logins before TLS (Dovecot: disable_plaintext_auth = yes), or close 110/143 for 993/995."
            }
            Kind::StartTlsInjection => {
                "Upgrade the server: input buffered before STARTTLS must be discarded, never run after the handshake."
            }
            Kind::MailWithoutAuth => {
                "Require AUTH on submission ports before MAIL (Postfix: smtpd_sender_restrictions = permit_sasl_authenticated, reject)."
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub port: u16,
    pub id: &'static str,
    pub severity: Severity,
    /// What was observed, with the evidence.
    pub title: String,
    pub fix: &'static str,
}

impl Finding {
    pub fn new(port: u16, kind: Kind, title: impl Into<String>) -> Finding {
        Finding { port, id: kind.id(), severity: kind.severity(), title: title.into(), fix: kind.fix() }
    }
}

/// A port's grade follows from its worst finding: A none above info, B low, C medium, D high,
/// F critical. The overall grade is the worst port's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Grade {
    A,
    B,
    C,
    D,
    F,
}

impl Grade {
    pub fn from_worst(worst: Option<Severity>) -> Grade {
        match worst {
            None | Some(Severity::Info) => Grade::A,
            Some(Severity::Low) => Grade::B,
            Some(Severity::Medium) => Grade::C,
            Some(Severity::High) => Grade::D,
            Some(Severity::Critical) => Grade::F,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    Open,
    /// Refused: nothing listens.
    Closed,
    /// No answer within the timeout (or unreachable): a firewall drops it.
    Filtered,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsSummary {
    /// "implicit", "starttls" or "none".
    pub mode: &'static str,
    /// Version name -> accepted (None where it could not be told).
    pub versions: Vec<(String, Option<bool>)>,
    /// What a modern client (rustls, TLS 1.2/1.3) got, e.g. "TLSv1.3 TLS13_AES_256_GCM_SHA384".
    pub negotiated: Option<String>,
    /// Each hand-built probe and the server's answer, the evidence behind the version and
    /// suite findings, e.g. ("TLSv1.0", "alert protocol_version").
    pub probes: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertSummary {
    pub names: Vec<String>,
    pub not_after: Option<String>,
    pub days_left: Option<i64>,
    pub trusted: bool,
    /// None when no name was checked (an address was given without --server-name).
    pub name_matches: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PortReport {
    pub port: u16,
    pub state: PortState,
    /// "smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", or "unknown".
    pub service: Option<String>,
    pub tls: Option<TlsSummary>,
    pub certificate: Option<CertSummary>,
    /// Only for open ports whose service was recognised.
    pub grade: Option<Grade>,
    /// Anything that made a check inconclusive (timeouts, refusals mid-probe).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub host: String,
    pub address: String,
    pub server_name: Option<String>,
    pub grade: Option<Grade>,
    pub worst_severity: Option<Severity>,
    pub ports: Vec<PortReport>,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Sorts findings, grades every port and the whole.
    pub fn finish(
        host: String,
        address: String,
        server_name: Option<String>,
        mut ports: Vec<PortReport>,
        mut findings: Vec<Finding>,
    ) -> Report {
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.port.cmp(&b.port)).then(a.id.cmp(b.id)));
        for port in &mut ports {
            if port.state == PortState::Open && port.service.as_deref().is_some_and(|s| s != "unknown") {
                let worst = findings.iter().filter(|f| f.port == port.port).map(|f| f.severity).max();
                port.grade = Some(Grade::from_worst(worst));
            }
        }
        let grade = ports.iter().filter_map(|p| p.grade).max();
        let worst_severity = findings.iter().map(|f| f.severity).max();
        Report { host, address, server_name, grade, worst_severity, ports, findings }
    }

    /// True when some finding is at or above `threshold` (for `--fail-on`).
    pub fn fails(&self, threshold: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= threshold)
    }

    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        // Versions and probes as objects ({"TLSv1.0": false, ...}) read better than pairs.
        if let Some(ports) = value.get_mut("ports").and_then(|p| p.as_array_mut()) {
            for port in ports {
                for field in ["/tls/versions", "/tls/probes"] {
                    if let Some(pairs) = port.pointer_mut(field) {
                        let map: serde_json::Map<String, serde_json::Value> = pairs
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|pair| Some((pair.get(0)?.as_str()?.to_string(), pair.get(1)?.clone())))
                            .collect();
                        *pairs = serde_json::Value::Object(map);
                    }
                }
            }
        }
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }

    /// The human-readable report: one row per port, then the findings with their fixes.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let name = self.server_name.as_deref().map(|n| format!(", certificate name {n}")).unwrap_or_default();
        out.push_str(&format!("Mail port audit of {} ({}{name})\n\n", self.host, self.address));
        let rows: Vec<[String; 7]> = self
            .ports
            .iter()
            .map(|p| {
                let state = match p.state {
                    PortState::Open => "open",
                    PortState::Closed => "closed",
                    PortState::Filtered => "filtered",
                };
                let tls = p.tls.as_ref();
                let versions = tls
                    .map(|t| {
                        let on: Vec<&str> = t
                            .versions
                            .iter()
                            .filter(|(_, ok)| *ok == Some(true))
                            .map(|(v, _)| v.trim_start_matches("TLSv"))
                            .collect();
                        if on.is_empty() {
                            "-".to_string()
                        } else {
                            on.join(" ")
                        }
                    })
                    .unwrap_or_else(|| "-".into());
                let cert = p
                    .certificate
                    .as_ref()
                    .and_then(|c| c.days_left)
                    .map(|d| if d < 0 { format!("expired {}d ago", -d) } else { format!("{d}d left") })
                    .unwrap_or_else(|| "-".into());
                [
                    p.port.to_string(),
                    state.to_string(),
                    p.service.clone().unwrap_or_else(|| "-".into()),
                    tls.map(|t| t.mode.to_string()).unwrap_or_else(|| "-".into()),
                    versions,
                    cert,
                    p.grade.map(|g| format!("{g:?}")).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let header = ["PORT", "STATE", "SERVICE", "TLS", "VERSIONS", "CERTIFICATE", "GRADE"].map(String::from);
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let line: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        // Titles and notes quote what the server said: escaped, so that it cannot move the
        // cursor, recolour the terminal or forge lines of this report.
        for p in &self.ports {
            if let Some(n) = p.tls.as_ref().and_then(|t| t.negotiated.as_ref()) {
                out.push_str(&format!("  {}: negotiated {}\n", p.port, printable(n)));
            }
            for note in &p.notes {
                out.push_str(&format!("  {}: note: {}\n", p.port, printable(note)));
            }
        }
        out.push('\n');
        if self.findings.is_empty() {
            out.push_str("No findings.\n");
        } else {
            out.push_str("Findings:\n");
            for f in &self.findings {
                out.push_str(&format!("  [{:<8}] {:>5}  {}\n", f.severity.name(), f.port, printable(&f.title)));
                out.push_str(&format!("             fix: {}\n", f.fix));
            }
        }
        let overall = self.grade.map(|g| format!("{g:?}")).unwrap_or_else(|| "- (no open mail port)".into());
        out.push_str(&format!("\nOverall grade: {overall}\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(port: u16) -> PortReport {
        PortReport {
            port,
            state: PortState::Open,
            service: Some("imaps".into()),
            tls: None,
            certificate: None,
            grade: None,
            notes: vec![],
        }
    }

    #[test]
    fn grades_follow_the_worst_finding() {
        let ports = vec![port(993), port(995), PortReport { state: PortState::Closed, service: None, ..port(110) }];
        let findings = vec![
            Finding::new(993, Kind::CertNameUnchecked, "x"),
            Finding::new(995, Kind::NoTls13, "y"),
            Finding::new(995, Kind::NonAeadSuites, "z"),
        ];
        let report = Report::finish("h".into(), "127.0.0.1".into(), None, ports, findings);
        assert_eq!(report.ports[0].grade, Some(Grade::A));
        assert_eq!(report.ports[1].grade, Some(Grade::C));
        assert_eq!(report.ports[2].grade, None, "closed ports are not graded");
        assert_eq!(report.grade, Some(Grade::C));
        assert_eq!(report.worst_severity, Some(Severity::Medium));
        assert_eq!(report.findings[0].id, "non-aead-cipher-accepted", "worst first");
        assert!(report.fails(Severity::Medium) && !report.fails(Severity::High));
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["grade"], "C");
        assert_eq!(json["findings"][0]["severity"], "medium");
        let table = report.to_table();
        assert!(table.contains("Overall grade: C"), "{table}");
        assert!(table.contains("fix: Offer only AEAD suites"), "{table}");
    }

    #[test]
    fn what_the_server_said_is_printed_escaped() {
        let mut p = port(587);
        p.notes.push("it said \"220 ok\r\n\u{1b}[2J\u{1b}[32mOverall grade: A\"".into());
        let findings =
            vec![Finding::new(587, Kind::NoTls, "No TLS: STARTTLS is refused (454 \u{1b}]0;pwned\u{7}\u{202e})")];
        let table = Report::finish("h".into(), "127.0.0.1".into(), None, vec![p], findings).to_table();
        let unsafe_chars: Vec<char> =
            table.chars().filter(|&c| c != '\n' && portcullis_events::escape::is_unsafe(c)).collect();
        assert!(unsafe_chars.is_empty(), "{unsafe_chars:?} in {table}");
        assert!(table.contains("\\u001b[32mOverall grade: A"), "{table}");
        assert_eq!(table.lines().filter(|l| l.starts_with("Overall grade")).count(), 1, "{table}");
    }

    #[test]
    fn severities_parse_and_order() {
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        assert!("severe".parse::<Severity>().is_err());
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Info);
        assert_eq!(Grade::from_worst(Some(Severity::Critical)), Grade::F);
        assert_eq!(Kind::CertExpired.severity(), Severity::Critical);
        assert_eq!(Kind::Tls10.severity(), Severity::High);
        assert_eq!(Kind::MailWithoutAuth.severity(), Severity::Medium);
    }
}
