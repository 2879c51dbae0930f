use portcullis_store::*;

#[tokio::test]
async fn bans_and_known_logins_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.db");
    {
        let store = SqliteStore::open(&path, None).unwrap();
        store.add_domain("example.org").await.unwrap();
        let alice =
            store.add_account("alice@example.org", &PasswordSecrets::hash_only("h"), Quota::Default).await.unwrap();
        let ban = StoredBan {
            network: "192.0.2.7/32".into(),
            until: Some(2_000),
            reason: "10 failed logins".into(),
            offence: 1,
            manual: false,
            created: 1_000,
        };
        store.put_ban(ban.clone()).await.unwrap();
        store.put_ban(StoredBan { until: None, manual: true, ..ban.clone() }).await.unwrap();
        store.put_ban(StoredBan { network: "2001:db8::/64".into(), ..ban }).await.unwrap();
        store.record_login(alice, "198.51.100.4/32", 5_000).await.unwrap();
        store.record_login(alice, "198.51.100.4/32", 4_000).await.unwrap();
        store.close();
    }
    let store = SqliteStore::open(&path, None).unwrap();
    let bans = store.bans().await.unwrap();
    assert_eq!(bans.len(), 2);
    assert_eq!(bans[0].network, "192.0.2.7/32");
    assert_eq!((bans[0].until, bans[0].manual), (None, true), "the second put replaced the first");
    assert!(store.login_known("Alice@example.org", "198.51.100.4/32", 5_000).await.unwrap());
    assert!(!store.login_known("alice@example.org", "198.51.100.4/32", 5_001).await.unwrap(), "older than asked");
    assert!(!store.login_known("alice@example.org", "198.51.100.5/32", 0).await.unwrap());
    assert!(!store.login_known("nobody@example.org", "198.51.100.4/32", 0).await.unwrap());
    assert!(!store.login_known("not an address", "x", 0).await.unwrap());
    assert!(store.delete_ban("2001:db8::/64").await.unwrap());
    assert!(!store.delete_ban("2001:db8::/64").await.unwrap());
    store.prune_guard_history(6_000, 0).await.unwrap();
    assert!(!store.login_known("alice@example.org", "198.51.100.4/32", 0).await.unwrap());
    assert_eq!(store.bans().await.unwrap().len(), 1, "a permanent ban is never pruned");
}
