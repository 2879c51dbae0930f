//! Dovecot's imaptest against a real server (issue 16): all of its scripted compliance groups,
//! then its random-command stress run with ten clients checking each other's view of the same
//! mailboxes. Dovecot 2.3 passes both; so must Portcullis, with no failed command and no
//! protocol error.
//!
//! imaptest is built from the source archive in `shared/imaptest` (found beside the checkout,
//! or at `$PORTCULLIS_IMAPTEST_BUILD`, the path of its build.sh) into `target/imaptest`; without
//! the archive the test says so and passes, as it cannot run. The stress run lasts
//! `$PORTCULLIS_IMAPTEST_SECS` seconds (60 by default; `.ci/run` keeps that, a longer run is
//! `PORTCULLIS_IMAPTEST_SECS=300 cargo test -p portcullis --test imaptest`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;

const STRESS_USERS: u32 = 10;

/// build.sh of the imaptest archive, if there is one.
fn build_script() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PORTCULLIS_IMAPTEST_BUILD") {
        return Some(PathBuf::from(path)).filter(|p| p.exists());
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/imaptest/build.sh"))
        .find(|script| script.exists())
}

/// Builds imaptest (quick when already built; once for the tests of this file, which run in
/// parallel); its directory, holding `imaptest` and `tests/`.
fn imaptest() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> Option<PathBuf> {
    let Some(script) = build_script() else {
        eprintln!("skipped: no imaptest archive (shared/imaptest/build.sh beside the checkout, or $PORTCULLIS_IMAPTEST_BUILD)");
        return None;
    };
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../imaptest");
    let built = Command::new("bash").arg(&script).arg(&out).output().expect("run imaptest's build.sh");
    assert!(
        built.status.success(),
        "building imaptest failed:\n{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    Some(out)
}

/// A server with alice and bob (the scripted groups' `user` and `user2`) and the stress run's
/// accounts, which log in from one address more often than the defaults expect.
fn server() -> TestServer {
    let server = TestServer::start_with(Settings {
        limits: vec!["max_connections_per_ip = 100".into(), "max_imap_sessions_per_account = 50".into()],
        ..Settings::default()
    });
    for n in 1..=STRESS_USERS {
        server.cli_ok(&["account", "add", &format!("stress{n}@{DOMAIN}"), "--password-stdin"], Some(PASSWORD));
    }
    server
}

fn run(dir: &Path, server: &TestServer, args: &[String]) -> String {
    let port = server.addr("imaps").port();
    let out = Command::new(dir.join("imaptest"))
        .env("LD_LIBRARY_PATH", "/usr/lib/dovecot")
        .current_dir(dir)
        .args(["host=127.0.0.1", &format!("port={port}"), "ssl=any-cert", &format!("pass={PASSWORD}")])
        .args(args)
        .output()
        .expect("run imaptest");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The number before `/` in a summary line such as "base protocol: 0/457 individual commands
/// failed".
fn failed(output: &str, label: &str) -> Option<u32> {
    let line = output.lines().find(|l| l.starts_with(label))?;
    line[label.len()..].trim().split('/').next()?.parse().ok()
}

#[test]
fn every_scripted_group_passes() {
    let Some(dir) = imaptest() else { return };
    let server = server();
    let output = run(
        &dir,
        &server,
        &[format!("user={ALICE}"), format!("user2={BOB}"), format!("test={}", dir.join("tests").display())],
    );
    let summary =
        output.lines().find(|l| l.contains(" test groups: ")).unwrap_or_else(|| panic!("no summary:\n{output}"));
    let groups: u32 = summary.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(groups >= 71, "imaptest ran {groups} groups:\n{output}");
    assert!(summary.contains(": 0 failed, 0 skipped"), "{summary}\n{output}");
    assert_eq!(failed(&output, "base protocol:"), Some(0), "{output}");
    assert_eq!(failed(&output, "extensions:"), Some(0), "{output}");
    assert!(!output.contains("Error:"), "{output}");
}

#[test]
fn random_stress_finds_no_protocol_error() {
    let Some(dir) = imaptest() else { return };
    let secs: u64 = std::env::var("PORTCULLIS_IMAPTEST_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let server = server();
    let output = run(
        &dir,
        &server,
        &[
            format!("user=stress%d@{DOMAIN}"),
            format!("users=1-{STRESS_USERS}"),
            format!("mbox={}", dir.join("tests/default.mbox").display()),
            "clients=10".into(),
            format!("secs={secs}"),
            "msgs=30".into(),
        ],
    );
    let errors: Vec<&str> = output.lines().filter(|l| l.contains("Error:")).collect();
    assert!(errors.is_empty(), "{} protocol errors in {secs} s:\n{}\n\n{output}", errors.len(), errors.join("\n"));
    // A silent or refusing server makes no errors either: the run must have done real work.
    let totals = output.lines().skip_while(|l| !l.starts_with("Totals:")).nth(4).unwrap_or_default();
    let counts: Vec<u64> = totals.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    assert!(counts.len() >= 10 && counts.iter().all(|&n| n > 0), "no work counted:\n{output}");
    let logins = counts[0];
    assert!(logins >= 10 * secs.min(60) / 2, "only {logins} logins in {secs} s:\n{output}");
    eprintln!(
        "imaptest stress, 10 clients for {secs} s: 0 errors\n{}",
        output.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}
