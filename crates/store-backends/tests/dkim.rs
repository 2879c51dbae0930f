//! DKIM keys in SQLite: added per domain, listed with their dates, retired together by a
//! rotation, removed with their domain; every change moves the generation counter that the
//! signer polls, and a refused change leaves everything as it was.

#[macro_use]
mod common;

use common::*;
use portcullis_store::*;

fn new_key(selector: &str, algorithm: DkimAlgorithm, active_from: i64) -> NewDkimKey {
    NewDkimKey { selector: selector.into(), algorithm, private_pkcs8: selector.as_bytes().to_vec(), active_from }
}

fn selectors(keys: &[DkimKey]) -> Vec<(&str, &str, i64, Option<i64>)> {
    keys.iter().map(|k| (k.domain.as_str(), k.selector.as_str(), k.active_from, k.retire_at)).collect()
}

conformance!(keys_are_added_listed_and_rotated_per_domain);
async fn keys_are_added_listed_and_rotated_per_domain(db: TestDb) {
    let store = open(&db, None).await;
    store.add_domain("a.test").await.unwrap();
    store.add_domain("b.test").await.unwrap();
    let start = store.dkim_keys_generation().await.unwrap();

    let pair = vec![new_key("s1-ed", DkimAlgorithm::Ed25519, 10), new_key("s1-rsa", DkimAlgorithm::Rsa, 10)];
    store.add_dkim_keys("A.test", pair, None).await.unwrap();
    store.add_dkim_keys("b.test", vec![new_key("b1", DkimAlgorithm::Ed25519, 5)], None).await.unwrap();
    let after_add = store.dkim_keys_generation().await.unwrap();
    assert!(after_add > start, "adding keys moves the generation");

    let a = store.dkim_keys(Some("a.test")).await.unwrap();
    assert_eq!(selectors(&a), [("a.test", "s1-ed", 10, None), ("a.test", "s1-rsa", 10, None)]);
    assert_eq!(a[0].private_pkcs8, b"s1-ed");
    assert_eq!((a[0].algorithm, a[1].algorithm), (DkimAlgorithm::Ed25519, DkimAlgorithm::Rsa));
    assert!(a[0].created > 1_700_000_000, "created is the time of the write");
    assert_eq!(store.dkim_keys(None).await.unwrap().len(), 3);

    // A rotation: the new pair and the old pair's retirement in one write.
    let next = vec![new_key("s2-ed", DkimAlgorithm::Ed25519, 100), new_key("s2-rsa", DkimAlgorithm::Rsa, 100)];
    store.add_dkim_keys("a.test", next, Some(200)).await.unwrap();
    let a = store.dkim_keys(Some("a.test")).await.unwrap();
    assert_eq!(
        selectors(&a),
        [
            ("a.test", "s1-ed", 10, Some(200)),
            ("a.test", "s1-rsa", 10, Some(200)),
            ("a.test", "s2-ed", 100, None),
            ("a.test", "s2-rsa", 100, None)
        ]
    );
    assert!(store.dkim_keys_generation().await.unwrap() > after_add);
    assert_eq!(selectors(&store.dkim_keys(Some("b.test")).await.unwrap()), [("b.test", "b1", 5, None)], "b untouched");

    // A second rotation does not move the first one's retirement.
    store.add_dkim_keys("a.test", vec![new_key("s3-ed", DkimAlgorithm::Ed25519, 300)], Some(400)).await.unwrap();
    let retire: Vec<Option<i64>> = store.dkim_keys(Some("a.test")).await.unwrap().iter().map(|k| k.retire_at).collect();
    assert_eq!(retire, [Some(200), Some(200), Some(400), Some(400), None]);
}

conformance!(a_refused_change_changes_nothing);
async fn a_refused_change_changes_nothing(db: TestDb) {
    let store = open(&db, None).await;
    store.add_domain("a.test").await.unwrap();
    store.add_dkim_keys("a.test", vec![new_key("s1", DkimAlgorithm::Ed25519, 0)], None).await.unwrap();
    let generation = store.dkim_keys_generation().await.unwrap();

    // The second key's selector is taken: neither the first key nor the retirement stays.
    let clash = vec![new_key("s2", DkimAlgorithm::Ed25519, 0), new_key("s1", DkimAlgorithm::Rsa, 0)];
    let err = store.add_dkim_keys("a.test", clash, Some(50)).await.unwrap_err();
    assert!(matches!(&err, StoreError::DkimSelectorExists(name) if name == "s1._domainkey.a.test"), "{err:?}");
    assert_eq!(selectors(&store.dkim_keys(Some("a.test")).await.unwrap()), [("a.test", "s1", 0, None)]);
    assert_eq!(store.dkim_keys_generation().await.unwrap(), generation);

    let err = store.add_dkim_keys("nowhere.test", vec![new_key("s", DkimAlgorithm::Rsa, 0)], None).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchDomain(_)), "{err:?}");
    assert!(matches!(store.dkim_keys(Some("not a domain")).await.unwrap_err(), StoreError::InvalidDomain(_)));
}

conformance!(removing_a_domain_removes_its_keys_and_tells_the_signer);
async fn removing_a_domain_removes_its_keys_and_tells_the_signer(db: TestDb) {
    let store = open(&db, None).await;
    store.add_domain("a.test").await.unwrap();
    store.add_domain("b.test").await.unwrap();
    store.add_dkim_keys("a.test", vec![new_key("s1", DkimAlgorithm::Ed25519, 0)], None).await.unwrap();
    store.add_dkim_keys("b.test", vec![new_key("s1", DkimAlgorithm::Ed25519, 0)], None).await.unwrap();
    let generation = store.dkim_keys_generation().await.unwrap();
    store.remove_domain("a.test").await.unwrap();
    assert_eq!(selectors(&store.dkim_keys(None).await.unwrap()), [("b.test", "s1", 0, None)]);
    assert!(store.dkim_keys_generation().await.unwrap() > generation, "the cascade moved the generation");
    store.close();
    assert_eq!(count(&db, "SELECT count(*) FROM dkim_keys").await, 1);
}
