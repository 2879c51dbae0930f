//! `portcullis dns check`: each record of the plan against what the DNS answers, one finding
//! per record, each with its fix. Pure: `observe.rs` asks the resolver, this file judges, so
//! every verdict is testable without a DNS server.
//!
//! Records are judged by what they do, not by their spelling: an SPF record that authorizes
//! this server and ends in `-all` or `~all` is fine whatever else it says; a DMARC record with
//! `p=quarantine` is fine; an MX list that includes this host is fine.

use std::net::IpAddr;

use crate::records::{Data, Expected, Purpose};

/// What the DNS said about one expected record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The records of the expected type at the name (for an alias: its CNAME target).
    Records(Vec<Data>),
    /// An alias without a CNAME: the addresses it resolves to.
    Addresses(Vec<IpAddr>),
    /// NXDOMAIN or no record of the type.
    Absent,
    /// No definite answer (timeout, SERVFAIL, a garbled answer).
    Failed(String),
}

/// What is known about the server itself while judging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub hostname: String,
    /// The host name's A and AAAA records (empty when it has none).
    pub host_addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    Missing,
    /// Present but not doing its job; says what was found and why it is wrong.
    Wrong(String),
    /// The lookup gave no definite answer.
    Unchecked(String),
}

/// The verdict on one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub expected: Expected,
    pub status: Status,
}

impl Finding {
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }

    /// One line: the verdict, the record's name and type, and for anything not ok the fix.
    pub fn line(&self) -> String {
        let what = format!("{} {}", self.expected.name, self.expected.data.type_name());
        let publish = format!("publish {}", self.expected.zone_line());
        match &self.status {
            Status::Ok => format!("ok       {what}"),
            Status::Missing => format!("missing  {what}: {publish}"),
            Status::Wrong(why) => format!("wrong    {what}: {why}; {publish}"),
            Status::Unchecked(why) => format!("unknown  {what}: the lookup failed ({why}); run the check again"),
        }
    }
}

/// Judges one record.
pub fn judge(expected: &Expected, observed: &Observed, context: &Context) -> Finding {
    let status = match observed {
        Observed::Failed(why) => Status::Unchecked(why.clone()),
        Observed::Absent => Status::Missing,
        Observed::Addresses(addresses) => alias_by_address(addresses, context),
        Observed::Records(found) => by_purpose(expected, found, context),
    };
    Finding { expected: expected.clone(), status }
}

fn by_purpose(expected: &Expected, found: &[Data], context: &Context) -> Status {
    let txts: Vec<&str> =
        found.iter().filter_map(|d| if let Data::Txt(t) = d { Some(t.as_str()) } else { None }).collect();
    match &expected.purpose {
        Purpose::Mx => mx(found, context),
        Purpose::Spf => spf(&txts, context),
        Purpose::Dkim { .. } => dkim(expected, &txts),
        Purpose::Dmarc => dmarc(&txts),
        Purpose::MtaSts => mta_sts(expected, &txts),
        Purpose::TlsRpt => tls_rpt(&txts),
        Purpose::Service => service(expected, found),
        Purpose::NotOffered => not_offered(found),
        Purpose::Caa => caa(expected, found),
        Purpose::Alias => alias(found, context),
    }
}

fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

fn listed(found: &[Data]) -> String {
    let texts: Vec<String> = found.iter().map(Data::zone_text).collect();
    format!("found {}", texts.join(", "))
}

fn mx(found: &[Data], context: &Context) -> Status {
    let ours = found.iter().any(|d| matches!(d, Data::Mx { exchange, .. } if same_host(exchange, &context.hostname)));
    if ours {
        Status::Ok
    } else if found.iter().any(|d| matches!(d, Data::Mx { exchange, .. } if exchange == ".")) {
        Status::Wrong("found a null MX (RFC 7505): the domain says it takes no mail".into())
    } else {
        Status::Wrong(format!("{}, which is not this server", listed(found)))
    }
}

