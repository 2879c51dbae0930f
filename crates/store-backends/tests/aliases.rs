//! Aliases: more addresses for an account, in local domains only, never an address that is
//! already taken; removed with their account; a domain that has some is not removed.

#[macro_use]
mod common;

use common::*;
use portcullis_store::*;

conformance!(aliases_lead_to_their_account);
async fn aliases_lead_to_their_account(db: TestDb) {
    let store = open(&db, None).await;
    account(&store, "alice@example.org").await;
    account(&store, "bob@example.org").await;
    store.add_domain("example.net").await.unwrap();

    store.add_alias("Sales@Example.NET", "ALICE@example.org").await.unwrap();
    store.add_alias("info@example.org", "alice@example.org").await.unwrap();
    assert_eq!(store.alias_target("sales@example.net").await.unwrap().as_deref(), Some("alice@example.org"));
    assert_eq!(store.alias_target("alice@example.org").await.unwrap(), None, "an account is not an alias");
    assert_eq!(store.alias_target("not an address").await.unwrap(), None);

    let names = |list: Vec<Alias>| list.into_iter().map(|a| (a.address, a.account)).collect::<Vec<_>>();
    assert_eq!(
        names(store.aliases(None).await.unwrap()),
        [
            ("info@example.org".to_string(), "alice@example.org".to_string()),
            ("sales@example.net".into(), "alice@example.org".into())
        ]
    );
    assert!(store.aliases(Some("bob@example.org")).await.unwrap().is_empty());
    assert_eq!(store.aliases(Some("Alice@example.org")).await.unwrap().len(), 2);

    // Taken addresses, foreign domains, unknown accounts.
    assert!(matches!(store.add_alias("info@example.org", "bob@example.org").await, Err(StoreError::AliasExists(_))));
    assert!(matches!(store.add_alias("bob@example.org", "alice@example.org").await, Err(StoreError::AliasExists(_))));
    assert!(matches!(
        store.add_account("info@example.org", &PasswordSecrets::hash_only("h"), Quota::Default).await,
        Err(StoreError::AliasExists(_))
    ));
    assert!(matches!(
        store.add_alias("x@elsewhere.test", "alice@example.org").await,
        Err(StoreError::NoSuchDomain(d)) if d == "elsewhere.test"
    ));
    assert!(matches!(store.add_alias("x@example.org", "nobody@example.org").await, Err(StoreError::NoSuchAccount(_))));
    assert!(matches!(store.add_alias("bad", "alice@example.org").await, Err(StoreError::InvalidAddress(_))));

    // A domain with an alias stays; removing the alias, then the domain, works.
    assert!(matches!(store.remove_domain("example.net").await, Err(StoreError::DomainInUse(_))));
    store.remove_alias("sales@example.net").await.unwrap();
    assert!(matches!(store.remove_alias("sales@example.net").await, Err(StoreError::NoSuchAlias(_))));
    store.remove_domain("example.net").await.unwrap();

    // The account's removal takes its aliases with it.
    store.remove_account("alice@example.org").await.unwrap();
    assert!(store.aliases(None).await.unwrap().is_empty());
    assert_eq!(store.alias_target("info@example.org").await.unwrap(), None);
}

conformance!(a_recipient_is_an_account_or_the_account_of_its_alias);
async fn a_recipient_is_an_account_or_the_account_of_its_alias(db: TestDb) {
    let store = open(&db, Some(5_000)).await;
    let alice = account(&store, "alice@example.org").await;
    store.add_domain("example.net").await.unwrap();
    store.add_alias("sales@example.net", "alice@example.org").await.unwrap();
    store.set_quota("alice@example.org", Quota::Bytes(9_000)).await.unwrap();

    let direct = store.recipient("Alice@Example.ORG").await.unwrap().expect("an account");
    assert_eq!(direct, store.account("alice@example.org").await.unwrap().unwrap(), "as `account` answers");
    let by_alias = store.recipient("SALES@example.net").await.unwrap().expect("an alias");
    assert_eq!((by_alias.id, by_alias.address.as_str()), (alice, "alice@example.org"), "the alias's account");
    assert_eq!(by_alias, direct, "the same account, quota and usage included");
    assert_eq!(by_alias.quota, Some(9_000));
    for nobody in ["nobody@example.org", "sales@example.org", "alice@example.net", "not an address", ""] {
        assert_eq!(store.recipient(nobody).await.unwrap(), None, "{nobody}");
    }
    // Removing the alias leaves the account; removing the account leaves nothing.
    store.remove_alias("sales@example.net").await.unwrap();
    assert_eq!(store.recipient("sales@example.net").await.unwrap(), None);
    assert_eq!(store.recipient("alice@example.org").await.unwrap().map(|a| a.id), Some(alice));
}
