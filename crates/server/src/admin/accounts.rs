//! The admin API's domain and account handlers: what the dashboard's Domains and Accounts
//! pages do, and what `portcullis domain …` and `portcullis account …` do on the store
//! directly (add, remove, quota, a new password, app passwords, TOTP).
//!
//! A change that takes credentials away (a new password, an app password revoked, TOTP turned
//! off) closes the sessions they opened at once, through the same checks the server runs every
//! second for the CLI's changes (`follow_store`), instead of waiting for that round.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use portcullis_store::{AccountSummary, Quota, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::api::{audit, ApiError, ApiResult, Body};
use super::{Admin, Peer};
use crate::{follow_store, unix_time};

type Shared = State<Arc<Admin>>;

pub async fn domains(State(admin): Shared) -> ApiResult<Json<Value>> {
    Ok(Json(json!(admin.shared.store.domains().await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    domain: String,
}

pub async fn add_domain(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Body(new): Body<NewDomain>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    admin.shared.store.add_domain(&new.domain).await?;
    let domain = new.domain.trim().to_ascii_lowercase();
    audit(&admin, &peer, "domain_add", domain.clone());
    // Its first DKIM pair, as `portcullis domain add` makes (the records: GET …/dns).
    let now = unix_time::now_seconds();
    let selectors = crate::dkim::add_first_pair(&*admin.shared.dkim_keys, &domain, now).await.map_err(|e| {
        ApiError::internal(format!(
            "{domain} was added, but not its DKIM keys ({e}): run `portcullis dkim rotate {domain} --grace 0`"
        ))
    })?;
    Ok((StatusCode::CREATED, Json(json!({ "domain": domain, "dkim_selectors": selectors }))))
}

pub async fn remove_domain(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(domain): Path<String>,
) -> ApiResult<StatusCode> {
    admin.shared.store.remove_domain(&domain).await?;
    audit(&admin, &peer, "domain_remove", domain.to_ascii_lowercase());
    Ok(StatusCode::NO_CONTENT)
}

/// An account as the API lists it: its usage and the allowance in force.
#[derive(Serialize)]
pub struct AccountView {
    address: String,
    used_bytes: u64,
    messages: u64,
    /// `None` is unlimited.
    quota_bytes: Option<u64>,
    /// Whether `quota_bytes` is `store.default_quota` (and follows it when the config changes).
    quota_default: bool,
    created: i64,
}

fn account_view(admin: &Admin, a: AccountSummary) -> AccountView {
    let (quota_bytes, quota_default) = match a.quota {
        Quota::Default => (admin.shared.config.store.default_quota, true),
        Quota::Unlimited => (None, false),
        Quota::Bytes(b) => (Some(b), false),
    };
    AccountView {
        address: a.address,
        used_bytes: a.used,
        messages: a.messages,
        quota_bytes,
        quota_default,
        created: a.created,
    }
}

pub async fn accounts(State(admin): Shared) -> ApiResult<Json<Vec<AccountView>>> {
    let list = admin.shared.store.accounts().await?;
    Ok(Json(list.into_iter().map(|a| account_view(&admin, a)).collect()))
}

/// The address in a request, normalised; 400 when it is not one.
pub(super) fn normalized(text: &str) -> ApiResult<String> {
    portcullis_store::normalize_address(text).ok_or_else(|| ApiError::bad(format!("\"{text}\" is not a valid address")))
}

/// "5GiB", "unlimited", and (where `default` says so) "default", which follows
/// `store.default_quota`.
fn parse_quota(text: &str, default: bool) -> ApiResult<Quota> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("unlimited") {
        Ok(Quota::Unlimited)
    } else if default && text.eq_ignore_ascii_case("default") {
        Ok(Quota::Default)
    } else {
        portcullis_config::parse_size(text).map(Quota::Bytes).map_err(|e| ApiError::bad(format!("quota: {e}")))
    }
}

/// The password asked for, if it passes the password policy (`[passwords]`), or a generated
/// one; and whether it was generated (then the answer shows it, once).
fn chosen_password(admin: &Admin, address: &str, asked: Option<String>) -> ApiResult<(Zeroizing<String>, bool)> {
    match asked {
        Some(p) => {
            let p = Zeroizing::new(p);
            let local = address.split('@').next().unwrap_or("");
            portcullis_auth::check_password(&p, &admin.shared.config.passwords, &[address, local])
                .map_err(|e| ApiError::bad(format!("password: {e}")))?;
            Ok((p, false))
        }
        None => Ok((Zeroizing::new(portcullis_auth::generate_password()), true)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    address: String,
    /// Absent: a password is generated and returned once.
    password: Option<String>,
    /// "5GiB", "unlimited"; absent: store.default_quota.
    quota: Option<String>,
}

pub async fn add_account(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Body(new): Body<NewAccount>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let address = normalized(&new.address)?;
    let quota = match new.quota.as_deref() {
        None => Quota::Default,
        Some(q) => parse_quota(q, false)?,
    };
    let (password, generated) = chosen_password(&admin, &address, new.password)?;
    // The argon2id hash and SCRAM keys, derived off the async threads.
    let secrets = admin.shared.auth.secrets(&password).await.map_err(|e| ApiError::bad(format!("password: {e}")))?;
    admin.shared.store.add_account(&address, &secrets, quota).await?;
    audit(&admin, &peer, "account_add", address.clone());
    let shown = generated.then(|| password.as_str());
    Ok((StatusCode::CREATED, Json(json!({ "address": address, "password": shown }))))
}

pub async fn remove_account(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(address): Path<String>,
) -> ApiResult<StatusCode> {
    let address = normalized(&address)?;
    admin.shared.store.remove_account(&address).await?;
    // Its sessions close now, not at the next look at the store.
    follow_store::close_sessions_of_changed_accounts(&admin.shared).await;
    audit(&admin, &peer, "account_remove", address);
    Ok(StatusCode::NO_CONTENT)
}

/// The account's listing, or 404.
async fn summary(admin: &Admin, address: &str) -> ApiResult<AccountSummary> {
    let all = admin.shared.store.accounts().await?;
    all.into_iter().find(|a| a.address == address).ok_or_else(|| StoreError::NoSuchAccount(address.into()).into())
}

#[derive(Serialize)]
struct TotpView {
    /// A second factor is on: the password no longer opens mail clients (app passwords do).
    enabled: bool,
    /// Too many wrong codes given with the right password: no code is accepted until unlocked.
    locked: bool,
    /// Wrong codes since the last right one.
    failures: u32,
}

#[derive(Serialize)]
struct MailboxUsage {
    name: String,
    messages: u32,
    bytes: u64,
}

#[derive(Serialize)]
pub struct AccountDetail {
    #[serde(flatten)]
    account: AccountView,
    totp: TotpView,
    /// Live sessions logged in to the account.
    sessions: usize,
    mailboxes: Vec<MailboxUsage>,
}

/// One account: its usage per mailbox, its TOTP state and its live sessions.
pub async fn account(State(admin): Shared, Path(address): Path<String>) -> ApiResult<Json<AccountDetail>> {
    let address = normalized(&address)?;
    let store = &admin.shared.store;
    let summary = summary(&admin, &address).await?;
    let credentials = store.credentials(&address).await?.ok_or_else(|| StoreError::NoSuchAccount(address.clone()))?;
    // A secret stored but never confirmed is not on: only `enabled` counts.
    let totp = match store.totp(&address).await? {
        Some(t) if t.enabled => TotpView { enabled: true, locked: t.locked, failures: t.failures },
        _ => TotpView { enabled: false, locked: false, failures: 0 },
    };
    let mut mailboxes = Vec::new();
    for mailbox in store.mailboxes(credentials.account).await? {
        // A mailbox deleted since the listing is simply left out.
        if let Ok(status) = store.mailbox_status(mailbox.id).await {
            mailboxes.push(MailboxUsage { name: mailbox.name, messages: status.messages, bytes: status.size });
        }
    }
    let sessions = admin.shared.sessions.list().iter().filter(|s| s.account.as_deref() == Some(&address)).count();
    Ok(Json(AccountDetail { account: account_view(&admin, summary), totp, sessions, mailboxes }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewQuota {
    /// "5GiB", "unlimited", or "default" (store.default_quota).
    quota: String,
}

pub async fn set_quota(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(address): Path<String>,
    Body(new): Body<NewQuota>,
) -> ApiResult<Json<AccountView>> {
    let address = normalized(&address)?;
    let quota = parse_quota(&new.quota, true)?;
    admin.shared.store.set_quota(&address, quota).await?;
    audit(&admin, &peer, "account_quota", address.clone());
    Ok(Json(account_view(&admin, summary(&admin, &address).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// Absent: one is generated and returned once.
    password: Option<String>,
}

/// A new password: a new credentials generation, so every session of the account closes
/// (app passwords stay valid), and so do its administrator sign-ins.
pub async fn reset_password(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(address): Path<String>,
    Body(new): Body<NewPassword>,
) -> ApiResult<Json<Value>> {
    let address = normalized(&address)?;
    let store = &admin.shared.store;
    // Before the (slow) hashing, and so that a bad password for no account says "no account".
    let credentials = store.credentials(&address).await?.ok_or_else(|| StoreError::NoSuchAccount(address.clone()))?;
    let (password, generated) = chosen_password(&admin, &address, new.password)?;
    let secrets = admin.shared.auth.secrets(&password).await.map_err(|e| ApiError::bad(format!("password: {e}")))?;
    store.set_password(&address, &secrets).await?;
    follow_store::close_sessions_of_changed_accounts(&admin.shared).await;
    admin.auth.end_sessions(credentials.account);
    audit(&admin, &peer, "account_password", address.clone());
    let shown = generated.then(|| password.as_str());
    Ok(Json(json!({ "address": address, "password": shown })))
}

/// An app password as listed: never its secret.
#[derive(Serialize)]
pub struct AppPasswordView {
    name: String,
    scopes: Vec<&'static str>,
    /// "active", "expired" or "revoked".
    state: &'static str,
    created: i64,
    expires: Option<i64>,
    last_used: Option<i64>,
    last_ip: Option<String>,
}

pub async fn app_passwords(State(admin): Shared, Path(address): Path<String>) -> ApiResult<Json<Vec<AppPasswordView>>> {
    let address = normalized(&address)?;
    let store = &admin.shared.store;
    // The store lists nothing for an account that does not exist: say which it is.
    if store.credentials(&address).await?.is_none() {
        return Err(StoreError::NoSuchAccount(address).into());
    }
    let now = unix_time::now_seconds();
    let list = store.app_passwords(&address).await?;
    Ok(Json(
        list.into_iter()
            .map(|a| AppPasswordView {
                scopes: a.scope_names(),
                state: a.state(now).as_str(),
                name: a.name,
                created: a.created,
                expires: a.expires,
                last_used: a.last_used,
                last_ip: a.last_ip,
            })
            .collect(),
    ))
}

/// Revokes one app password; the sessions it opened close at once.
pub async fn revoke_app_password(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path((address, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let address = normalized(&address)?;
    if !admin.shared.store.revoke_app_password(&address, &name).await? {
        return Err(ApiError::not_found(format!("{address} has no app password named \"{name}\" in use")));
    }
    follow_store::close_revoked_app_password_sessions(&admin.shared, unix_time::now_seconds()).await;
    audit(&admin, &peer, "app_password_revoke", format!("{address}/{name}"));
    Ok(StatusCode::NO_CONTENT)
}

/// The account's id, if it has TOTP on; 404 otherwise (no account, or no TOTP).
async fn with_totp(admin: &Admin, address: &str) -> ApiResult<i64> {
    let credentials =
        admin.shared.store.credentials(address).await?.ok_or_else(|| StoreError::NoSuchAccount(address.into()))?;
    if !credentials.totp_enabled {
        return Err(ApiError::not_found(format!("{address} does not have TOTP on")));
    }
    Ok(credentials.account)
}

/// Turns TOTP off (a lost phone): the password opens mail clients again, the recovery codes
/// are void, and the administrator sign-ins made with the old codes end. The owner turns it
/// on again with `portcullis account totp enable`.
pub async fn reset_totp(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(address): Path<String>,
) -> ApiResult<StatusCode> {
    let address = normalized(&address)?;
    let account = with_totp(&admin, &address).await?;
    admin.shared.store.set_totp(&address, None, false, &[]).await?;
    admin.auth.end_sessions(account);
    audit(&admin, &peer, "totp_reset", address);
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts TOTP codes again after wrong ones locked them; says whether they were locked.
pub async fn unlock_totp(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(address): Path<String>,
) -> ApiResult<Json<Value>> {
    let address = normalized(&address)?;
    let account = with_totp(&admin, &address).await?;
    let was_locked = admin.shared.store.totp_unlock(account).await?;
    audit(&admin, &peer, "totp_unlock", address);
    Ok(Json(json!({ "was_locked": was_locked })))
}
