//! `portcullis dkim list|rotate DOMAIN`: a domain's DKIM signing keys, on the store directly (a
//! running server picks a change up within a second); and the first key pair that
//! `domain add` and `init` give a new domain. What the keys are named and which one signs is
//! the server's (`portcullis_server::dkim`); this file writes, reads and prints.

use std::time::Duration;

use clap::Subcommand;
use portcullis_config::{normalize_domain, Config};
use portcullis_server::dkim::{add_first_pair, domain_facts, new_pair, zone_line, DEFAULT_GRACE};
use portcullis_store::{key_states, Store};

use crate::cli::runtime::block_on;
use crate::cli::store_access::{explain, open};
use crate::cli::units::{date, now};
use crate::cli::Failure;

#[derive(Subcommand)]
pub enum DkimAction {
    /// Show a domain's keys: selector, algorithm, state (next, active, retiring, retired), dates
    List { domain: String },
    /// Make a new key pair (Ed25519 and RSA-2048) that signs once --grace has passed; the pair it
    /// replaces stops signing then, stays published one more grace period, then is retired
    Rotate {
        domain: String,
        /// Time to publish the new records before they sign, e.g. 48h, 30m; 0 signs with them at once
        #[arg(long, default_value = "48h", value_parser = parse_grace)]
        grace: Duration,
    },
}

fn parse_grace(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (write e.g. 48h, 90m or 0)"))
}

pub fn run(config: &Config, action: DkimAction) -> Result<(), Failure> {
    let store = open(config)?;
    let result = block_on(async {
        match action {
            DkimAction::List { domain } => list(&*store, &domain).await,
            DkimAction::Rotate { domain, grace } => rotate(&*store, &domain, grace).await,
        }
    });
    store.close();
    result
}

fn domain_name(domain: &str) -> Result<String, Failure> {
    normalize_domain(domain).ok_or_else(|| Failure(format!("\"{domain}\" is not a domain name")))
}

/// Makes sure `domain` is one of this server's, with the same advice as everywhere else.
async fn local(store: &dyn Store, domain: &str) -> Result<String, Failure> {
    let domain = domain_name(domain)?;
    if !store.is_local_domain(&domain).await.map_err(explain)? {
        return Err(explain(portcullis_store::StoreError::NoSuchDomain(domain)));
    }
    Ok(domain)
}

async fn list(store: &dyn Store, domain: &str) -> Result<(), Failure> {
    let domain = local(store, domain).await?;
    let keys = store.dkim_keys(Some(&domain)).await.map_err(explain)?;
    if keys.is_empty() {
        println!("{domain} has no DKIM key (it was added before Portcullis made them): its mail goes out unsigned.");
        println!("Make a pair that signs at once with `portcullis dkim rotate {domain} --grace 0`, and publish the records it prints.");
        return Ok(());
    }
    let now = now();
    println!("{:<20} {:<9} {:<9} {:<21} RETIRE AT", "SELECTOR", "ALGORITHM", "STATE", "SIGNS FROM");
    for (key, state) in keys.iter().zip(key_states(&keys, now)) {
        let retire = key.retire_at.map(date).unwrap_or_else(|| "-".into());
        let (selector, algorithm, state) = (&key.selector, key.algorithm.as_str(), state.as_str());
        println!("{selector:<20} {algorithm:<9} {state:<9} {:<21} {retire}", date(key.active_from));
    }
    Ok(())
}

async fn rotate(store: &dyn Store, domain: &str, grace: Duration) -> Result<(), Failure> {
    let domain = local(store, domain).await?;
    let now = now();
    let grace = grace.as_secs() as i64;
    let existing = store.dkim_keys(Some(&domain)).await.map_err(explain)?;
    let replaced: Vec<&str> = existing
        .iter()
        .zip(key_states(&existing, now))
        .filter(|(k, state)| state.is_published() && k.retire_at.is_none())
        .map(|(k, _)| k.selector.as_str())
        .collect();
    let pair = new_pair(&existing, now, now + grace).map_err(|e| Failure(e.to_string()))?;
    let selectors: Vec<String> = pair.iter().map(|k| k.selector.clone()).collect();
    // The old pair signs until the new one starts, then stays published one more grace period.
    let retire_at = (!replaced.is_empty()).then_some(now + 2 * grace);
    store.add_dkim_keys(&domain, pair, retire_at).await.map_err(explain)?;

    println!("New DKIM keys for {domain}: {} (Ed25519) and {} (RSA-2048).", selectors[0], selectors[1]);
    if grace == 0 {
        println!("They sign from now. Publish their records:");
    } else {
        println!("Publish their records now; they sign from {}:", date(now + grace));
    }
    print_records(store, &domain, &selectors).await?;
    match retire_at {
        None => {}
        Some(_) if grace == 0 => {
            println!("The keys they replace ({}) were retired at once: remove their records.", replaced.join(", "))
        }
        Some(at) => println!(
            "The keys they replace ({}) stop signing then, stay published until {}, and are retired after that.",
            replaced.join(", "),
            date(at)
        ),
    }
    Ok(())
}

/// The zone lines of `selectors` (published keys of `domain`).
async fn print_records(store: &dyn Store, domain: &str, selectors: &[String]) -> Result<(), Failure> {
    let (facts, errors) = domain_facts(store, domain, now()).await.map_err(explain)?;
    for key in facts.dkim.iter().filter(|k| selectors.contains(&k.selector)) {
        println!("{}", zone_line(domain, key));
    }
    for error in errors {
        eprintln!("warning: {error}");
    }
    Ok(())
}

/// A new domain's first key pair, signing at once; prints its records. For `domain add` and
/// `init`, after the domain was added.
pub async fn first_pair(store: &dyn Store, domain: &str) -> Result<(), Failure> {
    let domain = domain_name(domain)?;
    let selectors = add_first_pair(store, &domain, now()).await.map_err(Failure)?;
    println!(
        "DKIM keys {} (Ed25519) and {} (RSA-2048) sign {domain}'s mail; publish their records:",
        selectors[0], selectors[1]
    );
    print_records(store, &domain, &selectors).await?;
    println!(
        "(`portcullis dns {domain}` prints every record the domain needs; `portcullis dkim rotate {domain}` replaces the keys, the new ones signing {} hours later.)",
        DEFAULT_GRACE.as_secs() / 3600
    );
    Ok(())
}
