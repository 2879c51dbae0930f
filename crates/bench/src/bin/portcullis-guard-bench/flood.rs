//! The slot flood: many source addresses each hold as many silent TLS connections as the
//! server lets in (handshake done, greeting read, then nothing, never a login), opening a new
//! one whenever the server closes one, while the owner of an account logs in again and again
//! from an address it logged in from before. Phases as in the storm: the owner alone, the
//! owner during the flood, the owner after it.
//!
//! Reported: the owner's login outcomes and latency in each phase (is it locked out at the
//! door?), the connections the flood held at most, how long the server let them sit silent, and
//! how often it turned the flood away.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::client::{open, Opened, Servers};
use crate::storm::{first_login, owner_figures, run_owner, Owner, Phase, Probe, Schedule, PHASES};
use crate::{latency_figures, ServerArgs};

#[derive(Args)]
pub struct FloodArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The account whose logins are measured (it must exist, with --password)
    #[arg(long)]
    pub owner: String,
    /// The owner's password
    #[arg(long, env = "BENCH_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// The owner's address: it logs in once from there before anything is measured
    #[arg(long, default_value = "127.0.0.1")]
    pub owner_from: IpAddr,
    /// The first flooding source address; the others follow it
    #[arg(long, default_value = "127.0.0.2")]
    pub first_source: Ipv4Addr,
    /// Flooding source addresses
    #[arg(long, default_value_t = 100)]
    pub sources: u32,
    /// Silent connections each source tries to hold
    #[arg(long, default_value_t = 20)]
    pub per_source: usize,
    /// Seconds of the owner alone before the flood
    #[arg(long, default_value_t = 10.0)]
    pub idle: f64,
    /// Seconds of the flood
    #[arg(long, default_value_t = 90.0)]
    pub flood: f64,
    /// Seconds after it
    #[arg(long, default_value_t = 10.0)]
    pub after: f64,
    /// A new owner login starts every this many milliseconds
    #[arg(long, default_value_t = 500)]
    pub probe_every_ms: u64,
    /// Owner logins in flight at most
    #[arg(long, default_value_t = 16)]
    pub probe_max_inflight: usize,
    /// A flooding connection turned away retries after this many milliseconds
    #[arg(long, default_value_t = 200)]
    pub retry_after_ms: u64,
}

/// What the flood saw, all sources together.
#[derive(Default)]
struct Flood {
    opened: AtomicU64,
    held: AtomicU64,
    peak_held: AtomicU64,
    /// Turned away at accept (dropped, or a `* BYE` / `421` for a connection limit).
    refused: AtomicU64,
    errors: AtomicU64,
    /// How long the server let a silent connection sit before closing it.
    lifetimes: Mutex<Vec<Duration>>,
}

/// One slot of the flood: open, sit silent until the server closes, open again.
async fn hold(servers: Servers, ip: IpAddr, flood: Arc<Flood>, retry: Duration) {
    loop {
        match open(&servers, servers.protocols()[0], Some(ip), servers.timeout).await {
            Opened::Ready(mut session) => {
                let opened = Instant::now();
                flood.opened.fetch_add(1, Ordering::Relaxed);
                let held = flood.held.fetch_add(1, Ordering::Relaxed) + 1;
                flood.peak_held.fetch_max(held, Ordering::Relaxed);
                let closed = session.wait_closed(Duration::from_secs(24 * 3600)).await;
                flood.held.fetch_sub(1, Ordering::Relaxed);
                if closed {
                    flood.lifetimes.lock().expect("lifetimes").push(opened.elapsed());
                }
            }
            Opened::DroppedAtAccept | Opened::Busy(_) => {
                flood.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(retry).await;
            }
            Opened::Broken(_) => {
                flood.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(retry).await;
            }
        }
    }
}

fn run_flood(args: &FloodArgs, servers: Servers, s: Schedule) -> Result<Flood, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let flood = Arc::new(Flood::default());
    let first = u32::from(args.first_source);
    let retry = Duration::from_millis(args.retry_after_ms);
    let flood2 = flood.clone();
    runtime.block_on(async move {
        tokio::time::sleep_until((s.start + s.idle_end).into()).await;
        let deadline = tokio::time::Instant::from(s.start + s.storm_end);
        let mut tasks = JoinSet::new();
        for _ in 0..args.per_source {
            for source in 0..args.sources {
                let ip = IpAddr::V4(Ipv4Addr::from(first + source));
                let run = hold(servers.clone(), ip, flood2.clone(), retry);
                tasks.spawn(async move {
                    tokio::select! {
                        _ = run => {}
                        _ = tokio::time::sleep_until(deadline) => {}
                    }
                });
            }
        }
        while tasks.join_next().await.is_some() {}
    });
    Arc::try_unwrap(flood).map_err(|_| "flood tasks still running".to_string())
}

