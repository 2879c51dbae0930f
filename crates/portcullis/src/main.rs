//! `portcullis`: the one binary. Operator interface in docs/operations.md. This file parses the command
//! line and hands each command to its file in `cli/`; it does nothing else.
#![forbid(unsafe_code)]

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis_config::{CONFIG_ENV, DEFAULT_CONFIG};

use cli::account::AccountAction;
use cli::ban::BanAction;
use cli::dkim::DkimAction;
use cli::domain::DomainAction;
use cli::queue::QueueAction;
use cli::store::StoreAction;
use cli::{account, ban, check, config_file, dkim, dns, domain, init, queue, serve, status, store, Failure};

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
    /// A domain's DKIM signing keys: list them, rotate them (works beside a running server)
    Dkim {
        #[command(subcommand)]
        action: DkimAction,
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
    /// Look at and act on the outbound queue (works beside a running server)
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Audit any mail server's ports against the secure-port checklist (exit 2: --fail-on hit)
    Check(check::CheckArgs),
    /// Print the DNS records a domain needs (`dns DOMAIN`), or check them (`dns check DOMAIN`)
    Dns(dns::DnsArgs),
    /// Show what the running server is doing: listeners, sessions, bans, the latest alerts
    /// (through the admin API: needs listen.admin)
    Status,
    /// Look after the store (works beside a running server)
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
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
    let config_path = cli.config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let config = || config_file::load(&config_path);
    match cli.command {
        Command::Serve { dev } => serve::run(dev, &config_path),
        Command::Init(args) => init::init(&args).map(|_| ()),
        Command::Domain { action } => domain::run(&config()?, action),
        Command::Dkim { action } => dkim::run(&config()?, action),
        Command::Account { action } => account::run(&config()?, action),
        Command::Ban { action } => ban::run(&config()?, action),
        Command::Queue { action } => queue::run(&config()?, action),
        Command::Check(args) => check::run(args),
        Command::Dns(args) => dns::run(&config()?, args),
        Command::Status => status::run(&config()?),
        Command::Store { action } => store::run(&config()?, action),
    }
}