/// A record whose first term is `version` (case-insensitive), followed by a space or nothing.
fn versioned<'a>(txts: &[&'a str], version: &str) -> Vec<&'a str> {
    txts.iter()
        .copied()
        .filter(|t| {
            let t = t.trim_start();
            t.len() >= version.len()
                && t[..version.len()].eq_ignore_ascii_case(version)
                && t[version.len()..].chars().next().is_none_or(|c| c == ' ' || c == ';')
        })
        .collect()
}

fn spf(txts: &[&str], context: &Context) -> Status {
    let records = versioned(txts, "v=spf1");
    let record = match records.as_slice() {
        [] => return Status::Missing,
        [one] => *one,
        // RFC 7208 §4.5: more than one SPF record is a permanent error for every receiver.
        several => {
            return Status::Wrong(format!(
                "{} SPF records (RFC 7208 §4.5 makes that an error); keep one",
                several.len()
            ))
        }
    };
    let terms: Vec<String> = record.split_whitespace().skip(1).map(str::to_ascii_lowercase).collect();
    let mechanism = |t: &str| t.trim_start_matches(['+', '-', '~', '?']).to_string();
    let authorizes = terms.iter().any(|t| {
        let m = mechanism(t);
        if t.starts_with(['-', '~', '?']) {
            return false;
        }
        m == "mx"
            || m.strip_prefix("a:").is_some_and(|h| same_host(h, &context.hostname))
            || m.strip_prefix("mx:").is_some_and(|h| same_host(h, &context.hostname))
            || m.strip_prefix("include:").is_some()
            || ["ip4:", "ip6:"].iter().any(|p| {
                m.strip_prefix(p)
                    .and_then(|ip| ip.split('/').next())
                    .and_then(|ip| ip.parse::<IpAddr>().ok())
                    .is_some_and(|ip| context.host_addresses.contains(&ip))
            })
    });
    let all = terms.iter().rev().find(|t| mechanism(t) == "all");
    match all.map(String::as_str) {
        _ if !authorizes => {
            Status::Wrong(format!("\"{record}\" does not authorize this server ({})", context.hostname))
        }
        Some("-all") | Some("~all") => Status::Ok,
        Some(other) => Status::Wrong(format!("\"{record}\" ends in {other}, which lets anyone send as the domain")),
        None => Status::Wrong(format!("\"{record}\" has no -all, so other senders are not refused")),
    }
}

/// The `tag=value` pairs of a DKIM, DMARC or MTA-STS record (`;`-separated).
fn tag<'a>(record: &'a str, name: &str) -> Option<&'a str> {
    record.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn dkim(expected: &Expected, txts: &[&str]) -> Status {
    let Data::Txt(wanted) = &expected.data else { return Status::Unchecked("not a TXT record".into()) };
    let strip = |p: &str| p.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let wanted_key = tag(wanted, "p").map(strip);
    let keys: Vec<String> = txts.iter().filter_map(|t| tag(t, "p")).map(strip).collect();
    if keys.is_empty() {
        return Status::Wrong("a TXT record without a p= key".into());
    }
    if keys.iter().any(|k| Some(k) == wanted_key.as_ref()) {
        Status::Ok
    } else if keys.iter().any(String::is_empty) {
        Status::Wrong("the key is revoked (empty p=)".into())
    } else {
        Status::Wrong("another public key, so signatures made with the server's key fail".into())
    }
}

fn dmarc(txts: &[&str]) -> Status {
    let records = versioned(txts, "v=DMARC1");
    let record = match records.as_slice() {
        [] => return Status::Missing,
        [one] => *one,
        several => {
            return Status::Wrong(format!(
                "{} DMARC records (RFC 7489 §6.6.3: then none applies); keep one",
                several.len()
            ))
        }
    };
    match tag(record, "p").map(str::to_ascii_lowercase).as_deref() {
        Some("reject") | Some("quarantine") => Status::Ok,
        Some("none") => Status::Wrong(format!("\"{record}\" only monitors (p=none): forged mail is still delivered")),
        _ => Status::Wrong(format!("\"{record}\" has no valid p= policy")),
    }
}

