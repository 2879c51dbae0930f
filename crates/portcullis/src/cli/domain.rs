//! `portcullis domain add|remove|list`: the domains this server receives mail for, on the
//! store directly. A new domain gets its first DKIM key pair at once (`cli::dkim`).

use clap::Subcommand;
use portcullis_config::Config;

use crate::cli::dkim;
use crate::cli::runtime::block_on;
use crate::cli::store_access::{explain, open};
use crate::cli::Failure;

#[derive(Subcommand)]
pub enum DomainAction {
    /// Add a domain, with a DKIM key pair that signs its mail (prints the records to publish)
    Add { domain: String },
    /// Remove a domain that has no accounts left
    Remove { domain: String },
    /// List the domains
    List,
}

pub fn run(config: &Config, action: DomainAction) -> Result<(), Failure> {
    let store = open(config)?;
    block_on(async {
        match action {
            DomainAction::Add { domain } => {
                store.add_domain(&domain).await.map_err(explain)?;
                println!("Added domain {}.", domain.to_ascii_lowercase());
                dkim::first_pair(&*store, &domain).await?;
            }
            DomainAction::Remove { domain } => {
                store.remove_domain(&domain).await.map_err(explain)?;
                println!("Removed domain {}.", domain.to_ascii_lowercase());
            }
            DomainAction::List => {
                for domain in store.domains().await.map_err(explain)? {
                    println!("{domain}");
                }
            }
        }
        store.close();
        Ok(())
    })
}
