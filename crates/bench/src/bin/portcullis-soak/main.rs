//! `portcullis-soak`: a bounded mixed load on every protocol at once, for a long time, while
//! the server's memory (VmRSS) and open file descriptors are sampled from /proc (docs/benchmarks.md,
//! "Soak"). The load is a steady state: what SMTP delivers, POP3 and IMAP clients read and
//! delete, so the store stays about the same size and any growth is the server's own.
//!
//! - SMTP: `--smtp-clients` accounts `smtpNN@DOMAIN`, each sending `--rate` messages a second
//!   of `--size-kib` to the IMAP and POP3 accounts in turn, 100 per connection;
//! - POP3: `--pop3-clients` accounts `popNN@DOMAIN`, each logging in over and over: STAT, RETR
//!   and DELE of up to 50 messages, QUIT;
//! - IMAP: `--imap-clients` accounts `imapNN@DOMAIN`, each logging in over and over for 20
//!   rounds of SELECT, FETCH 1:* (FLAGS), UID FETCH of the newest (ENVELOPE BODYSTRUCTURE
//!   BODY.PEEK[]), STORE \Deleted and EXPUNGE of all but the newest 20, NOOP;
//! - IDLE: `--idle-clients` connections that stay for the whole run, IDLEing on the IMAP
//!   accounts' INBOXes (and renewing the IDLE every two minutes).
//!
//! Samples are taken before the load starts, every `--interval` seconds, and `--settle`
//! seconds after it ends. Exit status 1 if any step failed.
#![forbid(unsafe_code)]

mod pop3;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use portcullis_bench::imap::{numbered, Imap};
use portcullis_bench::smtp::Smtp;
use portcullis_bench::{Failure, Target, TlsArgs};

#[derive(Parser)]
#[command(
    name = "portcullis-soak",
    version,
    about = "A long mixed load on SMTP, IMAP and POP3, with the server's memory and fds sampled"
)]
struct Args {
    /// The SMTPS (implicit TLS) listener
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:465")]
    submissions: String,
    /// The IMAPS listener
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:993")]
    imaps: String,
    /// The POP3S listener
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:995")]
    pop3s: String,
    #[command(flatten)]
    tls: TlsArgs,
    /// The password of every account
    #[arg(long, env = "BENCH_PASSWORD", hide_env_values = true)]
    password: String,
    /// The accounts' domain: smtp01@DOMAIN, imap01@DOMAIN, pop01@DOMAIN, ...
    #[arg(long)]
    domain: String,
    #[arg(long, default_value_t = 4)]
    smtp_clients: usize,
    /// Messages per second of each SMTP client
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Size of each message
    #[arg(long, default_value_t = 8)]
    size_kib: usize,
    #[arg(long, default_value_t = 4)]
    imap_clients: usize,
    #[arg(long, default_value_t = 2)]
    pop3_clients: usize,
    #[arg(long, default_value_t = 8)]
    idle_clients: usize,
    /// Seconds of load
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// Seconds between samples
    #[arg(long, default_value_t = 30)]
    interval: u64,
    /// Seconds after the load before the last sample
    #[arg(long, default_value_t = 15)]
    settle: u64,
    /// The server's process id: sample its VmRSS and fds from /proc
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds to wait for any one step
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// What the clients did, all together.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    retrieved: AtomicU64,
    imap_rounds: AtomicU64,
    expunged: AtomicU64,
    pushes: AtomicU64,
    logins: AtomicU64,
    errors: AtomicU64,
    /// The first few distinct errors, for the report.
    samples: Mutex<Vec<String>>,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn error(&self, who: &str, failure: &Failure) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let line = format!("{who}: {failure}");
        let mut samples = self.samples.lock().unwrap();
        if samples.len() < 10 && !samples.contains(&line) {
            eprintln!("error: {line}");
            samples.push(line);
        }
    }
}

