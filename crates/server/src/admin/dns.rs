//! `GET /api/v1/domains/{domain}/dns`: the DNS checklist of one domain for the dashboard: every
//! record the domain needs (the lines `portcullis dns DOMAIN` prints, from the same plan), and
//! with `?check=true` each one looked up and judged, as `portcullis dns check DOMAIN` does.
//! The lookups take up to a few seconds, so the check runs only when asked.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use portcullis_config::normalize_domain;
use portcullis_discovery::{server_facts, Finding, Status};
use portcullis_dns::Resolver;
use serde::Serialize;

use super::api::{flag, ApiError, ApiResult};
use super::Admin;

#[derive(Serialize)]
pub struct Checklist {
    domain: String,
    /// What is not published yet and why (no HTTPS listener, no port 25, no DKIM key, …).
    notes: Vec<String>,
    records: Vec<Record>,
    /// Whether the records were looked up (`?check=true`).
    checked: bool,
}

#[derive(Serialize)]
struct Record {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    /// The record as a zone-file line, ready to paste.
    zone_line: String,
    /// With `?check=true`: ok, missing, wrong or unknown (the lookup failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    /// Why a record is wrong, or why it could not be checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

pub async fn checklist(
    State(admin): State<Arc<Admin>>,
    Path(domain): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Checklist>> {
    let check = flag(&query, "check")?;
    let shared = &admin.shared;
    let name = normalize_domain(&domain).ok_or_else(|| ApiError::bad(format!("\"{domain}\" is not a domain name")))?;
    if !shared.store.domains().await?.contains(&name) {
        return Err(ApiError::not_found(format!("{name} is not a domain of this server")));
    }
    // The same plan `portcullis dns` prints: the facts from the config and the store.
    let (facts, _unreadable) =
        crate::dkim::domain_facts(&*shared.dkim_keys, &name, crate::unix_time::now_seconds()).await?;
    let plan = portcullis_discovery::plan(&server_facts(&shared.config), &facts);
    let findings: Option<Vec<Finding>> = if check {
        let resolver = Resolver::new(&crate::resolver::settings(&shared.config.dns))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Some(portcullis_discovery::check(&resolver, &plan, &shared.config.hostname).await)
    } else {
        None
    };
    let records = plan
        .records
        .iter()
        .enumerate()
        .map(|(i, expected)| {
            let finding = findings.as_ref().and_then(|f| f.get(i));
            let (status, detail) = match finding.map(|f| &f.status) {
                None => (None, None),
                Some(Status::Ok) => (Some("ok"), None),
                Some(Status::Missing) => (Some("missing"), None),
                Some(Status::Wrong(why)) => (Some("wrong"), Some(why.clone())),
                Some(Status::Unchecked(why)) => (Some("unknown"), Some(why.clone())),
            };
            Record {
                name: expected.name.clone(),
                kind: expected.data.type_name(),
                zone_line: expected.zone_line(),
                status,
                detail,
            }
        })
        .collect();
    Ok(Json(Checklist { domain: plan.domain.clone(), notes: plan.notes.clone(), records, checked: check }))
}
