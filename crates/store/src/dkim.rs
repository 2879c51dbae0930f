//! DKIM signing keys as the store keeps them (issue 18): per domain, each key with its selector,
//! algorithm, PKCS#8 private key, and the two dates that drive a rotation: `active_from` (when
//! signing with it starts) and `retire_at` (when it is neither used nor published any more).
//! A trait of its own ([`DkimKeyStore`]), apart from [`crate::Store`]: its consumers are the
//! signer at submission, the DNS plan and the CLI, not the protocol sessions.
//!
//! Which key of a domain signs is derived from the dates alone ([`key_states`]), so that a
//! rotation is one write and every node reading the same store agrees on it without being told.

use async_trait::async_trait;
use std::fmt;

use crate::StoreError;

/// The two algorithms a domain signs with (RFC 8463 Ed25519, RFC 8301 RSA-SHA256); the text is
/// the key record's `k=` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DkimAlgorithm {
    Ed25519,
    Rsa,
}

impl DkimAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::Ed25519 => "ed25519",
            DkimAlgorithm::Rsa => "rsa",
        }
    }

    pub fn parse(text: &str) -> Option<DkimAlgorithm> {
        match text {
            "ed25519" => Some(DkimAlgorithm::Ed25519),
            "rsa" => Some(DkimAlgorithm::Rsa),
            _ => None,
        }
    }
}

/// A key to add.
pub struct NewDkimKey {
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// PKCS#8 DER.
    pub private_pkcs8: Vec<u8>,
    /// Unix seconds: when signing with it starts.
    pub active_from: i64,
}

/// A key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct DkimKey {
    pub domain: String,
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// PKCS#8 DER.
    pub private_pkcs8: Vec<u8>,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds: when signing with it starts.
    pub active_from: i64,
    /// Unix seconds: from then on it neither signs nor is published; `None` until a rotation
    /// replaces it.
    pub retire_at: Option<i64>,
}

impl fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key, not even in a debug print.
        f.debug_struct("DkimKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("created", &self.created)
            .field("active_from", &self.active_from)
            .field("retire_at", &self.retire_at)
            .finish()
    }
}

/// Where a key stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimKeyState {
    /// Published, not signing yet (`active_from` is ahead: time for the record to spread).
    Next,
    /// Signing: the newest started key of its domain and algorithm.
    Active,
    /// Replaced by a newer key, still published so that mail it signed still verifies.
    Retiring,
    /// Past `retire_at`: neither signs nor is published.
    Retired,
}

impl DkimKeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimKeyState::Next => "next",
            DkimKeyState::Active => "active",
            DkimKeyState::Retiring => "retiring",
            DkimKeyState::Retired => "retired",
        }
    }

    /// Whether its record belongs in the DNS.
    pub fn is_published(self) -> bool {
        self != DkimKeyState::Retired
    }
}

/// The state of each of `keys` (any mix of domains) at `now` (Unix seconds), in the same order.
pub fn key_states(keys: &[DkimKey], now: i64) -> Vec<DkimKeyState> {
    let live = |k: &DkimKey| k.retire_at.is_none_or(|at| at > now);
    keys.iter()
        .map(|key| {
            if !live(key) {
                DkimKeyState::Retired
            } else if key.active_from > now {
                DkimKeyState::Next
            } else {
                // A later-started live key of the same domain and algorithm has replaced it.
                let replaced = keys.iter().any(|other| {
                    !std::ptr::eq(other, key)
                        && live(other)
                        && other.domain == key.domain
                        && other.algorithm == key.algorithm
                        && other.active_from <= now
                        && (other.active_from, other.created, &other.selector)
                            > (key.active_from, key.created, &key.selector)
                });
                if replaced {
                    DkimKeyState::Retiring
                } else {
                    DkimKeyState::Active
                }
            }
        })
        .collect()
}

#[async_trait]
pub trait DkimKeyStore: Send + Sync + 'static {
    /// Adds `keys` to `domain` and, with `retire_current_at`, sets every key of the domain not
    /// yet given a retirement date to retire then, in the same transaction (a rotation).
    /// Fails with [`StoreError::NoSuchDomain`] or [`StoreError::DkimSelectorExists`], and then
    /// nothing changed.
    async fn add_dkim_keys(
        &self,
        domain: &str,
        keys: Vec<NewDkimKey>,
        retire_current_at: Option<i64>,
    ) -> Result<(), StoreError>;

    /// The keys of `domain`, or of every domain with `None`, retired ones included, by domain,
    /// then oldest `active_from` first.
    async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<DkimKey>, StoreError>;

    /// A number that changes whenever a key is added or retired (or its domain removed), so a
    /// signer in another process knows when to read the keys again without reading them all.
    async fn dkim_keys_generation(&self) -> Result<i64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(
        domain: &str,
        selector: &str,
        algorithm: DkimAlgorithm,
        active_from: i64,
        retire_at: Option<i64>,
    ) -> DkimKey {
        DkimKey {
            domain: domain.into(),
            selector: selector.into(),
            algorithm,
            private_pkcs8: vec![1],
            created: 0,
            active_from,
            retire_at,
        }
    }

    #[test]
    fn a_rotation_moves_through_next_active_retiring_retired() {
        use DkimAlgorithm::*;
        use DkimKeyState::*;
        // Old pair from 0, rotated at 100 with a grace of 50: new pair from 150, old retired at 200.
        let keys = [
            key("a.test", "old-ed", Ed25519, 0, Some(200)),
            key("a.test", "old-rsa", Rsa, 0, Some(200)),
            key("a.test", "new-ed", Ed25519, 150, None),
            key("a.test", "new-rsa", Rsa, 150, None),
            key("b.test", "b-ed", Ed25519, 0, None),
        ];
        assert_eq!(key_states(&keys, 120), [Active, Active, Next, Next, Active]);
        assert_eq!(key_states(&keys, 150), [Retiring, Retiring, Active, Active, Active]);
        assert_eq!(key_states(&keys, 200), [Retired, Retired, Active, Active, Active]);
        assert!(!Retired.is_published() && Retiring.is_published() && Next.is_published());
    }

    #[test]
    fn a_debug_print_shows_no_private_key() {
        let mut k = key("a.test", "s", DkimAlgorithm::Rsa, 0, None);
        k.private_pkcs8 = b"SECRET-BYTES".to_vec();
        assert!(!format!("{k:?}").contains("83, 69, 67"), "{k:?}");
        assert!(!format!("{k:?}").contains("private"), "{k:?}");
    }
}
