//! `mix`: N clients, each over and over for D seconds: connect, LOGIN, SELECT INBOX (a small
//! mailbox), FETCH 1:20 (FLAGS ENVELOPE), UID STORE of \Flagged on 3 of those messages (set,
//! then cleared the next time), LOGOUT. Every command that completes OK is one operation; the
//! connect (TCP and TLS handshake, greeting) is timed apart and is not one.
//!
//! `--user` may hold `{n}`, replaced by the client's number (01, 02, ...): one account (and
//! mailbox) per client. `--cycles-per-login K` repeats SELECT, FETCH, STORE K times per
//! session, to see the mix with fewer password hashes in it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use portcullis_bench::imap::{fetch_uid, find, numbered, Imap};
use portcullis_bench::stats::{ms, percentile};
use portcullis_bench::{Failure, Target};
use tokio::sync::Barrier;

use crate::ServerArgs;

#[derive(Args)]
pub struct MixArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Account of each client; `{n}` becomes 01, 02, ...
    #[arg(long)]
    user: String,
    /// Concurrent clients
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds of load
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Messages in each INBOX (checked at every SELECT)
    #[arg(long, default_value_t = 200)]
    mailbox_size: u32,
    /// SELECT, FETCH, STORE rounds per login
    #[arg(long, default_value_t = 1)]
    cycles_per_login: usize,
}

const KINDS: [&str; 6] = ["connect", "login", "select", "fetch", "store", "logout"];
const CONNECT: usize = 0;
const LOGIN: usize = 1;
const SELECT: usize = 2;
const FETCH: usize = 3;
const STORE: usize = 4;
const LOGOUT: usize = 5;

#[derive(Default)]
struct ClientResult {
    latencies: [Vec<Duration>; 6],
    errors: usize,
    samples: Vec<String>,
    finished: Option<Instant>,
}

impl ClientResult {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.samples.len() < 5 && !self.samples.contains(&what) {
            self.samples.push(what);
        }
    }
}

pub async fn run(args: MixArgs) -> Result<bool, String> {
    if args.clients == 0 || args.mailbox_size < 20 {
        return Err("--clients must be at least 1 and --mailbox-size at least 20".into());
    }
    let target = args.server.target().await?;
    let args = Arc::new(args);
    let barrier = Arc::new(Barrier::new(args.clients + 1));
    let mut tasks = Vec::new();
    for id in 0..args.clients {
        let (args, target, barrier) = (args.clone(), target.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move { client(id, &args, &target, &barrier).await }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.map_err(|e| format!("a client failed: {e}"))?);
    }
    let end = results.iter().filter_map(|r| r.finished).max().unwrap_or(started);
    let elapsed = end.saturating_duration_since(started).as_secs_f64().max(1e-9);

    let mut report = serde_json::json!({
        "clients": args.clients,
        "duration_s": args.duration,
        "cycles_per_login": args.cycles_per_login,
        "elapsed_s": (elapsed * 1e3).round() / 1e3,
    });
    let mut text = format!(
        "server {} · {} clients · {:.1} s · {} cycle(s) per login\n",
        args.server.server, args.clients, elapsed, args.cycles_per_login
    );
    let mut ops = 0;
    for (k, kind) in KINDS.iter().enumerate() {
        let mut all: Vec<Duration> = results.iter().flat_map(|r| r.latencies[k].iter().copied()).collect();
        all.sort_unstable();
        if k != CONNECT {
            ops += all.len();
        }
        report["latency_ms"][kind] = serde_json::json!({
            "count": all.len(),
            "p50": ms(percentile(&all, 50.0)),
            "p99": ms(percentile(&all, 99.0)),
            "max": ms(all.last().copied().unwrap_or_default()),
        });
        text.push_str(&format!(
            "{kind:<8} {:>7}   p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms\n",
            all.len(),
            ms(percentile(&all, 50.0)),
            ms(percentile(&all, 99.0)),
            ms(all.last().copied().unwrap_or_default())
        ));
    }
    let logins = results.iter().map(|r| r.latencies[LOGIN].len()).sum::<usize>();
    let errors: usize = results.iter().map(|r| r.errors).sum();
    let mut samples: Vec<String> = Vec::new();
    for s in results.iter().flat_map(|r| &r.samples) {
        if samples.len() < 5 && !samples.contains(s) {
            samples.push(s.clone());
        }
    }
    report["operations"] = ops.into();
    report["ops_per_s"] = ((ops as f64 / elapsed * 10.0).round() / 10.0).into();
    report["logins_per_s"] = ((logins as f64 / elapsed * 100.0).round() / 100.0).into();
    report["errors"] = errors.into();
    report["error_samples"] = samples.clone().into();
    text.push_str(&format!(
        "{ops} operations: {:.1} ops/s, {:.2} logins/s, {errors} errors\n",
        ops as f64 / elapsed,
        logins as f64 / elapsed
    ));
    for s in &samples {
        text.push_str(&format!("error    {s}\n"));
    }
    crate::print_report(args.server.json, &report, text);
    Ok(errors == 0)
}

