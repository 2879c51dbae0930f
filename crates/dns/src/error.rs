//! The one error type of every lookup, shaped by what the caller must answer: a definite
//! "does not exist" (the SMTP layer may say 550), a failure that may pass (451), or something
//! malformed (a name that is no domain name is permanent; an answer that does not decode says
//! nothing about the domain and is temporary). Callers branch on the variant, never on text.

use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use std::fmt;

/// Why a lookup gave no records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// A definite answer that there is nothing: the name does not exist, or has no record of
    /// the type asked.
    NotFound(Absence),
    /// No definite answer now; the same question may succeed later (RFC 7208 §2.6.6 calls
    /// this a "temperror", RFC 5321 §4.2.5 wants a 4yz reply).
    Temporary(TemporaryCause),
    /// The question or the answer is not well formed.
    Malformed(MalformedPart),
}

/// The two kinds of "nothing" (RFC 2308 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absence {
    /// NXDOMAIN: the name does not exist at all.
    NxDomain,
    /// NOERROR with no record of the type asked ("NODATA"): the name exists.
    NoData,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemporaryCause {
    /// No server answered in time, on any attempt.
    Timeout,
    /// A server answered with an error code (SERVFAIL, REFUSED, ...), named here.
    ServerFailure(String),
    /// The network failed (no route, connection refused, too many queries in flight).
    Network(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MalformedPart {
    /// The name asked is not a domain name (empty, a label over 63 octets, ...): permanent.
    Name(String),
    /// The server sent something that is not a DNS answer: temporary, it says nothing about
    /// the domain (and a resolver that garbles one answer may not garble the next).
    Answer(String),
}

impl DnsError {
    /// True when the failure may pass: the caller answers 451, never 550.
    pub fn is_temporary(&self) -> bool {
        matches!(self, DnsError::Temporary(_) | DnsError::Malformed(MalformedPart::Answer(_)))
    }

    /// True for NXDOMAIN and NODATA.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DnsError::NotFound(_))
    }

    pub(crate) fn invalid_name(name: &str, why: impl fmt::Display) -> Self {
        DnsError::Malformed(MalformedPart::Name(format!("{name:?}: {why}")))
    }

    pub(crate) fn from_rcode(code: ResponseCode) -> Self {
        match code {
            ResponseCode::NXDomain => DnsError::NotFound(Absence::NxDomain),
            ResponseCode::NoError => DnsError::NotFound(Absence::NoData),
            other => DnsError::Temporary(TemporaryCause::ServerFailure(other.to_string())),
        }
    }
}

impl From<NetError> for DnsError {
    fn from(err: NetError) -> Self {
        match err {
            NetError::Dns(HickoryDnsError::NoRecordsFound(none)) => DnsError::from_rcode(none.response_code),
            NetError::Dns(HickoryDnsError::ResponseCode(code)) => {
                DnsError::Temporary(TemporaryCause::ServerFailure(code.to_string()))
            }
            NetError::Timeout => DnsError::Temporary(TemporaryCause::Timeout),
            NetError::Proto(err) => DnsError::Malformed(MalformedPart::Answer(err.to_string())),
            other => DnsError::Temporary(TemporaryCause::Network(other.to_string())),
        }
    }
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::NotFound(Absence::NxDomain) => f.write_str("the name does not exist (NXDOMAIN)"),
            DnsError::NotFound(Absence::NoData) => f.write_str("the name has no record of that type"),
            DnsError::Temporary(TemporaryCause::Timeout) => f.write_str("no DNS server answered in time"),
            DnsError::Temporary(TemporaryCause::ServerFailure(code)) => write!(f, "the DNS server answered {code}"),
            DnsError::Temporary(TemporaryCause::Network(why)) => write!(f, "DNS network failure: {why}"),
            DnsError::Malformed(MalformedPart::Name(why)) => write!(f, "not a domain name: {why}"),
            DnsError::Malformed(MalformedPart::Answer(why)) => write!(f, "malformed DNS answer: {why}"),
        }
    }
}

impl std::error::Error for DnsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nxdomain_and_nodata_are_not_found() {
        assert_eq!(DnsError::from_rcode(ResponseCode::NXDomain), DnsError::NotFound(Absence::NxDomain));
        assert_eq!(DnsError::from_rcode(ResponseCode::NoError), DnsError::NotFound(Absence::NoData));
        for code in [ResponseCode::ServFail, ResponseCode::Refused, ResponseCode::FormErr, ResponseCode::NotImp] {
            let err = DnsError::from_rcode(code);
            assert!(err.is_temporary() && !err.is_not_found(), "{code}: {err:?}");
        }
    }

    #[test]
    fn a_garbled_answer_is_temporary_a_bad_name_is_not() {
        assert!(DnsError::Malformed(MalformedPart::Answer("x".into())).is_temporary());
        assert!(!DnsError::Malformed(MalformedPart::Name("x".into())).is_temporary());
        assert!(!DnsError::NotFound(Absence::NxDomain).is_temporary());
    }

    #[test]
    fn timeouts_and_server_errors_from_hickory_are_temporary() {
        assert_eq!(DnsError::from(NetError::Timeout), DnsError::Temporary(TemporaryCause::Timeout));
        let refused = DnsError::from(NetError::Dns(HickoryDnsError::ResponseCode(ResponseCode::Refused)));
        assert!(refused.is_temporary(), "{refused:?}");
    }
}
