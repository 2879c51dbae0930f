//! One certificate from the CA (RFC 8555 §7.4): the account (stored, or registered and
//! stored), a new order for the names, each pending authorization answered with the chosen
//! challenge, the order finalized with a CSR for a fresh key, the chain downloaded and stored.
//! The answers are withdrawn when the order is done, whether it succeeded or not.

use std::sync::Arc;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};

use crate::challenges::Challenges;
use crate::client::http_client;
use crate::settings::{AcmeSettings, ChallengeKind};
use crate::storage::{CertStore, Issued, StoredAccount};

/// RFC 8555 §6.7: the CA no longer knows the account (a test CA restarted, or it was
/// deactivated); a new one is registered.
const ACCOUNT_DOES_NOT_EXIST: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// Obtains, stores and returns a certificate for `settings.names`.
pub(crate) async fn obtain(
    settings: &AcmeSettings,
    store: &CertStore,
    challenges: &Arc<Challenges>,
) -> Result<Issued, String> {
    if settings.names.is_empty() {
        return Err("no names to certify".into());
    }
    let account = account(settings, store).await?;
    match order(settings, store, challenges, &account).await {
        Err(Failure::Acme(instant_acme::Error::Api(problem)))
            if problem.r#type.as_deref() == Some(ACCOUNT_DOES_NOT_EXIST) =>
        {
            let account = account_fresh(settings, store).await?;
            order(settings, store, challenges, &account).await.map_err(|e| e.to_string())
        }
        other => other.map_err(|e| e.to_string()),
    }
}

enum Failure {
    Acme(instant_acme::Error),
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Acme(e) => write!(f, "{}", describe(e)),
            Failure::Other(e) => f.write_str(e),
        }
    }
}

impl From<instant_acme::Error> for Failure {
    fn from(e: instant_acme::Error) -> Self {
        Failure::Acme(e)
    }
}

/// A problem document (RFC 7807) as one line: its detail and its type.
fn describe(error: &instant_acme::Error) -> String {
    match error {
        instant_acme::Error::Api(problem) => {
            let kind = problem.r#type.as_deref().unwrap_or("no type").trim_start_matches("urn:ietf:params:acme:error:");
            let mut text = format!("the CA refused: {} ({kind})", problem.detail.as_deref().unwrap_or("no detail"));
            for sub in &problem.subproblems {
                text.push_str(&format!("; {}", sub.detail.as_deref().unwrap_or("")));
            }
            text
        }
        other => format!("talking to the CA failed: {other}"),
    }
}

/// The stored account for this directory, or a new one.
async fn account(settings: &AcmeSettings, store: &CertStore) -> Result<Account, String> {
    if let Some(stored) = store.load_account()? {
        if stored.directory == settings.directory {
            let http = http_client(&settings.extra_roots)?;
            return Account::builder_with_http(http)
                .from_credentials(stored.credentials)
                .await
                .map_err(|e| describe(&e));
        }
    }
    account_fresh(settings, store).await
}

async fn account_fresh(settings: &AcmeSettings, store: &CertStore) -> Result<Account, String> {
    let http = http_client(&settings.extra_roots)?;
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let new = NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) = Account::builder_with_http(http)
        .create(&new, settings.directory.clone(), None)
        .await
        .map_err(|e| describe(&e))?;
    store.save_account(&StoredAccount { directory: settings.directory.clone(), credentials })?;
    Ok(account)
}

/// What was put up for the validator, to take down afterwards.
enum Provisioned {
    TlsAlpn(String),
    Http(String),
}

async fn order(
    settings: &AcmeSettings,
    store: &CertStore,
    challenges: &Arc<Challenges>,
    account: &Account,
) -> Result<Issued, Failure> {
    let identifiers: Vec<Identifier> = settings.names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut provisioned = Vec::new();
    let answered = answer(settings, challenges, &mut order, &mut provisioned).await;
    let result = match answered {
        Ok(()) => finish(settings, store, &mut order).await,
        Err(e) => Err(e),
    };
    for item in provisioned {
        match item {
            Provisioned::TlsAlpn(name) => challenges.remove_tls_alpn01(&name),
            Provisioned::Http(token) => challenges.remove_http01(&token),
        }
    }
    result
}

async fn answer(
    settings: &AcmeSettings,
    challenges: &Arc<Challenges>,
    order: &mut instant_acme::Order,
    provisioned: &mut Vec<Provisioned>,
) -> Result<(), Failure> {
    let kind = match settings.challenge {
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        ChallengeKind::Http01 => ChallengeType::Http01,
    };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(Failure::Other(format!("an authorization is {other:?}, not pending"))),
        }
        let mut challenge = authorization
            .challenge(kind.clone())
            .ok_or_else(|| Failure::Other(format!("the CA offers no {kind:?} challenge")))?;
        let name = challenge.identifier().to_string();
        let key_authorization = challenge.key_authorization();
        match settings.challenge {
            ChallengeKind::TlsAlpn01 => {
                challenges.put_tls_alpn01(&name, key_authorization.digest().as_ref()).map_err(Failure::Other)?;
                provisioned.push(Provisioned::TlsAlpn(name));
            }
            ChallengeKind::Http01 => {
                challenges.put_http01(&challenge.token, key_authorization.as_str());
                provisioned.push(Provisioned::Http(challenge.token.clone()));
            }
        }
        challenge.set_ready().await?;
    }
    Ok(())
}

async fn finish(
    settings: &AcmeSettings,
    store: &CertStore,
    order: &mut instant_acme::Order,
) -> Result<Issued, Failure> {
    let retries = RetryPolicy::new().timeout(settings.order_timeout);
    let status = order.poll_ready(&retries).await?;
    if status != OrderStatus::Ready {
        let why = order.state().error.as_ref().and_then(|p| p.detail.clone()).unwrap_or_default();
        return Err(Failure::Other(format!("the order is {status:?}, not ready: validation failed {why}")));
    }
    // A fresh key for every certificate (ECDSA P-256), never sent anywhere.
    let why = |e: rcgen::Error| Failure::Other(format!("cannot make the certificate request: {e}"));
    let key = rcgen::KeyPair::generate().map_err(why)?;
    let mut params = rcgen::CertificateParams::new(settings.names.clone()).map_err(why)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(why)?;
    order.finalize_csr(csr.der()).await?;
    let chain = order.poll_certificate(&retries).await?;
    store.save_certificate(&key.serialize_pem(), &chain).map_err(Failure::Other)
}
