//! Who is really sending (issue 14), for mail that arrives on port 25 from other servers:
//! SPF for MAIL FROM and HELO (RFC 7208), every DKIM signature (RFC 6376), DMARC with
//! alignment (RFC 7489), ARC (RFC 8617) and the client's forward-confirmed reverse DNS are
//! computed into one typed [`Verdict`]; a pure [`decide`] turns it and the operator's
//! [`Policy`] into a [`Decision`] (accept, accept into Junk, 5yz, 4yz); [`stamp`] removes the
//! `Authentication-Results` fields that claim our authserv-id (RFC 8601 §5) and prepends
//! ours and `Received-SPF`. The sender-domain check (null MX, no MX/A/AAAA) answers at MAIL
//! FROM; DNSBL zones (off by default) at connect. The decisions are pure and tested without
//! DNS; the DNS work (mail-auth on the server's one resolver) is in `verify` and the small
//! lookup modules.
//!
//! How the SMTP session on port 25 calls it (one [`Authenticator`] per server):
//!
//! - **connect** (after the guard admitted the peer): `auth.check_client(ip)` gives the
//!   FCrDNS result and the DNSBL checks. On [`Decision::Reject`] greet with
//!   `554 <reply.text>` (no enhanced code before EHLO, RFC 2034) and accept only QUIT
//!   (RFC 5321 §3.1); keep the decision (a `Junk` one applies at end of DATA) and the
//!   `iprev` result for the end of DATA and the `Received:` line.
//! - **EHLO/HELO**: nothing to ask; keep the name for the [`Envelope`].
//! - **MAIL FROM**: `auth.check_sender(mail_from)`: on `Reject`/`TempFail` send
//!   `reply.line()`; otherwise 250.
//! - **RCPT TO**: nothing here (local recipients are the session's and the store's).
//! - **end of DATA**: `auth.verify(&envelope, &message, Some(iprev)).await`, then
//!   `auth.decide(&verdict).most_severe(connect_decision)`; emit
//!   [`Summary::new`]`(&verdict, &decision)` as the event and count
//!   [`Summary::metric_labels`]; on `Accept` store `stamp(...)` in INBOX, on `AcceptToJunk`
//!   in Junk, on `Reject`/`TempFail` send `reply.line()` and store nothing.
//!
//! Configuration (the config crate maps these keys onto [`AuthSettings`]; `hostname` is the
//! authserv-id; the words are parsed with the `FromStr` impls of [`FailureAction`] and
//! [`TempErrorAction`]):
//!
//! ```toml
//! [sender_auth]
//! dmarc_reject = "reject"       # DMARC fails, p=reject:      "reject" | "junk" | "accept"
//! dmarc_quarantine = "junk"     # DMARC fails, p=quarantine:  "reject" | "junk" | "accept"
//! spf_fail = "reject"           # SPF -all fails, no DMARC record
//! null_mx_sender = "reject"     # MAIL FROM domain has a null MX (550 5.7.27)
//! unroutable_sender = "reject"  # MAIL FROM domain has no MX/A/AAAA (550 5.1.8)
//! dnsbl = []                    # zones asked at connect, e.g. ["zen.spamhaus.org"]; off when empty
//! dnsbl_listed = "reject"       # 554 5.7.1
//! temp_errors = "tempfail"      # a DNS failure that could change the outcome: "tempfail" (451) | "accept"
//! deadline = "60s"              # all checks of one message
//! ```
#![forbid(unsafe_code)]

mod decision;
mod dnsbl;
mod forged;
mod headers;
mod iprev;
mod sender_domain;
mod settings;
mod summary;
mod verdict;
mod verify;

pub use decision::{decide, decide_dnsbl, decide_sender_domain, Decision, Reason, Reply};
pub use dnsbl::{check_dnsbl, DnsblCheck, DnsblResult};
pub use forged::strip_forged_authentication_results;
pub use headers::{authentication_results, received_spf};
pub use iprev::check_iprev;
pub use sender_domain::{check_sender_domain, SenderDomain, SenderDomainCheck};
pub use settings::{AuthSettings, FailureAction, Policy, TempErrorAction, UnknownWord};
pub use summary::Summary;
pub use verdict::*;
pub use verify::MAX_DKIM_SIGNATURES;

