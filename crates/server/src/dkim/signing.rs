//! Signing at submission (issue 18): a message queued for remote recipients gets a DKIM
//! signature from each active key of the domain of its From: field (RFC 7489 §3.1.1: `d=`
//! aligned with From is what DMARC checks), once, before it is queued, so the queued content is
//! the signed message and every delivery attempt sends the same bytes.
//!
//! Parsed keys are kept ([`Signing`]): an RSA key is read and checked once per process, not once
//! per message (the submission benchmark is a tracked figure). Rotations made by the CLI (or
//! another node) are picked up through the store's generation counter, looked at no more than
//! once per [`RECHECK`]; a pair that starts or stops signing at a given time needs no re-read
//! at all, since which key signs is decided by the dates at each message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_dkim_sign::{Signer, SigningKey};
use portcullis_events::{Event, Events, UnsignedReason};
use portcullis_store::{key_states, normalize_domain, DkimAlgorithm, DkimKey, DkimKeyState, DkimKeyStore, Store};

/// How often a submission may ask the store whether the keys changed.
pub const RECHECK: Duration = Duration::from_secs(1);

/// What was done to a message.
#[derive(Debug)]
pub enum Outcome {
    /// The message with its signature fields prepended, and the selectors that signed.
    Signed { message: Vec<u8>, selectors: Vec<String> },
    /// The message as it was, and why.
    Unsigned { message: Vec<u8>, from_domain: String, reason: UnsignedReason, detail: Option<String> },
}

/// The signer of a server: the store it reads keys from, and the keys in memory, parsed once.
pub struct Signing {
    store: Arc<dyn Store>,
    keys: Arc<dyn DkimKeyStore>,
    events: Events,
    loaded: Mutex<Arc<Loaded>>,
    /// One re-read at a time; the others keep signing with what is loaded.
    reloading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Loaded {
    /// The store's generation these keys were read at (`None`: never read).
    generation: Option<i64>,
    checked: Option<Instant>,
    /// Every key's dates, private halves dropped (the signers hold them), by domain.
    keys: HashMap<String, Vec<DkimKey>>,
    /// By (domain, selector).
    signers: HashMap<(String, String), Arc<Signer>>,
    /// Keys that could not be read, by (domain, selector): the reason.
    unreadable: HashMap<(String, String), String>,
}

impl Signing {
    pub fn new(store: Arc<dyn Store>, keys: Arc<dyn DkimKeyStore>, events: Events) -> Signing {
        Signing { store, keys, events, loaded: Mutex::default(), reloading: tokio::sync::Mutex::new(()) }
    }

    /// A submission's message as it is to be queued: signed if it can be, and otherwise as it
    /// was, with a `message_unsigned` event saying why (it is sent all the same: refusing it
    /// would punish the sender for the operator's missing key).
    pub async fn sign_submission(&self, conn: u64, account: &str, message: Vec<u8>, now: i64) -> Vec<u8> {
        match self.sign(message, now).await {
            Outcome::Signed { message, .. } => message,
            Outcome::Unsigned { message, from_domain, reason, detail } => {
                let account = account.to_string();
                self.events.emit(Event::MessageUnsigned { conn, account, from_domain, reason, detail });
                message
            }
        }
    }

