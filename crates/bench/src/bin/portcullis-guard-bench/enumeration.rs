//! Enumeration timing: how long the server takes to refuse an unknown user, against a wrong
//! password for a real one. One attempt at a time (no queueing), the two kinds interleaved in
//! a random order within each connection, so that drift on a noisy machine hits both alike.
//! A figure, not a verdict: medians, p90, their difference and ratio, and how often a single
//! unknown-user sample is faster than a single wrong-password one (0.5: indistinguishable).
//!
//! Run it from a trusted network of a server whose failure delay is as short as it can be
//! (bench/guard.sh does), so that what is measured is the server's work, not the guard's delay:
//! the delay depends on the source's failures, never on the name tried.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use crate::client::{open, Answer, Opened, Proto, Servers};
use crate::{latency_figures, ServerArgs};

#[derive(Args)]
pub struct EnumArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// A real account (its password is tried with a character added)
    #[arg(long)]
    pub user: String,
    /// Its password
    #[arg(long, env = "BENCH_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Samples of each kind (unknown user, wrong password) per protocol
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Unmeasured pairs per protocol first
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// The source address
    #[arg(long, default_value = "127.0.0.1")]
    pub from: IpAddr,
    /// Seed of the order within each pair
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    WrongPassword,
    /// An unknown local part in a domain the server serves.
    UnknownUser,
    /// An address in a domain the server does not serve.
    UnknownDomain,
}

struct Sample {
    proto: Proto,
    kind: Kind,
    took: Duration,
}

/// xorshift64*: a fixed order per seed, nothing more.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