use mail_auth::MessageAuthenticator;
use portcullis_dns::Resolver;
use std::net::IpAddr;

/// What is known about a client at connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCheck {
    pub iprev: IprevCheck,
    /// One per configured zone (none when DNSBL is off).
    pub dnsbl: Vec<DnsblCheck>,
    pub decision: Decision,
}

/// The checks of one server: the resolver, mail-auth on top of it, and the settings.
#[derive(Clone)]
pub struct Authenticator {
    resolver: Resolver,
    mail_auth: MessageAuthenticator,
    settings: AuthSettings,
}

impl Authenticator {
    /// mail-auth is given the same hickory resolver, so every lookup shares one cache.
    pub fn new(resolver: Resolver, settings: AuthSettings) -> Authenticator {
        let mail_auth = MessageAuthenticator(resolver.hickory().clone());
        Authenticator { resolver, mail_auth, settings }
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// Connect: FCrDNS and the DNSBL zones, asked at once.
    pub async fn check_client(&self, ip: IpAddr) -> ClientCheck {
        let deadline = self.settings.deadline;
        let iprev = async {
            tokio::time::timeout(deadline, check_iprev(&self.resolver, ip))
                .await
                .unwrap_or(IprevCheck { result: IprevResult::TempError, names: vec![] })
        };
        let dnsbl = async {
            let zones = &self.settings.dnsbl_zones;
            tokio::time::timeout(deadline, check_dnsbl(&self.resolver, ip, zones)).await.unwrap_or_else(|_| {
                let failed =
                    |zone: &String| DnsblCheck { zone: zone.clone(), result: DnsblResult::Failed("timeout".into()) };
                zones.iter().map(failed).collect()
            })
        };
        let (iprev, dnsbl) = tokio::join!(iprev, dnsbl);
        let decision = decide_dnsbl(&dnsbl, &self.settings.policy);
        ClientCheck { iprev, dnsbl, decision }
    }

    /// MAIL FROM: the sender domain's check and what it leads to.
    pub async fn check_sender(&self, mail_from: &str) -> (SenderDomainCheck, Decision) {
        let check = tokio::time::timeout(self.settings.deadline, check_sender_domain(&self.resolver, mail_from))
            .await
            .unwrap_or_else(|_| SenderDomainCheck {
                domain: sender_domain::domain_of(mail_from).unwrap_or_default().to_ascii_lowercase(),
                outcome: SenderDomain::Temporary("timeout".into()),
            });
        let decision = decide_sender_domain(&check, &self.settings.policy);
        (check, decision)
    }

    /// End of DATA: every check of the message, within the configured deadline. `iprev` is
    /// the result from [`check_client`](Self::check_client), so it is not asked twice.
    pub async fn verify(&self, envelope: &Envelope, message: &[u8], iprev: Option<IprevCheck>) -> Verdict {
        let id = &self.settings.authserv_id;
        verify::verify(&self.mail_auth, &self.resolver, id, self.settings.deadline, envelope, message, iprev).await
    }

    /// The verdict under this server's policy.
    pub fn decide(&self, verdict: &Verdict) -> Decision {
        decide(verdict, &self.settings.policy)
    }

    /// The message as stored: see [`stamp`].
    pub fn stamp(&self, verdict: &Verdict, message: &[u8]) -> Vec<u8> {
        stamp(verdict, message, &self.settings.authserv_id)
    }
}

/// The message as it is stored: our `Authentication-Results` and `Received-SPF` on top, and
/// no field left below that claims our authserv-id (RFC 8601 §5).
pub fn stamp(verdict: &Verdict, message: &[u8], authserv_id: &str) -> Vec<u8> {
    let (clean, _removed) = strip_forged_authentication_results(message, authserv_id);
    let results = authentication_results(verdict, authserv_id);
    let spf = received_spf(verdict, authserv_id);
    let mut stamped = Vec::with_capacity(results.len() + spf.len() + clean.len());
    stamped.extend_from_slice(results.as_bytes());
    stamped.extend_from_slice(spf.as_bytes());
    stamped.extend_from_slice(&clean);
    stamped
}
