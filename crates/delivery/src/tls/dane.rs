//! DANE for SMTP (RFC 7672): does a server's certificate chain match one of the TLSA records
//! of its name? DANE-EE (usage 3) matches the server's own certificate and ignores names and
//! dates (§3.1.1); DANE-TA (usage 2) matches a certificate of the chain, which then serves as
//! the trust anchor for an ordinary chain and name check against the MX host (§3.1.2, §3.2.2).
//! PKIX-TA and PKIX-EE (usages 0 and 1) are not used by SMTP (§3.1.3): such records are
//! "unusable". Selector 0 is the whole certificate, 1 its SubjectPublicKeyInfo; matching 0
//! exact, 1 SHA-256, 2 SHA-512.

use portcullis_dns::Tlsa;
use ring::digest;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;

/// Whether a record is one SMTP's DANE can use (RFC 7672 §3.1.3).
pub fn usable(record: &Tlsa) -> bool {
    matches!(record.usage, 2 | 3) && matches!(record.selector, 0 | 1) && matches!(record.matching, 0..=2)
}

/// Whether `cert` matches the record's selector and matching type.
pub fn matches(record: &Tlsa, cert: &[u8]) -> bool {
    let selected = match record.selector {
        0 => cert,
        1 => match subject_public_key_info(cert) {
            Some(spki) => spki,
            None => return false,
        },
        _ => return false,
    };
    match record.matching {
        0 => selected == record.data.as_slice(),
        1 => digest::digest(&digest::SHA256, selected).as_ref() == record.data.as_slice(),
        2 => digest::digest(&digest::SHA512, selected).as_ref() == record.data.as_slice(),
        _ => false,
    }
}

/// Checks a chain against the records; `Ok` names the usage that matched.
pub fn verify(
    records: &[Tlsa],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    host: &str,
    now: UnixTime,
    provider: &Arc<CryptoProvider>,
) -> Result<u8, String> {
    for record in records.iter().filter(|r| usable(r)) {
        match record.usage {
            3 if matches(record, end_entity) => return Ok(3),
            2 => {
                for anchor in intermediates.iter().filter(|c| matches(record, c)) {
                    if chain_to(anchor, end_entity, intermediates, host, now, provider).is_ok() {
                        return Ok(2);
                    }
                }
            }
            _ => {}
        }
    }
    Err("no TLSA record matches the certificate chain".into())
}

/// An ordinary chain and name check with `anchor` as the only trust anchor.
fn chain_to(
    anchor: &CertificateDer<'_>,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    host: &str,
    now: UnixTime,
    provider: &Arc<CryptoProvider>,
) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    roots.add(anchor.clone().into_owned()).map_err(|e| e.to_string())?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    use rustls::client::danger::ServerCertVerifier;
    verifier.verify_server_cert(end_entity, intermediates, &name, &[], now).map(|_| ()).map_err(|e| e.to_string())
}

/// The SubjectPublicKeyInfo of an X.509 certificate (DER), as its whole TLV: the seventh
/// field of tbsCertificate, counting the optional `[0]` version (RFC 5280 §4.1). A short walk
/// over fixed fields, no X.509 crate.
pub fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    let (tag, certificate, _) = tlv(cert)?;
    (tag == 0x30).then_some(())?;
    let (tag, tbs, _) = tlv(certificate)?;
    (tag == 0x30).then_some(())?;
    let mut rest = tbs;
    if tlv(rest)?.0 == 0xA0 {
        rest = tlv(rest)?.2; // [0] EXPLICIT version
    }
    for _ in 0..5 {
        rest = tlv(rest)?.2; // serialNumber, signature, issuer, validity, subject
    }
    let (tag, _, after) = tlv(rest)?;
    (tag == 0x30).then_some(())?;
    Some(&rest[..rest.len() - after.len()])
}

/// One DER tag-length-value: (tag, contents, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..count {
            len = (len << 8) | usize::from(*input.get(2 + i)?);
        }
        (len, 2 + count)
    };
    let end = header.checked_add(len)?;
    (end <= input.len()).then(|| (tag, &input[header..end], &input[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["mx.example.test".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.der().to_vec(), rcgen::PublicKeyData::subject_public_key_info(&key))
    }

    fn record(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
        Tlsa { usage, selector, matching, data }
    }

    #[test]
    fn the_spki_is_found_in_a_real_certificate() {
        let (der, spki) = cert();
        assert_eq!(subject_public_key_info(&der), Some(spki.as_slice()));
    }

    #[test]
    fn every_selector_and_matching_type() {
        let (der, spki) = cert();
        let sha256 = |d: &[u8]| digest::digest(&digest::SHA256, d).as_ref().to_vec();
        let sha512 = |d: &[u8]| digest::digest(&digest::SHA512, d).as_ref().to_vec();
        for r in [
            record(3, 0, 0, der.clone()),
            record(3, 0, 1, sha256(&der)),
            record(3, 0, 2, sha512(&der)),
            record(3, 1, 0, spki.clone()),
            record(3, 1, 1, sha256(&spki)),
            record(3, 1, 2, sha512(&spki)),
        ] {
            assert!(matches(&r, &der), "{r:?}");
            let mut wrong = r.clone();
            wrong.data[0] ^= 1;
            assert!(!matches(&wrong, &der));
        }
    }

    #[test]
    fn pkix_usages_are_unusable_for_smtp() {
        assert!(!usable(&record(0, 0, 1, vec![])));
        assert!(!usable(&record(1, 1, 1, vec![])));
        assert!(usable(&record(2, 1, 1, vec![])));
        assert!(!usable(&record(3, 2, 1, vec![])));
        assert!(!usable(&record(3, 1, 3, vec![])));
    }

    #[test]
    fn garbage_has_no_spki() {
        assert_eq!(subject_public_key_info(b""), None);
        assert_eq!(subject_public_key_info(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(subject_public_key_info(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
    }
}
