//! The check against a DNS server on loopback (crates/testdns) for a server with every
//! listener on, a CA for CAA and two DKIM keys (Ed25519, and RSA whose record spans several
//! strings): the plan's own zone text is clean; each record removed is missing and each
//! record spoiled is wrong, with the others still ok. The CLI test (crates/portcullis/tests/
//! dns.rs) covers the records of a server without port 25 and HTTPS.

use portcullis_discovery::{check, plan, DkimKey, DomainFacts, Plan, Ports, Purpose, ServerFacts, Status};
use portcullis_dkim_sign::{Algorithm, SigningKey};
use portcullis_dns::{DnsSettings, Resolver};
use portcullis_testdns::{TestDns, Zones};

const HOST: &str = "mail.example.org";
const DOMAIN: &str = "example.org";

fn full_plan() -> Plan {
    let ports = Ports {
        submissions: Some(465),
        submission: Some(587),
        imaps: Some(993),
        pop3s: Some(995),
        smtp: Some(25),
        https: Some(443),
    };
    let mut server = ServerFacts::new(HOST, ports);
    server.caa_issuer = Some("letsencrypt.org".into());
    let mut domain = DomainFacts::new(DOMAIN);
    for (selector, algorithm) in [("ed", Algorithm::Ed25519Sha256), ("rsa", Algorithm::RsaSha256)] {
        let key = SigningKey::generate(algorithm).unwrap();
        domain.dkim.push(DkimKey { selector: selector.into(), record: key.dns_record() });
    }
    plan(&server, &domain)
}

fn zones(lines: &[String]) -> Zones {
    let text = format!("{}\n{HOST}. 3600 IN A 192.0.2.25\n", lines.join("\n"));
    Zones::new().zone_text(DOMAIN, &text).expect("the zone lines parse")
}

fn lines(plan: &Plan) -> Vec<String> {
    plan.records.iter().map(|r| r.zone_line()).collect()
}

/// Each record spoiled as an operator might: another key, a CA that is not ours, an alias
/// to elsewhere, an old MTA-STS id, ...
fn spoiled(line: &str, purpose: &Purpose) -> String {
    match purpose {
        Purpose::Dkim { .. } => {
            let other = SigningKey::generate(Algorithm::Ed25519Sha256).unwrap().dns_record();
            let name = line.split_whitespace().next().unwrap();
            format!("{name} 3600 IN TXT \"{other}\"")
        }
        Purpose::Caa => line.replace("letsencrypt.org", "other-ca.example"),
        Purpose::Alias => line.replace(&format!("CNAME {HOST}."), "CNAME elsewhere.example.net."),
        Purpose::MtaSts => {
            let at = line.find("id=").unwrap();
            format!("{}id=0ld\"", &line[..at])
        }
        Purpose::Mx => line.replace(&format!("MX 10 {HOST}."), "MX 10 mx.elsewhere.example."),
        Purpose::Spf => line.replace("-all", "?all"),
        Purpose::Dmarc => line.replace("p=reject", "p=none"),
        Purpose::TlsRpt => line.replace("; rua=mailto:postmaster@example.org", ""),
        Purpose::Service => {
            let mut f: Vec<&str> = line.split_whitespace().collect();
            f[6] = "1";
            f.join(" ")
        }
        Purpose::NotOffered => line.replace("SRV 0 0 0 .", &format!("SRV 0 1 143 {HOST}.")),
    }
}

async fn verdicts(dns: &TestDns, plan: &Plan) -> Vec<Status> {
    let resolver = Resolver::new(&DnsSettings::with_servers(vec![dns.addr()])).unwrap();
    check(&resolver, plan, HOST).await.into_iter().map(|f| f.status).collect()
}

#[tokio::test]
async fn a_complete_zone_is_clean_and_each_record_missing_or_wrong_is_found() {
    let plan = full_plan();
    assert!(plan.notes.is_empty(), "{:?}", plan.notes);
    let all = lines(&plan);
    assert!(all
        .iter()
        .any(|l| l.starts_with("rsa._domainkey.example.org. 3600 IN TXT \"v=DKIM1; k=rsa; p=") && l.contains("\" \"")));
    let dns = TestDns::start(zones(&all)).unwrap();
    let clean = verdicts(&dns, &plan).await;
    assert!(clean.iter().all(|s| *s == Status::Ok), "{:#?}", plan.records.iter().zip(&clean).collect::<Vec<_>>());

    for (index, record) in plan.records.iter().enumerate() {
        for missing in [true, false] {
            let mut changed = all.clone();
            if missing {
                changed.remove(index);
            } else {
                changed[index] = spoiled(&all[index], &record.purpose);
            }
            // A fresh server each time: the resolver caches what an earlier zone said.
            let dns = TestDns::start(zones(&changed)).unwrap();
            let found = verdicts(&dns, &plan).await;
            let wanted = if missing { "missing" } else { "wrong" };
            let ok = matches!((&found[index], missing), (Status::Missing, true) | (Status::Wrong(_), false));
            assert!(ok, "{wanted} {} gave {:?}", all[index], found[index]);
            for (other, status) in found.iter().enumerate() {
                if other != index {
                    assert_eq!(*status, Status::Ok, "changing {} upset {}", all[index], all[other]);
                }
            }
        }
    }
}

#[tokio::test]
async fn aliases_published_as_addresses_are_judged_by_the_addresses() {
    let plan = full_plan();
    let index = plan.records.iter().position(|r| r.name == "autoconfig.example.org").unwrap();
    for (address, expected_ok) in [("192.0.2.25", true), ("198.51.100.1", false)] {
        let mut changed = lines(&plan);
        changed.retain(|l| !l.starts_with("autoconfig."));
        changed.push(format!("autoconfig.example.org. 3600 IN A {address}"));
        let dns = TestDns::start(zones(&changed)).unwrap();
        let found = verdicts(&dns, &plan).await;
        assert_eq!(found[index] == Status::Ok, expected_ok, "{address}: {:?}", found[index]);
    }
}
