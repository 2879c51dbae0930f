//! What an operator decides about mail from the world: our authserv-id, what each kind of
//! authentication failure leads to, the DNSBL zones, how long the checks may take. A struct
//! of its own so this crate needs no config crate; the config crate maps `[sender_auth]`
//! (keys in the crate documentation) onto it, using the `FromStr` impls here so the words
//! allowed are defined once.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What a failed check leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureAction {
    /// Refused with a 5yz reply.
    Reject,
    /// Accepted, delivered into the recipient's Junk mailbox.
    Junk,
    /// Accepted as any other message (the verdict is still in the headers and the event).
    Accept,
}

/// What a temporary DNS failure leads to when it could change the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TempErrorAction {
    /// 451: the sender retries later (RFC 5321 §4.2.5), the default.
    TempFail,
    /// Accepted; the headers say `temperror`.
    Accept,
}

/// One switch per policy of issue 14, each with the default named in its doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// DMARC failed and the domain asks `p=reject` (default `Reject`: 550 5.7.1).
    pub dmarc_reject: FailureAction,
    /// DMARC failed and the domain asks `p=quarantine` (default `Junk`).
    pub dmarc_quarantine: FailureAction,
    /// SPF `fail` (the domain's `-all` matched) for MAIL FROM, when the domain publishes no
    /// DMARC record (default `Reject`: 550 5.7.23). With a DMARC record, DMARC decides
    /// (RFC 7489 §10.1: do not reject on SPF before DMARC had its say).
    pub spf_fail: FailureAction,
    /// The MAIL FROM domain has a null MX (RFC 7505 §4.2; default `Reject`: 550 5.7.27).
    pub null_mx_sender: FailureAction,
    /// The MAIL FROM domain has no MX, A or AAAA record: no bounce could reach it (default
    /// `Reject`: 550 5.1.8).
    pub unroutable_sender: FailureAction,
    /// The client is listed on a DNSBL zone (default `Reject`: 554 5.7.1).
    pub dnsbl_listed: FailureAction,
    /// A temporary DNS failure that could change the outcome (default `TempFail`).
    pub temp_errors: TempErrorAction,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            dmarc_reject: FailureAction::Reject,
            dmarc_quarantine: FailureAction::Junk,
            spf_fail: FailureAction::Reject,
            null_mx_sender: FailureAction::Reject,
            unroutable_sender: FailureAction::Reject,
            dnsbl_listed: FailureAction::Reject,
            temp_errors: TempErrorAction::TempFail,
        }
    }
}

/// Everything the checks need besides the resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// Our authserv-id (RFC 8601 §2.5): the server's hostname. Headers claiming it that
    /// arrive from outside are removed.
    pub authserv_id: String,
    pub policy: Policy,
    /// DNSBL zones asked about each client at connect (RFC 5782); empty, the default, is off.
    pub dnsbl_zones: Vec<String>,
    /// The longest the checks of one message may take; what is unfinished then counts as a
    /// temporary failure.
    pub deadline: Duration,
}

impl AuthSettings {
    /// The defaults, for the given hostname.
    pub fn new(authserv_id: impl Into<String>) -> Self {
        AuthSettings {
            authserv_id: authserv_id.into(),
            policy: Policy::default(),
            dnsbl_zones: Vec::new(),
            deadline: Duration::from_secs(60),
        }
    }
}

/// A word the configuration does not allow; says which are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord {
    pub given: String,
    pub allowed: &'static [&'static str],
}

impl fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not one of: {}", self.given, self.allowed.join(", "))
    }
}

impl std::error::Error for UnknownWord {}

impl FailureAction {
    pub const WORDS: &'static [&'static str] = &["reject", "junk", "accept"];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureAction::Reject => "reject",
            FailureAction::Junk => "junk",
            FailureAction::Accept => "accept",
        }
    }
}

impl FromStr for FailureAction {
    type Err = UnknownWord;
    fn from_str(word: &str) -> Result<Self, UnknownWord> {
        match word {
            "reject" => Ok(FailureAction::Reject),
            "junk" => Ok(FailureAction::Junk),
            "accept" => Ok(FailureAction::Accept),
            _ => Err(UnknownWord { given: word.to_string(), allowed: Self::WORDS }),
        }
    }
}

impl TempErrorAction {
    pub const WORDS: &'static [&'static str] = &["tempfail", "accept"];

    pub fn as_str(self) -> &'static str {
        match self {
            TempErrorAction::TempFail => "tempfail",
            TempErrorAction::Accept => "accept",
        }
    }
}

impl FromStr for TempErrorAction {
    type Err = UnknownWord;
    fn from_str(word: &str) -> Result<Self, UnknownWord> {
        match word {
            "tempfail" => Ok(TempErrorAction::TempFail),
            "accept" => Ok(TempErrorAction::Accept),
            _ => Err(UnknownWord { given: word.to_string(), allowed: Self::WORDS }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_ones_list_the_allowed() {
        for word in FailureAction::WORDS {
            assert_eq!(word.parse::<FailureAction>().unwrap().as_str(), *word);
        }
        for word in TempErrorAction::WORDS {
            assert_eq!(word.parse::<TempErrorAction>().unwrap().as_str(), *word);
        }
        let err = "quarantine".parse::<FailureAction>().unwrap_err();
        assert_eq!(err.to_string(), "\"quarantine\" is not one of: reject, junk, accept");
    }

    #[test]
    fn defaults_enforce_and_dnsbl_is_off() {
        let settings = AuthSettings::new("mx.example.org");
        assert_eq!(settings.policy.dmarc_reject, FailureAction::Reject);
        assert_eq!(settings.policy.dmarc_quarantine, FailureAction::Junk);
        assert_eq!(settings.policy.temp_errors, TempErrorAction::TempFail);
        assert!(settings.dnsbl_zones.is_empty());
    }
}