fn user_of(template: &str, id: usize) -> String {
    template.replace("{n}", &format!("{:02}", id + 1))
}

async fn client(id: usize, args: &MixArgs, target: &Target, barrier: &Barrier) -> ClientResult {
    let mut result = ClientResult::default();
    let user = user_of(&args.user, id);
    let timeout = args.server.timeout();
    // Before the clock: the UIDs of messages 1:20 (and the server's caches for this account).
    let uids = async {
        let mut imap = Imap::connect(target, timeout).await?;
        imap.login(&user, &args.server.password).await?;
        imap.expect_ok("SELECT INBOX", "SELECT", |_| {}).await?;
        let mut uids = Vec::new();
        imap.expect_ok("FETCH 1:20 (UID)", "FETCH", |r| uids.extend(fetch_uid(r))).await?;
        imap.logout().await?;
        Ok::<Vec<u32>, Failure>(uids)
    }
    .await;
    barrier.wait().await;
    let uids = match uids {
        Ok(uids) if uids.len() == 20 => uids,
        Ok(uids) => {
            result.error(format!("{user}: FETCH 1:20 (UID) gave {} UIDs", uids.len()));
            return result;
        }
        Err(e) => {
            result.error(format!("{user}: setup: {e}"));
            return result;
        }
    };
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ (id as u64 + 1);
    let mut set = true;
    while Instant::now() < deadline {
        if let Err(e) = session(args, target, &user, &uids, &mut rng, &mut set, &mut result).await {
            result.error(format!("{user}: {e}"));
        }
        result.finished = Some(Instant::now());
    }
    result
}

/// One session: connect, LOGIN, K x (SELECT, FETCH, STORE), LOGOUT.
async fn session(
    args: &MixArgs,
    target: &Target,
    user: &str,
    uids: &[u32],
    rng: &mut u64,
    set: &mut bool,
    result: &mut ClientResult,
) -> Result<(), Failure> {
    let timeout = args.server.timeout();
    let t = Instant::now();
    let mut imap = Imap::connect(target, timeout).await?;
    result.latencies[CONNECT].push(t.elapsed());

    let t = Instant::now();
    imap.login(user, &args.server.password).await?;
    result.latencies[LOGIN].push(t.elapsed());

    for _ in 0..args.cycles_per_login.max(1) {
        let mut exists = None;
        let t = Instant::now();
        imap.expect_ok("SELECT INBOX", "SELECT", |r| {
            if let Some(n) = numbered(r, "EXISTS") {
                exists = Some(n);
            }
        })
        .await?;
        result.latencies[SELECT].push(t.elapsed());
        if exists != Some(args.mailbox_size) {
            result.error(format!("SELECT: EXISTS {exists:?}, expected {}", args.mailbox_size));
        }

        // Messages 1 to 20, each with its ENVELOPE. (Other sessions of a shared account may add
        // unsolicited FETCH responses with their flag changes: those are not counted.)
        let mut seen = [false; 20];
        let t = Instant::now();
        imap.expect_ok("FETCH 1:20 (FLAGS ENVELOPE)", "FETCH", |r| {
            if let Some(n) = numbered(r, "FETCH") {
                if (1..=20).contains(&n) && find(r, b"ENVELOPE (").is_some() {
                    seen[n as usize - 1] = true;
                }
            }
        })
        .await?;
        result.latencies[FETCH].push(t.elapsed());
        let got = seen.iter().filter(|&&s| s).count();
        if got != 20 {
            result.error(format!("FETCH 1:20: {got} of the 20 messages with an ENVELOPE"));
        }

        // Three distinct messages of the twenty.
        let mut chosen: Vec<u32> = Vec::new();
        while chosen.len() < 3 {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            let uid = uids[(*rng % uids.len() as u64) as usize];
            if !chosen.contains(&uid) {
                chosen.push(uid);
            }
        }
        let set_list = chosen.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let sign = if *set { '+' } else { '-' };
        *set = !*set;
        let t = Instant::now();
        imap.expect_ok(&format!("UID STORE {set_list} {sign}FLAGS (\\Flagged)"), "UID STORE", |_| {}).await?;
        result.latencies[STORE].push(t.elapsed());
    }

    let t = Instant::now();
    imap.logout().await?;
    result.latencies[LOGOUT].push(t.elapsed());
    Ok(())
}