pub fn run(args: FloodArgs, servers: Servers) -> Result<(Value, String, bool), String> {
    if servers.protocols().is_empty() {
        return Err("give --imaps or --smtps".into());
    }
    let last = u32::from(args.first_source).checked_add(args.sources.max(1) - 1).ok_or("--sources: too many")?;
    if IpAddr::V4(args.first_source) <= args.owner_from && args.owner_from <= IpAddr::V4(Ipv4Addr::from(last)) {
        return Err(format!("--owner-from {} is among the flooding sources", args.owner_from));
    }
    let owner = Owner {
        address: args.owner.clone(),
        password: args.password.clone(),
        from: args.owner_from,
        every_ms: args.probe_every_ms,
        max_inflight: args.probe_max_inflight,
    };
    first_login(&owner, &servers)?;
    let s = Schedule {
        start: Instant::now(),
        idle_end: Duration::from_secs_f64(args.idle),
        storm_end: Duration::from_secs_f64(args.idle + args.flood),
        after_end: Duration::from_secs_f64(args.idle + args.flood + args.after),
    };
    let (owner, flood) = std::thread::scope(|scope| {
        let owner = scope.spawn(|| run_owner(&owner, servers.clone(), s));
        let flood = scope.spawn(|| run_flood(&args, servers.clone(), s));
        (owner.join(), flood.join())
    });
    let (probes, skipped) = owner.map_err(|_| "the owner's thread panicked")??;
    let flood = flood.map_err(|_| "the flood's thread panicked")??;

    let mut phases = serde_json::Map::new();
    for phase in PHASES {
        let these: Vec<&Probe> = probes.iter().filter(|p| s.phase(p.started) == phase).collect();
        let mut figures = owner_figures(&these);
        figures["skipped_ticks"] = json!(skipped[phase as usize]);
        let name = if phase == Phase::Storm { "flood" } else { phase.name() };
        phases.insert(name.into(), figures);
    }
    let lifetimes = flood.lifetimes.lock().map(|l| l.clone()).unwrap_or_default();
    let report = json!({
        "phases_s": {"idle": args.idle, "flood": args.flood, "after": args.after},
        "owner": phases,
        "flood": {
            "sources": args.sources,
            "per_source": args.per_source,
            "connections_opened": flood.opened.load(Ordering::Relaxed),
            "peak_held": flood.peak_held.load(Ordering::Relaxed),
            "refused": flood.refused.load(Ordering::Relaxed),
            "errors": flood.errors.load(Ordering::Relaxed),
            "closed_by_server_after_ms": latency_figures(&lifetimes),
        },
    });
    let f = |v: &Value| v.as_f64().map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
    let mut text = String::from("owner logins (ms; total = connect + TLS + greeting + login)\n");
    for phase in ["idle", "flood", "after"] {
        let p = &report["owner"][phase];
        text.push_str(&format!(
            "{:<6} {:>4} attempts, {:>4} ok; total p50 {} p99 {} max {}; failures {}\n",
            phase,
            p["attempts"],
            p["ok"],
            f(&p["total_ms"]["p50"]),
            f(&p["total_ms"]["p99"]),
            f(&p["total_ms"]["max"]),
            p["failures"]
        ));
    }
    let fl = &report["flood"];
    text.push_str(&format!(
        "flood: {} sources x {}: {} connections opened, at most {} held at once, {} turned away, {} errors; \
         silent connections closed by the server after p50 {} ms (n {})\n",
        fl["sources"],
        fl["per_source"],
        fl["connections_opened"],
        fl["peak_held"],
        fl["refused"],
        fl["errors"],
        f(&fl["closed_by_server_after_ms"]["p50"]),
        fl["closed_by_server_after_ms"]["n"],
    ));
    let flood_phase = &report["owner"]["flood"];
    let ok = flood_phase["ok"] == flood_phase["attempts"];
    Ok((report, text, ok))
}