struct Load {
    args: Args,
    smtp: Target,
    imap: Target,
    pop3: Target,
    deadline: Instant,
    counters: Counters,
}

impl Load {
    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.args.timeout)
    }

    fn user(&self, kind: &str, n: usize) -> String {
        format!("{kind}{:02}@{}", n + 1, self.args.domain)
    }

    /// Waits `wait` or until the load ends, whichever is first.
    async fn pause(&self, wait: Duration) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(wait.min(left)).await;
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<bool, String> {
    if args.smtp_clients == 0 || args.imap_clients == 0 || args.pop3_clients == 0 || args.rate <= 0.0 {
        return Err("--smtp-clients, --imap-clients, --pop3-clients and --rate must be above 0".into());
    }
    let ca = if args.tls.insecure { None } else { args.tls.ca.as_deref() };
    let tls_name = args.tls.tls_name.as_deref();
    let load = Arc::new(Load {
        smtp: Target::resolve(&args.submissions, tls_name, ca).await?,
        imap: Target::resolve(&args.imaps, tls_name, ca).await?,
        pop3: Target::resolve(&args.pop3s, tls_name, ca).await?,
        deadline: Instant::now() + Duration::from_secs(args.duration),
        counters: Counters::default(),
        args,
    });
    let started = Instant::now();
    let pid = load.args.pid;
    let mut samples = vec![("start".to_string(), sample(pid))];
    print_header(pid.is_some());
    print_row(&samples[0].0, &samples[0].1, &load.counters);

    let mut tasks = Vec::new();
    for n in 0..load.args.smtp_clients {
        let load = load.clone();
        tasks.push(tokio::spawn(async move { smtp_client(&load, n).await }));
    }
    for n in 0..load.args.pop3_clients {
        let load = load.clone();
        tasks.push(tokio::spawn(async move { pop3_client(&load, n).await }));
    }
    for n in 0..load.args.imap_clients {
        let load = load.clone();
        tasks.push(tokio::spawn(async move { imap_client(&load, n).await }));
    }
    for n in 0..load.args.idle_clients {
        let load = load.clone();
        tasks.push(tokio::spawn(async move { idle_client(&load, n).await }));
    }

    let interval = Duration::from_secs(load.args.interval.max(1));
    let mut next = started + interval;
    while load.running() {
        tokio::time::sleep_until(next.min(load.deadline).into()).await;
        if Instant::now() >= next {
            let label = format!("{} s", started.elapsed().as_secs());
            let s = sample(pid);
            print_row(&label, &s, &load.counters);
            samples.push((label, s));
            next += interval;
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    let label = format!("{} s", started.elapsed().as_secs());
    let s = sample(pid);
    print_row(&format!("{label} (load over)"), &s, &load.counters);
    samples.push((label, s));
    tokio::time::sleep(Duration::from_secs(load.args.settle)).await;
    let end = sample(pid);
    print_row(&format!("end (+{} s)", load.args.settle), &end, &load.counters);
    samples.push(("end".into(), end));

    let c = &load.counters;
    println!(
        "\n{} messages sent, {} retrieved over POP3, {} expunged over IMAP, {} IMAP rounds, {} IDLE pushes, {} logins, {} errors",
        Counters::get(&c.sent),
        Counters::get(&c.retrieved),
        Counters::get(&c.expunged),
        Counters::get(&c.imap_rounds),
        Counters::get(&c.pushes),
        Counters::get(&c.logins),
        Counters::get(&c.errors)
    );
    if pid.is_some() {
        summary(&samples);
    }
    Ok(Counters::get(&c.errors) == 0)
}

/// The server as /proc shows it.
#[derive(Clone, Copy, Default)]
struct Sample {
    rss_kib: u64,
    hwm_kib: u64,
    fds: u64,
    threads: u64,
}

fn sample(pid: Option<u32>) -> Option<Sample> {
    let pid = pid?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample { rss_kib: field("VmRSS:"), hwm_kib: field("VmHWM:"), fds, threads: field("Threads:") })
}

fn print_header(with_server: bool) {
    if with_server {
        print!("{:>18} {:>10} {:>10} {:>5} {:>7}", "time", "VmRSS KiB", "VmHWM KiB", "fds", "threads");
    } else {
        print!("{:>18}", "time");
    }
    println!(" {:>8} {:>9} {:>8} {:>7} {:>6} {:>6}", "sent", "retrieved", "expunged", "pushes", "logins", "errors");
}

fn print_row(label: &str, s: &Option<Sample>, c: &Counters) {
    match s {
        Some(s) => print!("{label:>18} {:>10} {:>10} {:>5} {:>7}", s.rss_kib, s.hwm_kib, s.fds, s.threads),
        None => print!("{label:>18}"),
    }
    println!(
        " {:>8} {:>9} {:>8} {:>7} {:>6} {:>6}",
        Counters::get(&c.sent),
        Counters::get(&c.retrieved),
        Counters::get(&c.expunged),
        Counters::get(&c.pushes),
        Counters::get(&c.logins),
        Counters::get(&c.errors)
    );
}

/// Growth over the run: from the first sample under load to the last one under load (steady
/// state), and from before the load to after it.
fn summary(samples: &[(String, Option<Sample>)]) {
    let get = |i: usize| samples.get(i).and_then(|(_, s)| *s);
    let (Some(start), Some(first), Some(last), Some(end)) =
        (get(0), get(1), get(samples.len().saturating_sub(2)), get(samples.len() - 1))
    else {
        return;
    };
    let under_load: Vec<Sample> = samples[1..samples.len() - 1].iter().filter_map(|(_, s)| *s).collect();
    let max_rss = under_load.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let max_fds = under_load.iter().map(|s| s.fds).max().unwrap_or(0);
    println!(
        "VmRSS: {} KiB before the load, {} KiB at the first sample under load, {} KiB at the last ({:+} KiB), at most {} KiB; {} KiB after it ({:+} KiB from before)",
        start.rss_kib,
        first.rss_kib,
        last.rss_kib,
        last.rss_kib as i64 - first.rss_kib as i64,
        max_rss,
        end.rss_kib,
        end.rss_kib as i64 - start.rss_kib as i64
    );
    println!(
        "fds: {} before the load, {} at the first sample under load, {} at the last, at most {}; {} after it",
        start.fds, first.fds, last.fds, max_fds, end.fds
    );
}

/// A message of about `size_kib`, lines never starting with a dot, ending in CRLF.
fn message(from: &str, to: &str, n: u64, size_kib: usize) -> Vec<u8> {
    let mut raw = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: soak {n}\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <soak-{n}-{from}>\r\n\r\n"
    )
    .into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog, again and again, for as long as it takes.\r\n";
    while raw.len() < size_kib * 1024 {
        raw.extend_from_slice(line);
    }
    raw
}

