//! The credential-stuffing storm: the owner of an account logs in again and again from an
//! address it has logged in from before, first on an idle server, then while many source
//! addresses try wrong passwords as fast as the server lets them, then once more after the
//! storm. The owner's login latency in each phase, what the attackers got (successes must be
//! 0, bans), and what the server process held meanwhile.
//!
//! Three threads, so that no side's measurement waits for another side's work in the client:
//! the owner's probes on one runtime, the attackers on another, and the /proc sampler.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::client::{open, Answer, Opened, Proto, Servers};
use crate::procfs::{self, Sample, Sampler};
use crate::{latency_figures, ms, ServerArgs};

#[derive(Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The account whose logins are measured (it must exist, with --password)
    #[arg(long)]
    pub owner: String,
    /// The owner's password
    #[arg(long, env = "BENCH_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// The owner's address: it logs in once from there before anything is measured, so that
    /// the server knows it
    #[arg(long, default_value = "127.0.0.1")]
    pub owner_from: IpAddr,
    /// Other real accounts the attackers try (comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub victims: Vec<String>,
    /// The first attacking source address; the others follow it
    #[arg(long, default_value = "127.0.0.2")]
    pub first_source: Ipv4Addr,
    /// Attacking source addresses
    #[arg(long, default_value_t = 249)]
    pub sources: u32,
    /// Concurrent connections from each source, each trying logins back to back
    #[arg(long, default_value_t = 4)]
    pub per_source: usize,
    /// Login attempts per attacking connection before it reconnects (the server's default
    /// `max_auth_failures` closes the connection after 3)
    #[arg(long, default_value_t = 3)]
    pub attempts_per_connection: u32,
    /// Seconds of the idle phase (owner only)
    #[arg(long, default_value_t = 20.0)]
    pub idle: f64,
    /// Seconds of the storm
    #[arg(long, default_value_t = 20.0)]
    pub storm: f64,
    /// Seconds after the storm (owner only, while the server works off what is left)
    #[arg(long, default_value_t = 10.0)]
    pub after: f64,
    /// A new owner login starts every this many milliseconds (open loop: it does not wait
    /// for the previous one)
    #[arg(long, default_value_t = 200)]
    pub probe_every_ms: u64,
    /// Owner logins in flight at most (a tick with that many pending is counted as skipped)
    #[arg(long, default_value_t = 16)]
    pub probe_max_inflight: usize,
    /// An attacking connection dropped at accept (banned, or past a connection limit) or
    /// refused as too busy retries after this many milliseconds
    #[arg(long, default_value_t = 1000)]
    pub retry_after_ms: u64,
    /// The server's process id: its memory, threads, descriptors and CPU are read from /proc
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Count the server's process and all its descendants (a multi-process server such as
    /// Dovecot); memory is then the sum of their proportional set sizes (Pss)
    #[arg(long, requires = "server_pid")]
    pub server_tree: bool,
    /// Worker threads of the attackers' runtime (1: a current-thread runtime)
    #[arg(long, default_value_t = 1)]
    pub attack_threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Idle,
    Storm,
    After,
}

pub(crate) const PHASES: [Phase; 3] = [Phase::Idle, Phase::Storm, Phase::After];

impl Phase {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Storm => "storm",
            Phase::After => "after",
        }
    }
}

/// When each phase ends, from the measurement's start.
#[derive(Clone, Copy)]
pub(crate) struct Schedule {
    pub(crate) start: Instant,
    pub(crate) idle_end: Duration,
    pub(crate) storm_end: Duration,
    pub(crate) after_end: Duration,
}

impl Schedule {
    pub(crate) fn phase(&self, at: Duration) -> Phase {
        if at < self.idle_end {
            Phase::Idle
        } else if at < self.storm_end {
            Phase::Storm
        } else {
            Phase::After
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    DroppedAtAccept,
    Busy,
    /// The owner's right password was refused.
    Rejected,
    Closed,
    Temporary,
    Error,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::DroppedAtAccept => "dropped_at_accept",
            Outcome::Busy => "too_many_connections",
            Outcome::Rejected => "password_refused",
            Outcome::Closed => "closed",
            Outcome::Temporary => "temporary_failure",
            Outcome::Error => "error",
        }
    }
}

/// One owner login.
pub(crate) struct Probe {
    pub(crate) proto: Proto,
    pub(crate) started: Duration,
    pub(crate) ended: Duration,
    pub(crate) outcome: Outcome,
    /// TCP, TLS and greeting (and EHLO).
    connect: Duration,
    /// The LOGIN / AUTH command to its answer.
    login: Duration,
    detail: Option<String>,
}

