//! `portcullis store check`: the store's integrity, checked beside a running server, with the
//! problems listed and a non-zero exit when there are any.

use crate::cli::store_access::check;
use crate::cli::units::human_size;
use crate::cli::Failure;
use clap::Subcommand;
use portcullis_config::Config;

#[derive(Subcommand)]
pub enum StoreAction {
    /// Check the store's integrity; list the problems and exit 1 if there are any
    ///
    /// SQLite's own checks (integrity_check, foreign_key_check), then Portcullis's invariants:
    /// every message has its body, of the size it says, and a summary; UIDs are unique and
    /// below their mailbox's UIDNEXT, MODSEQs at most its HIGHESTMODSEQ; every account has an
    /// INBOX and uses exactly the bytes of its messages; no body is left without a message.
    Check {
        /// SQLite's quick_check instead of the full integrity_check (which reads every index)
        #[arg(long)]
        quick: bool,
    },
}

pub fn run(config: &Config, action: StoreAction) -> Result<(), Failure> {
    let StoreAction::Check { quick } = action;
    let report = check(config, quick)?;
    let counted = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    println!(
        "Checked {}: {}, {}, {}, {} in {} ({}).",
        config.store.describe(),
        counted(report.domains, "domain", "domains"),
        counted(report.accounts, "account", "accounts"),
        counted(report.mailboxes, "mailbox", "mailboxes"),
        counted(report.messages, "message", "messages"),
        counted(report.bodies, "body", "bodies"),
        human_size(report.body_bytes)
    );
    if report.bodies_without_header_cache > 0 {
        // Tolerated by design (schema migration 5), so said, not counted as a problem.
        println!(
            "{} without a usable header cache: SEARCH reads their headers instead (slower, not a problem).",
            counted(report.bodies_without_header_cache, "body", "bodies")
        );
    }
    if report.is_ok() {
        println!("No problems found.");
        return Ok(());
    }
    let n = report.problems.len();
    let problems = if n == 1 { "problem" } else { "problems" };
    println!("{n} {problems}:");
    for problem in &report.problems {
        println!("  {problem}");
    }
    Err(Failure(format!(
        "the store has {n} {problems} (listed above); copy the data directory before changing anything, and restore the store from a backup if messages are damaged"
    )))
}
