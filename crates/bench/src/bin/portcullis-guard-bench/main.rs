//! `portcullis-guard-bench`: the guard's benchmarks (docs/benchmarks.md, "Guard"), over real TLS,
//! with IMAP LOGIN and SMTP AUTH PLAIN, from many loopback source addresses (every address of
//! 127.0.0.0/8 is loopback). Subcommands:
//!
//! - `storm`: the owner's login latency on an idle server, under a credential-stuffing storm
//!   and after it; attacker successes (must be 0), bans, the server's memory;
//! - `enumeration`: the time to refuse an unknown user against a wrong password;
//! - `accept`: the time from connect to greeting (run against a store holding many bans);
//! - `flood`: the owner's login latency while silent connections try to hold every slot.
#![forbid(unsafe_code)]

mod accept;
mod client;
mod enumeration;
mod flood;
mod procfs;
mod storm;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use portcullis_bench::stats::percentile;
use portcullis_bench::{Target, TlsArgs};
use serde_json::{json, Value};

use crate::client::Servers;

#[derive(Parser)]
#[command(name = "portcullis-guard-bench", version, about = "Brute-force and enumeration benchmarks over implicit TLS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The owner's login latency, idle and under a credential-stuffing storm
    Storm(storm::StormArgs),
    /// Time to refuse an unknown user against a wrong password
    Enumeration(enumeration::EnumArgs),
    /// Time from connect to greeting, one connection after another
    Accept(accept::AcceptArgs),
    /// The owner's login latency while silent connections try to hold every slot
    Flood(flood::FloodArgs),
}

/// Where the listeners are and how to trust them.
#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The IMAPS listener (IMAP LOGIN)
    #[arg(long, value_name = "HOST:PORT")]
    imaps: Option<String>,
    /// The SMTPS listener (SMTP AUTH PLAIN)
    #[arg(long, value_name = "HOST:PORT")]
    smtps: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    /// Seconds to wait for any one step (connect, handshake, greeting, an answer)
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

impl ServerArgs {
    async fn servers(&self) -> Result<Servers, String> {
        let target = |server: &Option<String>| {
            let server = server.clone();
            async move {
                match server {
                    Some(s) => {
                        Target::resolve(&s, self.tls.tls_name.as_deref(), self.tls.ca.as_deref()).await.map(Some)
                    }
                    None => Ok(None),
                }
            }
        };
        Ok(Servers {
            imap: target(&self.imaps).await?,
            smtp: target(&self.smtps).await?,
            timeout: Duration::from_secs(self.timeout.max(1)),
        })
    }
}

/// n, p50, p90, p99, max and mean in milliseconds (null figures when there is no sample).
pub fn latency_figures(samples: &[Duration]) -> Value {
    if samples.is_empty() {
        return json!({"n": 0, "p50": null, "p90": null, "p99": null, "max": null, "mean": null});
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let mean = sorted.iter().sum::<Duration>() / sorted.len() as u32;
    json!({
        "n": sorted.len(),
        "min": ms(sorted[0]),
        "p50": ms(percentile(&sorted, 50.0)),
        "p90": ms(percentile(&sorted, 90.0)),
        "p99": ms(percentile(&sorted, 99.0)),
        "max": ms(sorted[sorted.len() - 1]),
        "mean": ms(mean),
    })
}

pub use portcullis_bench::stats::ms;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Storm(args) => {
            let json = args.server.json;
            servers(&args.server).and_then(|servers| storm::run(args, servers)).map(|r| (json, r))
        }
        Command::Flood(args) => {
            let json = args.server.json;
            servers(&args.server).and_then(|servers| flood::run(args, servers)).map(|r| (json, r))
        }
        Command::Accept(args) => {
            let json = args.server.json;
            runtime()
                .and_then(|rt| {
                    rt.block_on(async {
                        let servers = args.server.servers().await?;
                        accept::run(args, servers).await
                    })
                })
                .map(|r| (json, r))
        }
        Command::Enumeration(args) => {
            let json = args.server.json;
            runtime()
                .and_then(|rt| {
                    rt.block_on(async {
                        let servers = args.server.servers().await?;
                        enumeration::run(args, servers).await
                    })
                })
                .map(|r| (json, r))
        }
    };
    match result {
        Ok((json, (report, text, ok))) => {
            if json {
                println!("{report}");
            } else {
                print!("{text}");
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// The targets, resolved on a runtime of their own (each phase then runs its own).
fn servers(args: &ServerArgs) -> Result<Servers, String> {
    runtime()?.block_on(args.servers())
}
