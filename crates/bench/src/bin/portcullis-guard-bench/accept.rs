//! Accept latency: the time from a new connection's TCP connect to the server's greeting over
//! TLS, one connection after another from one source address, for as long as asked. The guard
//! checks every accept against its bans before any TLS work, and the server re-reads the bans
//! from its store every second; run against a server whose store holds many bans (bench/guard.sh
//! writes them), a ban list that is slow to search or to refresh shows here as a slow or stalled
//! greeting.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use crate::client::{open, Opened, Servers};
use crate::{latency_figures, ServerArgs};

#[derive(Args)]
pub struct AcceptArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The address the connections come from (it must not be banned)
    #[arg(long, default_value = "127.0.0.1")]
    pub from: IpAddr,
    /// Seconds to measure
    #[arg(long, default_value_t = 15.0)]
    pub seconds: f64,
    /// Milliseconds between the end of one connection and the start of the next
    #[arg(long, default_value_t = 20)]
    pub every_ms: u64,
}

pub async fn run(args: AcceptArgs, servers: Servers) -> Result<(Value, String, bool), String> {
    let proto = *servers.protocols().first().ok_or("give --imaps or --smtps")?;
    let until = Instant::now() + Duration::from_secs_f64(args.seconds);
    let pause = Duration::from_millis(args.every_ms);
    let mut greeted = Vec::new();
    let (mut refused, mut errors, mut samples) = (0u64, 0u64, Vec::new());
    while Instant::now() < until {
        let started = Instant::now();
        match open(&servers, proto, Some(args.from), servers.timeout).await {
            Opened::Ready(session) => {
                greeted.push(started.elapsed());
                session.close().await;
            }
            Opened::DroppedAtAccept | Opened::Busy(_) => refused += 1,
            Opened::Broken(e) => {
                errors += 1;
                if samples.len() < 5 {
                    samples.push(e);
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
    let figures = latency_figures(&greeted);
    let report = json!({
        "protocol": proto.name(),
        "from": args.from.to_string(),
        "connect_to_greeting_ms": figures,
        "refused": refused,
        "errors": errors,
        "error_samples": samples,
    });
    let f = |v: &Value| v.as_f64().map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    let text = format!(
        "{} connections from {} over {}: connect to greeting ms p50 {} p90 {} p99 {} max {}; refused {}, errors {}\n",
        figures["n"],
        args.from,
        proto.name(),
        f(&figures["p50"]),
        f(&figures["p90"]),
        f(&figures["p99"]),
        f(&figures["max"]),
        refused,
        errors
    );
    Ok((report, text, refused == 0 && errors == 0))
}
