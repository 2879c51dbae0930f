//! `portcullis account alias add|remove|list`: more addresses for an account, on the store
//! directly. Mail to an alias is delivered to its account, and the account may send from it;
//! a running server sees a new alias for mail at once, and for sending at the next login.

use clap::Subcommand;
use portcullis_store::{Store, StoreError};

use crate::cli::store_access::{address, explain};
use crate::cli::units::date;
use crate::cli::Failure;

#[derive(Subcommand)]
pub enum AliasAction {
    /// Make ADDRESS (in one of our domains) an alias of ACCOUNT
    Add { address: String, account: String },
    /// Remove an alias
    Remove { address: String },
    /// List the aliases, or those of one account
    List { account: Option<String> },
}

pub async fn run(store: &dyn Store, action: AliasAction) -> Result<(), Failure> {
    match action {
        AliasAction::Add { address: alias, account } => {
            let (alias, account) = (address(&alias)?, address(&account)?);
            store.add_alias(&alias, &account).await.map_err(explain)?;
            println!("Added alias {alias} of {account}: mail to it goes to {account}, who may send from it.");
        }
        AliasAction::Remove { address: alias } => {
            let alias = address(&alias)?;
            store.remove_alias(&alias).await.map_err(explain)?;
            println!("Removed alias {alias}.");
        }
        AliasAction::List { account } => {
            let account = account.as_deref().map(address).transpose()?;
            if let Some(a) = &account {
                if store.credentials(a).await.map_err(explain)?.is_none() {
                    return Err(explain(StoreError::NoSuchAccount(a.clone())));
                }
            }
            let list = store.aliases(account.as_deref()).await.map_err(explain)?;
            println!("{:<40} {:<40} created", "alias", "account");
            for a in list {
                println!("{:<40} {:<40} {}", a.address, a.account, date(a.created));
            }
        }
    }
    Ok(())
}
