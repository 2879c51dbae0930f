//! `portcullis check HOST`: a client-side audit of any mail server's ports against the
//! checklist of secure mail ports (RFC 8314, RFC 8996, RFC 3207 §6 / CVE-2011-0411, RFC 4954 §4),
//! turned into findings with a severity and a one-line fix, and a grade per port.
//!
//! Layout. Pure: `proto` (what a port speaks), `hello` and `suites` (hand-built ClientHello
//! probes and the reading of their answers), `verdict` (answers to versions and findings),
//! `x509` (validity and names from DER), `report` (severities, fixes, grades, table, JSON).
//! With I/O: `net` (connecting, lines with timeouts), `dialogue` (the plaintext protocol side),
//! `tls` (real rustls handshakes), `cert` (chain and name validation through rustls), and
//! `probe` (one port, start to end).
//!
//! It only ever talks to the host it is pointed at, sends no credentials, and ends every
//! session it opens.
#![forbid(unsafe_code)]

mod cert;
mod dialogue;
mod hello;
mod net;
mod probe;
mod proto;
mod report;
mod suites;
mod tls;
mod verdict;
mod x509;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::ServerName;

pub use proto::{Service, Target, DEFAULT_PORTS};
pub use report::{CertSummary, Finding, Grade, Kind, PortReport, PortState, Report, Severity, TlsSummary};

/// What the fuzz targets (`fuzz/fuzz_targets/auditor_*.rs`) drive: the readers of what a server
/// sends (its first TLS flight, its certificate) and the ClientHello builder whose output they
/// read back. Not an API: hidden from the documentation, and changed with the targets.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::hello::{
        client_hello, parse_certificate_list, parse_server_hello, Answer, FlightReader, SSL3, TLS10, TLS11, TLS12,
        TLS13,
    };
    pub use crate::suites::{Offer, RENEGOTIATION_SCSV};
    pub use crate::x509::{date, facts, Facts};
}

/// What to audit, and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// A host name or an address.
    pub host: String,
    /// Empty: [`DEFAULT_PORTS`].
    pub targets: Vec<Target>,
    /// A PEM file of extra trust anchors.
    pub ca: Option<PathBuf>,
    /// For each connection and each answer.
    pub timeout: Duration,
    /// The name clients use (SNI and the certificate check); default: `host` unless it is an
    /// address.
    pub server_name: Option<String>,
}

/// Audits every port concurrently.
pub async fn audit(options: &Options) -> Result<Report, String> {
    let roots = cert::roots(options.ca.as_deref())?;
    let host = options.host.trim_start_matches('[').trim_end_matches(']').to_string();
    let ip = resolve(&host).await?;
    let name_text = options.server_name.clone().or_else(|| host.parse::<IpAddr>().is_err().then(|| host.clone()));
    let name = match &name_text {
        Some(n) => Some(ServerName::try_from(n.clone()).map_err(|_| format!("{n:?} is not a valid server name"))?),
        None => None,
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let ctx = Arc::new(probe::Ctx { ip, timeout: options.timeout, name, roots, now });

    let mut targets: Vec<Target> = if options.targets.is_empty() {
        DEFAULT_PORTS.iter().map(|&port| Target { port, service: None }).collect()
    } else {
        options.targets.clone()
    };
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert(t.port));

    let mut tasks = tokio::task::JoinSet::new();
    for (i, target) in targets.iter().enumerate() {
        let ctx = ctx.clone();
        let target = *target;
        tasks.spawn(async move { (i, probe::audit_port_in_time(ctx, target).await) });
    }
    let mut results = Vec::new();
    while let Some(done) = tasks.join_next().await {
        results.push(done.map_err(|e| format!("a port check failed: {e}"))?);
    }
    results.sort_by_key(|(i, _)| *i);
    let (ports, findings): (Vec<PortReport>, Vec<Vec<Finding>>) = results.into_iter().map(|(_, r)| r).unzip();
    Ok(Report::finish(options.host.clone(), ip.to_string(), name_text, ports, findings.into_iter().flatten().collect()))
}

/// [`audit`] on a runtime of its own, for the CLI.
pub fn audit_blocking(options: &Options) -> Result<Report, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(audit(options))
}

async fn resolve(host: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host, 0)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    // IPv4 first: it is what most mail servers' firewalls were written for.
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).map(|a| a.ip()).ok_or_else(|| format!("{host} has no address"))
}