async fn smtp_client(load: &Load, n: usize) {
    let user = load.user("smtp", n);
    let recipients: Vec<String> = (0..load.args.imap_clients)
        .map(|i| load.user("imap", i))
        .chain((0..load.args.pop3_clients).map(|i| load.user("pop", i)))
        .collect();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / load.args.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut count = n as u64 * 1_000_000_000;
    while load.running() {
        let session = async {
            let t = &load.smtp;
            let mut smtp = Smtp::connect(t.addr, t.connector.clone(), t.name.clone(), load.timeout()).await?;
            smtp.login(&user, &load.args.password).await?;
            Counters::add(&load.counters.logins, 1);
            for _ in 0..100 {
                tick.tick().await;
                if !load.running() {
                    break;
                }
                count += 1;
                let to = &recipients[count as usize % recipients.len()];
                smtp.submit(&user, to, &message(&user, to, count, load.args.size_kib)).await?;
                Counters::add(&load.counters.sent, 1);
            }
            smtp.quit().await;
            Ok::<(), Failure>(())
        };
        if let Err(e) = session.await {
            load.counters.error(&user, &e);
            load.pause(Duration::from_secs(1)).await;
        }
    }
}

async fn pop3_client(load: &Load, n: usize) {
    let user = load.user("pop", n);
    while load.running() {
        let session = async {
            let mut pop = pop3::Pop3::login(&load.pop3, &user, &load.args.password, load.timeout()).await?;
            Counters::add(&load.counters.logins, 1);
            let count = pop.stat().await?;
            for m in 1..=count.min(50) {
                pop.retr(m).await?;
                pop.dele(m).await?;
                Counters::add(&load.counters.retrieved, 1);
            }
            pop.quit().await
        };
        if let Err(e) = session.await {
            load.counters.error(&user, &e);
        }
        load.pause(Duration::from_millis(500)).await;
    }
}