    /// Signs `message` for the domain of its From: field at `now` (Unix seconds).
    pub async fn sign(&self, message: Vec<u8>, now: i64) -> Outcome {
        let Some(domain) = from_domain(&message) else {
            return Outcome::Unsigned {
                message,
                from_domain: String::new(),
                reason: UnsignedReason::NoFrom,
                detail: None,
            };
        };
        let loaded = match self.current().await {
            Ok(loaded) => loaded,
            // The store did not answer whether the keys changed: sign with those already read.
            Err(_) if self.snapshot().generation.is_some() => self.snapshot(),
            Err(e) => {
                let detail = Some(format!("reading the DKIM keys: {e}"));
                return Outcome::Unsigned {
                    message,
                    from_domain: domain,
                    reason: UnsignedReason::SigningFailed,
                    detail,
                };
            }
        };
        let Some(domain_keys) = loaded.keys.get(&domain) else {
            // Keys are removed with their domain, so no keys may mean either.
            let reason = match self.store.is_local_domain(&domain).await {
                Ok(false) => UnsignedReason::NotLocal,
                _ => UnsignedReason::NoKey,
            };
            return Outcome::Unsigned { message, from_domain: domain, reason, detail: None };
        };
        let active: Vec<&DkimKey> = domain_keys
            .iter()
            .zip(key_states(domain_keys, now))
            .filter(|(_, state)| *state == DkimKeyState::Active)
            .map(|(key, _)| key)
            .collect();
        if active.is_empty() {
            let detail = Some("every key is retired or not signing yet".to_string());
            return Outcome::Unsigned { message, from_domain: domain, reason: UnsignedReason::NoKey, detail };
        }
        // RSA on top: a verifier that checks only the first signature likely knows RSA.
        let mut chosen: Vec<(String, Result<Arc<Signer>, String>)> = active
            .iter()
            .map(|key| {
                let id = (domain.clone(), key.selector.clone());
                let signer = match (loaded.signers.get(&id), loaded.unreadable.get(&id)) {
                    (Some(signer), _) => Ok(signer.clone()),
                    (None, why) => Err(why.cloned().unwrap_or_else(|| "the key was not loaded".into())),
                };
                (key.selector.clone(), signer)
            })
            .collect();
        chosen.sort_by_key(|(selector, _)| {
            let algorithm = active.iter().find(|k| &k.selector == selector).map(|k| k.algorithm);
            algorithm != Some(DkimAlgorithm::Rsa)
        });
        // Hashing a large body and an RSA signature are CPU work: off the async threads. The
        // message is shared with the task, so that it is still there if the task failed.
        let shared = Arc::new(message);
        let lent = shared.clone();
        let signing = tokio::task::spawn_blocking(move || {
            let mut fields = String::new();
            let mut selectors = Vec::new();
            let mut failures = Vec::new();
            for (selector, signer) in chosen {
                match signer.and_then(|s| s.sign(&lent).map_err(|e| e.to_string())) {
                    Ok(field) => {
                        fields.push_str(&field);
                        selectors.push(selector);
                    }
                    Err(e) => failures.push(format!("{selector}: {e}")),
                }
            }
            (fields, selectors, failures)
        });
        let done = signing.await;
        let message = Arc::try_unwrap(shared).unwrap_or_else(|still_lent| still_lent.to_vec());
        let (fields, selectors, failures) = match done {
            Ok(done) => done,
            Err(e) => {
                let detail = Some(format!("the signing task failed: {e}"));
                return Outcome::Unsigned {
                    message,
                    from_domain: domain,
                    reason: UnsignedReason::SigningFailed,
                    detail,
                };
            }
        };
        if selectors.is_empty() {
            let detail = Some(failures.join("; "));
            return Outcome::Unsigned { message, from_domain: domain, reason: UnsignedReason::SigningFailed, detail };
        }
        let mut signed = Vec::with_capacity(fields.len() + message.len());
        signed.extend_from_slice(fields.as_bytes());
        signed.extend_from_slice(&message);
        Outcome::Signed { message: signed, selectors }
    }

