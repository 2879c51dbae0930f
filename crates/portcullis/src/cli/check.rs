//! `portcullis check HOST`: audit any mail server's ports against the secure-port checklist
//! (the auditor is the portcullis-check crate). Needs no config; exits 2 when `--fail-on` is met.

use std::path::PathBuf;

use crate::cli::Failure;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The host name or address to audit
    host: String,
    /// Ports to probe, as PORT or PORT/SERVICE (smtp, submission, submissions, imap, imaps,
    /// pop3, pop3s), comma-separated [default: 25,465,587,993,995,110,143]
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    ports: Vec<String>,
    /// Also trust the CA certificates (or pinned certificates) in this PEM file
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
    /// Exit with status 2 if a finding is at least this severe: info, low, medium, high, critical
    #[arg(long, value_name = "SEVERITY")]
    fail_on: Option<String>,
    /// How long to wait for each connection and each answer
    #[arg(long, default_value = "4s", value_name = "DURATION")]
    timeout: String,
    /// The name clients connect to, for SNI and the certificate check [default: HOST unless
    /// it is an address]
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
}

/// Prints the report, and exits 2 when `--fail-on` is met.
pub fn run(args: CheckArgs) -> Result<(), Failure> {
    use std::io::Write as _;
    let CheckArgs { host, ports, ca, json, fail_on, timeout, server_name } = args;
    let targets = ports.iter().map(|p| p.parse()).collect::<Result<Vec<portcullis_check::Target>, _>>()?;
    let fail_on = fail_on.map(|s| s.parse::<portcullis_check::Severity>()).transpose()?;
    let timeout = humantime::parse_duration(&timeout)
        .map_err(|e| Failure(format!("--timeout {timeout:?} is not a duration like \"4s\": {e}")))?;
    let options = portcullis_check::Options { host, targets, ca, timeout, server_name };
    let report = portcullis_check::audit_blocking(&options)?;
    let text = if json { report.to_json() } else { report.to_table() };
    println!("{}", text.trim_end());
    if let Some(threshold) = fail_on.filter(|t| report.fails(*t)) {
        let count = report.findings.iter().filter(|f| f.severity >= threshold).count();
        eprintln!("{count} finding(s) at or above {}", threshold.name());
        let _ = std::io::stdout().flush();
        std::process::exit(2);
    }
    Ok(())
}
