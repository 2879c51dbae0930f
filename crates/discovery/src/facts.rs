//! What every document and record is made from: the server's name, which of its mail ports are
//! on (read from the config by the caller, so this crate needs no config file), and per domain
//! the DKIM keys and report addresses. Plain data; the caller fills it in.

use crate::mta_sts::{Mode, Policy};

/// The server as clients and senders must reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// The name every port answers to and the certificate covers (`hostname` in the config).
    pub hostname: String,
    pub ports: Ports,
    /// How strictly senders must use TLS towards port 25 (RFC 8461 §5); `Enforce` unless the
    /// operator is still testing.
    pub mta_sts_mode: Mode,
    /// How long senders cache the MTA-STS policy, in seconds (RFC 8461 §3.2: "weeks or
    /// greater" is recommended).
    pub mta_sts_max_age: u64,
    /// The CA's domain for the CAA `issue` property (RFC 8659 §4.2), when the server obtains
    /// its certificates from one CA (ACME); `None` prints no CAA record.
    pub caa_issuer: Option<String>,
}

/// The port each listener is reached on; `None` when it is off. Clients are only ever told
/// about TLS ports: implicit TLS (465, 993, 995) and STARTTLS that is required (587).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ports {
    /// SMTP submission over implicit TLS (RFC 8314), normally 465.
    pub submissions: Option<u16>,
    /// SMTP submission with STARTTLS required (RFC 6409), normally 587.
    pub submission: Option<u16>,
    /// IMAP over implicit TLS, normally 993.
    pub imaps: Option<u16>,
    /// POP3 over implicit TLS, normally 995.
    pub pop3s: Option<u16>,
    /// Mail from other servers (MX), normally 25.
    pub smtp: Option<u16>,
    /// The HTTPS listener serving these documents, normally 443.
    pub https: Option<u16>,
}

/// What differs between the domains one server receives mail for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainFacts {
    /// Lower case, without a final dot.
    pub domain: String,
    /// The DKIM keys in use, published at `SELECTOR._domainkey.DOMAIN`.
    pub dkim: Vec<DkimKey>,
    /// Where DMARC aggregate reports go (RFC 7489 §6.3 `rua`); default `postmaster@DOMAIN`.
    pub dmarc_rua: Option<String>,
    /// Where TLS reports go (RFC 8460 §3 `rua`); default `postmaster@DOMAIN`.
    pub tls_rpt_rua: Option<String>,
}

/// A DKIM public key as published: `portcullis_dkim_sign::SigningKey::dns_record()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimKey {
    pub selector: String,
    /// `v=DKIM1; k=…; p=…`
    pub record: String,
}

impl ServerFacts {
    /// Facts with the safe defaults: MTA-STS enforcing for a week, no CAA issuer.
    pub fn new(hostname: impl Into<String>, ports: Ports) -> ServerFacts {
        ServerFacts {
            hostname: hostname.into().trim_end_matches('.').to_ascii_lowercase(),
            ports,
            mta_sts_mode: Mode::Enforce,
            mta_sts_max_age: 604_800,
            caa_issuer: None,
        }
    }

    /// The MTA-STS policy, when there is one to publish: senders can only use it when
    /// port 25 takes mail and the HTTPS listener can serve the policy file (RFC 8461 §3.3).
    pub fn mta_sts_policy(&self) -> Option<Policy> {
        (self.ports.smtp.is_some() && self.ports.https.is_some()).then(|| Policy {
            mode: self.mta_sts_mode,
            mx: vec![self.hostname.clone()],
            max_age: self.mta_sts_max_age,
        })
    }

    /// True when at least one way in (IMAP or POP3) and one way out (submission) is on:
    /// the client documents need both.
    pub fn offers_client_access(&self) -> bool {
        let p = &self.ports;
        (p.imaps.is_some() || p.pop3s.is_some()) && (p.submissions.is_some() || p.submission.is_some())
    }
}

impl DomainFacts {
    /// A domain with no DKIM key yet and the default report addresses.
    pub fn new(domain: impl Into<String>) -> DomainFacts {
        DomainFacts {
            domain: domain.into().trim_end_matches('.').to_ascii_lowercase(),
            dkim: Vec::new(),
            dmarc_rua: None,
            tls_rpt_rua: None,
        }
    }

    pub fn dmarc_rua(&self) -> String {
        self.dmarc_rua.clone().unwrap_or_else(|| format!("postmaster@{}", self.domain))
    }

    pub fn tls_rpt_rua(&self) -> String {
        self.tls_rpt_rua.clone().unwrap_or_else(|| format!("postmaster@{}", self.domain))
    }
}