    /// The loaded keys, re-read first if the store says they changed (asked at most once per
    /// [`RECHECK`]).
    async fn current(&self) -> Result<Arc<Loaded>, portcullis_store::StoreError> {
        let store = &self.keys;
        let loaded = self.snapshot();
        if loaded.checked.is_some_and(|at| at.elapsed() < RECHECK) {
            return Ok(loaded);
        }
        let Ok(_reloading) = self.reloading.try_lock() else {
            // Another submission is re-reading; what is loaded is at most a second old.
            if loaded.generation.is_some() {
                return Ok(loaded);
            }
            let _wait = self.reloading.lock().await;
            return Ok(self.snapshot());
        };
        let loaded = self.snapshot(); // another may have finished meanwhile
        if loaded.checked.is_some_and(|at| at.elapsed() < RECHECK) {
            return Ok(loaded);
        }
        let generation = store.dkim_keys_generation().await?;
        let fresh = if loaded.generation == Some(generation) {
            Loaded {
                generation: loaded.generation,
                checked: Some(Instant::now()),
                keys: loaded.keys.clone(),
                signers: loaded.signers.clone(),
                unreadable: loaded.unreadable.clone(),
            }
        } else {
            Loaded::read(store.dkim_keys(None).await?, generation, &loaded)
        };
        let fresh = Arc::new(fresh);
        if let Ok(mut slot) = self.loaded.lock() {
            *slot = fresh.clone();
        }
        Ok(fresh)
    }

