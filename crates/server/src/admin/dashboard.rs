//! The dashboard's files, compiled into the binary (no CDN, no build step): one page, its
//! script modules (the shell and overview in `app.js`, a module per other page, shared helpers)
//! and one style sheet. It reads everything through the admin API with the token the operator
//! signs in with (kept in sessionStorage, gone with the tab).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("assets/index.html");
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
/// What `/assets/{file}` serves: each file once, with its type. A new module is one line here.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("assets/app.js")),
    ("api.js", JS, include_str!("assets/api.js")),
    ("dom.js", JS, include_str!("assets/dom.js")),
    ("dialogs.js", JS, include_str!("assets/dialogs.js")),
    ("domains.js", JS, include_str!("assets/domains.js")),
    ("domain.js", JS, include_str!("assets/domain.js")),
    ("accounts.js", JS, include_str!("assets/accounts.js")),
    ("account.js", JS, include_str!("assets/account.js")),
    ("queue.js", JS, include_str!("assets/queue.js")),
    ("style.css", CSS, include_str!("assets/style.css")),
];
/// The admin API's description, also in the repository as `crates/server/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../openapi.yaml");

pub async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some(&(_, content_type, text)) => ([(header::CONTENT_TYPE, content_type)], text).into_response(),
        None => (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"error": "no such file"}))).into_response(),
    }
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml; charset=utf-8")], OPENAPI).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_events::Listener;

    /// A module left out of [`ASSETS`] would be a 404 that breaks the page only in a browser.
    #[test]
    fn every_asset_is_served_and_every_import_is_an_asset() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/admin/assets");
        let served = |name: &str| ASSETS.iter().any(|(n, _, _)| *n == name);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(name == "index.html" || served(&name), "{name} is in assets/ but not in ASSETS");
        }
        for (name, _, text) in ASSETS {
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let target = line.rsplit_once("from \"./").map(|(_, t)| t.trim_end_matches("\";")).unwrap_or("");
                assert!(served(target), "{name} imports {line:?}, which is not served");
            }
        }
        for reference in INDEX.split("\"/assets/").skip(1) {
            let target = reference.split('"').next().unwrap();
            assert!(served(target), "index.html names /assets/{target}, which is not served");
        }
    }

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
