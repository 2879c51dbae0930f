//! Sessions through the admin API as an operator of several nodes sees them: any node lists
//! every node's (or its own, with `?node=local`), by a name (`global_id`, `NODE:ID`) that
//! closes it from the admin API of any node sharing the store.
#![allow(dead_code)]

use serde_json::Value;

use super::TestServer;

/// The `global_id` of `account`'s one live session on `server` (panics unless exactly one),
/// asked of that node alone (`?node=local`).
pub fn global_session_id(server: &TestServer, account: &str) -> String {
    let (status, list) = server.api("GET", "/api/v1/sessions?node=local", None);
    assert_eq!(status, 200);
    let sessions = &list["sessions"];
    let mine: Vec<&Value> = sessions.as_array().unwrap().iter().filter(|s| s["account"] == account).collect();
    assert_eq!(mine.len(), 1, "{account}'s sessions on this node: {sessions}");
    mine[0]["global_id"].as_str().unwrap().to_string()
}

/// `DELETE /api/v1/sessions/{global_id}` on `server`, whichever node holds the session: the
/// status (204 closed, 404 no such session on its node, 202 signalled but unanswered) and the
/// body.
pub fn kill_session_from(server: &TestServer, global_id: &str) -> (u16, Value) {
    server.api("DELETE", &format!("/api/v1/sessions/{}", url_encode(global_id)), None)
}

/// Percent-encodes what a path segment cannot hold as is (a node id's colons could stay, but a
/// client is free to encode them: the server takes both).
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
