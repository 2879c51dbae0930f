//! The resolver against a real DNS server on loopback (portcullis-testdns): every typed
//! lookup, the errors callers branch on (not found, temporary, malformed), and the hostile
//! servers (silent, garbled, huge answers) ending within a bounded time.

use portcullis_dns::{Absence, DnsError, DnsSettings, MalformedPart, Mx, MxHost, Resolver, TemporaryCause, Tlsa};
use portcullis_testdns::{Fault, TestDns, Zones};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

fn zones() -> Zones {
    Zones::new()
        .zone("example.test")
        .mx("example.test", 20, "mx2.example.test")
        .mx("example.test", 10, "mx1.example.test")
        .a("mx1.example.test", Ipv4Addr::new(192, 0, 2, 10))
        .aaaa("mx1.example.test", "2001:db8::10".parse().unwrap())
        .a("v4only.example.test", Ipv4Addr::new(192, 0, 2, 11))
        .mx("nullmx.example.test", 0, ".")
        .txt("example.test", "v=spf1 ip4:192.0.2.0/24 -all")
        .txt("huge.example.test", &"h".repeat(40_000))
        .ptr("192.0.2.10".parse().unwrap(), "mx1.example.test")
        .tlsa("_25._tcp.mx1.example.test", 3, 1, 1, &[0xab; 32])
        .zone("signed.test")
        .authenticated("signed.test")
        .mx("signed.test", 10, "mx.signed.test")
        .tlsa("_25._tcp.mx.signed.test", 3, 1, 1, &[0xcd; 32])
}

/// Short timeouts so the hostile cases end quickly; two attempts as in production.
fn resolver(dns: &TestDns) -> Resolver {
    let settings =
        DnsSettings { timeout: Duration::from_millis(300), attempts: 2, ..DnsSettings::with_servers(vec![dns.addr()]) };
    Resolver::new(&settings).unwrap()
}

#[tokio::test]
async fn mx_hosts_come_most_preferred_first() {
    let dns = TestDns::start(zones()).unwrap();
    let mx = resolver(&dns).mx("Example.Test").await.unwrap();
    assert_eq!(
        mx,
        Mx::Hosts(vec![
            MxHost { preference: 10, exchange: "mx1.example.test".into() },
            MxHost { preference: 20, exchange: "mx2.example.test".into() },
        ])
    );
}

#[tokio::test]
async fn null_mx_no_mx_and_no_domain_are_told_apart() {
    let dns = TestDns::start(zones()).unwrap();
    let resolver = resolver(&dns);
    assert_eq!(resolver.mx("nullmx.example.test").await.unwrap(), Mx::Null);
    assert_eq!(resolver.mx("v4only.example.test").await.unwrap_err(), DnsError::NotFound(Absence::NoData));
    assert_eq!(resolver.mx("nowhere.example.test").await.unwrap_err(), DnsError::NotFound(Absence::NxDomain));
}

#[tokio::test]
async fn addresses_of_both_families() {
    let dns = TestDns::start(zones()).unwrap();
    let resolver = resolver(&dns);
    assert_eq!(resolver.ipv4("mx1.example.test").await.unwrap(), vec![Ipv4Addr::new(192, 0, 2, 10)]);
    assert_eq!(resolver.ipv6("mx1.example.test").await.unwrap(), vec!["2001:db8::10".parse::<Ipv6Addr>().unwrap()]);
    let both = resolver.ip_addrs("mx1.example.test").await.unwrap();
    assert_eq!(both.len(), 2);
    // One family missing is fine; both missing is "not found", with NXDOMAIN kept.
    assert_eq!(resolver.ip_addrs("v4only.example.test").await.unwrap(), vec![IpAddr::from([192, 0, 2, 11])]);
    assert_eq!(resolver.ip_addrs("nowhere.example.test").await.unwrap_err(), DnsError::NotFound(Absence::NxDomain));
    assert_eq!(resolver.ip_addrs("nullmx.example.test").await.unwrap_err(), DnsError::NotFound(Absence::NoData));
}

#[tokio::test]
async fn ptr_and_txt() {
    let dns = TestDns::start(zones()).unwrap();
    let resolver = resolver(&dns);
    assert_eq!(resolver.ptr("192.0.2.10".parse().unwrap()).await.unwrap(), vec!["mx1.example.test".to_string()]);
    assert_eq!(resolver.ptr("192.0.2.99".parse().unwrap()).await.unwrap_err(), DnsError::NotFound(Absence::NxDomain));
    assert_eq!(resolver.txt("example.test").await.unwrap(), vec![b"v=spf1 ip4:192.0.2.0/24 -all".to_vec()]);
}

#[tokio::test]
async fn a_huge_txt_record_comes_whole_over_tcp() {
    let dns = TestDns::start(zones()).unwrap();
    let txt = resolver(&dns).txt("huge.example.test").await.unwrap();
    assert_eq!(txt, vec![vec![b'h'; 40_000]]);
    let asked = dns.asked();
    assert!(asked.iter().any(|a| a.name == "huge.example.test" && !a.tcp), "asked over UDP first: {asked:?}");
    assert!(asked.iter().any(|a| a.name == "huge.example.test" && a.tcp), "then over TCP: {asked:?}");
}

#[tokio::test]
async fn answers_are_cached() {
    let dns = TestDns::start(zones()).unwrap();
    let resolver = resolver(&dns);
    resolver.txt("example.test").await.unwrap();
    resolver.txt("example.test").await.unwrap();
    let txt_queries = dns.asked().iter().filter(|a| a.rtype == "TXT").count();
    assert_eq!(txt_queries, 1);
}