impl Probe {
    fn total(&self) -> Duration {
        self.connect + self.login
    }
}

async fn probe(servers: Servers, proto: Proto, from: IpAddr, user: String, password: String, s: Schedule) -> Probe {
    let timeout = servers.timeout;
    let started = s.start.elapsed();
    let t0 = Instant::now();
    let mut p = Probe {
        proto,
        started,
        ended: started,
        outcome: Outcome::Error,
        connect: Duration::ZERO,
        login: Duration::ZERO,
        detail: None,
    };
    match open(&servers, proto, Some(from), timeout).await {
        Opened::Ready(mut session) => {
            p.connect = t0.elapsed();
            let (answer, took) = session.login(&user, &password).await;
            p.login = took;
            p.ended = s.start.elapsed();
            p.outcome = match answer {
                Answer::Accepted => Outcome::Ok,
                Answer::Refused | Answer::RefusedAndClosed => Outcome::Rejected,
                Answer::Closed => Outcome::Closed,
                Answer::Temporary(t) => {
                    p.detail = Some(t);
                    Outcome::Temporary
                }
                Answer::Broken(e) => {
                    p.detail = Some(e);
                    Outcome::Error
                }
            };
            session.close().await;
        }
        other => {
            p.connect = t0.elapsed();
            p.ended = s.start.elapsed();
            p.outcome = match other {
                Opened::DroppedAtAccept => Outcome::DroppedAtAccept,
                Opened::Busy(g) => {
                    p.detail = Some(g);
                    Outcome::Busy
                }
                Opened::Broken(e) => {
                    p.detail = Some(e);
                    Outcome::Error
                }
                Opened::Ready(_) => unreachable!(),
            };
        }
    }
    p
}

/// Who the owner is and how often it logs in (from the storm's or the flood's arguments).
pub(crate) struct Owner {
    pub(crate) address: String,
    pub(crate) password: String,
    pub(crate) from: IpAddr,
    pub(crate) every_ms: u64,
    pub(crate) max_inflight: usize,
}

impl StormArgs {
    fn owner(&self) -> Owner {
        Owner {
            address: self.owner.clone(),
            password: self.password.clone(),
            from: self.owner_from,
            every_ms: self.probe_every_ms,
            max_inflight: self.probe_max_inflight,
        }
    }
}

/// The owner's side: one login first (it must succeed: that makes the address known), then
/// a login every `probe_every` until the end of the last phase.
pub(crate) fn run_owner(o: &Owner, servers: Servers, s: Schedule) -> Result<(Vec<Probe>, [u64; 3]), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let protocols = servers.protocols();
    let every = Duration::from_millis(o.every_ms.max(1));
    let (owner, password, from, max) = (o.address.clone(), o.password.clone(), o.from, o.max_inflight.max(1));
    runtime.block_on(async move {
        let mut probes = Vec::new();
        let mut skipped = [0u64; 3];
        let mut inflight = JoinSet::new();
        let mut tick = tokio::time::interval_at(s.start.into(), every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut n = 0usize;
        loop {
            tick.tick().await;
            let now = s.start.elapsed();
            if now >= s.after_end {
                break;
            }
            while let Some(done) = inflight.try_join_next() {
                probes.push(done.map_err(|e| format!("owner probe: {e}"))?);
            }
            if inflight.len() >= max {
                skipped[s.phase(now) as usize] += 1;
                continue;
            }
            let proto = protocols[n % protocols.len()];
            n += 1;
            inflight.spawn(probe(servers.clone(), proto, from, owner.clone(), password.clone(), s));
        }
        while let Some(done) = inflight.join_next().await {
            probes.push(done.map_err(|e| format!("owner probe: {e}"))?);
        }
        probes.sort_by_key(|p| p.started);
        Ok((probes, skipped))
    })
}

