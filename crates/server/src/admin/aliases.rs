//! The admin API's alias handlers (`/api/v1/accounts/{address}/aliases`): what `portcullis
//! account alias …` does on the store directly. An alias is in one of our domains; mail to
//! it goes to its account, which may send from it (from its next login on).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use portcullis_store::StoreError;
use serde::{Deserialize, Serialize};

use super::accounts::normalized;
use super::api::{audit, ApiError, ApiResult, Body};
use super::{Admin, Peer};

type Shared = State<Arc<Admin>>;

#[derive(Serialize)]
pub struct AliasView {
    alias: String,
    account: String,
    created: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAlias {
    alias: String,
}

pub async fn aliases(State(admin): Shared, Path(address): Path<String>) -> ApiResult<Json<Vec<AliasView>>> {
    let address = normalized(&address)?;
    // The store lists nothing for an account that does not exist: say which it is.
    if admin.shared.store.credentials(&address).await?.is_none() {
        return Err(StoreError::NoSuchAccount(address).into());
    }
    let list = admin.shared.aliases.aliases(Some(&address)).await?;
    Ok(Json(list.into_iter().map(|a| AliasView { alias: a.address, account: a.account, created: a.created }).collect()))
}

pub async fn add_alias(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path(address): Path<String>,
    Body(new): Body<NewAlias>,
) -> ApiResult<(StatusCode, Json<AliasView>)> {
    let account = normalized(&address)?;
    let alias = normalized(&new.alias)?;
    admin.shared.aliases.add_alias(&alias, &account).await?;
    audit(&admin, &peer, "alias_add", format!("{alias} -> {account}"));
    let created = crate::unix_time::now_seconds();
    Ok((StatusCode::CREATED, Json(AliasView { alias, account, created })))
}

pub async fn remove_alias(
    State(admin): Shared,
    Extension(peer): Extension<Peer>,
    Path((address, alias)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let account = normalized(&address)?;
    let alias = normalized(&alias)?;
    // Only the account's own alias goes: a path naming another account's is a mistake.
    if admin.shared.aliases.alias_target(&alias).await?.as_deref() != Some(account.as_str()) {
        return Err(ApiError::not_found(format!("{account} has no alias {alias}")));
    }
    admin.shared.aliases.remove_alias(&alias).await?;
    audit(&admin, &peer, "alias_remove", alias);
    Ok(StatusCode::NO_CONTENT)
}