fn mta_sts(expected: &Expected, txts: &[&str]) -> Status {
    let Data::Txt(wanted) = &expected.data else { return Status::Unchecked("not a TXT record".into()) };
    let records = versioned(txts, "v=STSv1");
    let record = match records.as_slice() {
        [] => return Status::Missing,
        [one] => *one,
        several => {
            return Status::Wrong(format!("{} MTA-STS records (RFC 8461 §3.1: then none applies)", several.len()))
        }
    };
    if tag(record, "id") == tag(wanted, "id") {
        Status::Ok
    } else {
        Status::Wrong(format!("\"{record}\" has another id, so senders keep an old policy (RFC 8461 §3.1)"))
    }
}

fn tls_rpt(txts: &[&str]) -> Status {
    match versioned(txts, "v=TLSRPTv1").as_slice() {
        [] => Status::Missing,
        [one] if tag(one, "rua").is_some_and(|r| !r.is_empty()) => Status::Ok,
        [one] => Status::Wrong(format!("\"{one}\" names no rua= address")),
        several => Status::Wrong(format!("{} TLS-RPT records (RFC 8460 §3: then none applies)", several.len())),
    }
}

fn service(expected: &Expected, found: &[Data]) -> Status {
    let Data::Srv { port: want_port, target: want_target, .. } = &expected.data else {
        return Status::Unchecked("not an SRV record".into());
    };
    let ours = found
        .iter()
        .any(|d| matches!(d, Data::Srv { port, target, .. } if port == want_port && same_host(target, want_target)));
    if ours {
        Status::Ok
    } else {
        Status::Wrong(listed(found))
    }
}

fn not_offered(found: &[Data]) -> Status {
    let offered: Vec<Data> =
        found.iter().filter(|d| !matches!(d, Data::Srv { target, .. } if target == ".")).cloned().collect();
    if offered.is_empty() {
        Status::Ok
    } else {
        Status::Wrong(format!("{}: it tells clients to use a service this server does not offer", listed(&offered)))
    }
}

fn caa(expected: &Expected, found: &[Data]) -> Status {
    let Data::Caa { value: want, .. } = &expected.data else { return Status::Unchecked("not a CAA record".into()) };
    let issuers: Vec<&str> = found
        .iter()
        .filter_map(|d| match d {
            Data::Caa { tag, value } if tag.eq_ignore_ascii_case("issue") => {
                Some(value.split(';').next().unwrap_or("").trim())
            }
            _ => None,
        })
        .collect();
    if issuers.is_empty() {
        // RFC 8659 §4.2: no "issue" property leaves issuance open to every CA.
        Status::Wrong(format!("{} without an issue property", listed(found)))
    } else if issuers.iter().any(|i| same_host(i, want)) {
        Status::Ok
    } else {
        Status::Wrong(format!("only {} may issue, so the certificate cannot be renewed", issuers.join(", ")))
    }
}

fn alias(found: &[Data], context: &Context) -> Status {
    let target = found.iter().find_map(|d| if let Data::Cname(t) = d { Some(t) } else { None });
    match target {
        Some(t) if same_host(t, &context.hostname) => Status::Ok,
        Some(t) => Status::Wrong(format!("it points to {t}, not to {}", context.hostname)),
        None => Status::Missing,
    }
}