/// Logs the owner in once from its address; an error if that fails.
pub(crate) fn first_login(o: &Owner, servers: &Servers) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let s =
        Schedule { start: Instant::now(), idle_end: Duration::MAX, storm_end: Duration::MAX, after_end: Duration::MAX };
    for proto in servers.protocols() {
        let p = runtime.block_on(probe(servers.clone(), proto, o.from, o.address.clone(), o.password.clone(), s));
        if p.outcome != Outcome::Ok {
            return Err(format!(
                "the owner's first login over {} failed: {}{}",
                proto.name(),
                p.outcome.name(),
                p.detail.map(|d| format!(" ({d})")).unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// What the attackers saw, all sources together.
#[derive(Default)]
struct Attack {
    /// Login attempts answered, by the kind of name tried: the owner, another real account,
    /// an unknown one.
    attempts: [u64; 3],
    failures: u64,
    successes: u64,
    success_samples: Vec<String>,
    /// Sessions closed by the server under a pending attempt (e.g. its source just banned).
    closed: u64,
    temporary: u64,
    errors: u64,
    error_samples: Vec<String>,
    connections: u64,
    dropped_at_accept: u64,
    busy: u64,
    /// From sending the attempt to its answer (the guard's delays are in it).
    latencies: Vec<Duration>,
    sources: Vec<SourceSeen>,
    /// Per second of the storm: attempts answered, connections dropped at accept.
    per_second: Vec<(u64, u64)>,
}

#[derive(Default, Clone, Copy)]
struct SourceSeen {
    failures: u32,
    /// Since the storm's start: the first connection dropped at accept (a ban, or a
    /// connection limit: the client cannot tell; the server's log can).
    first_dropped: Option<Duration>,
    failures_before_dropped: u32,
}

impl Attack {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.error_samples.len() < 8 && !self.error_samples.contains(&what) {
            self.error_samples.push(what);
        }
    }

    fn second(&mut self, since_storm: Duration) -> &mut (u64, u64) {
        let i = since_storm.as_secs() as usize;
        if self.per_second.len() <= i {
            self.per_second.resize(i + 1, (0, 0));
        }
        &mut self.per_second[i]
    }
}

/// Guesses: near misses of the owner's own password (case, spacing, a character more or
/// less: a server that truncates or folds would let one in), and common passwords.
fn near_misses(password: &str) -> Vec<String> {
    let chars: Vec<char> = password.chars().collect();
    let mut flipped = chars.clone();
    if let Some(c) = flipped.first_mut() {
        *c = if c.is_uppercase() { c.to_ascii_lowercase() } else { c.to_ascii_uppercase() };
    }
    let mut guesses = vec![
        password.to_uppercase(),
        flipped.iter().collect(),
        format!("{password} "),
        format!(" {password}"),
        format!("{password}1"),
        chars[..chars.len().saturating_sub(1)].iter().collect(),
        chars.iter().rev().collect(),
        format!("{password}{password}"),
    ];
    guesses.extend(COMMON.iter().map(|s| s.to_string()));
    guesses.retain(|g| g != password && !g.is_empty());
    guesses
}

const COMMON: [&str; 8] =
    ["123456", "password", "qwerty123", "letmein", "Summer2025!", "iloveyou", "welcome1", "P@ssw0rd"];

struct Guesser {
    owner: String,
    victims: Vec<String>,
    domain: String,
    owner_guesses: Vec<String>,
    task: usize,
    n: usize,
}

impl Guesser {
    /// The next (kind, user, password); kind 0 the owner, 1 another real account, 2 unknown.
    fn next(&mut self) -> (usize, String, String) {
        let k = self.n + self.task;
        self.n += 1;
        let round = k / 3;
        match k % 3 {
            0 => (0, self.owner.clone(), self.owner_guesses[round % self.owner_guesses.len()].clone()),
            1 if !self.victims.is_empty() => {
                (1, self.victims[round % self.victims.len()].clone(), COMMON[round % COMMON.len()].to_string())
            }
            1 => (0, self.owner.clone(), COMMON[round % COMMON.len()].to_string()),
            _ if round.is_multiple_of(2) => {
                (2, format!("user{}x{}@{}", self.task, k, self.domain), COMMON[round % 8].into())
            }
            _ => (2, format!("{}@elsewhere{}.invalid", local_part(&self.owner), k % 97), COMMON[round % 8].into()),
        }
    }
}

fn local_part(address: &str) -> &str {
    address.rsplit_once('@').map(|(l, _)| l).unwrap_or(address)
}

fn domain_part(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("example.test")
}

/// One attacking connection slot: connect, try logins until the server closes or the
/// per-connection count is reached, connect again; dropped at accept, wait and knock again.
#[allow(clippy::too_many_arguments)]
async fn attacker(
    servers: Servers,
    source: usize,
    ip: IpAddr,
    task: usize,
    args: Arc<AttackerArgs>,
    stats: Arc<Mutex<Attack>>,
    storm_start: Instant,
) {
    let protocols = servers.protocols();
    let mut guesser = Guesser {
        owner: args.owner.clone(),
        victims: args.victims.clone(),
        domain: domain_part(&args.owner).to_string(),
        owner_guesses: args.owner_guesses.clone(),
        task,
        n: 0,
    };
    let retry = Duration::from_millis(args.retry_after_ms);
    for connection in 0.. {
        let proto = protocols[(connection + task) % protocols.len()];
        let opened = open(&servers, proto, Some(ip), servers.timeout).await;
        let mut session = match opened {
            Opened::Ready(session) => session,
            Opened::DroppedAtAccept => {
                let at = storm_start.elapsed();
                {
                    let mut st = stats.lock().expect("stats lock");
                    st.dropped_at_accept += 1;
                    st.second(at).1 += 1;
                    let seen = &mut st.sources[source];
                    if seen.first_dropped.is_none() {
                        seen.first_dropped = Some(at);
                        seen.failures_before_dropped = seen.failures;
                    }
                }
                tokio::time::sleep(retry).await;
                continue;
            }
            Opened::Busy(_) => {
                stats.lock().expect("stats lock").busy += 1;
                tokio::time::sleep(retry).await;
                continue;
            }
            Opened::Broken(e) => {
                stats.lock().expect("stats lock").error(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        stats.lock().expect("stats lock").connections += 1;
        for _ in 0..args.attempts_per_connection {
            let (kind, user, password) = guesser.next();
            let (answer, took) = session.login(&user, &password).await;
            let at = storm_start.elapsed();
            let mut st = stats.lock().expect("stats lock");
            let answered = |st: &mut Attack| {
                st.attempts[kind] += 1;
                st.latencies.push(took);
                st.second(at).0 += 1;
            };
            match answer {
                Answer::Refused => {
                    answered(&mut st);
                    st.failures += 1;
                    st.sources[source].failures += 1;
                }
                Answer::RefusedAndClosed => {
                    answered(&mut st);
                    st.failures += 1;
                    st.sources[source].failures += 1;
                    break;
                }
                Answer::Accepted => {
                    answered(&mut st);
                    st.successes += 1;
                    if st.success_samples.len() < 8 {
                        st.success_samples.push(format!("{} {user:?} with {password:?}", proto.name()));
                    }
                    break;
                }
                Answer::Closed => {
                    st.closed += 1;
                    break;
                }
                // The server refusing unchecked while its queue of password checks is full:
                // an answer, not a fault.
                Answer::Temporary(_) => {
                    st.temporary += 1;
                    break;
                }
                Answer::Broken(e) => {
                    st.error(format!("{}: {e}", proto.name()));
                    break;
                }
            }
        }
        // No LOGOUT: leave at once, like a bot (the session is dropped here).
    }
}

struct AttackerArgs {
    owner: String,
    victims: Vec<String>,
    owner_guesses: Vec<String>,
    attempts_per_connection: u32,
    retry_after_ms: u64,
}

fn run_attackers(args: &StormArgs, servers: Servers, s: Schedule) -> Result<Attack, String> {
    let runtime = if args.attack_threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.attack_threads).enable_all().build()
    }
    .map_err(|e| e.to_string())?;
    let shared = Arc::new(AttackerArgs {
        owner: args.owner.clone(),
        victims: args.victims.clone(),
        owner_guesses: near_misses(&args.password),
        attempts_per_connection: args.attempts_per_connection.max(1),
        retry_after_ms: args.retry_after_ms,
    });
    let stats = Arc::new(Mutex::new(Attack {
        sources: vec![SourceSeen::default(); args.sources as usize],
        ..Attack::default()
    }));
    let first = u32::from(args.first_source);
    let (sources, per_source) = (args.sources as usize, args.per_source);
    let stats2 = stats.clone();
    runtime.block_on(async move {
        tokio::time::sleep_until((s.start + s.idle_end).into()).await;
        let storm_start = Instant::now();
        let deadline = tokio::time::Instant::from(s.start + s.storm_end);
        let mut tasks = JoinSet::new();
        for slot in 0..per_source {
            for source in 0..sources {
                let ip = IpAddr::V4(Ipv4Addr::from(first + source as u32));
                let task = slot * sources + source;
                let run = attacker(servers.clone(), source, ip, task, shared.clone(), stats2.clone(), storm_start);
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
    // Every task has ended: the only reference left is ours.
    let stats = Arc::try_unwrap(stats).map_err(|_| "attackers still running".to_string())?;
    stats.into_inner().map_err(|e| e.to_string())
}

pub fn run(args: StormArgs, servers: Servers) -> Result<(Value, String, bool), String> {
    let protocols = servers.protocols();
    if protocols.is_empty() {
        return Err("give --imaps or --smtps (or both)".into());
    }
    if args.sources == 0 || args.per_source == 0 {
        return Err("--sources and --per-source must be at least 1".into());
    }
    let last = u32::from(args.first_source).checked_add(args.sources - 1).ok_or("--sources: too many")?;
    let last = Ipv4Addr::from(last);
    if IpAddr::V4(args.first_source) <= args.owner_from && args.owner_from <= IpAddr::V4(last) {
        return Err(format!("--owner-from {} is among the attacking sources", args.owner_from));
    }
    let owner = args.owner();
    first_login(&owner, &servers)?;

    let start = Instant::now();
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let s = Schedule {
        start,
        idle_end: Duration::from_secs_f64(args.idle),
        storm_end: Duration::from_secs_f64(args.idle + args.storm),
        after_end: Duration::from_secs_f64(args.idle + args.storm + args.after),
    };
    // Reading a tree walks all of /proc and each process's mappings: less often.
    let every = Duration::from_millis(if args.server_tree { 250 } else { 100 });
    let sampler = args.server_pid.map(|pid| Sampler::start(pid, args.server_tree, start, every));
    let (owner, attack) = std::thread::scope(|scope| {
        let owner = scope.spawn(|| run_owner(&owner, servers.clone(), s));
        let attack = scope.spawn(|| run_attackers(&args, servers.clone(), s));
        (owner.join(), attack.join())
    });
    let (probes, skipped) = owner.map_err(|_| "the owner's thread panicked")??;
    let attack = attack.map_err(|_| "the attackers' thread panicked")??;
    let samples = sampler.map(|sampler| sampler.finish(start)).unwrap_or_default();
    let (mut report, text, ok) = report(&args, &protocols, s, &probes, skipped, attack, &samples);
    // For matching the server's log (its `ts_ms`) against the phases.
    let unix_ms = |d: Duration| (wall + d).as_millis() as u64;
    report["unix_ms"] = json!({
        "idle_start": unix_ms(Duration::ZERO),
        "storm_start": unix_ms(s.idle_end),
        "storm_end": unix_ms(s.storm_end),
        "after_end": unix_ms(s.after_end),
    });
    Ok((report, text, ok))
}

/// Latency figures of the successful probes among `probes`.
pub(crate) fn owner_figures(probes: &[&Probe]) -> Value {
    let ok: Vec<&&Probe> = probes.iter().filter(|p| p.outcome == Outcome::Ok).collect();
    let login: Vec<Duration> = ok.iter().map(|p| p.login).collect();
    let total: Vec<Duration> = ok.iter().map(|p| p.total()).collect();
    let mut failures = serde_json::Map::new();
    for p in probes.iter().filter(|p| p.outcome != Outcome::Ok) {
        let n = failures.entry(p.outcome.name()).or_insert(json!(0));
        *n = json!(n.as_u64().unwrap_or(0) + 1);
    }
    let samples: Vec<String> = {
        let mut v: Vec<String> = probes.iter().filter_map(|p| p.detail.clone()).collect();
        v.sort();
        v.dedup();
        v.truncate(5);
        v
    };
    // The slowest logins, to see when they happened and which step was slow.
    let mut slow: Vec<&&Probe> = ok.clone();
    slow.sort_by_key(|p| std::cmp::Reverse(p.total()));
    let slowest: Vec<Value> = slow
        .iter()
        .take(3)
        .map(|p| {
            json!({
                "at_s": ms(p.started) / 1000.0,
                "proto": p.proto.name(),
                "connect_ms": ms(p.connect),
                "login_ms": ms(p.login),
            })
        })
        .collect();
    json!({
        "attempts": probes.len(),
        "ok": ok.len(),
        "slowest": slowest,
        "failures": failures,
        "failure_samples": samples,
        "login_ms": latency_figures(&login),
        "total_ms": latency_figures(&total),
    })
}

fn ratio(a: &Value, b: &Value) -> Value {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) if b > 0.0 => json!((a / b * 100.0).round() / 100.0),
        _ => Value::Null,
    }
}

fn memory(sample: Option<Sample>) -> Value {
    match sample {
        Some(s) => json!({
            "at_s": (s.at.as_secs_f64() * 10.0).round() / 10.0,
            "rss_mib": mib(s.rss_kib),
            // A tree has no high-water mark (`procfs`).
            "hwm_mib": if s.hwm_kib == 0 { Value::Null } else { json!(mib(s.hwm_kib)) },
            "threads": s.threads,
            "fds": s.fds,
            "processes": s.processes,
        }),
        None => Value::Null,
    }
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

fn report(
    args: &StormArgs,
    protocols: &[Proto],
    s: Schedule,
    probes: &[Probe],
    skipped: [u64; 3],
    mut attack: Attack,
    samples: &[Sample],
) -> (Value, String, bool) {
    // An idle probe still running when the storm began measured a bit of both: left out.
    let straddled = probes.iter().filter(|p| s.phase(p.started) == Phase::Idle && p.ended > s.idle_end).count();
    let in_phase = |phase: Phase| -> Vec<&Probe> {
        probes
            .iter()
            .filter(|p| s.phase(p.started) == phase)
            .filter(|p| !(phase == Phase::Idle && p.ended > s.idle_end))
            .collect()
    };
    let mut owner = serde_json::Map::new();
    for phase in PHASES {
        let all = in_phase(phase);
        let mut figures = owner_figures(&all);
        figures["skipped_ticks"] = json!(skipped[phase as usize]);
        if protocols.len() > 1 {
            let mut by = serde_json::Map::new();
            for proto in protocols {
                let these: Vec<&Probe> = all.iter().copied().filter(|p| p.proto == *proto).collect();
                by.insert(proto.name().into(), owner_figures(&these));
            }
            figures["by_protocol"] = Value::Object(by);
        }
        owner.insert(phase.name().into(), figures);
    }
    let o = |phase: &str, what: &str, p: &str| owner[phase][what][p].clone();
    let ratios = json!({
        "storm_over_idle": {
            "login_p50": ratio(&o("storm", "login_ms", "p50"), &o("idle", "login_ms", "p50")),
            "login_p99": ratio(&o("storm", "login_ms", "p99"), &o("idle", "login_ms", "p99")),
            "total_p50": ratio(&o("storm", "total_ms", "p50"), &o("idle", "total_ms", "p50")),
            "total_p99": ratio(&o("storm", "total_ms", "p99"), &o("idle", "total_ms", "p99")),
        },
        "after_over_idle": {
            "login_p50": ratio(&o("after", "login_ms", "p50"), &o("idle", "login_ms", "p50")),
            "login_p99": ratio(&o("after", "login_ms", "p99"), &o("idle", "login_ms", "p99")),
        },
    });

    let banned: Vec<&SourceSeen> = attack.sources.iter().filter(|x| x.first_dropped.is_some()).collect();
    let mut to_ban: Vec<Duration> = banned.iter().filter_map(|x| x.first_dropped).collect();
    to_ban.sort_unstable();
    let before: Vec<u32> = banned.iter().map(|x| x.failures_before_dropped).collect();
    let storm_secs = args.storm.max(f64::EPSILON);
    let answered: u64 = attack.attempts.iter().sum();
    attack.latencies.sort_unstable();
    let attackers = json!({
        "sources": args.sources,
        "per_source": args.per_source,
        "attempts": answered,
        "attempts_per_s": (answered as f64 / storm_secs * 10.0).round() / 10.0,
        "by_target": {"owner": attack.attempts[0], "other_real_accounts": attack.attempts[1], "unknown_accounts": attack.attempts[2]},
        "failures": attack.failures,
        "successes": attack.successes,
        "success_samples": attack.success_samples,
        "sessions_closed_under_attempt": attack.closed,
        "temporary_failures": attack.temporary,
        "errors": attack.errors,
        "error_samples": attack.error_samples,
        "connections": attack.connections,
        "dropped_at_accept": attack.dropped_at_accept,
        "too_many_connections": attack.busy,
        "sources_dropped_at_accept": banned.len(),
        "seconds_to_first_drop": {
            "p50": to_ban.get(to_ban.len() / 2).map(|d| ms(*d) / 1000.0),
            "max": to_ban.last().map(|d| ms(*d) / 1000.0),
        },
        "failures_before_first_drop": {
            "mean": if before.is_empty() { Value::Null } else { json!((before.iter().sum::<u32>() as f64 / before.len() as f64 * 10.0).round() / 10.0) },
            "max": before.iter().max(),
        },
        "answer_ms": latency_figures(&attack.latencies),
        "per_second": attack.per_second.iter().map(|(a, r)| json!([a, r])).collect::<Vec<_>>(),
    });

    let server = if samples.is_empty() {
        Value::Null
    } else {
        let used = |from: Duration, to: Duration, f: fn(&Sample) -> Duration| -> Value {
            match (procfs::at(samples, from), procfs::at(samples, to)) {
                (Some(a), Some(b)) => json!(((f(&b).saturating_sub(f(&a))).as_secs_f64() * 100.0).round() / 100.0),
                _ => Value::Null,
            }
        };
        let cpu = |from, to| used(from, to, |x| x.cpu);
        let generator = |from, to| used(from, to, |x| x.generator_cpu);
        let end = s.after_end.max(samples.last().map(|x| x.at).unwrap_or_default());
        json!({
            "start": memory(samples.first().copied()),
            "storm_start": memory(procfs::at(samples, s.idle_end)),
            "storm_end": memory(procfs::at(samples, s.storm_end)),
            "end": memory(samples.last().copied()),
            "memory": if args.server_tree {
                "sum of Pss over the process tree"
            } else {
                "VmRSS (VmHWM: its high-water mark)"
            },
            "peak": {
                "rss_mib": mib(procfs::peak(samples, Duration::ZERO, end, |x| x.rss_kib)),
                "processes": procfs::peak(samples, Duration::ZERO, end, |x| x.processes),
                "hwm_mib": match procfs::peak(samples, Duration::ZERO, end, |x| x.hwm_kib) {
                    0 => Value::Null,
                    kib => json!(mib(kib)),
                },
                "threads": procfs::peak(samples, Duration::ZERO, end, |x| x.threads),
                "fds": procfs::peak(samples, Duration::ZERO, end, |x| x.fds),
            },
            "cpu_s": {
                "idle": cpu(Duration::ZERO, s.idle_end),
                "storm": cpu(s.idle_end, s.storm_end),
                "after": cpu(s.storm_end, s.after_end),
            },
            "generator_cpu_s": {
                "idle": generator(Duration::ZERO, s.idle_end),
                "storm": generator(s.idle_end, s.storm_end),
                "after": generator(s.storm_end, s.after_end),
            },
        })
    };

    let report = json!({
        "phases_s": {"idle": args.idle, "storm": args.storm, "after": args.after},
        "protocols": protocols.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "probe_every_ms": args.probe_every_ms,
        "owner": owner,
        "idle_probes_left_out": straddled,
        "ratios": ratios,
        "attackers": attackers,
        "server": server,
    });
    let ok = attack.successes == 0;
    let text = text(&report);
    (report, text, ok)
}

fn text(r: &Value) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let f = |v: &Value| match v.as_f64() {
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    };
    let _ = writeln!(t, "owner logins (ms; login = the LOGIN/AUTH command, total = connect + TLS + greeting + login)");
    let _ = writeln!(
        t,
        "{:<6} {:>5} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  failures",
        "phase", "n", "ok", "login p50", "login p90", "login p99", "login max", "total p50", "total p99"
    );
    for phase in ["idle", "storm", "after"] {
        let p = &r["owner"][phase];
        let _ = writeln!(
            t,
            "{:<6} {:>5} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {} (skipped ticks {})",
            phase,
            p["attempts"],
            p["ok"],
            f(&p["login_ms"]["p50"]),
            f(&p["login_ms"]["p90"]),
            f(&p["login_ms"]["p99"]),
            f(&p["login_ms"]["max"]),
            f(&p["total_ms"]["p50"]),
            f(&p["total_ms"]["p99"]),
            p["failures"],
            p["skipped_ticks"],
        );
    }
    let q = &r["ratios"]["storm_over_idle"];
    let _ = writeln!(
        t,
        "storm/idle: login p50 {}x, p99 {}x; total p50 {}x, p99 {}x   (after/idle: login p50 {}x, p99 {}x)",
        q["login_p50"],
        q["login_p99"],
        q["total_p50"],
        q["total_p99"],
        r["ratios"]["after_over_idle"]["login_p50"],
        r["ratios"]["after_over_idle"]["login_p99"]
    );
    let a = &r["attackers"];
    let _ = writeln!(
        t,
        "attackers: {} sources x {}: {} attempts answered ({}/s; owner {}, other real {}, unknown {}), {} failed, {} SUCCEEDED",
        a["sources"],
        a["per_source"],
        a["attempts"],
        a["attempts_per_s"],
        a["by_target"]["owner"],
        a["by_target"]["other_real_accounts"],
        a["by_target"]["unknown_accounts"],
        a["failures"],
        a["successes"]
    );
    let _ = writeln!(
        t,
        "  sources dropped at accept (banned or over a limit): {} of {}, the first time after p50 {} s / max {} s, after {} failures on average (max {})",
        a["sources_dropped_at_accept"],
        a["sources"],
        f(&a["seconds_to_first_drop"]["p50"]),
        f(&a["seconds_to_first_drop"]["max"]),
        a["failures_before_first_drop"]["mean"],
        a["failures_before_first_drop"]["max"],
    );
    let _ = writeln!(
        t,
        "  connections {}, dropped at accept {}, too many connections {}, sessions cut under an attempt {}, temporary failures {}, errors {}",
        a["connections"],
        a["dropped_at_accept"],
        a["too_many_connections"],
        a["sessions_closed_under_attempt"],
        a["temporary_failures"],
        a["errors"]
    );
    let _ = writeln!(
        t,
        "  attacker answer time ms: p50 {} p90 {} p99 {} max {}",
        f(&a["answer_ms"]["p50"]),
        f(&a["answer_ms"]["p90"]),
        f(&a["answer_ms"]["p99"]),
        f(&a["answer_ms"]["max"])
    );
    for e in a["error_samples"].as_array().into_iter().flatten() {
        let _ = writeln!(t, "  error: {}", e.as_str().unwrap_or(""));
    }
    let sv = &r["server"];
    if !sv.is_null() {
        let m = |x: &Value| {
            format!(
                "RSS {} MiB (HWM {}), {} fds, {} threads, {} processes",
                x["rss_mib"], x["hwm_mib"], x["fds"], x["threads"], x["processes"]
            )
        };
        let _ = writeln!(t, "server: start {}", m(&sv["start"]));
        let _ = writeln!(t, "        storm start {}", m(&sv["storm_start"]));
        let _ = writeln!(t, "        storm end {}", m(&sv["storm_end"]));
        let _ = writeln!(t, "        end {}", m(&sv["end"]));
        let _ = writeln!(
            t,
            "        peak RSS {} MiB, {} fds, {} threads; CPU s idle {} storm {} after {}",
            sv["peak"]["rss_mib"],
            sv["peak"]["fds"],
            sv["peak"]["threads"],
            sv["cpu_s"]["idle"],
            sv["cpu_s"]["storm"],
            sv["cpu_s"]["after"]
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_never_include_the_password() {
        let guesses = near_misses("plinth-orbit-cactus-9");
        assert!(guesses.len() >= 10);
        assert!(!guesses.iter().any(|g| g == "plinth-orbit-cactus-9" || g.is_empty()));
        assert!(guesses.contains(&"Plinth-orbit-cactus-9".to_string()));
        assert!(guesses.contains(&"plinth-orbit-cactus-".to_string()));
    }

    #[test]
    fn guesser_cycles_through_owner_others_and_unknown_names() {
        let mut g = Guesser {
            owner: "owner@bench.test".into(),
            victims: vec!["staff1@bench.test".into()],
            domain: "bench.test".into(),
            owner_guesses: near_misses("plinth-orbit-cactus-9"),
            task: 0,
            n: 0,
        };
        let kinds: Vec<usize> = (0..6).map(|_| g.next().0).collect();
        assert_eq!(kinds, [0, 1, 2, 0, 1, 2]);
        let unknown: Vec<String> = (0..12).map(|_| g.next()).filter(|x| x.0 == 2).map(|x| x.1).collect();
        assert!(unknown.iter().any(|u| u.ends_with("@bench.test")));
        assert!(unknown.iter().any(|u| u.ends_with(".invalid")));
    }

    #[test]
    fn phases_follow_the_schedule() {
        let s = Schedule {
            start: Instant::now(),
            idle_end: Duration::from_secs(20),
            storm_end: Duration::from_secs(40),
            after_end: Duration::from_secs(50),
        };
        assert_eq!(s.phase(Duration::from_secs(19)), Phase::Idle);
        assert_eq!(s.phase(Duration::from_secs(20)), Phase::Storm);
        assert_eq!(s.phase(Duration::from_secs(45)), Phase::After);
    }
}
