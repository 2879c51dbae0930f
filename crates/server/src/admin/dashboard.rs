//! The dashboard's files, compiled into the binary (no CDN, no build step): one page, one
//! script, one style sheet. It reads everything through the admin API with the token the
//! operator signs in with (kept in sessionStorage, gone with the tab).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");
/// The admin API's description, also in the repository as `crates/server/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../openapi.yaml");

pub async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

pub async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response(),
        "style.css" => ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response(),
        _ => (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"error": "no such file"}))).into_response(),
    }
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml; charset=utf-8")], OPENAPI).into_response()
}
