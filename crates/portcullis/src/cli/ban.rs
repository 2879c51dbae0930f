//! `portcullis ban list|add|remove`. Through the running server's admin API when there is one
//! (the ban takes effect at once, and the server records and audits it); otherwise on the store,
//! which a running server follows within a second. [`run`] is the one place that chooses.

use clap::Subcommand;
use portcullis_config::{parse_duration, parse_network, Config};
use portcullis_guard::{Ban, Policy};
use portcullis_server::admin::client::{AdminClient, ClientError};
use portcullis_server::bans::to_stored;
use serde_json::json;

use crate::cli::admin_api::{call, path_segment, text};
use crate::cli::runtime::block_on;
use crate::cli::store_access::{explain, open};
use crate::cli::units::{date, now};
use crate::cli::Failure;

#[derive(Subcommand)]
pub enum BanAction {
    /// List the bans in force (--all: also expired ones, the offence history)
    List {
        #[arg(long)]
        all: bool,
    },
    /// Ban an address or network, e.g. 192.0.2.7 or 2001:db8::/48
    Add {
        network: String,
        /// How long, e.g. "1h" or "7d" [default: permanent]
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// Why, for the list and the log
        #[arg(long, default_value = "banned by an administrator")]
        reason: String,
    },
    /// Lift the ban on exactly this network
    Remove { network: String },
}

/// Through the admin API when one is configured and answers; otherwise on the store.
pub fn run(config: &Config, action: BanAction) -> Result<(), Failure> {
    match AdminClient::from_config(config) {
        Ok(None) => {}
        Err(e) => eprintln!("note: {e}; working on the store directly"),
        Ok(Some(client)) => match through_api(&client, &action) {
            Ok(()) => return Ok(()),
            Err(ClientError::Unreachable(m)) => {
                eprintln!("note: {m}; working on the store directly (a running server follows it within a second)")
            }
            Err(ClientError::Failed(m)) => return Err(Failure(m)),
        },
    }
    on_store(config, action)
}

/// The running server decides (trusted networks, durations) and answers with the ban it made.
fn through_api(client: &AdminClient, action: &BanAction) -> Result<(), ClientError> {
    match action {
        BanAction::List { all } => call(client, "GET", &format!("/api/v1/bans?all={all}"), None).map(|bans| {
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
            call(client, "POST", "/api/v1/bans", Some(body)).map(|ban| {
                let permanent = if ban["until"].is_null() { " permanently" } else { "" };
                println!("Banned {}{permanent}.", text(&ban["network"]));
            })
        }
        BanAction::Remove { network } => {
            let net = parse_network(network).map_err(ClientError::Failed)?;
            match call(client, "DELETE", &format!("/api/v1/bans/{}", path_segment(&net.to_string())), None) {
                Err(ClientError::Failed(m)) if m.starts_with("there is no ban") => {
                    Err(ClientError::Failed(format!("{m} (see `portcullis ban list`)")))
                }
                other => other.map(|_| println!("Lifted the ban on {net}.")),
            }
        }
    }
}

/// No server to ask: the same decisions, asked of the guard, and the ban written to the store.
fn on_store(config: &Config, action: BanAction) -> Result<(), Failure> {
    let store = open(config)?;
    let now = now();
    block_on(async {
        match action {
            BanAction::List { all } => {
                let bans = store.bans().await.map_err(explain)?;
                print_bans(bans.iter().filter(|b| all || b.until.is_none_or(|u| u > now)).map(|b| BanLine {
                    network: &b.network,
                    until: b.until,
                    by: if b.manual { "admin" } else { "auto" },
                    offence: b.offence,
                    reason: &b.reason,
                }));
            }
            BanAction::Add { network, duration, reason } => {
                let net = parse_network(&network).map_err(Failure)?;
                // The guard owns "never ban a trusted network"; the CLI only asks it.
                if !Policy::from_config(config).may_ban(&net) {
                    return Err(Failure(format!(
                        "{net} overlaps firewall.trusted_networks, which are never banned; remove it from there first"
                    )));
                }
                let until = match duration {
                    Some(d) => Some(
                        std::time::SystemTime::now()
                            + parse_duration(&d).map_err(|e| Failure(format!("--for: {e}")))?,
                    ),
                    None => None,
                };
                store.put_ban(to_stored(&Ban::manual(net, until, &reason))).await.map_err(explain)?;
                println!("Banned {net}{}.", if until.is_some() { "" } else { " permanently" });
            }
            BanAction::Remove { network } => {
                let net = parse_network(&network).map_err(Failure)?;
                if !store.delete_ban(&net.to_string()).await.map_err(explain)? {
                    return Err(Failure(format!("there is no ban on exactly {net} (see `portcullis ban list`)")));
                }
                println!("Lifted the ban on {net}.");
            }
        }
        store.close();
        Ok(())
    })
}

/// One line of `ban list`, from the API's JSON or from the store.
struct BanLine<'a> {
    network: &'a str,
    until: Option<i64>,
    by: &'a str,
    offence: u32,
    reason: &'a str,
}

fn print_bans<'a>(bans: impl Iterator<Item = BanLine<'a>>) {
    println!("{:<32} {:<22} {:<6} {:>7}  reason", "network", "until", "by", "offence");
    for b in bans {
        let until = match b.until {
            None => "permanent".to_string(),
            Some(u) => date(u),
        };
        println!("{:<32} {:<22} {:<6} {:>7}  {}", b.network, until, b.by, b.offence, b.reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> Config {
        let text = "hostname = \"mail.example.org\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n\
                    [firewall]\ntrusted_networks = [\"192.0.2.5\"]\n";
        Config::parse(&dir.join("portcullis.toml"), text).unwrap()
    }

    fn stored(config: &Config) -> Vec<portcullis_store::StoredBan> {
        let store = open(config).unwrap();
        let bans = block_on(store.bans()).unwrap();
        store.close();
        bans
    }

    #[test]
    fn on_the_store_the_guard_refuses_trusted_networks_and_a_manual_ban_is_written() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let config = config(dir.path());
        let add = |network: &str, duration: Option<&str>| BanAction::Add {
            network: network.into(),
            duration: duration.map(str::to_string),
            reason: "test".into(),
        };

        let refused = on_store(&config, add("192.0.2.0/24", None)).unwrap_err();
        assert!(refused.0.contains("firewall.trusted_networks"), "{}", refused.0);
        assert!(stored(&config).is_empty());

        on_store(&config, add("198.51.100.7", Some("1h"))).unwrap();
        let bans = stored(&config);
        assert_eq!(bans.len(), 1);
        let ban = &bans[0];
        assert_eq!((ban.network.as_str(), ban.manual, ban.offence), ("198.51.100.7/32", true, 1));
        assert!(ban.until.is_some_and(|u| (3590..=3610).contains(&(u - ban.created))), "{:?}", ban.until);

        on_store(&config, BanAction::Remove { network: "198.51.100.7".into() }).unwrap();
        assert!(stored(&config).is_empty());
        assert!(on_store(&config, BanAction::Remove { network: "198.51.100.7".into() }).is_err());
    }
}