/// An alias published as A/AAAA records rather than a CNAME is fine when it reaches the same
/// addresses as the host name.
fn alias_by_address(addresses: &[IpAddr], context: &Context) -> Status {
    if context.host_addresses.is_empty() {
        return Status::Unchecked(format!("{} has no address to compare with", context.hostname));
    }
    let mut ours = context.host_addresses.clone();
    let mut theirs = addresses.to_vec();
    ours.sort();
    theirs.sort();
    if ours == theirs {
        Status::Ok
    } else {
        let list: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
        Status::Wrong(format!("it resolves to {}, not to {}'s addresses", list.join(", "), context.hostname))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        Context { hostname: "mail.example.org".into(), host_addresses: vec!["192.0.2.25".parse().unwrap()] }
    }

    fn expect(purpose: Purpose, data: Data) -> Expected {
        Expected { name: "example.org".into(), data, purpose }
    }

    fn txt(texts: &[&str]) -> Observed {
        Observed::Records(texts.iter().map(|t| Data::Txt(t.to_string())).collect())
    }

    fn status(purpose: Purpose, data: Data, observed: Observed) -> Status {
        judge(&expect(purpose, data), &observed, &context()).status
    }

    fn spf(observed: Observed) -> Status {
        status(Purpose::Spf, Data::Txt("v=spf1 mx -all".into()), observed)
    }

    #[test]
    fn spf_is_judged_by_what_it_allows() {
        assert_eq!(spf(txt(&["v=spf1 mx -all"])), Status::Ok);
        assert_eq!(spf(txt(&["v=spf1 ip4:192.0.2.25 ~all", "google-site-verification=x"])), Status::Ok);
        assert_eq!(spf(txt(&["v=spf1 a:mail.example.org include:_spf.other.net -all"])), Status::Ok);
        assert_eq!(spf(txt(&["other"])), Status::Missing);
        assert_eq!(spf(Observed::Absent), Status::Missing);
        for wrong in ["v=spf1 mx +all", "v=spf1 mx", "v=spf1 ip4:198.51.100.1 -all", "v=spf1 -mx -all"] {
            assert!(matches!(spf(txt(&[wrong])), Status::Wrong(_)), "{wrong}");
        }
        assert!(matches!(spf(txt(&["v=spf1 mx -all", "v=spf1 -all"])), Status::Wrong(w) if w.contains("2 SPF")));
    }

    #[test]
    fn mx_must_include_this_host() {
        let want = Data::Mx { preference: 10, exchange: "mail.example.org".into() };
        let mx = |e: &str| Observed::Records(vec![Data::Mx { preference: 5, exchange: e.into() }]);
        assert_eq!(status(Purpose::Mx, want.clone(), mx("MAIL.example.org")), Status::Ok);
        assert!(matches!(status(Purpose::Mx, want.clone(), mx("other.example.net")), Status::Wrong(_)));
        assert!(matches!(status(Purpose::Mx, want, mx(".")), Status::Wrong(w) if w.contains("null MX")));
    }

    #[test]
    fn dkim_must_carry_the_same_key() {
        let want = Data::Txt("v=DKIM1; k=ed25519; p=AAAA".into());
        let dkim = |o| status(Purpose::Dkim { selector: "s".into() }, want.clone(), o);
        assert_eq!(dkim(txt(&["v=DKIM1; k=ed25519; p=AA AA"])), Status::Ok);
        assert!(matches!(dkim(txt(&["v=DKIM1; k=ed25519; p=BBBB"])), Status::Wrong(_)));
        assert!(matches!(dkim(txt(&["v=DKIM1; p="])), Status::Wrong(w) if w.contains("revoked")));
    }

    #[test]
    fn dmarc_must_reject_or_quarantine() {
        let want = Data::Txt("v=DMARC1; p=reject".into());
        let dmarc = |o| status(Purpose::Dmarc, want.clone(), o);
        assert_eq!(dmarc(txt(&["v=DMARC1; p=quarantine; rua=mailto:x@example.org"])), Status::Ok);
        assert!(matches!(dmarc(txt(&["v=DMARC1; p=none"])), Status::Wrong(w) if w.contains("monitors")));
        assert!(matches!(dmarc(txt(&["v=DMARC1; p=reject", "v=DMARC1; p=none"])), Status::Wrong(_)));
    }

    #[test]
    fn mta_sts_id_and_tls_rpt_are_checked() {
        let want = Data::Txt("v=STSv1; id=abc".into());
        assert_eq!(status(Purpose::MtaSts, want.clone(), txt(&["v=STSv1; id=abc"])), Status::Ok);
        assert!(matches!(status(Purpose::MtaSts, want, txt(&["v=STSv1; id=old"])), Status::Wrong(_)));
        let rpt = Data::Txt("v=TLSRPTv1; rua=mailto:a@b".into());
        assert_eq!(status(Purpose::TlsRpt, rpt.clone(), txt(&["v=TLSRPTv1; rua=mailto:x@y"])), Status::Ok);
        assert!(matches!(status(Purpose::TlsRpt, rpt, txt(&["v=TLSRPTv1;"])), Status::Wrong(_)));
    }

    #[test]
    fn srv_records_are_checked_for_port_and_target_and_dot_for_not_offered() {
        let srv = |port: u16, target: &str| Data::Srv { priority: 0, weight: 1, port, target: target.into() };
        let want = srv(993, "mail.example.org");
        assert_eq!(
            status(Purpose::Service, want.clone(), Observed::Records(vec![srv(993, "mail.example.org.")])),
            Status::Ok
        );
        assert!(matches!(
            status(Purpose::Service, want, Observed::Records(vec![srv(143, "mail.example.org")])),
            Status::Wrong(_)
        ));
        let dot = srv(0, ".");
        assert_eq!(status(Purpose::NotOffered, dot.clone(), Observed::Records(vec![dot.clone()])), Status::Ok);
        let offered = Observed::Records(vec![srv(143, "mail.example.org")]);
        assert!(matches!(status(Purpose::NotOffered, dot, offered), Status::Wrong(w) if w.contains("does not offer")));
    }

    #[test]
    fn caa_must_allow_the_acme_ca() {
        let want = Data::Caa { tag: "issue".into(), value: "letsencrypt.org".into() };
        let caa = |tag: &str, value: &str| Observed::Records(vec![Data::Caa { tag: tag.into(), value: value.into() }]);
        assert_eq!(
            status(Purpose::Caa, want.clone(), caa("issue", "letsencrypt.org; validationmethods=tls-alpn-01")),
            Status::Ok
        );
        assert!(matches!(status(Purpose::Caa, want.clone(), caa("issue", "other-ca.example")), Status::Wrong(_)));
        assert!(matches!(status(Purpose::Caa, want, caa("iodef", "mailto:x@y")), Status::Wrong(_)));
    }

    #[test]
    fn aliases_may_be_cnames_or_the_same_addresses() {
        let want = Data::Cname("mail.example.org".into());
        let alias = |o| status(Purpose::Alias, want.clone(), o);
        assert_eq!(alias(Observed::Records(vec![Data::Cname("mail.example.org".into())])), Status::Ok);
        assert!(matches!(alias(Observed::Records(vec![Data::Cname("elsewhere.net".into())])), Status::Wrong(_)));
        assert_eq!(alias(Observed::Addresses(vec!["192.0.2.25".parse().unwrap()])), Status::Ok);
        assert!(matches!(alias(Observed::Addresses(vec!["198.51.100.7".parse().unwrap()])), Status::Wrong(_)));
    }

    #[test]
    fn every_line_that_is_not_ok_carries_the_fix() {
        let e = expect(Purpose::Spf, Data::Txt("v=spf1 mx -all".into()));
        let line = judge(&e, &Observed::Absent, &context()).line();
        assert_eq!(line, "missing  example.org TXT: publish example.org. 3600 IN TXT \"v=spf1 mx -all\"");
        let line = judge(&e, &Observed::Failed("no DNS server answered in time".into()), &context()).line();
        assert!(line.starts_with("unknown") && line.contains("run the check again"), "{line}");
    }
}
