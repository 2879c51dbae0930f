//! The bounded labels of outbound delivery (issue 15): why each recipient of queued mail ended
//! an attempt where it did, and which TLS policy applied to the connection and what came of
//! it. Enums rather than text, so that the log, the metrics (`portcullis_outbound_*`) and the
//! dashboard cannot drift apart, and a metric label never takes an unbounded value.

use serde::Serialize;

/// Where a recipient stands after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryResult {
    Delivered,
    /// To be tried again.
    Deferred,
    /// Given up: its sender gets a failure notice.
    Failed,
}

/// Why a recipient has its [`DeliveryResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryReason {
    /// The exchanger took it.
    Delivered,
    /// The exchanger refused it for good (5xx).
    Rejected,
    /// A temporary failure: a 4xx, a session cut short, no connection in this attempt.
    Deferred,
    /// A temporary failure at the end of the queue's lifetime: given up.
    Expired,
    /// No way to the domain: no MX or address, or DNS failed.
    NoRoute,
    /// The TLS policy (MTA-STS enforce, DANE) allowed no exchanger.
    TlsPolicy,
}

/// Recipients of one attempt with the same result and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecipientOutcomes {
    pub result: DeliveryResult,
    pub reason: DeliveryReason,
    pub count: usize,
}

/// The TLS policy a connection was held to (RFC 8461 MTA-STS, RFC 7672 DANE, the smart host's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutboundTlsPolicy {
    /// Opportunistic STARTTLS.
    None,
    /// MTA-STS in `testing` mode: failures are reported, not enforced.
    MtaStsTesting,
    MtaStsEnforce,
    Dane,
    Relay,
}

/// What came of TLS on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundTlsResult {
    /// TLS, with a certificate the policy checked and accepted.
    Verified,
    /// TLS, the certificate unchecked or not valid where the policy lets that pass
    /// (opportunistic TLS, MTA-STS in testing mode).
    Encrypted,
    /// No TLS, where the policy allows that (opportunistic).
    Plaintext,
    /// A policy that demands TLS (MTA-STS, DANE, the smart host) was not met: the exchanger
    /// was skipped, or TLS failed.
    Failed,
}

impl DeliveryResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryResult::Delivered => "delivered",
            DeliveryResult::Deferred => "deferred",
            DeliveryResult::Failed => "failed",
        }
    }
}

impl DeliveryReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryReason::Delivered => "delivered",
            DeliveryReason::Rejected => "rejected",
            DeliveryReason::Deferred => "deferred",
            DeliveryReason::Expired => "expired",
            DeliveryReason::NoRoute => "no_route",
            DeliveryReason::TlsPolicy => "tls_policy",
        }
    }
}

impl OutboundTlsPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundTlsPolicy::None => "none",
            OutboundTlsPolicy::MtaStsTesting => "mta-sts-testing",
            OutboundTlsPolicy::MtaStsEnforce => "mta-sts-enforce",
            OutboundTlsPolicy::Dane => "dane",
            OutboundTlsPolicy::Relay => "relay",
        }
    }
}

impl OutboundTlsResult {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundTlsResult::Verified => "verified",
            OutboundTlsResult::Encrypted => "encrypted",
            OutboundTlsResult::Plaintext => "plaintext",
            OutboundTlsResult::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap().trim_matches('"').to_string()
    }

    /// The metric labels are the log's words.
    #[test]
    fn labels_are_the_serialized_names() {
        for r in [DeliveryResult::Delivered, DeliveryResult::Deferred, DeliveryResult::Failed] {
            assert_eq!(json(&r), r.as_str());
        }
        use DeliveryReason::*;
        for r in [Delivered, Rejected, Deferred, Expired, NoRoute, TlsPolicy] {
            assert_eq!(json(&r), r.as_str());
        }
        for p in [
            OutboundTlsPolicy::None,
            OutboundTlsPolicy::MtaStsTesting,
            OutboundTlsPolicy::MtaStsEnforce,
            OutboundTlsPolicy::Dane,
            OutboundTlsPolicy::Relay,
        ] {
            assert_eq!(json(&p), p.as_str());
        }
        use OutboundTlsResult::*;
        for r in [Verified, Encrypted, Plaintext, Failed] {
            assert_eq!(json(&r), r.as_str());
        }
    }
}
