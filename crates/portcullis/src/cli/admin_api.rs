//! Calling the running server's admin API (`listen.admin`, with the admin token from the config
//! or the token file) for `status` and `ban`: one call with the server's refusals turned into
//! its error sentence, and the small JSON and URL helpers both need.

use portcullis_server::admin::client::{AdminClient, ClientError};
use serde_json::Value;

use crate::cli::runtime::block_on;

/// Calls the API; a non-2xx answer becomes the server's error sentence.
pub fn call(client: &AdminClient, method: &str, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
    let (status, json) = block_on(client.call(method, path, body.as_ref()))?;
    match status {
        200..=299 => Ok(json),
        401 => Err(ClientError::Failed(format!(
            "the admin API at {} does not accept the admin token this config names; check admin.token or admin.token_file",
            client.addr()
        ))),
        _ => Err(ClientError::Failed(
            json.get("error").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("HTTP {status}: {json}")),
        )),
    }
}

/// A JSON string, or "" when it is not one.
pub fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// `/` and the like escaped, for a path segment.
pub fn path_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