pub async fn run(args: EnumArgs, servers: Servers) -> Result<(Value, String, bool), String> {
    let protocols = servers.protocols();
    if protocols.is_empty() {
        return Err("give --imaps or --smtps (or both)".into());
    }
    let (local, domain) = args.user.rsplit_once('@').ok_or("--user: not an address")?;
    let mut rng = Rng(args.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut samples = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let pairs = (args.warmup + args.samples) * protocols.len();
    for i in 0..pairs {
        let proto = protocols[i % protocols.len()];
        let measured = i >= args.warmup * protocols.len();
        let unknown = if i % 4 < 2 {
            (Kind::UnknownUser, format!("nosuch{i}@{domain}"))
        } else {
            (Kind::UnknownDomain, format!("{local}@nosuch{i}.invalid"))
        };
        let wrong = (Kind::WrongPassword, args.user.clone());
        let order = if rng.next() & 1 == 0 { [unknown, wrong] } else { [wrong, unknown] };
        let mut session = match open(&servers, proto, Some(args.from), servers.timeout).await {
            Opened::Ready(s) => s,
            Opened::DroppedAtAccept => {
                return Err(format!("{}: dropped at accept: is {} banned?", proto.name(), args.from))
            }
            Opened::Busy(g) => return Err(format!("{}: {g}", proto.name())),
            Opened::Broken(e) => return Err(format!("{}: {e}", proto.name())),
        };
        for (kind, user) in order {
            // A different wrong password each time, as a guesser would send.
            let password = format!("{}{i}", args.password);
            let (answer, took) = session.login(&user, &password).await;
            match answer {
                Answer::Refused | Answer::RefusedAndClosed => {
                    if measured {
                        samples.push(Sample { proto, kind, took });
                    }
                }
                Answer::Accepted => return Err(format!("{}: {user} logged in with a wrong password", proto.name())),
                other => {
                    if errors.len() < 5 {
                        errors.push(format!("{}: {other:?}", proto.name()));
                    }
                    break;
                }
            }
        }
        session.close().await;
    }
    Ok(report(&protocols, &samples, errors))
}

/// P(a random `a` sample is shorter than a random `b` one), ties counting half.
fn p_shorter(a: &[Duration], b: &[Duration]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut wins = 0.0;
    for x in a {
        for y in b {
            if x < y {
                wins += 1.0;
            } else if x == y {
                wins += 0.5;
            }
        }
    }
    Some((wins / (a.len() * b.len()) as f64 * 1000.0).round() / 1000.0)
}

fn compare(wrong: &[Duration], unknown: &[Duration]) -> Value {
    let w = latency_figures(wrong);
    let u = latency_figures(unknown);
    let (wm, um) = (w["p50"].as_f64(), u["p50"].as_f64());
    let (w9, u9) = (w["p90"].as_f64(), u["p90"].as_f64());
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({
        "wrong_password_ms": w,
        "unknown_user_ms": u,
        "median_difference_ms": wm.zip(um).map(|(w, u)| round(u - w)),
        "median_ratio": wm.zip(um).filter(|(w, _)| *w > 0.0).map(|(w, u)| round(u / w)),
        "p90_difference_ms": w9.zip(u9).map(|(w, u)| round(u - w)),
        "p_unknown_shorter": p_shorter(unknown, wrong),
    })
}

fn report(protocols: &[Proto], samples: &[Sample], errors: Vec<String>) -> (Value, String, bool) {
    let of = |proto: Option<Proto>, kinds: &[Kind]| -> Vec<Duration> {
        samples
            .iter()
            .filter(|s| proto.is_none_or(|p| s.proto == p) && kinds.contains(&s.kind))
            .map(|s| s.took)
            .collect()
    };
    let unknown = [Kind::UnknownUser, Kind::UnknownDomain];
    let mut by = serde_json::Map::new();
    let mut rows = Vec::new();
    for proto in protocols.iter().map(|p| Some(*p)).chain((protocols.len() > 1).then_some(None)) {
        let name = proto.map(|p| p.name()).unwrap_or("all");
        let c = compare(&of(proto, &[Kind::WrongPassword]), &of(proto, &unknown));
        let split = json!({
            "unknown_local_part_ms": latency_figures(&of(proto, &[Kind::UnknownUser])),
            "unknown_domain_ms": latency_figures(&of(proto, &[Kind::UnknownDomain])),
        });
        rows.push((name, c.clone(), split.clone()));
        let mut c = c;
        c["unknown_split"] = split;
        by.insert(name.into(), c);
    }
    let report = json!({ "by_protocol": by, "errors": errors });
    let f = |v: &Value| v.as_f64().map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    let mut text = String::from(
        "enumeration timing (ms from sending the login to its refusal)\n\
         proto  kind              n      p50      p90      p99     mean\n",
    );
    for (name, c, split) in &rows {
        for (label, v) in [
            ("wrong password", &c["wrong_password_ms"]),
            ("unknown user", &c["unknown_user_ms"]),
            ("  unknown local", &split["unknown_local_part_ms"]),
            ("  unknown domain", &split["unknown_domain_ms"]),
        ] {
            text.push_str(&format!(
                "{:<6} {:<16} {:>4} {:>8} {:>8} {:>8} {:>8}\n",
                name,
                label,
                v["n"],
                f(&v["p50"]),
                f(&v["p90"]),
                f(&v["p99"]),
                f(&v["mean"])
            ));
        }
        text.push_str(&format!(
            "{:<6} unknown - wrong: median {} ms (ratio {}), p90 {} ms; P(unknown faster) {}\n",
            name,
            f(&c["median_difference_ms"]),
            f(&c["median_ratio"]),
            f(&c["p90_difference_ms"]),
            c["p_unknown_shorter"]
        ));
    }
    for e in &errors {
        text.push_str(&format!("error: {e}\n"));
    }
    let ok = errors.is_empty();
    (report, text, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_shorter_counts_pairs_and_half_ties() {
        let ms = |v: &[u64]| v.iter().map(|&x| Duration::from_millis(x)).collect::<Vec<_>>();
        assert_eq!(p_shorter(&ms(&[1, 2]), &ms(&[3, 4])), Some(1.0));
        assert_eq!(p_shorter(&ms(&[3, 4]), &ms(&[1, 2])), Some(0.0));
        assert_eq!(p_shorter(&ms(&[2]), &ms(&[2])), Some(0.5));
        assert_eq!(p_shorter(&[], &ms(&[2])), None);
    }
}
