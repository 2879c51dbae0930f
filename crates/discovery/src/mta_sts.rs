//! The MTA-STS policy (RFC 8461): the text served at
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` and the id published in the
//! `_mta-sts.DOMAIN` TXT record, which must change whenever the policy does (§3.1) so that
//! senders fetch it again. The id is derived from the policy text, so it cannot be forgotten.

use sha2::{Digest, Sha256};

/// RFC 8461 §5: what a sender does when the MX cannot be reached with valid TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse to deliver without valid TLS.
    Enforce,
    /// Deliver anyway, and report (TLS-RPT).
    Testing,
    /// The domain withdraws its policy.
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// One domain's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// The MX host names senders may deliver to (RFC 8461 §3.2 `mx`).
    pub mx: Vec<String>,
    /// Seconds (RFC 8461 §3.2: at most 31557600).
    pub max_age: u64,
}

/// RFC 8461 §3.2: "max_age" is at most one year.
const MAX_AGE_LIMIT: u64 = 31_557_600;

impl Policy {
    /// The policy file (RFC 8461 §3.2): `key: value` lines ending in CRLF, `version` first.
    pub fn text(&self) -> String {
        let mut text = String::from("version: STSv1\r\n");
        text.push_str(&format!("mode: {}\r\n", self.mode.as_str()));
        for mx in &self.mx {
            text.push_str(&format!("mx: {mx}\r\n"));
        }
        text.push_str(&format!("max_age: {}\r\n", self.max_age.min(MAX_AGE_LIMIT)));
        text
    }

    /// The `id` of the TXT record: 1 to 32 letters and digits (RFC 8461 §3.1); here 20 hex
    /// digits of the policy text's SHA-256, so a changed policy has a changed id.
    pub fn id(&self) -> String {
        let digest = Sha256::digest(self.text().as_bytes());
        digest[..10].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The TXT record at `_mta-sts.DOMAIN` (RFC 8461 §3.1).
    pub fn txt_record(&self) -> String {
        format!("v=STSv1; id={}", self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: Mode) -> Policy {
        Policy { mode, mx: vec!["mail.example.org".into()], max_age: 604_800 }
    }

    #[test]
    fn the_policy_text_follows_rfc_8461() {
        assert_eq!(
            policy(Mode::Enforce).text(),
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmax_age: 604800\r\n"
        );
    }

    #[test]
    fn the_id_changes_with_the_policy_and_is_short_and_alphanumeric() {
        let (a, b) = (policy(Mode::Enforce).id(), policy(Mode::Testing).id());
        assert_ne!(a, b);
        assert_eq!(a, policy(Mode::Enforce).id());
        assert!(a.len() <= 32 && a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert!(policy(Mode::Enforce).txt_record().starts_with("v=STSv1; id="));
    }

    #[test]
    fn max_age_is_capped_at_a_year() {
        let long = Policy { max_age: u64::MAX, ..policy(Mode::Enforce) };
        assert!(long.text().contains("max_age: 31557600\r\n"));
    }
}
