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

#[cfg(test)]
mod tests {
    use super::OPENAPI;
    use portcullis_events::Listener;

    /// The `enum:` list of the schema `name` in the OpenAPI file.
    fn schema_enum(name: &str) -> Vec<String> {
        let start = OPENAPI.find(&format!("\n    {name}:\n")).unwrap_or_else(|| panic!("no schema {name}"));
        let rest = &OPENAPI[start..];
        let list = rest.find("enum: [").map(|i| &rest[i + "enum: [".len()..]).expect("an enum");
        list[..list.find(']').expect("a closed list")].split(',').map(|s| s.trim().to_string()).collect()
    }

    #[test]
    fn the_openapi_listener_enums_are_the_listener_table() {
        let every: Vec<String> = Listener::EVERY.iter().map(|l| l.as_str().to_string()).collect();
        let mail: Vec<String> = Listener::ALL.iter().map(|l| l.as_str().to_string()).collect();
        let mut protocols: Vec<String> = Listener::ALL.iter().map(|l| l.protocol().to_string()).collect();
        protocols.dedup();
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v.dedup();
            v
        };
        assert_eq!(sorted(schema_enum("Listener")), sorted(every));
        assert_eq!(sorted(schema_enum("MailListener")), sorted(mail));
        assert_eq!(sorted(schema_enum("MailProtocol")), sorted(protocols));
    }
}