async fn imap_client(load: &Load, n: usize) {
    let user = load.user("imap", n);
    while load.running() {
        let session = async {
            let mut imap = Imap::connect(&load.imap, load.timeout()).await?;
            imap.login(&user, &load.args.password).await?;
            Counters::add(&load.counters.logins, 1);
            for _ in 0..20 {
                if !load.running() {
                    break;
                }
                let mut exists = 0;
                imap.expect_ok("SELECT INBOX", "SELECT", |r| exists = numbered(r, "EXISTS").unwrap_or(exists)).await?;
                if exists > 0 {
                    imap.expect_ok("FETCH 1:* (FLAGS)", "FETCH", |_| {}).await?;
                    let newest = exists.saturating_sub(4).max(1);
                    imap.expect_ok(&format!("FETCH {newest}:* (ENVELOPE BODYSTRUCTURE BODY.PEEK[])"), "FETCH", |_| {})
                        .await?;
                }
                if exists > 20 {
                    let mut gone = 0;
                    imap.expect_ok(
                        &format!("STORE 1:{} +FLAGS.SILENT (\\Seen \\Deleted)", exists - 20),
                        "STORE",
                        |_| {},
                    )
                    .await?;
                    imap.expect_ok("EXPUNGE", "EXPUNGE", |r| gone += u64::from(numbered(r, "EXPUNGE").is_some()))
                        .await?;
                    Counters::add(&load.counters.expunged, gone);
                }
                imap.expect_ok("NOOP", "NOOP", |_| {}).await?;
                Counters::add(&load.counters.imap_rounds, 1);
                load.pause(Duration::from_millis(200)).await;
            }
            imap.logout().await
        };
        if let Err(e) = session.await {
            load.counters.error(&user, &e);
            load.pause(Duration::from_secs(1)).await;
        }
    }
}

async fn idle_client(load: &Load, n: usize) {
    let user = load.user("imap", n % load.args.imap_clients);
    let who = format!("{user} (IDLE)");
    while load.running() {
        let session = async {
            let mut imap = Imap::connect(&load.imap, load.timeout()).await?;
            imap.login(&user, &load.args.password).await?;
            Counters::add(&load.counters.logins, 1);
            imap.expect_ok("EXAMINE INBOX", "EXAMINE", |_| {}).await?;
            while load.running() {
                let tag = imap.idle().await?;
                let renew = Instant::now() + Duration::from_secs(120);
                loop {
                    let wait = renew.min(load.deadline).saturating_duration_since(Instant::now());
                    if wait.is_zero() {
                        break;
                    }
                    if imap.next_untagged(wait).await?.is_some() {
                        Counters::add(&load.counters.pushes, 1);
                    }
                }
                imap.done(&tag).await?;
                imap.expect_ok("NOOP", "NOOP", |_| {}).await?;
            }
            imap.logout().await
        };
        if let Err(e) = session.await {
            load.counters.error(&who, &e);
            load.pause(Duration::from_secs(1)).await;
        }
    }
}
