//! `portcullis dns DOMAIN` prints every DNS record the domain needs, ready to paste into a
//! zone; `portcullis dns check DOMAIN` looks each one up and prints one line per record:
//! ok, missing or wrong, with the record to publish (exit 1 when any needs attention). The
//! records and the check are portcullis-discovery's; this file reads the facts from the
//! config and the store (the DKIM keys not yet retired) and prints.

use clap::Subcommand;
use portcullis_config::{normalize_domain, Config};
use portcullis_discovery::{server_facts, Plan};
use portcullis_dns::{Resolver, Servers};
use portcullis_server::dkim::domain_facts;

use crate::cli::runtime::block_on;
use crate::cli::store_access::{explain, open};
use crate::cli::units::now;
use crate::cli::Failure;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DnsArgs {
    #[command(subcommand)]
    action: Option<DnsAction>,
    /// The domain whose records to print
    domain: Option<String>,
}

#[derive(Subcommand)]
pub enum DnsAction {
    /// Look the records up and say what is missing or wrong, with the fix (exit 1 if any)
    Check {
        domain: String,
        /// Ask this DNS server (IP or IP:port; repeat for several) instead of the config's `[dns]` servers
        #[arg(long = "dns-server", value_name = "ADDR")]
        dns_servers: Vec<String>,
    },
}

pub fn run(config: &Config, args: DnsArgs) -> Result<(), Failure> {
    match (args.action, args.domain) {
        (Some(DnsAction::Check { domain, dns_servers }), _) => check(config, &domain, &dns_servers),
        (None, Some(domain)) => {
            print!("{}", plan(config, &domain)?.zone_text());
            Ok(())
        }
        (None, None) => Err(Failure(
            "name the domain: `portcullis dns example.org` prints its records, `portcullis dns check example.org` checks them"
                .into(),
        )),
    }
}

fn check(config: &Config, domain: &str, dns_servers: &[String]) -> Result<(), Failure> {
    let plan = plan(config, domain)?;
    // The `[dns]` servers of the config, unless the command line names others.
    let mut settings = portcullis_server::resolver::settings(&config.dns);
    if !dns_servers.is_empty() {
        settings.servers = Servers::parse(dns_servers).map_err(|e| Failure(format!("--dns-server: {e}")))?;
    }
    let findings = block_on(async {
        let resolver = Resolver::new(&settings).map_err(|e| Failure(e.to_string()))?;
        Ok::<_, Failure>(portcullis_discovery::check(&resolver, &plan, &config.hostname).await)
    })?;
    for note in &plan.notes {
        println!("note     {note}");
    }
    for finding in &findings {
        println!("{}", finding.line());
    }
    let attention = findings.iter().filter(|f| !f.is_ok()).count();
    if attention > 0 {
        return Err(Failure(format!(
            "{attention} of {} records for {} are missing, wrong or could not be checked; publish the records above and check again",
            findings.len(),
            plan.domain
        )));
    }
    println!("All {} records for {} are in place.", findings.len(), plan.domain);
    Ok(())
}

/// The records for `domain`, which must be one of this server's, its published DKIM keys
/// among them.
fn plan(config: &Config, domain: &str) -> Result<Plan, Failure> {
    let domain = normalize_domain(domain).ok_or_else(|| Failure(format!("\"{domain}\" is not a domain name")))?;
    let store = open(config)?;
    let facts = block_on(async {
        let facts = match store.is_local_domain(&domain).await.map_err(explain)? {
            true => Some(domain_facts(&*store, &domain, now()).await.map_err(explain)?),
            false => None,
        };
        store.close();
        Ok::<_, Failure>(facts)
    })?;
    let Some((facts, unreadable)) = facts else {
        return Err(Failure(format!(
            "{domain} is not a domain of this server; add it first with `portcullis domain add {domain}`"
        )));
    };
    for key in unreadable {
        eprintln!("warning: a stored DKIM key cannot be read, so its record is not listed: {key}");
    }
    Ok(portcullis_discovery::plan(&server_facts(config), &facts))
}
