//! At MAIL FROM: could a reply to this sender be delivered at all? A domain with a null MX
//! (RFC 7505) or with neither MX nor address records (RFC 5321 §5.1: no implicit MX either)
//! cannot receive the bounce, so its mail is refused before the message is taken.

use portcullis_dns::{DnsError, MalformedPart, Mx, Resolver};
use serde::Serialize;

/// What the DNS says about the sender's domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum SenderDomain {
    /// `MAIL FROM:<>`: a bounce or other notification, nothing to check (RFC 5321 §4.5.5).
    NullSender,
    /// `user@[192.0.2.1]`: no domain to look up.
    AddressLiteral,
    /// MX hosts, or an address as the implicit MX.
    Routable,
    /// RFC 7505: the domain says it takes no mail.
    NullMx,
    /// Neither MX nor A nor AAAA (or no domain name at all).
    Unroutable,
    /// The DNS could not say now.
    Temporary(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SenderDomainCheck {
    /// The domain of MAIL FROM (empty for the null sender).
    pub domain: String,
    #[serde(flatten)]
    pub outcome: SenderDomain,
}

/// The domain of a MAIL FROM address, or `None` for the null reverse-path.
pub fn domain_of(mail_from: &str) -> Option<&str> {
    let address = mail_from.trim().trim_start_matches('<').trim_end_matches('>');
    if address.is_empty() {
        return None;
    }
    Some(address.rsplit_once('@').map_or(address, |(_, domain)| domain))
}

/// Looks the sender's domain up: MX first, then A/AAAA as the implicit MX.
pub async fn check_sender_domain(resolver: &Resolver, mail_from: &str) -> SenderDomainCheck {
    let Some(domain) = domain_of(mail_from) else {
        return SenderDomainCheck { domain: String::new(), outcome: SenderDomain::NullSender };
    };
    let outcome = if domain.starts_with('[') { SenderDomain::AddressLiteral } else { lookup(resolver, domain).await };
    SenderDomainCheck { domain: domain.to_ascii_lowercase(), outcome }
}

async fn lookup(resolver: &Resolver, domain: &str) -> SenderDomain {
    match resolver.mx(domain).await {
        Ok(Mx::Null) => return SenderDomain::NullMx,
        Ok(Mx::Hosts(_)) => return SenderDomain::Routable,
        Err(err) if err.is_not_found() => {} // no MX: the address is the implicit MX
        Err(err) => return from_error(err),
    }
    match resolver.ip_addrs(domain).await {
        Ok(_) => SenderDomain::Routable,
        Err(err) => from_error(err),
    }
}

fn from_error(err: DnsError) -> SenderDomain {
    match err {
        DnsError::NotFound(_) | DnsError::Malformed(MalformedPart::Name(_)) => SenderDomain::Unroutable,
        temporary => SenderDomain::Temporary(temporary.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_is_after_the_last_at() {
        assert_eq!(domain_of("alice@example.net"), Some("example.net"));
        assert_eq!(domain_of("<\"a@b\"@example.net>"), Some("example.net"));
        assert_eq!(domain_of(""), None);
        assert_eq!(domain_of("<>"), None);
    }

    #[test]
    fn errors_map_to_unroutable_or_temporary() {
        use portcullis_dns::{Absence, TemporaryCause};
        assert_eq!(from_error(DnsError::NotFound(Absence::NxDomain)), SenderDomain::Unroutable);
        assert_eq!(from_error(DnsError::Malformed(MalformedPart::Name("x".into()))), SenderDomain::Unroutable);
        assert!(matches!(from_error(DnsError::Temporary(TemporaryCause::Timeout)), SenderDomain::Temporary(_)));
        assert!(matches!(
            from_error(DnsError::Malformed(MalformedPart::Answer("x".into()))),
            SenderDomain::Temporary(_)
        ));
    }
}
