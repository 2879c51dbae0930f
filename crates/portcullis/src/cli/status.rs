//! `portcullis status`: what the running server is doing (listeners, sessions, bans, the latest
//! alerts), asked of its admin API.

use portcullis_config::Config;
use portcullis_server::admin::client::{AdminClient, ClientError};

use crate::cli::admin_api::{call, text};
use crate::cli::Failure;

fn duration(seconds: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
}

/// "Certificate from the ACME CA: expires 2027-03-01T…, last renewed 2026-12-01T…".
fn acme_line(acme: &serde_json::Value) -> String {
    let at = |seconds: u64| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds)).to_string()
    };
    let mut line = match acme["not_after"].as_u64() {
        Some(not_after) => format!("Certificate from the ACME CA: expires {}", at(not_after)),
        None => "Certificate from the ACME CA: none yet".to_string(),
    };
    match acme["last_issued_ms"].as_u64() {
        Some(ms) => line.push_str(&format!(", last renewed {}", at(ms / 1000))),
        None if acme["not_after"].is_u64() => line.push_str(", loaded from the store at start"),
        None => {}
    }
    if let Some(error) = acme["last_error"].as_str() {
        line.push_str(&format!("\n  last attempt failed: {error}"));
    }
    line
}

pub fn run(config: &Config) -> Result<(), Failure> {
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
    if let Some(acme) = s.get("acme") {
        println!("{}", acme_line(acme));
    }
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
