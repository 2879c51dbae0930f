//! `portcullis`: the one binary. Operator interface in DESIGN §3.
#![forbid(unsafe_code)]

mod admin;
mod init;
mod remote;
mod second;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis_config::{Config, CONFIG_ENV, DEFAULT_CONFIG};

#[derive(Parser)]
#[command(name = "portcullis", version, about = "A mail server whose ports are locked down by default")]
struct Cli {
    /// The config file [default: ./portcullis.toml]
    #[arg(long, global = true, env = CONFIG_ENV, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every configured listener in the foreground (SIGTERM drains, SIGHUP reloads certificates)
    Serve {
        /// Use (creating it if needed) a loopback-only instance in ./portcullis-dev
        #[arg(long)]
        dev: bool,
    },
    /// Write a config, a data directory, a self-signed certificate and a first account
    Init(init::InitArgs),
    /// Manage the domains this server receives mail for
    Domain {
        #[command(subcommand)]
        action: DomainAction,
    },
    /// Manage mail accounts
    Account {
        #[command(subcommand)]
        action: AccountAction,
    },
    /// Ban networks, lift bans, list them (takes effect at once on a running server)
    ///
    /// Goes through the running server's admin API (listen.admin, with the admin token); when no
    /// admin listener is configured, or none answers, it works on the store directly, which a
    /// running server follows within a second.
    Ban {
        #[command(subcommand)]
        action: BanAction,
    },
    /// Audit any mail server's ports against the secure-port checklist (exit 2: --fail-on hit)
    Check {
        /// The host name or address to audit
        host: String,
        /// Ports to probe, as PORT or PORT/SERVICE (smtp, submission, submissions, imap, imaps,
        /// pop3, pop3s), comma-separated [default: 25,465,587,993,995,110,143]
        #[arg(long, value_delimiter = ',', value_name = "PORTS")]
        ports: Vec<String>,
        /// Also trust the CA certificates (or pinned certificates) in this PEM file
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
        /// Exit with status 2 if a finding is at least this severe: info, low, medium, high, critical
        #[arg(long, value_name = "SEVERITY")]
        fail_on: Option<String>,
        /// How long to wait for each connection and each answer
        #[arg(long, default_value = "4s", value_name = "DURATION")]
        timeout: String,
        /// The name clients connect to, for SNI and the certificate check [default: HOST unless
        /// it is an address]
        #[arg(long, value_name = "NAME")]
        server_name: Option<String>,
    },
    /// Show what the running server is doing: listeners, sessions, bans, the latest alerts
    /// (through the admin API: needs listen.admin)
    Status,
    /// Look after the store (works beside a running server)
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
}

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

#[derive(Subcommand)]
enum BanAction {
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

#[derive(Subcommand)]
enum DomainAction {
    /// Add a domain
    Add { domain: String },
    /// Remove a domain that has no accounts left
    Remove { domain: String },
    /// List the domains
    List,
}

#[derive(Subcommand)]
enum AccountAction {
    /// Add an account (its domain must exist); prints a generated password unless one is given
    Add {
        /// The address, e.g. alice@example.org
        user: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
        /// Storage allowance, e.g. "5GiB" or "unlimited" [default: store.default_quota]
        #[arg(long, value_name = "SIZE")]
        quota: Option<String>,
    },
    /// Remove an account and all of its mail
    Remove { user: String },
    /// List the accounts
    List,
    /// Set a new password; prints a generated one unless one is given
    Passwd {
        user: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set an account's storage allowance: a size, "unlimited", or "default"
    Quota { user: String, size: String },
    /// App passwords: one per mail client, limited to some protocols, revocable one by one
    AppPassword {
        #[command(subcommand)]
        action: AppPasswordAction,
    },
    /// A second factor (TOTP): with it on, mail clients need app passwords
    Totp {
        #[command(subcommand)]
        action: TotpAction,
    },
}

#[derive(Subcommand)]
pub enum AppPasswordAction {
    /// Create one; prints the generated password once
    Add {
        user: String,
        /// What it is for, e.g. "phone" or "laptop mutt"
        #[arg(long)]
        name: String,
        /// The protocols it opens, comma-separated: imap, pop3, smtp [default: all three]
        #[arg(long, value_delimiter = ',', value_name = "PROTOCOLS")]
        scope: Vec<String>,
        /// How long it lasts, e.g. "90d" [default: until revoked]
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Show the account's app passwords: scope, status, created, expiry, last use and address
    List { user: String },
    /// Revoke one at once; sessions opened with it are closed
    Revoke { user: String, name: String },
}

#[derive(Subcommand)]
pub enum TotpAction {
    /// Show a QR code to scan, confirm with one code, and print recovery codes
    Enable { user: String },
    /// Turn TOTP off (the password opens mail clients again)
    Disable { user: String },
    /// Read the password and a code (or a recovery code) from standard input, one per line,
    /// and say whether they open the account
    Check { user: String },
}

/// An error for the operator: one plain sentence that says what to do.
#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    // Everything this process creates (store, keys, config) is for its owner alone.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let config_path = cli.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    match cli.command {
        Command::Serve { dev: true } => {
            let config = init::dev_instance(Path::new(init::DEV_DIR))?;
            portcullis_server::serve(config).map_err(Failure)
        }
        Command::Serve { dev: false } => {
            let config = load(&config_path)?;
            portcullis_server::serve(config).map_err(Failure)
        }
        Command::Init(args) => init::init(&args).map(|_| ()),
        Command::Domain { action } => admin::domain(&load(&config_path)?, action),
        Command::Account { action } => admin::account(&load(&config_path)?, action),
        Command::Ban { action } => admin::ban(&load(&config_path)?, action),
        Command::Status => remote::status(&load(&config_path)?),
        Command::Store { action } => admin::store(&load(&config_path)?, action),
        Command::Check { host, ports, ca, json, fail_on, timeout, server_name } => {
            check(host, ports, ca, json, fail_on, timeout, server_name)
        }
    }
}

/// `check`: needs no config; prints the report, and exits 2 when `--fail-on` is met.
fn check(
    host: String,
    ports: Vec<String>,
    ca: Option<PathBuf>,
    json: bool,
    fail_on: Option<String>,
    timeout: String,
    server_name: Option<String>,
) -> Result<(), Failure> {
    use std::io::Write as _;
    let targets = ports.iter().map(|p| p.parse()).collect::<Result<Vec<portcullis_check::Target>, _>>()?;
    let fail_on = fail_on.map(|s| s.parse::<portcullis_check::Severity>()).transpose()?;
    let timeout = humantime::parse_duration(&timeout)
        .map_err(|e| Failure(format!("--timeout {timeout:?} is not a duration like \"4s\": {e}")))?;
    let options = portcullis_check::Options { host, targets, ca, timeout, server_name };
    let report = portcullis_check::audit_blocking(&options)?;
    let text = if json { report.to_json() } else { report.to_table() };
    println!("{}", text.trim_end());
    if let Some(threshold) = fail_on.filter(|t| report.fails(*t)) {
        let count = report.findings.iter().filter(|f| f.severity >= threshold).count();
        eprintln!("{count} finding(s) at or above {}", threshold.name());
        let _ = std::io::stdout().flush();
        std::process::exit(2);
    }
    Ok(())
}

fn load(path: &Path) -> Result<Config, Failure> {
    if !path.exists() {
        return Err(Failure(format!(
            "there is no config file at {}; create one with `portcullis init` (or try `portcullis serve --dev`), or point --config or ${CONFIG_ENV} at yours",
            path.display()
        )));
    }
    Config::load(path).map_err(Failure::from)
}
