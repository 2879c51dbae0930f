//! DKIM for the mail this server sends (issues 15 and 18): the key pair each domain gets, how
//! its selectors are named, the records its keys need in the DNS, and (in `signing`) the
//! signatures added at submission. The keys live in the store (`DkimKeyStore`); which one signs
//! follows from their dates (`portcullis_store::key_states`), so a rotation is one write.
//!
//! A domain signs with two keys at once, Ed25519 (RFC 8463) and RSA-2048 (RFC 8301): receivers
//! that do not know Ed25519 yet still verify the RSA signature.

mod signing;

pub use signing::{Outcome, Signing};

use std::time::{Duration, UNIX_EPOCH};

use portcullis_discovery::{Data, DomainFacts, Expected, Purpose};
use portcullis_dkim_sign::{Algorithm, KeyError, SigningKey};
use portcullis_store::{key_states, DkimAlgorithm, DkimKey, DkimKeyStore, NewDkimKey, StoreError};

/// How long a rotation's new pair is published before it signs, and the old pair after it
/// stopped: longer than DNS caches keep the old answer, and than mail signed just before the
/// switch takes to be verified.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(48 * 3600);

/// A new Ed25519 and RSA-2048 pair for a domain that has `existing` keys, signing from
/// `active_from` (Unix seconds). Selectors are `pcYYYYMMDDx-ed` and `pcYYYYMMDDx-rsa`: the
/// day (`now`, UTC) and the first letter (a, b, …, z, aa, …) no key of the domain uses yet,
/// so that every rotation gets new names and a cached old record never stands for a new key.
pub fn new_pair(existing: &[DkimKey], now: i64, active_from: i64) -> Result<Vec<NewDkimKey>, KeyError> {
    let name = pair_name(existing, now);
    [(DkimAlgorithm::Ed25519, Algorithm::Ed25519Sha256, "ed"), (DkimAlgorithm::Rsa, Algorithm::RsaSha256, "rsa")]
        .into_iter()
        .map(|(algorithm, sign_algorithm, suffix)| {
            let key = SigningKey::generate(sign_algorithm)?;
            Ok(NewDkimKey {
                selector: format!("{name}-{suffix}"),
                algorithm,
                private_pkcs8: key.pkcs8_der().to_vec(),
                active_from,
            })
        })
        .collect()
}

fn pair_name(existing: &[DkimKey], now: i64) -> String {
    let date = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(now.max(0) as u64)).to_string();
    let day: String = date.chars().take(10).filter(char::is_ascii_digit).collect();
    (0..)
        .map(|n| format!("pc{day}{}", letters(n)))
        .find(|name| {
            !existing.iter().any(|k| k.selector.strip_prefix(name.as_str()).is_some_and(|r| r.starts_with('-')))
        })
        .unwrap_or_default() // the range is endless: some name is free
}

/// 0 -> "a", 25 -> "z", 26 -> "aa", … (bijective base 26).
fn letters(mut n: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'a' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default() // ASCII letters
}

/// The records of `keys` to publish at `now`: every key not retired (the next pair before it
/// signs, the old one while mail it signed may still be verified), oldest first. A stored key
/// that cannot be read is left out and said in the error list.
pub fn published(keys: &[DkimKey], now: i64) -> (Vec<portcullis_discovery::DkimKey>, Vec<String>) {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for (key, state) in keys.iter().zip(key_states(keys, now)) {
        if !state.is_published() {
            continue;
        }
        match SigningKey::from_pkcs8_der(&key.private_pkcs8) {
            Ok(signing) => records
                .push(portcullis_discovery::DkimKey { selector: key.selector.clone(), record: signing.dns_record() }),
            Err(e) => errors.push(format!("{}._domainkey.{}: {e}", key.selector, key.domain)),
        }
    }
    (records, errors)
}

/// Gives a new domain its first pair, signing from `now`; the selectors. The keys are made on a
/// blocking thread (an RSA key takes a noticeable while).
pub async fn add_first_pair(keys: &dyn DkimKeyStore, domain: &str, now: i64) -> Result<Vec<String>, String> {
    let pair = tokio::task::spawn_blocking(move || new_pair(&[], now, now))
        .await
        .map_err(|e| format!("making the DKIM keys: {e}"))?
        .map_err(|e| e.to_string())?;
    let selectors = pair.iter().map(|k| k.selector.clone()).collect();
    keys.add_dkim_keys(domain, pair, None).await.map_err(|e| e.to_string())?;
    Ok(selectors)
}

/// What the DNS plan of `domain` needs to know of it, its published DKIM keys included (the
/// same for `portcullis dns`, its check and the admin API), and the keys that could not be read.
pub async fn domain_facts(
    keys: &dyn DkimKeyStore,
    domain: &str,
    now: i64,
) -> Result<(DomainFacts, Vec<String>), StoreError> {
    let mut facts = DomainFacts::new(domain);
    let (records, errors) = published(&keys.dkim_keys(Some(&facts.domain)).await?, now);
    facts.dkim = records;
    Ok((facts, errors))
}

/// The zone-file line of one published key, as `portcullis dns` prints it.
pub fn zone_line(domain: &str, key: &portcullis_discovery::DkimKey) -> String {
    Expected {
        name: SigningKey::dns_name(&key.selector, domain),
        data: Data::Txt(key.record.clone()),
        purpose: Purpose::Dkim { selector: key.selector.clone() },
    }
    .zone_line()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(selector: &str, new: &NewDkimKey, retire_at: Option<i64>) -> DkimKey {
        DkimKey {
            domain: "a.test".into(),
            selector: selector.into(),
            algorithm: new.algorithm,
            private_pkcs8: new.private_pkcs8.clone(),
            created: 0,
            active_from: new.active_from,
            retire_at,
        }
    }

    #[test]
    fn selectors_carry_the_day_and_a_free_letter() {
        assert_eq!(
            (letters(0), letters(25), letters(26), letters(27), letters(701)),
            ("a".into(), "z".into(), "aa".into(), "ab".into(), "zz".into())
        );
        let now = 1_796_630_400; // 2026-12-07T00:00:00Z
        let pair = new_pair(&[], now, now).unwrap();
        let names: Vec<&str> = pair.iter().map(|k| k.selector.as_str()).collect();
        assert_eq!(names, ["pc20261207a-ed", "pc20261207a-rsa"]);
        let existing: Vec<DkimKey> = pair.iter().map(|k| stored(&k.selector, k, None)).collect();
        assert_eq!(pair_name(&existing, now), "pc20261207b");
        assert_eq!(pair_name(&existing, now + 86_400), "pc20261208a");
    }

    #[test]
    fn retired_keys_are_not_published_and_the_others_are() {
        let pair = new_pair(&[], 0, 0).unwrap();
        let keys = vec![stored("old-ed", &pair[0], Some(100)), stored("old-rsa", &pair[1], None)];
        let (records, errors) = published(&keys, 150);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].selector, "old-rsa");
        assert!(records[0].record.starts_with("v=DKIM1; k=rsa; p=MII"), "{}", records[0].record);

        let mut broken = keys[1].clone();
        broken.private_pkcs8 = vec![0; 8];
        let (records, errors) = published(&[broken], 150);
        assert!(
            records.is_empty() && errors.len() == 1 && errors[0].starts_with("old-rsa._domainkey.a.test"),
            "{errors:?}"
        );
    }
}
