use std::sync::Arc;

use portcullis_auth::{AuthError, Authenticator, PasswordHasher};
use portcullis_store::{Quota, SqliteStore, Store};
use zeroize::Zeroizing;

fn pw(s: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(s.as_bytes().to_vec())
}

#[tokio::test]
async fn only_the_right_password_opens_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("mail.db"), None).unwrap());
    let config = portcullis_config::Passwords {
        min_length: 12,
        min_strength: 3,
        argon2_memory_kib: 256,
        argon2_iterations: 1,
        argon2_parallelism: 1,
    };
    let hasher = PasswordHasher::new(&config).unwrap();
    store.add_domain("example.org").await.unwrap();
    let id = store
        .add_account("alice@example.org", &hasher.hash(b"plinth-orbit-cactus-9").unwrap(), Quota::Default)
        .await
        .unwrap();
    let auth = Authenticator::new(store.clone(), hasher).unwrap();

    let ok = auth.verify("", "Alice@Example.org", pw("plinth-orbit-cactus-9")).await.unwrap();
    assert_eq!((ok.account, ok.address.as_str()), (id, "alice@example.org"));
    assert!(auth.verify("alice@example.org", "alice@example.org", pw("plinth-orbit-cactus-9")).await.is_ok());

    assert_eq!(auth.verify("", "alice@example.org", pw("wrong")).await, Err(AuthError::InvalidCredentials));
    assert_eq!(
        auth.verify("", "nobody@example.org", pw("plinth-orbit-cactus-9")).await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(auth.verify("", "not an address", pw("x")).await, Err(AuthError::InvalidCredentials));
    assert_eq!(
        auth.verify("bob@example.org", "alice@example.org", pw("plinth-orbit-cactus-9")).await,
        Err(AuthError::InvalidCredentials),
        "acting as another user is refused"
    );
}
