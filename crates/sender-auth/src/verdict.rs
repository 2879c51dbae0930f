//! The verdict on who really sent a message: one typed result per method (SPF for MAIL FROM
//! and HELO, every DKIM signature, DMARC with alignment, ARC, forward-confirmed reverse DNS),
//! in the vocabulary of RFC 8601 §2.7 so the header, the event and the metric labels all say
//! the same words. Plain data: built by `verify`, read by `decision` and `headers`.

use serde::Serialize;
use std::net::IpAddr;

/// The envelope facts the verdict is about, as the SMTP session saw them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Envelope {
    /// The connecting client's address.
    pub client_ip: IpAddr,
    /// The EHLO/HELO argument, as given (a domain or an address literal).
    pub helo: String,
    /// The MAIL FROM address without angle brackets; empty for the null reverse-path (bounces).
    pub mail_from: String,
}

impl Envelope {
    /// The domain of MAIL FROM, or of HELO when MAIL FROM is null (RFC 7208 §2.4).
    pub fn mail_from_domain(&self) -> &str {
        match self.mail_from.rsplit_once('@') {
            Some((_, domain)) if !self.mail_from.is_empty() => domain,
            _ => &self.helo,
        }
    }
}

/// RFC 7208 §2.6 results (`Received-SPF` and `spf=` use these words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfResult {
    None,
    Neutral,
    Pass,
    Fail,
    SoftFail,
    TempError,
    PermError,
}

/// RFC 8601 §2.7.1 results for one DKIM signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimResult {
    None,
    Pass,
    /// The signature did not verify (a changed body or header, a wrong key).
    Fail,
    /// The signature could not be processed (syntax, expired, unsupported algorithm).
    Neutral,
    TempError,
    /// A missing or unusable key record, a required header absent.
    PermError,
}

/// RFC 7489 §11.2 results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcResult {
    None,
    Pass,
    Fail,
    TempError,
    PermError,
}

/// The policy a DMARC record asks for (RFC 7489 §6.3 `p=`/`sp=`, after `t=` testing mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

/// RFC 8617 §10.1 results (`arc=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArcResult {
    None,
    Pass,
    Fail,
}

/// RFC 8601 §2.7.3 results (`iprev=`): does the client's name resolve back to its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IprevResult {
    Pass,
    Fail,
    TempError,
    PermError,
}

macro_rules! words {
    ($type:ty { $($variant:ident => $word:literal),* $(,)? }) => {
        impl $type {
            /// The RFC's word for it, as written in headers, events and metric labels.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $word),* }
            }
        }
        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(SpfResult { None => "none", Neutral => "neutral", Pass => "pass", Fail => "fail", SoftFail => "softfail",
    TempError => "temperror", PermError => "permerror" });
words!(DkimResult { None => "none", Pass => "pass", Fail => "fail", Neutral => "neutral", TempError => "temperror",
    PermError => "permerror" });
words!(DmarcResult { None => "none", Pass => "pass", Fail => "fail", TempError => "temperror", PermError => "permerror" });
words!(DmarcPolicy { None => "none", Quarantine => "quarantine", Reject => "reject" });
words!(ArcResult { None => "none", Pass => "pass", Fail => "fail" });
words!(IprevResult { Pass => "pass", Fail => "fail", TempError => "temperror", PermError => "permerror" });

/// One SPF check (RFC 7208 §4): of the MAIL FROM identity or of the HELO identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfCheck {
    pub result: SpfResult,
    /// The domain whose record was evaluated.
    pub domain: String,
}

/// One DKIM-Signature and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimCheck {
    pub result: DkimResult,
    /// `d=`; empty when the signature did not even parse.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// `a=` ("rsa-sha256", "ed25519-sha256", "rsa-sha1"); empty when unknown.
    pub algorithm: String,
    /// The first 8 base64 characters of `b=`, telling signatures of one domain apart
    /// (RFC 6008 `header.b`).
    pub signature_prefix: String,
    /// Why it did not pass, for people (never branched on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// DMARC (RFC 7489 §6.6) for the author domain of `From:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmarcCheck {
    pub result: DmarcResult,
    /// The RFC5322.From domain evaluated; empty when the message has none.
    pub from_domain: String,
    /// The policy the domain's record asks for; `None` when it publishes no record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<DmarcPolicy>,
    /// An aligned SPF pass (RFC 7489 §3.1.2).
    pub spf_aligned: bool,
    /// An aligned DKIM pass (RFC 7489 §3.1.1).
    pub dkim_aligned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The ARC chain (RFC 8617 §5.2): verified and recorded, not (yet) used to override DMARC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArcCheck {
    pub result: ArcResult,
    /// How many ARC sets the message carries.
    pub sets: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Forward-confirmed reverse DNS of the client (RFC 8601 §3 "iprev").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IprevCheck {
    pub result: IprevResult,
    /// The PTR names of the address (the first few), lower case.
    pub names: Vec<String>,
}

/// Everything known about who sent one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub envelope: Envelope,
    pub spf_helo: SpfCheck,
    pub spf_mail_from: SpfCheck,
    /// One entry per DKIM-Signature checked, in message order.
    pub dkim: Vec<DkimCheck>,
    pub dmarc: DmarcCheck,
    pub arc: ArcCheck,
    pub iprev: IprevCheck,
}

impl Verdict {
    /// The best DKIM result across signatures, for one label per message in metrics:
    /// pass if any passed, else the first non-none.
    pub fn dkim_summary(&self) -> DkimResult {
        if self.dkim.iter().any(|d| d.result == DkimResult::Pass) {
            return DkimResult::Pass;
        }
        self.dkim.iter().map(|d| d.result).find(|r| *r != DkimResult::None).unwrap_or(DkimResult::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_null_reverse_path_is_checked_as_the_helo_domain() {
        let mut envelope =
            Envelope { client_ip: [192, 0, 2, 1].into(), helo: "mx.example.org".into(), mail_from: String::new() };
        assert_eq!(envelope.mail_from_domain(), "mx.example.org");
        envelope.mail_from = "alice@example.net".into();
        assert_eq!(envelope.mail_from_domain(), "example.net");
    }

    #[test]
    fn results_serialise_as_the_rfc_words() {
        assert_eq!(serde_json::to_string(&SpfResult::SoftFail).unwrap(), "\"softfail\"");
        assert_eq!(serde_json::to_string(&DkimResult::TempError).unwrap(), "\"temperror\"");
        assert_eq!(SpfResult::PermError.as_str(), "permerror");
        assert_eq!(DmarcPolicy::Quarantine.to_string(), "quarantine");
    }
}