#[tokio::test]
async fn a_name_that_is_no_domain_name_is_malformed_and_never_asked() {
    let dns = TestDns::start(zones()).unwrap();
    let err = resolver(&dns).mx("bad..name.test").await.unwrap_err();
    assert!(matches!(err, DnsError::Malformed(MalformedPart::Name(_))), "{err:?}");
    assert!(!err.is_temporary());
    assert!(dns.asked().is_empty());
}

/// Runs `lookup` against a server with `fault`, checks it failed as temporary within the
/// bound two attempts of 300 ms allow (plus slack for a loaded machine).
async fn fails_temporarily_in_time(fault: Fault) -> DnsError {
    let dns = TestDns::start(zones()).unwrap();
    dns.set_fault(Some(fault));
    let started = Instant::now();
    let err = resolver(&dns).mx("example.test").await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_temporary(), "{fault:?}: {err:?}");
    assert!(took < Duration::from_secs(5), "{fault:?} took {took:?}");
    assert!(!dns.asked().is_empty(), "the server was asked");
    err
}

#[tokio::test]
async fn a_silent_server_is_a_timeout() {
    let err = fails_temporarily_in_time(Fault::Silent).await;
    assert_eq!(err, DnsError::Temporary(TemporaryCause::Timeout));
}

#[tokio::test]
async fn a_garbled_answer_is_temporary() {
    fails_temporarily_in_time(Fault::Malformed).await;
}

#[tokio::test]
async fn servfail_and_refused_are_temporary() {
    let err = fails_temporarily_in_time(Fault::ServFail).await;
    assert!(matches!(err, DnsError::Temporary(TemporaryCause::ServerFailure(_))), "{err:?}");
    fails_temporarily_in_time(Fault::Refused).await;
}

#[tokio::test]
async fn a_fault_on_one_name_leaves_the_others_alone() {
    let dns = TestDns::start(zones()).unwrap();
    dns.set_fault_for("example.test", Fault::ServFail);
    let resolver = resolver(&dns);
    assert!(resolver.txt("example.test").await.unwrap_err().is_temporary());
    assert!(resolver.ipv4("mx1.example.test").await.is_ok());
}

#[tokio::test]
async fn tlsa_reports_the_ad_bit_of_the_answer() {
    let dns = TestDns::start(zones()).unwrap();
    let resolver = resolver(&dns);
    let signed = resolver.authenticated().tlsa(25, "mx.signed.test").await.unwrap();
    assert!(signed.authentic_data);
    assert_eq!(signed.value, vec![Tlsa { usage: 3, selector: 1, matching: 1, data: vec![0xcd; 32] }]);
    let unsigned = resolver.authenticated().tlsa(25, "mx1.example.test").await.unwrap();
    assert!(!unsigned.authentic_data);
    assert_eq!(unsigned.value.len(), 1);
    let mx = resolver.authenticated().mx("signed.test").await.unwrap();
    assert!(mx.authentic_data);
    assert_eq!(
        resolver.authenticated().tlsa(25, "mx2.example.test").await.unwrap_err(),
        DnsError::NotFound(Absence::NxDomain)
    );
}

#[tokio::test]
async fn authenticated_lookups_fail_temporarily_on_hostile_servers() {
    for fault in [Fault::Silent, Fault::Malformed, Fault::ServFail] {
        let dns = TestDns::start(zones()).unwrap();
        dns.set_fault(Some(fault));
        let started = Instant::now();
        let err = resolver(&dns).authenticated().tlsa(25, "mx.signed.test").await.unwrap_err();
        assert!(err.is_temporary(), "{fault:?}: {err:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{fault:?} took {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn authenticated_lookups_take_huge_answers_over_tcp() {
    let dns = TestDns::start(zones().authenticated("example.test")).unwrap();
    // No TLSA this big exists in life; a big MX set exercises the same truncation path.
    let mut many = Zones::new().zone("many.test").authenticated("many.test");
    for i in 0..200 {
        many = many.mx("many.test", i, &format!("mx{i}.a-rather-long-exchanger-name.many.test"));
    }
    dns.set_zones(many);
    let mx = resolver(&dns).authenticated().mx("many.test").await.unwrap();
    let Mx::Hosts(hosts) = mx.value else { panic!("hosts expected") };
    assert_eq!(hosts.len(), 200);
    assert!(mx.authentic_data);
    assert!(dns.asked().iter().any(|a| a.tcp));
}

/// `attempts` counts tries, for both ways of asking, so `worst_case()` is what a silent
/// server costs.
#[tokio::test]
async fn attempts_are_tries_and_worst_case_is_their_timeouts() {
    for attempts in [1, 3] {
        let dns = TestDns::start(zones()).unwrap();
        dns.set_fault(Some(Fault::Silent));
        let settings = DnsSettings {
            timeout: Duration::from_millis(200),
            attempts,
            ..DnsSettings::with_servers(vec![dns.addr()])
        };
        let resolver = Resolver::new(&settings).unwrap();
        let worst = settings.worst_case();

        let started = Instant::now();
        assert!(resolver.mx("example.test").await.unwrap_err().is_temporary());
        let took = started.elapsed();
        assert!(took >= worst.mul_f32(0.9) && took < worst + Duration::from_secs(3), "{attempts}: {took:?}");
        assert_eq!(dns.asked().len(), attempts, "cached resolver, {attempts} attempts");

        let started = Instant::now();
        assert!(resolver.authenticated().mx("example.test").await.unwrap_err().is_temporary());
        let took = started.elapsed();
        assert!(took >= worst.mul_f32(0.9) && took < worst + Duration::from_secs(3), "{attempts}: {took:?}");
        assert_eq!(dns.asked().len(), 2 * attempts, "AD-bit lookups, {attempts} attempts");
    }
}