    fn snapshot(&self) -> Arc<Loaded> {
        self.loaded.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Loaded {
    /// Builds from `keys`, keeping the signers (already parsed) of keys still there.
    fn read(keys: Vec<DkimKey>, generation: i64, before: &Loaded) -> Loaded {
        let mut loaded = Loaded { generation: Some(generation), checked: Some(Instant::now()), ..Loaded::default() };
        for mut key in keys {
            let id = (key.domain.clone(), key.selector.clone());
            if let Some(signer) = before.signers.get(&id) {
                loaded.signers.insert(id, signer.clone());
            } else {
                match SigningKey::from_pkcs8_der(&key.private_pkcs8) {
                    Ok(signing) => {
                        let signer = Signer::new(signing, key.domain.clone(), key.selector.clone());
                        loaded.signers.insert(id, Arc::new(signer));
                    }
                    Err(e) => {
                        loaded.unreadable.insert(id, e.to_string());
                    }
                }
            }
            key.private_pkcs8 = Vec::new();
            loaded.keys.entry(key.domain.clone()).or_default().push(key);
        }
        loaded
    }
}

/// The domain of the (first) From: address, normalized; `None` if there is none.
fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(message)?;
    let address = parsed.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    normalize_domain(domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dkim::new_pair;

    /// Events kept for the test to read.
    #[derive(Default)]
    struct Kept(Mutex<Vec<Event>>);

    impl portcullis_events::Sink for Kept {
        fn accept(&self, record: &portcullis_events::Record) {
            self.0.lock().unwrap().push(record.event.clone());
        }
    }

    const MESSAGE: &[u8] = b"From: Alice <alice@a.test>\r\nTo: bob@far.test\r\nSubject: hi\r\n\r\nbody\r\n";

    fn selectors(outcome: &Outcome) -> Vec<String> {
        match outcome {
            Outcome::Signed { selectors, .. } => selectors.clone(),
            Outcome::Unsigned { reason, .. } => panic!("unsigned: {reason:?}"),
        }
    }

    #[tokio::test]
    async fn active_keys_sign_and_rotations_are_picked_up_without_parsing_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = portcullis_store_backends::temporary(dir.path(), None).unwrap();
        store.add_domain("a.test").await.unwrap();
        let now = 1_796_630_400;
        store.add_dkim_keys("a.test", new_pair(&[], now, now).unwrap(), None).await.unwrap();
        let signing = Signing::new(store.clone(), store.clone(), Events::none());

        let outcome = signing.sign(MESSAGE.to_vec(), now).await;
        assert_eq!(selectors(&outcome), ["pc20261207a-rsa", "pc20261207a-ed"], "RSA on top, then Ed25519");
        let Outcome::Signed { message, .. } = outcome else { unreachable!() };
        let text = String::from_utf8(message).unwrap();
        assert!(text.starts_with("DKIM-Signature: ") && text.ends_with("\r\n\r\nbody\r\n"), "{text}");
        assert!(text.contains("a=rsa-sha256;") && text.contains("a=ed25519-sha256;") && text.contains("d=a.test;"));
        let first = signing.snapshot().signers.get(&("a.test".into(), "pc20261207a-rsa".into())).unwrap().clone();

        // A rotation with a grace of 100 s, written by another process (the CLI).
        let existing = store.dkim_keys(Some("a.test")).await.unwrap();
        store.add_dkim_keys("a.test", new_pair(&existing, now, now + 100).unwrap(), Some(now + 200)).await.unwrap();
        assert_eq!(selectors(&signing.sign(MESSAGE.to_vec(), now).await)[0], "pc20261207a-rsa", "read within RECHECK");
        tokio::time::sleep(RECHECK + Duration::from_millis(50)).await;
        assert_eq!(selectors(&signing.sign(MESSAGE.to_vec(), now + 50).await)[0], "pc20261207a-rsa", "b is next");
        let kept = signing.snapshot().signers.get(&("a.test".into(), "pc20261207a-rsa".into())).unwrap().clone();
        assert!(Arc::ptr_eq(&first, &kept), "the old key was not parsed again");
        assert_eq!(selectors(&signing.sign(MESSAGE.to_vec(), now + 100).await), ["pc20261207b-rsa", "pc20261207b-ed"]);
    }

    #[tokio::test]
    async fn what_cannot_be_signed_is_sent_as_it_was_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = portcullis_store_backends::temporary(dir.path(), None).unwrap();
        store.add_domain("a.test").await.unwrap();
        let kept = Arc::new(Kept::default());
        let signing = Signing::new(store.clone(), store.clone(), Events::new(vec![kept.clone()]));
        let cases: [(&[u8], UnsignedReason, &str); 3] = [
            (MESSAGE, UnsignedReason::NoKey, "a.test"),
            (b"From: x@elsewhere.test\r\n\r\nbody\r\n", UnsignedReason::NotLocal, "elsewhere.test"),
            (b"Subject: none\r\n\r\nbody\r\n", UnsignedReason::NoFrom, ""),
        ];
        for (message, want, domain) in cases {
            let out = signing.sign_submission(7, "alice@a.test", message.to_vec(), 0).await;
            assert_eq!(out, message, "sent unchanged");
            let event = kept.0.lock().unwrap().pop().expect("one event");
            assert!(
                matches!(&event, Event::MessageUnsigned { conn: 7, reason, from_domain, .. } if *reason == want && from_domain == domain),
                "{event:?}"
            );
        }

        // A key the library cannot use: the failure is said, the message still goes.
        let broken = portcullis_store::NewDkimKey {
            selector: "bad".into(),
            algorithm: portcullis_store::DkimAlgorithm::Rsa,
            private_pkcs8: vec![0x30, 0x03, 0x02, 0x01, 0x00],
            active_from: 0,
        };
        store.add_dkim_keys("a.test", vec![broken], None).await.unwrap();
        tokio::time::sleep(RECHECK + Duration::from_millis(50)).await;
        let out = signing.sign_submission(8, "alice@a.test", MESSAGE.to_vec(), 10).await;
        assert_eq!(out, MESSAGE);
        let event = kept.0.lock().unwrap().pop().expect("one event");
        assert!(
            matches!(&event, Event::MessageUnsigned { reason: UnsignedReason::SigningFailed, detail: Some(d), .. } if d.starts_with("bad: ")),
            "{event:?}"
        );
    }

    #[test]
    fn the_from_domain_is_read_whatever_the_form() {
        let domain = |m: &str| from_domain(m.as_bytes());
        assert_eq!(
            domain("From: Alice <alice@Example.ORG>\r\nTo: b@x.test\r\n\r\nbody\r\n").as_deref(),
            Some("example.org")
        );
        assert_eq!(domain("Subject: s\r\nFrom: bob@a.test (Bob)\r\n\r\n").as_deref(), Some("a.test"));
        assert_eq!(domain("From: \"a@evil.test\" <c@good.test>\r\n\r\n").as_deref(), Some("good.test"));
        assert_eq!(domain("Subject: no from\r\n\r\nFrom: x@body.test\r\n"), None);
        assert_eq!(domain("From: undisclosed\r\n\r\n"), None);
    }
}
