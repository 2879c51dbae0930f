//! `portcullis status`: what the running server is doing (listeners, sessions, bans, the latest
//! alerts), asked of its admin API.

use portcullis_config::Config;
use portcullis_server::admin::client::{AdminClient, ClientError};

use crate::cli::admin_api::{call, text};
use crate::cli::Failure;

fn duration(seconds: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
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
