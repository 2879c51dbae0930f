//! `load`: every message of a Maildir into an account's INBOX by APPEND, with its flags and
//! received time. Each APPEND is durable on arrival, so one connection waits out one commit
//! after another; several connections (and a window of pipelined LITERAL+ APPENDs on each)
//! let the server commit them in groups. The last `--ordered-tail` messages go last, in order,
//! on one connection, so that the highest UIDs hold the same messages as a server that
//! numbered the Maildir in order (Dovecot).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use portcullis_bench::imap::{numbered, Imap};
use portcullis_bench::{Failure, Target};

use crate::corpus::{self, MaildirEntry};
use crate::ServerArgs;

#[derive(Args)]
pub struct LoadArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The account to load
    #[arg(long)]
    user: String,
    /// The Maildir to read (cur/ and new/)
    #[arg(long, value_name = "DIR")]
    maildir: PathBuf,
    /// Parallel connections
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// APPENDs in flight on each connection
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Commands on one connection before it is replaced (servers cap commands per connection)
    #[arg(long, default_value_t = 5000)]
    per_connection: usize,
    /// The newest messages, APPENDed last and in order on one connection
    #[arg(long, default_value_t = 100)]
    ordered_tail: usize,
}

pub async fn run(args: LoadArgs) -> Result<bool, String> {
    let entries = corpus::read_maildir(&args.maildir).map_err(|e| format!("{}: {e}", args.maildir.display()))?;
    if entries.is_empty() {
        return Err(format!("{}: no messages", args.maildir.display()));
    }
    let target = args.server.target().await?;
    let entries = Arc::new(entries);
    let tail = args.ordered_tail.min(entries.len());
    let parallel_end = entries.len() - tail;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();

    let mut tasks = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (entries, next, target) = (entries.clone(), next.clone(), target.clone());
        let (user, password, timeout) = (args.user.clone(), args.server.password.clone(), args.server.timeout());
        let (window, per_connection) = (args.window.max(1), args.per_connection.max(1));
        tasks.push(tokio::spawn(async move {
            let mut bytes = 0u64;
            loop {
                let mut imap = Imap::connect(&target, timeout).await?;
                imap.login(&user, &password).await?;
                let (done, b) = append_some(&mut imap, &entries, window, per_connection, || {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    (i < parallel_end).then_some(i)
                })
                .await?;
                bytes += b;
                let _ = imap.logout().await;
                if !done {
                    continue;
                }
                return Ok::<u64, Failure>(bytes);
            }
        }));
    }
    let mut bytes = 0;
    for task in tasks {
        bytes += task.await.map_err(|e| format!("a loader failed: {e}"))?.map_err(|e| e.to_string())?;
    }
    // The tail: one connection, in order.
    let mut imap = connect(&target, &args).await?;
    let mut i = parallel_end;
    let (_, b) = append_some(&mut imap, &entries, args.window.max(1), usize::MAX, || {
        let this = i;
        i += 1;
        (this < entries.len()).then_some(this)
    })
    .await
    .map_err(|e| e.to_string())?;
    bytes += b;
    let elapsed = started.elapsed();

    // Check: the mailbox holds (at least) what was loaded.
    let mut exists = None;
    imap.expect_ok("EXAMINE INBOX", "EXAMINE", |r| {
        if let Some(n) = numbered(r, "EXISTS") {
            exists = Some(n);
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    let _ = imap.logout().await;
    let exists = exists.unwrap_or(0) as usize;
    let rate = entries.len() as f64 / elapsed.as_secs_f64().max(1e-9);
    let report = serde_json::json!({
        "user": args.user,
        "appended": entries.len(),
        "bytes": bytes,
        "elapsed_s": (elapsed.as_secs_f64() * 1e3).round() / 1e3,
        "appends_per_s": (rate * 10.0).round() / 10.0,
        "exists_after": exists,
    });
    crate::print_report(
        args.server.json,
        &report,
        format!(
            "loaded {} messages ({:.1} MiB) into {} in {:.1} s: {:.0} APPENDs/s; INBOX now has {exists}\n",
            entries.len(),
            bytes as f64 / 1048576.0,
            args.user,
            elapsed.as_secs_f64(),
            rate
        ),
    );
    if exists < entries.len() {
        return Err(format!("INBOX has {exists} messages after {} APPENDs", entries.len()));
    }
    Ok(true)
}

async fn connect(target: &Target, args: &LoadArgs) -> Result<Imap, String> {
    let mut imap = Imap::connect(target, args.server.timeout()).await.map_err(|e| e.to_string())?;
    imap.login(&args.user, &args.server.password).await.map_err(|e| e.to_string())?;
    Ok(imap)
}

/// APPENDs the messages `next` hands out, up to `limit` commands, keeping `window` in flight.
/// Returns whether `next` ran dry (rather than the limit being reached), and the bytes sent.
async fn append_some(
    imap: &mut Imap,
    entries: &[MaildirEntry],
    window: usize,
    limit: usize,
    mut next: impl FnMut() -> Option<usize>,
) -> Result<(bool, u64), Failure> {
    let mut inflight: VecDeque<(String, usize)> = VecDeque::new();
    let mut sent = 0;
    let mut bytes = 0;
    let mut dry = false;
    loop {
        while !dry && inflight.len() < window && sent < limit {
            let Some(i) = next() else {
                dry = true;
                break;
            };
            let entry = &entries[i];
            let message =
                std::fs::read(&entry.path).map_err(|e| Failure::Broken(format!("{}: {e}", entry.path.display())))?;
            let tag = imap.send_append("INBOX", &entry.flags, &corpus::imap_date(entry.received), &message).await?;
            bytes += message.len() as u64;
            inflight.push_back((tag, i));
            sent += 1;
        }
        let Some((tag, i)) = inflight.pop_front() else {
            return Ok((dry, bytes));
        };
        let done = imap.completion(&tag).await?;
        if !done.is_ok() {
            return Err(Failure::Rejected(format!(
                "APPEND of {}: {} {}",
                entries[i].path.display(),
                done.status,
                done.text
            )));
        }
    }
}
