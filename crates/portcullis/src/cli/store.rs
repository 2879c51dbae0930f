//! `portcullis store check`: the store's integrity, checked beside a running server, with the
//! problems listed and a non-zero exit when there are any. `portcullis store migrate`: the store
//! copied into another, empty one (SQLite to PostgreSQL and back), with progress per table and
//! both ends checked and compared afterwards.

use std::time::{Duration, Instant};

use crate::cli::store_access::{check, migrate};
use crate::cli::units::human_size;
use crate::cli::Failure;
use clap::Subcommand;
use portcullis_config::Config;
use portcullis_store_backends::migrate::Progress;
use portcullis_store_backends::CheckReport;

/// How often a long table's progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

#[derive(Subcommand)]
pub enum StoreAction {
    /// Check the store's integrity; list the problems and exit 1 if there are any
    ///
    /// On SQLite, SQLite's own checks (integrity_check, foreign_key_check) first; on both
    /// backends Portcullis's invariants: every message has its body, of the size it says, and a
    /// summary; UIDs are unique and below their mailbox's UIDNEXT, MODSEQs at most its
    /// HIGHESTMODSEQ; every account has an INBOX and uses exactly the bytes of its messages; no
    /// body is left without a message; on PostgreSQL, every id sequence past its table's ids.
    Check {
        /// SQLite's quick_check instead of the full integrity_check (which reads every index);
        /// no difference on PostgreSQL
        #[arg(long)]
        quick: bool,
    },
    /// Copy the store into another, empty one: sqlite:PATH or postgres://USER@HOST/DATABASE
    ///
    /// Everything is copied with its ids, UIDVALIDITY, UIDs, MODSEQs, flags, credentials,
    /// bans, queue (leases cleared) and keys, from one snapshot of the source: a running server
    /// may keep running, but mail arriving after the snapshot is not copied (stop the server
    /// for the final copy; see docs/operations.md). Both ends are checked and compared
    /// afterwards; any difference exits 1.
    Migrate {
        /// The store to copy (default: store.url of the configuration)
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// The empty store to copy into (a PostgreSQL database, or a SQLite file)
        #[arg(long, value_name = "URL")]
        to: String,
        /// SQLite's quick_check instead of integrity_check in the checks afterwards
        #[arg(long)]
        quick: bool,
    },
}

pub fn run(config: &Config, action: StoreAction) -> Result<(), Failure> {
    match action {
        StoreAction::Check { quick } => run_check(config, quick),
        StoreAction::Migrate { from, to, quick } => run_migrate(config, from.as_deref(), &to, quick),
    }
}

fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "2 domains, 3 accounts, …": what a check counted.
fn contents(report: &CheckReport) -> String {
    format!(
        "{}, {}, {}, {} in {} ({})",
        counted(report.domains, "domain", "domains"),
        counted(report.accounts, "account", "accounts"),
        counted(report.mailboxes, "mailbox", "mailboxes"),
        counted(report.messages, "message", "messages"),
        counted(report.bodies, "body", "bodies"),
        human_size(report.body_bytes)
    )
}

fn run_migrate(config: &Config, from: Option<&str>, to: &str, quick: bool) -> Result<(), Failure> {
    let mut last_print = Instant::now();
    let mut progress = move |p: Progress| {
        // Every table once when it is done; a long one also every PROGRESS_EVERY on the way.
        if p.done == p.total || last_print.elapsed() >= PROGRESS_EVERY {
            println!("{} {}/{}", p.table, p.done, p.total);
            last_print = Instant::now();
        }
    };
    let copy = migrate(config, from, to, quick, &mut progress)?;
    println!("Copied {} to {}.", copy.from, copy.to);
    println!("Source now: {}.", contents(&copy.report.source));
    println!("Destination: {}.", contents(&copy.report.destination));
    let differences = copy.report.differences();
    if differences.is_empty() {
        println!("Both ends agree table by table, and store check found no problems on either.");
        return Ok(());
    }
    println!("{}:", counted(differences.len() as u64, "difference", "differences"));
    for difference in &differences {
        println!("  {difference}");
    }
    Err(Failure(
        "the copy differs from the source (listed above); do not switch store.url to it: find the cause, then migrate again into a new, empty database".into(),
    ))
}

fn run_check(config: &Config, quick: bool) -> Result<(), Failure> {
    let report = check(config, quick)?;
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
