//! The authenticator on a real (temporary) store: passwords, app passwords with their scopes,
//! TOTP, and what each opens.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_auth::*;
use portcullis_store::{Quota, Store, SCOPE_IMAP, SCOPE_POP3, SCOPE_SMTP};
use zeroize::Zeroizing;

fn pw(s: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(s.as_bytes().to_vec())
}

const PASSWORD: &str = "plinth-orbit-cactus-9";

async fn setup() -> (tempfile::TempDir, Arc<dyn Store>, Authenticator, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = portcullis_store_backends::temporary(dir.path(), None).unwrap();
    let config = portcullis_config::Passwords {
        scram_iterations: 4096,
        min_length: 12,
        min_strength: 3,
        argon2_memory_kib: 256,
        argon2_iterations: 1,
        argon2_parallelism: 1,
    };
    let auth = Authenticator::new(store.clone(), PasswordHasher::new(&config).unwrap(), 4096).unwrap();
    store.add_domain("example.org").await.unwrap();
    let secrets = auth.secrets(PASSWORD).await.unwrap();
    assert!(secrets.scram.is_some());
    let id = store.add_account("alice@example.org", &secrets, Quota::Default).await.unwrap();
    (dir, store, auth, id)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn only_the_right_password_opens_the_account() {
    let (_dir, _store, auth, id) = setup().await;
    let ok = auth.verify("", "Alice@Example.org", pw(PASSWORD), SCOPE_IMAP, Lane::Ordinary).await.unwrap();
    assert_eq!((ok.account, ok.address.as_str(), &ok.credential), (id, "alice@example.org", &Credential::Password));
    assert!(auth
        .verify("alice@example.org", "alice@example.org", pw(PASSWORD), SCOPE_SMTP, Lane::Ordinary)
        .await
        .is_ok());
    assert_eq!(
        auth.verify("", "alice@example.org", pw("wrong"), SCOPE_IMAP, Lane::Ordinary).await,
        Err(AuthError::Refused(Refusal::WrongPassword))
    );
    assert_eq!(
        auth.verify("", "nobody@example.org", pw(PASSWORD), SCOPE_IMAP, Lane::Ordinary).await,
        Err(AuthError::Refused(Refusal::UnknownAccount))
    );
    assert_eq!(
        auth.verify("", "not an address", pw("x"), SCOPE_IMAP, Lane::Ordinary).await,
        Err(AuthError::Refused(Refusal::UnknownAccount))
    );
    assert_eq!(
        auth.verify("bob@example.org", "alice@example.org", pw(PASSWORD), SCOPE_IMAP, Lane::Ordinary).await,
        Err(AuthError::Refused(Refusal::AuthzidNotAllowed)),
        "acting as another user is refused"
    );
}

#[tokio::test]
async fn app_passwords_are_scoped_expiring_and_revocable() {
    let (_dir, store, auth, id) = setup().await;
    let phone = generate_app_password();
    store
        .add_app_password("alice@example.org", "phone", &secret_digest(phone.as_bytes()), SCOPE_IMAP | SCOPE_SMTP, None)
        .await
        .unwrap();
    let old = generate_app_password();
    store
        .add_app_password("alice@example.org", "old", &secret_digest(old.as_bytes()), SCOPE_IMAP, Some(1))
        .await
        .unwrap();

    let p = auth.verify("", "alice@example.org", pw(&phone), SCOPE_IMAP, Lane::Ordinary).await.unwrap();
    assert_eq!(p.account, id);
    assert!(matches!(p.credential, Credential::AppPassword { ref name, .. } if name == "phone"));
    assert!(auth
        .verify("", "alice@example.org", pw(&phone.replace('-', "").to_uppercase()), SCOPE_SMTP, Lane::Ordinary)
        .await
        .is_ok());
    assert_eq!(
        auth.verify("", "alice@example.org", pw(&phone), SCOPE_POP3, Lane::Ordinary).await,
        Err(AuthError::Refused(Refusal::AppPasswordOutOfScope("phone".into()))),
        "out of scope"
    );
    assert_eq!(
        auth.verify("", "alice@example.org", pw(&old), SCOPE_IMAP, Lane::Ordinary).await,
        Err(AuthError::Refused(Refusal::AppPasswordExpired("old".into()))),
        "expired"
    );
    assert_eq!(
        auth.verify("", "bob@example.org", pw(&phone), SCOPE_IMAP, Lane::Ordinary).await,
        Err(AuthError::Refused(Refusal::UnknownAccount)),
        "not bob's"
    );
    let phone_id = p.credential.app_password().unwrap().0;
    let all: Vec<i64> = store.app_passwords("alice@example.org").await.unwrap().iter().map(|a| a.id).collect();
    let old_id = *all.iter().find(|&&i| i != phone_id).unwrap();
    assert_eq!(store.unusable_app_passwords(&all, 1000).await.unwrap(), vec![old_id], "expired");
    assert!(store.revoke_app_password("alice@example.org", "phone").await.unwrap());
    assert_eq!(
        auth.verify("", "alice@example.org", pw(&phone), SCOPE_IMAP, Lane::Ordinary).await,
        Err(AuthError::Refused(Refusal::AppPasswordRevoked("phone".into())))
    );
    let mut unusable = store.unusable_app_passwords(&[phone_id, old_id, 9999], 1000).await.unwrap();
    unusable.sort();
    assert_eq!(unusable, vec![phone_id, old_id, 9999], "revoked, expired, missing");
}

#[tokio::test]
async fn scram_keys_are_real_or_a_decoy() {
    let (_dir, store, auth, id) = setup().await;
    let real = auth.scram_keys("alice@example.org").await;
    assert!(ScramKeysCheck::derive(&real.keys), "the stored keys are those of the password");
    let generation = store.credentials("alice@example.org").await.unwrap().unwrap().generation;
    assert_eq!(real.generation, Some(generation));
    let decoy = auth.scram_keys("ghost@example.org").await;
    assert_eq!(decoy.generation, None);
    assert_eq!(decoy.keys.salt.len(), real.keys.salt.len());
    assert_eq!(decoy.keys.salt, auth.scram_keys("ghost@example.org").await.keys.salt, "stable, like a real account");
    assert_eq!(decoy.keys.salt, auth.scram_keys("Ghost@EXAMPLE.org").await.keys.salt, "however it is spelled");
    assert_ne!(decoy.keys.salt, auth.scram_keys("ghost2@example.org").await.keys.salt);
    assert_eq!(auth.scram_principal("", "alice@example.org").await.unwrap().account, id);
    store.set_totp("alice@example.org", Some(&new_totp_secret()), true, &[]).await.unwrap();
    assert_eq!(
        auth.scram_principal("", "alice@example.org").await,
        Err(AuthError::Refused(Refusal::SecondFactorRequired)),
        "TOTP on"
    );
    // With TOTP on, nothing can be proven: the same salt and iterations as before, and keys
    // that the password does not match.
    let refused = auth.scram_keys("alice@example.org").await;
    assert_eq!((&refused.keys.salt, refused.keys.iterations), (&real.keys.salt, real.keys.iterations));
    assert!(!ScramKeysCheck::derive(&refused.keys));
    assert_eq!(
        auth.scram_refusal("alice@example.org", false).await,
        AuthError::Refused(Refusal::SecondFactorRequired),
        "logged for what it is"
    );
}

#[tokio::test]
async fn decoy_salts_outlive_the_authenticator() {
    let (dir, store, auth, _) = setup().await;
    let first = auth.scram_keys("ghost@example.org").await.keys.salt;
    drop(auth);
    // Another authenticator on the same store (a restart, another node) shows the same salt.
    let config = portcullis_config::Passwords {
        scram_iterations: 4096,
        min_length: 12,
        min_strength: 3,
        argon2_memory_kib: 256,
        argon2_iterations: 1,
        argon2_parallelism: 1,
    };
    let again = Authenticator::new(store.clone(), PasswordHasher::new(&config).unwrap(), 4096).unwrap();
    assert_eq!(again.scram_keys("ghost@example.org").await.keys.salt, first);
    drop(dir);
}

struct ScramKeysCheck;
impl ScramKeysCheck {
    fn derive(keys: &portcullis_sasl::ScramKeys) -> bool {
        portcullis_sasl::ScramKeys::derive_with_salt(PASSWORD, &keys.salt, keys.iterations).unwrap() == *keys
    }
}

#[tokio::test]
async fn totp_replaces_the_password_for_mail_and_guards_the_admin_login() {
    let (_dir, store, auth, _) = setup().await;
    let secret = new_totp_secret();
    let recovery = generate_recovery_code();
    store
        .set_totp("alice@example.org", Some(&secret), true, &[secret_digest(recovery.as_bytes()).to_vec()])
        .await
        .unwrap();

    // Mail clients cannot be asked for a code: the password alone no longer works...
    assert_eq!(
        auth.verify("", "alice@example.org", pw(PASSWORD), SCOPE_IMAP, Lane::Ordinary).await,
        Err(AuthError::Refused(Refusal::SecondFactorRequired))
    );
    // ...app passwords do.
    let app = generate_app_password();
    store
        .add_app_password("alice@example.org", "laptop", &secret_digest(app.as_bytes()), SCOPE_IMAP, None)
        .await
        .unwrap();
    assert!(auth.verify("", "alice@example.org", pw(&app), SCOPE_IMAP, Lane::Ordinary).await.is_ok());

    // Password plus code: a wrong code, a good one, the same one again.
    let code = totp_code(&secret, "alice@example.org", now()).unwrap();
    let wrong = if code == "123456" { "654321" } else { "123456" };
    assert_eq!(
        auth.verify_with_code("alice@example.org", pw(PASSWORD), wrong, Lane::Ordinary).await,
        Err(AuthError::Refused(Refusal::WrongCode))
    );
    assert!(auth.verify_with_code("alice@example.org", pw(PASSWORD), &code, Lane::Ordinary).await.is_ok());
    assert_eq!(
        auth.verify_with_code("alice@example.org", pw(PASSWORD), &code, Lane::Ordinary).await,
        Err(AuthError::Refused(Refusal::ReplayedCode)),
        "replayed"
    );
    assert_eq!(
        auth.verify_with_code("alice@example.org", pw("wrong-password"), &code, Lane::Ordinary).await,
        Err(AuthError::Refused(Refusal::WrongPassword))
    );
    // A recovery code works once.
    assert!(auth.verify_with_code("alice@example.org", pw(PASSWORD), &recovery, Lane::Ordinary).await.is_ok());
    assert_eq!(
        auth.verify_with_code("alice@example.org", pw(PASSWORD), &recovery, Lane::Ordinary).await,
        Err(AuthError::Refused(Refusal::WrongCode))
    );
}

/// A code that no step near now accepts.
fn wrong_code(secret: &[u8]) -> String {
    let valid: Vec<String> =
        [now() - 30, now(), now() + 30].iter().map(|&t| totp_code(secret, "alice@example.org", t).unwrap()).collect();
    (0..).map(|n| format!("{n:06}")).find(|c| !valid.contains(c)).unwrap()
}

#[tokio::test]
async fn wrong_codes_lock_totp_until_a_recovery_code_or_the_operator() {
    let (_dir, store, auth, id) = setup().await;
    let secret = new_totp_secret();
    let recovery = generate_recovery_code();
    store
        .set_totp("alice@example.org", Some(&secret), true, &[secret_digest(recovery.as_bytes()).to_vec()])
        .await
        .unwrap();
    let wrong = wrong_code(&secret);
    let attempt = |password: &'static str, code: String| {
        let auth = &auth;
        async move { auth.verify_with_code("alice@example.org", pw(password), &code, Lane::Ordinary).await }
    };
    // Wrong codes with a wrong password are not counted: only the password's holder can lock.
    for _ in 0..TOTP_LOCK_AT + 2 {
        assert_eq!(attempt("wrong-password", wrong.clone()).await, Err(AuthError::Refused(Refusal::WrongPassword)));
    }
    // A right code clears the count.
    for _ in 1..TOTP_LOCK_AT {
        assert_eq!(attempt(PASSWORD, wrong.clone()).await, Err(AuthError::Refused(Refusal::WrongCode)));
    }
    let code = totp_code(&secret, "alice@example.org", now()).unwrap();
    assert!(attempt(PASSWORD, code).await.is_ok());
    assert_eq!(store.totp("alice@example.org").await.unwrap().unwrap().failures, 0);
    for _ in 1..TOTP_LOCK_AT {
        assert_eq!(attempt(PASSWORD, wrong.clone()).await, Err(AuthError::Refused(Refusal::WrongCode)));
    }
    assert_eq!(attempt(PASSWORD, wrong.clone()).await, Err(AuthError::Refused(Refusal::WrongCodeLocks)));
    // Locked: the right code (of the next step, not yet used) is not even looked at.
    let next = totp_code(&secret, "alice@example.org", now() + 30).unwrap();
    assert_eq!(attempt(PASSWORD, next.clone()).await, Err(AuthError::Refused(Refusal::TotpLocked)));
    assert_eq!(attempt(PASSWORD, wrong.clone()).await, Err(AuthError::Refused(Refusal::TotpLocked)));
    // A recovery code opens the account and unlocks it.
    assert!(attempt(PASSWORD, recovery.clone()).await.is_ok());
    assert!(attempt(PASSWORD, next).await.is_ok(), "unlocked");
    // Locked again, the operator unlocks it.
    for _ in 0..TOTP_LOCK_AT {
        let _ = attempt(PASSWORD, wrong.clone()).await;
    }
    assert!(store.totp("alice@example.org").await.unwrap().unwrap().locked);
    assert!(store.totp_unlock(id).await.unwrap());
    assert_eq!(attempt(PASSWORD, wrong.clone()).await, Err(AuthError::Refused(Refusal::WrongCode)));
}

#[tokio::test]
async fn principals_carry_the_generation_their_credentials_were_checked_under() {
    let (_dir, store, auth, _) = setup().await;
    let before = auth.verify("", "alice@example.org", pw(PASSWORD), SCOPE_IMAP, Lane::Ordinary).await.unwrap();
    let phone = generate_app_password();
    store
        .add_app_password("alice@example.org", "phone", &secret_digest(phone.as_bytes()), SCOPE_IMAP, None)
        .await
        .unwrap();
    let app = auth.verify("", "alice@example.org", pw(&phone), SCOPE_IMAP, Lane::Ordinary).await.unwrap();
    assert_eq!(app.generation, before.generation);
    let new_password = "a-new-passphrase-for-alice-7";
    store.set_password("alice@example.org", &auth.secrets(new_password).await.unwrap()).await.unwrap();
    let after = auth.verify("", "alice@example.org", pw(new_password), SCOPE_IMAP, Lane::Ordinary).await.unwrap();
    assert!(after.generation > before.generation);
    assert_eq!(auth.scram_principal("", "alice@example.org").await.unwrap().generation, after.generation);
}
