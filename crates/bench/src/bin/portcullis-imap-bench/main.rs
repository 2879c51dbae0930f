//! `portcullis-imap-bench`: IMAP over implicit TLS, measured the same way against any server
//! (docs/benchmarks.md, "IMAP"). Subcommands:
//!
//! - `corpus`: writes a deterministic corpus of realistic messages as a Maildir;
//! - `load`: APPENDs a Maildir to an account (LITERAL+, pipelined, several connections);
//! - `large`: SELECT, FETCH 1:* (FLAGS), UID FETCH of the last 100 (ENVELOPE BODYSTRUCTURE)
//!   and a header SEARCH on a large mailbox, each timed and checked;
//! - `mix`: N clients looping LOGIN, SELECT, FETCH, UID STORE, LOGOUT for D seconds;
//! - `idle`: how long after an APPEND's OK an IDLEing client hears `* n EXISTS`.
#![forbid(unsafe_code)]

mod corpus;
mod idle;
mod large;
mod load;
mod mix;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use portcullis_bench::{Target, TlsArgs};

#[derive(Parser)]
#[command(name = "portcullis-imap-bench", version, about = "IMAP benchmark over implicit TLS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the corpus as a Maildir (DIR/cur)
    Corpus(corpus_cmd::CorpusArgs),
    /// APPEND every message of a Maildir to INBOX
    Load(load::LoadArgs),
    /// Time SELECT, FETCH FLAGS, UID FETCH ENVELOPE BODYSTRUCTURE and header SEARCH on a large mailbox
    Large(large::LargeArgs),
    /// N concurrent clients: LOGIN, SELECT, FETCH, UID STORE, LOGOUT, over and over
    Mix(mix::MixArgs),
    /// IDLE push latency: APPEND from one client, EXISTS at another
    Idle(idle::IdleArgs),
}

/// Where the server is and how to log in.
#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The IMAPS listener
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:993")]
    server: String,
    #[command(flatten)]
    tls: TlsArgs,
    /// The password of every account used
    #[arg(long, env = "BENCH_PASSWORD", hide_env_values = true)]
    password: String,
    /// Seconds to wait for any one command
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

impl ServerArgs {
    async fn target(&self) -> Result<Target, String> {
        Target::resolve(&self.server, self.tls.tls_name.as_deref(), self.tls.ca.as_deref()).await
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }
}

mod corpus_cmd {
    use super::*;

    #[derive(Args)]
    pub struct CorpusArgs {
        /// The Maildir to write (its cur/, new/ and tmp/ are created)
        #[arg(long, value_name = "DIR")]
        pub maildir: PathBuf,
        /// Messages to write
        #[arg(long, default_value_t = 100_000)]
        pub count: usize,
        /// The corpus seed (same seed, same bytes)
        #[arg(long, default_value_t = 1)]
        pub seed: u64,
        /// The recipient in the To header
        #[arg(long, default_value = "bench@bench.test")]
        pub to: String,
    }

    pub fn run(args: CorpusArgs) -> Result<bool, String> {
        let started = std::time::Instant::now();
        let total = corpus::write_maildir(&args.maildir, args.seed, args.count, "Bench User", &args.to)
            .map_err(|e| format!("{}: {e}", args.maildir.display()))?;
        eprintln!(
            "wrote {} messages, {:.1} MiB (mean {} bytes), seed {}, in {:.1} s",
            args.count,
            total as f64 / 1048576.0,
            total / args.count.max(1) as u64,
            args.seed,
            started.elapsed().as_secs_f64()
        );
        Ok(true)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Corpus(args) => corpus_cmd::run(args),
        command => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let runtime = match runtime {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(async move {
                match command {
                    Command::Load(args) => load::run(args).await,
                    Command::Large(args) => large::run(args).await,
                    Command::Mix(args) => mix::run(args).await,
                    Command::Idle(args) => idle::run(args).await,
                    Command::Corpus(_) => unreachable!(),
                }
            })
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Prints the report: JSON, or its text form.
fn print_report(json: bool, report: &serde_json::Value, text: String) {
    if json {
        println!("{report}");
    } else {
        print!("{text}");
    }
}
