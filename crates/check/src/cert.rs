//! Judging a server's certificate chain the way a client would: rustls' own building blocks
//! (rustls-webpki underneath) for the chain against the trust anchors and for the name, with
//! each question asked on its own so the report can say *what* is wrong: an expired
//! certificate from a good CA is one finding, not also "untrusted".

use std::path::Path;

use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, RootCertStore};

use crate::report::{CertSummary, Finding, Kind};
use crate::x509;

/// The Web PKI roots (webpki-roots, what most mail clients trust), plus the PEM certificates of
/// `--ca` (a private CA, or a self-signed server certificate pinned as its own anchor).
pub fn roots(ca: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot parse the CA file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate; --ca wants a PEM file", path.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{} holds a certificate that cannot be a trust anchor: {e}", path.display()))?;
        }
    }
    Ok(roots)
}

/// Days until expiry below which renewal is urgent (medium) or due (low).
const SOON: i64 = 14;
const THIS_MONTH: i64 = 30;

/// The summary of a chain and its findings, as of `now` (Unix seconds). `name` is the name
/// clients use; without one, `ip` (the address audited) is checked against the certificate.
pub fn evaluate(
    port: u16,
    chain: &[CertificateDer<'static>],
    roots: &RootCertStore,
    name: Option<&ServerName<'static>>,
    ip: Option<std::net::IpAddr>,
    now: i64,
) -> (CertSummary, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut summary =
        CertSummary { names: Vec::new(), not_after: None, days_left: None, trusted: false, name_matches: None };
    let Some(leaf) = chain.first() else {
        return (summary, findings);
    };
    let facts = x509::facts(leaf);
    if let Some(f) = &facts {
        summary.names = f.names.clone();
        summary.not_after = Some(x509::date(f.not_after));
        summary.days_left = Some((f.not_after - now).div_euclid(86400));
    }
    let parsed = match ParsedCertificate::try_from(leaf) {
        Ok(p) => p,
        Err(e) => {
            findings.push(Finding::new(port, Kind::CertUntrusted, format!("The certificate cannot be parsed: {e}")));
            return (summary, findings);
        }
    };
    let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms.all;
    let verify_at = |seconds: i64| {
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds.max(0) as u64));
        verify_server_cert_signed_by_trust_anchor(&parsed, roots, &chain[1..], at, algorithms)
    };

    match verify_at(now) {
        Ok(()) => summary.trusted = true,
        Err(rustls::Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. })) => {
            let days = summary.days_left.map(|d| -d).filter(|d| *d > 0);
            let when = match (days, &summary.not_after) {
                (Some(d), Some(date)) => format!("The certificate expired {d} day(s) ago ({date})"),
                _ => "A certificate in the chain has expired".to_string(),
            };
            findings.push(Finding::new(port, Kind::CertExpired, when));
            // Would the chain be good while it was still valid? If not, that is a second problem.
            if let Some(f) = &facts {
                let inside = f.not_after.min(now) - 60;
                if inside >= f.not_before {
                    let earlier = verify_at(inside);
                    summary.trusted = earlier.is_ok();
                    if let Err(e) = earlier {
                        findings.push(untrusted(port, &e));
                    }
                }
            }
        }
        Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => {
            findings.push(Finding::new(port, Kind::CertNotYetValid, "The certificate is not valid yet"));
        }
        Err(e) => findings.push(untrusted(port, &e)),
    }

    match name {
        Some(name) => {
            let ok = verify_server_name(&parsed, name).is_ok();
            summary.name_matches = Some(ok);
            if !ok {
                let covers = if summary.names.is_empty() { "no names".to_string() } else { summary.names.join(", ") };
                findings.push(Finding::new(
                    port,
                    Kind::CertNameMismatch,
                    format!("The certificate is not valid for {} (it covers {covers})", name.to_str()),
                ));
            }
        }
        // A bare address: fine if the certificate names it; otherwise clients use a name that
        // we do not know, so say so instead of calling it a mismatch.
        None if ip.is_some_and(|ip| verify_server_name(&parsed, &ServerName::IpAddress(ip.into())).is_ok()) => {
            summary.name_matches = Some(true);
        }
        None => {
            let covers = if summary.names.is_empty() { "no names".to_string() } else { summary.names.join(", ") };
            findings.push(Finding::new(
                port,
                Kind::CertNameUnchecked,
                format!("The certificate's name was not checked: an address was given (it covers {covers})"),
            ))
        }
    }

    if let Some(days) = summary.days_left.filter(|d| *d >= 0) {
        if days < SOON {
            findings.push(Finding::new(
                port,
                Kind::CertExpiresSoon,
                format!("The certificate expires in {days} day(s)"),
            ));
        } else if days < THIS_MONTH {
            findings.push(Finding::new(
                port,
                Kind::CertExpiresThisMonth,
                format!("The certificate expires in {days} days"),
            ));
        }
    }
    (summary, findings)
}

