//! `portcullis status` and `portcullis ban …` through the running server's admin API
//! (`listen.admin`, with the admin token from the config or the token file).

use portcullis_config::Config;
use portcullis_server::admin::client::{AdminClient, ClientError};
use serde_json::{json, Value};

use crate::admin::{block_on, print_bans, BanLine};
use crate::{BanAction, Failure};

/// Calls the API; a non-2xx answer becomes the server's error sentence.
fn call(client: &AdminClient, method: &str, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
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

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn duration(seconds: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
}

pub fn status(config: &Config) -> Result<(), Failure> {
    let client = AdminClient::from_config(config).map_err(Failure)?.ok_or_else(|| {
        Failure(
            "`status` asks the running server through its admin listener, and listen.admin is not set; add admin = [\"127.0.0.1:8080\"] to [listen] and restart the server"
                .into(),
        )
    })?;
    let s = call(&client, "GET", "/api/v1/status", None).map_err(|e| match e {
        ClientError::Unreachable(m) => Failure(format!("{m}; is the server running (`portcullis serve`)?")),
        ClientError::Failed(m) => Failure(m),
    })?;
    println!(
        "Portcullis {} on {}, up {}",
        text(&s["version"]),
        text(&s["hostname"]),
        duration(s["uptime_seconds"].as_u64().unwrap_or(0))
    );
    println!("Listeners:");
    for l in s["listeners"].as_array().into_iter().flatten() {
        let tls = if l["tls"].as_bool() == Some(true) { "" } else { "  (no TLS)" };
        println!("  {:<12} {}{tls}", text(&l["name"]), text(&l["addr"]));
    }
    let by: Vec<String> = s["sessions"]["by_listener"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(listener, n)| format!("{listener} {n}"))
        .collect();
    println!("Sessions: {} ({})", s["sessions"]["total"], by.join(", "));
    println!("Bans in force: {}", s["bans"]["active"]);
    let recent = s["alerts"]["recent"].as_array().cloned().unwrap_or_default();
    println!("Alerts: {} unacknowledged", s["alerts"]["unacknowledged"]);
    for a in &recent {
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(a["ts_ms"].as_u64().unwrap_or(0)),
        );
        let seen = if a["acknowledged"].as_bool() == Some(true) { " (seen)" } else { "" };
        println!("  {when} {:<8} {:<22} {}{seen}", text(&a["severity"]), text(&a["kind"]), text(&a["message"]));
    }
    Ok(())
}

/// `/` and the like in a path segment.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Does `action` through the admin API. `Ok(Some(action))` hands it back to be done on the
/// store: no admin listener is configured, or none answers.
pub fn ban(config: &Config, action: BanAction) -> Result<Option<BanAction>, Failure> {
    let client = match AdminClient::from_config(config) {
        Ok(Some(client)) => client,
        Ok(None) => return Ok(Some(action)),
        Err(e) => {
            eprintln!("note: {e}; working on the store directly");
            return Ok(Some(action));
        }
    };
    let result = match &action {
        BanAction::List { all } => call(&client, "GET", &format!("/api/v1/bans?all={all}"), None).map(|bans| {
            let bans = bans.as_array().cloned().unwrap_or_default();
            print_bans(bans.iter().map(|b| BanLine {
                network: text(&b["network"]),
                until: b["until"].as_i64(),
                by: text(&b["origin"]),
                offence: b["offence"].as_u64().unwrap_or(1) as u32,
                reason: text(&b["reason"]),
            }));
        }),
        BanAction::Add { network, duration, reason } => {
            let mut body = json!({ "network": network, "reason": reason });
            if let Some(d) = duration {
                body["duration"] = json!(d);
            }
            call(&client, "POST", "/api/v1/bans", Some(body)).map(|ban| {
                let permanent = if ban["until"].is_null() { " permanently" } else { "" };
                println!("Banned {}{permanent}.", text(&ban["network"]));
            })
        }
        BanAction::Remove { network } => {
            let net = portcullis_config::parse_network(network).map_err(Failure)?;
            match call(&client, "DELETE", &format!("/api/v1/bans/{}", encode(&net.to_string())), None) {
                Err(ClientError::Failed(m)) if m.starts_with("there is no ban") => {
                    Err(ClientError::Failed(format!("{m} (see `portcullis ban list`)")))
                }
                other => other.map(|_| println!("Lifted the ban on {net}.")),
            }
        }
    };
    match result {
        Ok(()) => Ok(None),
        Err(ClientError::Unreachable(m)) => {
            eprintln!("note: {m}; working on the store directly (a running server follows it within a second)");
            Ok(Some(action))
        }
        Err(ClientError::Failed(m)) => Err(Failure(m)),
    }
}
