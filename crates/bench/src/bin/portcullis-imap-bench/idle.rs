//! `idle`: one client SELECTs INBOX and IDLEs; another APPENDs a message to that INBOX,
//! `--count` times, `--interval-ms` apart. For each, the time from the APPEND's tagged OK (at
//! the appender) to `* n EXISTS` (at the idler), n being the new message count. A push that
//! overtakes the OK counts as negative. Both clients run in this one process on one thread, so
//! both instants come from the same clock. With `--append-server`, the appender talks to
//! another listener than the idler (another node sharing the store), which measures the push
//! across nodes.

use std::time::{Duration, Instant};

use clap::Args;
use portcullis_bench::imap::{numbered, Imap};
use portcullis_bench::stats::{ms, percentile};
use tokio::sync::mpsc;

use crate::corpus;
use crate::ServerArgs;

#[derive(Args)]
pub struct IdleArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The account (both clients log in as it)
    #[arg(long)]
    user: String,
    /// APPENDs
    #[arg(long, default_value_t = 50)]
    count: usize,
    /// Pause before each APPEND
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// How long to wait for a push before counting it missed
    #[arg(long, default_value_t = 5000)]
    give_up_ms: u64,
    /// The corpus seed of the messages appended
    #[arg(long, default_value_t = 3)]
    seed: u64,
    /// Where the appender connects, when not to `--server` (another node on the same store);
    /// same TLS name and CA
    #[arg(long, value_name = "HOST:PORT")]
    append_server: Option<String>,
}

pub async fn run(args: IdleArgs) -> Result<bool, String> {
    let target = args.server.target().await?;
    let timeout = args.server.timeout();
    let fail = |e: portcullis_bench::Failure| e.to_string();

    let mut idler = Imap::connect(&target, timeout).await.map_err(fail)?;
    idler.login(&args.user, &args.server.password).await.map_err(fail)?;
    let mut exists = 0u32;
    idler
        .expect_ok("SELECT INBOX", "SELECT", |r| exists = numbered(r, "EXISTS").unwrap_or(exists))
        .await
        .map_err(fail)?;
    let idle_tag = idler.idle().await.map_err(fail)?;

    let append_target = match &args.append_server {
        Some(server) => ServerArgs { server: server.clone(), ..args.server.clone() }.target().await?,
        None => target,
    };
    let mut appender = Imap::connect(&append_target, timeout).await.map_err(fail)?;
    appender.login(&args.user, &args.server.password).await.map_err(fail)?;

    // The idler reports every EXISTS with the instant it arrived.
    let (tx, mut rx) = mpsc::unbounded_channel::<(u32, Instant)>();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                r = idler.next_untagged(Duration::from_secs(3600)) => match r {
                    Ok(Some(r)) => {
                        if let Some(n) = numbered(&r, "EXISTS") {
                            let _ = tx.send((n, Instant::now()));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => return Err(e.to_string()),
                },
            }
        }
        idler.done(&idle_tag).await.map_err(|e| e.to_string())?;
        let _ = idler.logout().await;
        Ok(())
    });

    let mut after_ok: Vec<f64> = Vec::new();
    let mut after_send: Vec<Duration> = Vec::new();
    let mut missed = 0;
    let mut problems = Vec::new();
    for k in 0..args.count {
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        let m = corpus::message(args.seed, k, "Bench User", &args.user);
        let expected = exists + k as u32 + 1;
        let sent = Instant::now();
        if let Err(e) = appender.append("INBOX", "", "", &m.bytes).await {
            problems.push(format!("APPEND {k}: {e}"));
            break;
        }
        let ok = Instant::now();
        let deadline = ok + Duration::from_millis(args.give_up_ms);
        let mut heard = None;
        while let Ok(Some((n, at))) = tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            if n >= expected {
                heard = Some(at);
                if n > expected {
                    problems.push(format!("APPEND {k}: EXISTS {n}, expected {expected}"));
                }
                break;
            }
        }
        match heard {
            Some(at) => {
                after_ok.push(if at >= ok {
                    at.duration_since(ok).as_secs_f64() * 1e3
                } else {
                    -(ok.duration_since(at).as_secs_f64() * 1e3)
                });
                after_send.push(at.saturating_duration_since(sent));
            }
            None => missed += 1,
        }
    }
    let _ = stop_tx.send(());
    match watcher.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("idler: {e}")),
        Err(e) => problems.push(format!("idler: {e}")),
    }
    let _ = appender.logout().await;

    let mut sorted_ok = after_ok.clone();
    sorted_ok.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if sorted_ok.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * sorted_ok.len() as f64).ceil() as usize;
        (sorted_ok[rank.clamp(1, sorted_ok.len()) - 1] * 1e3).round() / 1e3
    };
    after_send.sort_unstable();
    let within_100 = after_ok.iter().filter(|&&l| l <= 100.0).count();
    let report = serde_json::json!({
        "user": args.user,
        "server": args.server.server,
        "append_server": args.append_server.as_deref().unwrap_or(&args.server.server),
        "appends": args.count,
        "heard": after_ok.len(),
        "missed": missed,
        "after_ok_ms": { "p50": pct(50.0), "p99": pct(99.0), "max": pct(100.0),
                         "min": sorted_ok.first().map(|v| (v * 1e3).round() / 1e3) },
        "after_send_ms": { "p50": ms(percentile(&after_send, 50.0)), "p99": ms(percentile(&after_send, 99.0)),
                           "max": ms(after_send.last().copied().unwrap_or_default()) },
        "within_100ms": within_100,
        "problems": problems,
    });
    let text = format!(
        "server {} · {} APPENDs, {} pushes heard, {missed} missed\n\
         EXISTS after the APPEND's OK: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({within_100} within 100 ms)\n\
         EXISTS after sending APPEND:  p50 {:.2} ms, p99 {:.2} ms\n{}",
        args.server.server,
        args.count,
        after_ok.len(),
        pct(50.0),
        pct(99.0),
        pct(100.0),
        ms(percentile(&after_send, 50.0)),
        ms(percentile(&after_send, 99.0)),
        problems.iter().map(|p| format!("PROBLEM {p}\n")).collect::<String>()
    );
    crate::print_report(args.server.json, &report, text);
    Ok(missed == 0 && problems.is_empty())
}