fn untrusted(port: u16, error: &rustls::Error) -> Finding {
    let why = match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "it is self-signed, or its issuer is not a trusted CA, or intermediates are missing".to_string()
        }
        rustls::Error::InvalidCertificate(e) => match format!("{e:?}") {
            // webpki's reason, only reachable through rustls' opaque `Other`.
            detail if detail.contains("CaUsedAsEndEntity") => {
                "the server's own certificate is a CA certificate (basicConstraints CA:TRUE)".to_string()
            }
            detail => detail,
        },
        other => other.to_string(),
    };
    Finding::new(port, Kind::CertUntrusted, format!("The certificate chain does not verify: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    const NOW: i64 = 1_800_000_000; // 2027-01-15

    fn ca() -> (CertificateDer<'static>, Issuer<'static, KeyPair>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(2015, 1, 1);
        params.not_after = rcgen::date_time_ymd(2040, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.der().clone(), Issuer::new(params, key))
    }

    fn leaf(issuer: &Issuer<'static, KeyPair>, from: (i32, u8, u8), to: (i32, u8, u8)) -> CertificateDer<'static> {
        leaf_for(&["mail.example.org"], issuer, from, to)
    }

    fn leaf_for(
        names: &[&str],
        issuer: &Issuer<'static, KeyPair>,
        from: (i32, u8, u8),
        to: (i32, u8, u8),
    ) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        params.signed_by(&KeyPair::generate().unwrap(), issuer).unwrap().der().clone()
    }

    fn store(anchor: &CertificateDer<'static>) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone()).unwrap();
        roots
    }

    fn name(n: &str) -> ServerName<'static> {
        ServerName::try_from(n.to_string()).unwrap()
    }

    fn ids(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.id).collect()
    }

    #[test]
    fn good_chain_and_name() {
        let (anchor, issuer) = ca();
        let chain = [leaf(&issuer, (2026, 1, 1), (2028, 1, 1))];
        let (summary, findings) = evaluate(993, &chain, &store(&anchor), Some(&name("mail.example.org")), None, NOW);
        assert!(findings.is_empty(), "{findings:?}");
        assert!(summary.trusted);
        assert_eq!(summary.name_matches, Some(true));
        assert_eq!(summary.not_after.as_deref(), Some("2028-01-01"));
        assert_eq!(summary.days_left, Some(350));
    }

    #[test]
    fn expired_from_a_good_ca_is_only_expired() {
        let (anchor, issuer) = ca();
        let chain = [leaf(&issuer, (2020, 1, 1), (2021, 1, 1))];
        let (summary, findings) = evaluate(993, &chain, &store(&anchor), Some(&name("mail.example.org")), None, NOW);
        assert_eq!(ids(&findings), ["cert-expired"]);
        assert!(findings[0].title.contains("(2021-01-01)"), "{}", findings[0].title);
        assert!(summary.trusted, "the chain was good while the certificate was valid");
        assert!(summary.days_left.unwrap() < 0);
    }

    #[test]
    fn expired_and_untrusted_are_both_said() {
        let (_, issuer) = ca();
        let (other_anchor, _) = ca();
        let chain = [leaf(&issuer, (2020, 1, 1), (2021, 1, 1))];
        let (_, findings) = evaluate(993, &chain, &store(&other_anchor), Some(&name("mail.example.org")), None, NOW);
        assert_eq!(ids(&findings), ["cert-expired", "cert-untrusted"]);
    }

    #[test]
    fn unknown_issuer_wrong_name_and_soon() {
        let (anchor, issuer) = ca();
        let chain = [leaf(&issuer, (2026, 1, 1), (2027, 1, 20))];
        let (_, findings) = evaluate(465, &chain, &RootCertStore::empty(), Some(&name("other.example.org")), None, NOW);
        assert_eq!(ids(&findings), ["cert-untrusted", "cert-name-mismatch", "cert-expires-soon"]);
        assert!(findings[1].title.contains("covers mail.example.org"), "{}", findings[1].title);
        let (_, findings) = evaluate(465, &chain, &store(&anchor), None, None, NOW);
        assert_eq!(ids(&findings), ["cert-name-unchecked", "cert-expires-soon"]);
    }

    #[test]
    fn a_ca_certificate_serving_as_the_leaf_is_said_plainly() {
        let (anchor, _) = ca();
        let (_, findings) = evaluate(993, std::slice::from_ref(&anchor), &store(&anchor), None, None, NOW);
        let untrusted = findings.iter().find(|f| f.id == "cert-untrusted").expect("untrusted");
        assert!(untrusted.title.contains("is a CA certificate"), "{}", untrusted.title);
    }

    #[test]
    fn not_yet_valid() {
        let (anchor, issuer) = ca();
        let chain = [leaf(&issuer, (2030, 1, 1), (2031, 1, 1))];
        let (_, findings) = evaluate(995, &chain, &store(&anchor), Some(&name("mail.example.org")), None, NOW);
        assert_eq!(ids(&findings), ["cert-not-yet-valid"]);
    }

    #[test]
    fn a_bare_address_is_checked_only_when_the_certificate_names_it() {
        let (anchor, issuer) = ca();
        let chain = [leaf_for(&["mail.example.org", "127.0.0.1"], &issuer, (2026, 1, 1), (2028, 1, 1))];
        let (summary, findings) = evaluate(993, &chain, &store(&anchor), None, Some([127, 0, 0, 1].into()), NOW);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(summary.name_matches, Some(true));
        let (summary, findings) = evaluate(993, &chain, &store(&anchor), None, Some([192, 0, 2, 1].into()), NOW);
        assert_eq!(ids(&findings), ["cert-name-unchecked"]);
        assert_eq!(summary.name_matches, None);
    }
}
