//! `portcullis-bench`: a load generator for SMTP submission over implicit TLS (port 465).
//!
//! N clients connect at once, each over one connection: EHLO and AUTH PLAIN once, then M
//! transactions (MAIL, RCPT, DATA) of an S KiB message, then QUIT. The clock starts when every
//! client has logged in, so the figures are about submission, not about password hashing.
//! A message counts only when the server answered 250 after its final dot; its latency runs
//! from sending MAIL FROM to that 250.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rustls_pki_types::ServerName;
use tokio::sync::Barrier;
use tokio_rustls::TlsConnector;

use portcullis_bench::smtp::Smtp;
use portcullis_bench::stats::percentile;
use portcullis_bench::{Failure, Target, TlsArgs};

#[derive(Parser, Clone)]
#[command(name = "portcullis-bench", version, about = "Load generator for SMTP submission over implicit TLS")]
struct Args {
    /// The SMTPS listener
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:465")]
    server: String,
    /// Account to log in as (AUTH PLAIN)
    #[arg(long)]
    user: String,
    /// Its password
    #[arg(long, env = "BENCH_PASSWORD", hide_env_values = true)]
    password: String,
    /// Envelope sender [default: --user]
    #[arg(long)]
    from: Option<String>,
    /// Envelope recipient [default: --user]; `{n}` becomes the client's number (01, 02, ...),
    /// which spreads the load over one recipient per client
    #[arg(long)]
    to: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    /// Concurrent connections
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Messages each client sends
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Size of each message in KiB (headers included)
    #[arg(long, default_value_t = 10)]
    size_kib: usize,
    /// Worker threads of the generator; 1 keeps it off the server's other cores
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds to wait for any one reply
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

/// What one client saw.
#[derive(Default)]
struct ClientResult {
    latencies: Vec<Duration>,
    errors: usize,
    first_errors: Vec<String>,
    /// When its last transaction ended.
    finished: Option<Instant>,
    setup: Duration,
}

impl ClientResult {
    fn error(&mut self, count: usize, what: String) {
        self.errors += count;
        // A few distinct samples are enough to tell what went wrong.
        if self.first_errors.len() < 5 && !self.first_errors.contains(&what) {
            self.first_errors.push(what);
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Returns whether every message was accepted.
async fn run(args: Args) -> Result<bool, String> {
    if args.clients == 0 || args.messages == 0 {
        return Err("--clients and --messages must be at least 1".into());
    }
    let Target { addr, connector, name } =
        Target::resolve(&args.server, args.tls.tls_name.as_deref(), args.tls.ca.as_deref()).await?;
    let args = Arc::new(args);

    // Everyone logs in, then everyone starts at once.
    let barrier = Arc::new(Barrier::new(args.clients + 1));
    let mut tasks = Vec::new();
    for id in 0..args.clients {
        let (args, barrier, connector, name) = (args.clone(), barrier.clone(), connector.clone(), name.clone());
        tasks.push(tokio::spawn(async move { client(id, &args, addr, connector, name, &barrier).await }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.map_err(|e| format!("a client task failed: {e}"))?);
    }
    let finished = results.iter().filter_map(|r| r.finished).max().unwrap_or(started);
    let report = Report::new(&args, addr, &results, finished.saturating_duration_since(started));
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(report.errors == 0)
}

async fn client(
    id: usize,
    args: &Args,
    addr: SocketAddr,
    tls: TlsConnector,
    name: ServerName<'static>,
    barrier: &Barrier,
) -> ClientResult {
    let mut result = ClientResult::default();
    let timeout = Duration::from_secs(args.timeout);
    let begun = Instant::now();
    let session = async {
        let mut smtp = Smtp::connect(addr, tls, name, timeout).await?;
        smtp.login(&args.user, &args.password).await?;
        Ok::<Smtp, Failure>(smtp)
    }
    .await;
    result.setup = begun.elapsed();
    // Reach the barrier even after a failure, or the others would wait forever.
    barrier.wait().await;
    let mut smtp = match session {
        Ok(smtp) => smtp,
        Err(e) => {
            result.error(args.messages, format!("login: {e}"));
            return result;
        }
    };
    let from = args.from.as_deref().unwrap_or(&args.user);
    let to = args.to.as_deref().unwrap_or(&args.user).replace("{n}", &format!("{:02}", id + 1));
    let to = to.as_str();
    let filler = filler(args.size_kib * 1024);
    for n in 0..args.messages {
        let data = message(id, n, from, to, &filler, args.size_kib * 1024);
        let sent = Instant::now();
        match smtp.submit(from, to, &data).await {
            Ok(()) => result.latencies.push(sent.elapsed()),
            Err(Failure::Rejected(e)) => {
                result.error(1, e);
                if let Err(e) = smtp.reset().await {
                    result.error(args.messages - n - 1, format!("after RSET: {e}"));
                    break;
                }
            }
            Err(Failure::Broken(e)) => {
                // The connection is gone: this message and all that were still to come failed.
                result.error(args.messages - n, e);
                break;
            }
        }
    }
    result.finished = Some(Instant::now());
    smtp.quit().await;
    result
}

/// The body text: 76-character lines, none starting with a dot, so no dot-stuffing is needed.
fn filler(size: usize) -> String {
    const LINE: &str = "The quick brown fox jumps over the lazy dog while the portcullis stays down.";
    let mut text = String::with_capacity(size + 80);
    while text.len() < size {
        text.push_str(LINE);
        text.push_str("\r\n");
    }
    text
}

/// A complete message of at most `size` bytes (short of it by less than one line), with a
/// unique Message-ID.
fn message(client: usize, n: usize, from: &str, to: &str, filler: &str, size: usize) -> Vec<u8> {
    let headers = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: bench {client}.{n}\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n\
         Message-ID: <bench.{pid}.{client}.{n}@bench.invalid>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
        pid = std::process::id(),
    );
    // Trim the body so that the whole message is the requested size, keeping whole lines.
    let budget = size.min(filler.len()).saturating_sub(headers.len());
    let cut = filler[..budget].rfind("\r\n").map(|i| i + 2).unwrap_or(0);
    let mut data = Vec::with_capacity(headers.len() + cut);
    data.extend_from_slice(headers.as_bytes());
    data.extend_from_slice(&filler.as_bytes()[..cut]);
    data
}

struct Report {
    server: SocketAddr,
    clients: usize,
    messages: usize,
    size_kib: usize,
    accepted: usize,
    errors: usize,
    error_samples: Vec<String>,
    elapsed: Duration,
    /// p50, p90, p99, max.
    latency: [Duration; 4],
    slowest_login: Duration,
}

impl Report {
    fn new(args: &Args, server: SocketAddr, results: &[ClientResult], elapsed: Duration) -> Report {
        let mut latencies: Vec<Duration> = results.iter().flat_map(|r| r.latencies.iter().copied()).collect();
        latencies.sort_unstable();
        let mut error_samples: Vec<String> = Vec::new();
        for e in results.iter().flat_map(|r| &r.first_errors) {
            if error_samples.len() < 5 && !error_samples.contains(e) {
                error_samples.push(e.clone());
            }
        }
        Report {
            server,
            clients: args.clients,
            messages: args.messages,
            size_kib: args.size_kib,
            accepted: latencies.len(),
            errors: results.iter().map(|r| r.errors).sum(),
            error_samples,
            elapsed,
            latency: [
                percentile(&latencies, 50.0),
                percentile(&latencies, 90.0),
                percentile(&latencies, 99.0),
                latencies.last().copied().unwrap_or_default(),
            ],
            slowest_login: results.iter().map(|r| r.setup).max().unwrap_or_default(),
        }
    }

    fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.accepted as f64 / secs
        } else {
            0.0
        }
    }

    fn text(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let [p50, p90, p99, max] = self.latency;
        let mut out = format!(
            "server      {}\n\
             load        {} clients x {} messages x {} KiB\n\
             accepted    {} of {} ({} errors)\n\
             elapsed     {:.3} s (after the slowest login, {:.0} ms)\n\
             throughput  {:.1} msgs/s\n\
             latency     p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            self.server,
            self.clients,
            self.messages,
            self.size_kib,
            self.accepted,
            self.clients * self.messages,
            self.errors,
            self.elapsed.as_secs_f64(),
            ms(self.slowest_login),
            self.rate(),
            ms(p50),
            ms(p90),
            ms(p99),
            ms(max),
        );
        for e in &self.error_samples {
            out.push_str(&format!("error       {e}\n"));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        let [p50, p90, p99, max] = self.latency;
        serde_json::json!({
            "server": self.server.to_string(),
            "clients": self.clients,
            "messages_per_client": self.messages,
            "size_kib": self.size_kib,
            "sent": self.clients * self.messages,
            "accepted": self.accepted,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "elapsed_s": (self.elapsed.as_secs_f64() * 1e3).round() / 1e3,
            "msgs_per_s": (self.rate() * 10.0).round() / 10.0,
            "latency_ms": { "p50": ms(p50), "p90": ms(p90), "p99": ms(p99), "max": ms(max) },
            "slowest_login_ms": ms(self.slowest_login),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_requested_size_and_need_no_dot_stuffing() {
        let filler = filler(10 * 1024);
        let data = message(3, 7, "a@b.test", "c@d.test", &filler, 10 * 1024);
        assert!(data.len() <= 10 * 1024 && data.len() > 10 * 1024 - 80, "{}", data.len());
        assert!(data.ends_with(b"\r\n"));
        let text = String::from_utf8(data).unwrap();
        assert!(!text.split("\r\n").any(|l| l.starts_with('.')));
        assert!(text.contains("Message-ID: <bench."));
    }
}
