//! `portcullis`: the one binary. Operator interface in DESIGN §3.
#![forbid(unsafe_code)]

mod admin;
mod init;

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
    Ban {
        #[command(subcommand)]
        action: BanAction,
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
}

/// An error for the operator: one plain sentence that says what to do.
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
    }
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
