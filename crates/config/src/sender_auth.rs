//! `[sender_auth]`: what the checks of mail from other servers (port 25) lead to: DMARC
//! failures by the policy the domain asks for, SPF failures without DMARC, senders whose
//! domain takes no mail, DNSBL listings, temporary DNS failures, and how long the checks of one
//! message may take. The server maps this onto `portcullis_sender_auth::AuthSettings` (whose
//! crate needs no config crate); a test there checks that the words here are the words there.

use std::time::Duration;

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;
use crate::names::is_hostname;

const DEADLINE: &str = "60s";

/// What a failed check leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAction {
    /// Refused with a 5yz reply.
    Reject,
    /// Accepted into the recipient's Junk mailbox.
    Junk,
    /// Accepted like any other message (the verdict is still in its headers and the log).
    Accept,
}

impl AuthAction {
    pub const WORDS: &'static [&'static str] = &["reject", "junk", "accept"];

    fn parse(word: &str) -> Option<AuthAction> {
        match word {
            "reject" => Some(AuthAction::Reject),
            "junk" => Some(AuthAction::Junk),
            "accept" => Some(AuthAction::Accept),
            _ => None,
        }
    }
}

/// What a temporary DNS failure leads to, when the missing answer could change the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempErrorAction {
    /// 451: the sender tries again later.
    TempFail,
    /// Accepted; the headers say `temperror`.
    Accept,
}

impl TempErrorAction {
    pub const WORDS: &'static [&'static str] = &["tempfail", "accept"];

    fn parse(word: &str) -> Option<TempErrorAction> {
        match word {
            "tempfail" => Some(TempErrorAction::TempFail),
            "accept" => Some(TempErrorAction::Accept),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderAuth {
    /// DMARC fails and the domain asks p=reject.
    pub dmarc_reject: AuthAction,
    /// DMARC fails and the domain asks p=quarantine.
    pub dmarc_quarantine: AuthAction,
    /// SPF fails (-all) for MAIL FROM and the domain publishes no DMARC record.
    pub spf_fail: AuthAction,
    /// The MAIL FROM domain has a null MX (RFC 7505).
    pub null_mx_sender: AuthAction,
    /// The MAIL FROM domain has no MX, A or AAAA record.
    pub unroutable_sender: AuthAction,
    /// DNSBL zones asked about each client at connect; empty: off.
    pub dnsbl: Vec<String>,
    /// The client is listed on one of them.
    pub dnsbl_listed: AuthAction,
    pub temp_errors: TempErrorAction,
    /// The longest the checks of one message may take.
    pub deadline: Duration,
}

impl Default for SenderAuth {
    fn default() -> SenderAuth {
        SenderAuth {
            dmarc_reject: AuthAction::Reject,
            dmarc_quarantine: AuthAction::Junk,
            spf_fail: AuthAction::Reject,
            null_mx_sender: AuthAction::Reject,
            unroutable_sender: AuthAction::Reject,
            dnsbl: Vec::new(),
            dnsbl_listed: AuthAction::Reject,
            temp_errors: TempErrorAction::TempFail,
            deadline: Duration::from_secs(60),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSenderAuth {
    dmarc_reject: Option<String>,
    dmarc_quarantine: Option<String>,
    spf_fail: Option<String>,
    null_mx_sender: Option<String>,
    unroutable_sender: Option<String>,
    dnsbl: Option<Vec<String>>,
    dnsbl_listed: Option<String>,
    temp_errors: Option<String>,
    deadline: Option<String>,
}

fn action(
    c: &Check<'_>,
    key: &'static str,
    word: Option<String>,
    default: AuthAction,
) -> Result<AuthAction, ConfigError> {
    match word {
        None => Ok(default),
        Some(word) => AuthAction::parse(&word)
            .ok_or_else(|| c.invalid(key, format!("\"{word}\" is not one of: {}", AuthAction::WORDS.join(", ")))),
    }
}

impl RawSenderAuth {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<SenderAuth, ConfigError> {
        let d = SenderAuth::default();
        let temp_errors = match self.temp_errors {
            None => d.temp_errors,
            Some(word) => TempErrorAction::parse(&word).ok_or_else(|| {
                c.invalid(
                    "sender_auth.temp_errors",
                    format!("\"{word}\" is not one of: {}", TempErrorAction::WORDS.join(", ")),
                )
            })?,
        };
        let mut dnsbl = Vec::new();
        for zone in self.dnsbl.unwrap_or_default() {
            let zone = zone.trim().trim_end_matches('.').to_ascii_lowercase();
            if !is_hostname(&zone) || !zone.contains('.') {
                return Err(c.invalid(
                    "sender_auth.dnsbl",
                    format!("\"{zone}\" is not a DNS zone (e.g. \"zen.spamhaus.org\")"),
                ));
            }
            dnsbl.push(zone);
        }
        Ok(SenderAuth {
            dmarc_reject: action(c, "sender_auth.dmarc_reject", self.dmarc_reject, d.dmarc_reject)?,
            dmarc_quarantine: action(c, "sender_auth.dmarc_quarantine", self.dmarc_quarantine, d.dmarc_quarantine)?,
            spf_fail: action(c, "sender_auth.spf_fail", self.spf_fail, d.spf_fail)?,
            null_mx_sender: action(c, "sender_auth.null_mx_sender", self.null_mx_sender, d.null_mx_sender)?,
            unroutable_sender: action(c, "sender_auth.unroutable_sender", self.unroutable_sender, d.unroutable_sender)?,
            dnsbl,
            dnsbl_listed: action(c, "sender_auth.dnsbl_listed", self.dnsbl_listed, d.dnsbl_listed)?,
            temp_errors,
            deadline: c.duration("sender_auth.deadline", self.deadline, DEADLINE)?,
        })
    }
}
