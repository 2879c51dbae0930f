//! `portcullis dns DOMAIN` and `portcullis dns check DOMAIN`: the printed records are a zone
//! file (the test DNS server parses them as one); checked against that zone the check is
//! clean and exits 0; with each record removed, and with each made wrong (the DKIM records of
//! the pair `init` made among them), the check names that record (missing or wrong, with the
//! record to publish) and exits 1.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{BIN, DOMAIN, HOSTNAME};
use portcullis_testdns::{TestDns, Zones};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).current_dir(dir).args(args).env_remove("PORTCULLIS_CONFIG").output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An instance made by `init` (so the ports are init's), and its config's path.
fn instance() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["init", "--dev", "--hostname", HOSTNAME, "--domain", DOMAIN, "--dir", "inst"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = dir.path().join("inst/portcullis.toml");
    (dir, config)
}

fn dns(dir: &Path, config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--config", config.to_str().unwrap(), "dns"];
    all.extend_from_slice(args);
    run(dir, &all)
}

/// The zone the test DNS server serves: the printed records plus the host's address.
fn serve(records: &str) -> TestDns {
    let zone = format!("{records}{HOSTNAME}. 3600 IN A 127.0.0.1\n");
    TestDns::start(Zones::new().zone_text(DOMAIN, &zone).expect("the printed records parse as a zone file")).unwrap()
}

fn check(dir: &Path, config: &Path, dns: &TestDns) -> (bool, String) {
    let addr = dns.addr().to_string();
    let out = dns_check(dir, config, &addr);
    (out.status.success(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

fn dns_check(dir: &Path, config: &Path, server: &str) -> Output {
    dns(dir, config, &["check", DOMAIN, "--dns-server", server])
}

fn record_lines(zone: &str) -> Vec<String> {
    zone.lines().filter(|l| !l.starts_with(';') && !l.trim().is_empty()).map(str::to_string).collect()
}

/// The same record made wrong in the way an operator gets it wrong.
fn made_wrong(line: &str) -> String {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // `NAME TTL IN SRV PRIORITY WEIGHT PORT TARGET`: another port for a service, a real
    // target for a service that is not offered.
    if fields[3] == "SRV" {
        let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        if fields[7] == "." {
            fields[6] = "143".into();
            fields[7] = format!("{HOSTNAME}.");
        } else {
            fields[6] = "1".into();
        }
        return fields.join(" ");
    }
    let swaps: [(&str, &str); 8] = [
        // A DKIM record carrying another key (an old one, or a paste gone wrong); same length,
        // so the RSA record still splits where it did.
        ("k=ed25519; p=", "k=ed25519; p=AAAA"),
        ("k=rsa; p=MIIB", "k=rsa; p=MIIC"),
        (" CNAME mail.example.test.", " CNAME www.elsewhere.example."),
        (" MX 10 mail.example.test.", " MX 10 mx.elsewhere.example."),
        ("v=spf1 mx -all", "v=spf1 mx +all"),
        ("p=reject", "p=none"),
        ("v=TLSRPTv1; rua=mailto:postmaster@example.test", "v=TLSRPTv1;"),
        // A policy changed without its id: sending servers keep the cached one (RFC 8461 §3.1).
        ("v=STSv1; id=", "v=STSv1; id=stale"),
    ];
    let (from, to) =
        swaps.iter().find(|(from, _)| line.contains(from)).unwrap_or_else(|| panic!("no wrong form for {line}"));
    line.replacen(from, to, 1)
}

#[test]
fn the_records_print_as_a_zone_and_check_clean_against_it() {
    let (dir, config) = instance();
    let out = dns(dir.path(), &config, &[DOMAIN]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let zone = text(&out.stdout);
    for expected in [
        "example.test. 3600 IN MX 10 mail.example.test.",
        "example.test. 3600 IN TXT \"v=spf1 mx -all\"",
        "_dmarc.example.test. 3600 IN TXT \"v=DMARC1; p=reject;",
        "_smtp._tls.example.test. 3600 IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@example.test\"",
        // `init --dev` turns port 25 on (10025): the MTA-STS policy is published.
        "_mta-sts.example.test. 3600 IN TXT \"v=STSv1; id=",
        "mta-sts.example.test. 3600 IN CNAME mail.example.test.",
        "_submissions._tcp.example.test. 3600 IN SRV 0 1 10465 mail.example.test.",
        "_submission._tcp.example.test. 3600 IN SRV 0 1 10587 mail.example.test.",
        "_imaps._tcp.example.test. 3600 IN SRV 0 1 10993 mail.example.test.",
        "_pop3s._tcp.example.test. 3600 IN SRV 10 1 10995 mail.example.test.",
        "_imap._tcp.example.test. 3600 IN SRV 0 0 0 .",
        "_pop3._tcp.example.test. 3600 IN SRV 0 0 0 .",
        // `init --dev` turns the HTTPS listener on (10443): where clients find the documents.
        "autoconfig.example.test. 3600 IN CNAME mail.example.test.",
        "autodiscover.example.test. 3600 IN CNAME mail.example.test.",
        "_autodiscover._tcp.example.test. 3600 IN SRV 0 1 10443 mail.example.test.",
        // The pair `init` made: Ed25519 and RSA, each at its own selector.
        "a-ed._domainkey.example.test. 3600 IN TXT \"v=DKIM1; k=ed25519; p=",
        "a-rsa._domainkey.example.test. 3600 IN TXT \"v=DKIM1; k=rsa; p=MII",
    ] {
        assert!(zone.contains(expected), "{expected} missing from\n{zone}");
    }
    let server = serve(&zone);
    let (ok, output) = check(dir.path(), &config, &server);
    assert!(ok, "{output}");
    let lines: Vec<&str> = output.lines().filter(|l| l.starts_with("ok ")).collect();
    assert_eq!(lines.len(), record_lines(&zone).len(), "{output}");
    assert!(output.contains("All 17 records for example.test are in place."), "{output}");

    // Without --dns-server the check asks the config's `[dns]` servers (the MX listener's).
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[dns]\nservers = [\"{}\"]\n", server.addr()));
    std::fs::write(&config, text).unwrap();
    let out = dns(dir.path(), &config, &["check", DOMAIN]);
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && output.contains("All 17 records"), "{output}");
}

#[test]
fn each_missing_or_wrong_record_is_named_with_its_fix() {
    let (dir, config) = instance();
    let zone = text(&dns(dir.path(), &config, &[DOMAIN]).stdout);
    let records = record_lines(&zone);
    let server = serve(&zone);
    for (index, record) in records.iter().enumerate() {
        let name = record.split_whitespace().next().unwrap().trim_end_matches('.').to_string();
        let kind = record.split_whitespace().nth(3).unwrap().to_string();
        let fix = format!("publish {record}");
        for (state, replacement) in [("missing", None), ("wrong", Some(made_wrong(record)))] {
            let mut lines = records.clone();
            match replacement {
                Some(wrong) => lines[index] = wrong,
                None => {
                    lines.remove(index);
                }
            }
            server.set_zones(
                Zones::new()
                    .zone_text(DOMAIN, &format!("{}\n{HOSTNAME}. 3600 IN A 127.0.0.1\n", lines.join("\n")))
                    .unwrap(),
            );
            let (ok, output) = check(dir.path(), &config, &server);
            assert!(!ok, "{state} {record} went unnoticed:\n{output}");
            let flagged: Vec<&str> =
                output.lines().filter(|l| !l.starts_with("ok ") && !l.starts_with("note ")).collect();
            // A "." SRV record removed is missing; everything else is named in its own state.
            let line = flagged
                .iter()
                .find(|l| l.contains(&format!(" {name} {kind}:")))
                .unwrap_or_else(|| panic!("{state} {record} not named:\n{output}"));
            assert!(line.starts_with(state), "{state} {record}: {line}");
            assert!(line.ends_with(&fix), "{state} {record}: the fix is missing: {line}");
            assert_eq!(flagged.len(), 2, "only that record (and the summary) is flagged:\n{output}");
        }
    }
}

#[test]
fn an_unanswering_dns_server_is_unknown_not_clean() {
    let (dir, config) = instance();
    let server = serve("");
    server.set_fault(Some(portcullis_testdns::Fault::ServFail));
    let (ok, output) = check(dir.path(), &config, &server);
    assert!(!ok);
    assert!(output.lines().filter(|l| l.starts_with("unknown ")).count() == 17, "{output}");
    assert!(output.contains("run the check again"), "{output}");
}

#[test]
fn the_domain_must_be_one_of_this_servers() {
    let (dir, config) = instance();
    let out = dns(dir.path(), &config, &["other.example"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("portcullis domain add other.example"), "{}", text(&out.stderr));
    let out = dns(dir.path(), &config, &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("portcullis dns check example.org"), "{}", text(&out.stderr));
    let out = dns_check(dir.path(), &config, "not-an-address");
    assert!(text(&out.stderr).contains("--dns-server"), "{}", text(&out.stderr));
}
