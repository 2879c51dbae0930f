//! The typed values lookups return, and the pure functions that pick them out of a DNS
//! answer's records. Both ways of asking (the cached resolver and the AD-bit exchange in
//! `authenticated`) share these, so an MX answer means the same thing whichever way it came.
//! No hickory type leaves this crate: callers get plain Rust values.

use hickory_resolver::proto::rr::{Name, RData, Record};
use std::net::{Ipv4Addr, Ipv6Addr};

/// A domain's mail exchangers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mx {
    /// RFC 7505 §3: a single MX of preference 0 whose exchange is the root ("."): the
    /// domain accepts no mail at all.
    Null,
    /// The exchangers, most preferred first (RFC 5321 §5.1); hosts of equal preference keep
    /// the order the server gave (the caller shuffles them if it wants to spread load).
    Hosts(Vec<MxHost>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    pub preference: u16,
    /// Lower case, without the trailing dot.
    pub exchange: String,
}

/// One TLSA record (RFC 6698 §2.1), as numbers: the DANE code interprets them (RFC 7672 §3.1
/// says which combinations SMTP uses), so nothing is lost here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE.
    pub usage: u8,
    /// 0 full certificate, 1 SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0 exact, 1 SHA-256, 2 SHA-512.
    pub matching: u8,
    pub data: Vec<u8>,
}

/// A domain name as callers see it: lower case, without the trailing dot.
pub(crate) fn plain_name(name: &Name) -> String {
    let mut text = name.to_lowercase().to_ascii();
    if text.ends_with('.') {
        text.pop();
    }
    text
}

/// RFC 7505 §3 null MX: the root as the exchange. A domain that publishes it beside real
/// exchangers breaks the RFC; the real ones are kept, since they show it does take mail.
pub(crate) fn mx_from(records: &[Record]) -> Option<Mx> {
    let mut hosts = Vec::new();
    let mut null_seen = false;
    for record in records {
        if let RData::MX(mx) = &record.data {
            if mx.exchange.is_root() {
                null_seen = true;
            } else {
                hosts.push(MxHost { preference: mx.preference, exchange: plain_name(&mx.exchange) });
            }
        }
    }
    if hosts.is_empty() {
        return null_seen.then_some(Mx::Null);
    }
    hosts.sort_by_key(|host| host.preference); // stable: equal preferences keep their order
    Some(Mx::Hosts(hosts))
}

pub(crate) fn ipv4_from(records: &[Record]) -> Vec<Ipv4Addr> {
    records.iter().filter_map(|r| if let RData::A(a) = &r.data { Some(a.0) } else { None }).collect()
}

pub(crate) fn ipv6_from(records: &[Record]) -> Vec<Ipv6Addr> {
    records.iter().filter_map(|r| if let RData::AAAA(a) = &r.data { Some(a.0) } else { None }).collect()
}

pub(crate) fn ptr_from(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(ptr) if !ptr.0.is_root() => Some(plain_name(&ptr.0)),
            _ => None,
        })
        .collect()
}

/// One entry per TXT record, its character-strings joined without separator (RFC 7208 §3.3,
/// RFC 6376 §3.6.2.2: a record longer than 255 octets is split into several strings).
pub(crate) fn txt_from(records: &[Record]) -> Vec<Vec<u8>> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(txt.txt_data.iter().flat_map(|s| s.iter().copied()).collect()),
            _ => None,
        })
        .collect()
}

pub(crate) fn tlsa_from(records: &[Record]) -> Vec<Tlsa> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::TLSA(tlsa) => Some(Tlsa {
                usage: tlsa.cert_usage.into(),
                selector: tlsa.selector.into(),
                matching: tlsa.matching.into(),
                data: tlsa.cert_data.clone(),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::rdata::{A, MX, PTR, TXT};

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn mx(preference: u16, exchange: &str) -> Record {
        Record::from_rdata(name("example.org."), 300, RData::MX(MX::new(preference, name(exchange))))
    }

    #[test]
    fn exchangers_come_most_preferred_first_in_lower_case() {
        let records = [mx(20, "B.example.org."), mx(10, "a.example.org."), mx(20, "c.example.org.")];
        let Some(Mx::Hosts(hosts)) = mx_from(&records) else { panic!("hosts expected") };
        let names: Vec<_> = hosts.iter().map(|h| (h.preference, h.exchange.as_str())).collect();
        assert_eq!(names, [(10, "a.example.org"), (20, "b.example.org"), (20, "c.example.org")]);
    }

    #[test]
    fn a_root_exchange_alone_is_a_null_mx() {
        assert_eq!(mx_from(&[mx(0, ".")]), Some(Mx::Null));
    }

    #[test]
    fn a_null_mx_beside_real_exchangers_is_ignored() {
        let Some(Mx::Hosts(hosts)) = mx_from(&[mx(0, "."), mx(10, "mx.example.org.")]) else {
            panic!("hosts expected")
        };
        assert_eq!(hosts.len(), 1);
    }

    #[test]
    fn no_mx_record_is_none() {
        let a = Record::from_rdata(name("example.org."), 300, RData::A(A::new(192, 0, 2, 1)));
        assert_eq!(mx_from(std::slice::from_ref(&a)), None);
        assert_eq!(ipv4_from(&[a]), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    }

    #[test]
    fn txt_strings_of_one_record_are_joined_records_kept_apart() {
        let split = TXT::new(vec!["v=spf1 ".to_string(), "-all".to_string()]);
        let other = TXT::new(vec!["other".to_string()]);
        let records = [
            Record::from_rdata(name("example.org."), 300, RData::TXT(split)),
            Record::from_rdata(name("example.org."), 300, RData::TXT(other)),
        ];
        assert_eq!(txt_from(&records), vec![b"v=spf1 -all".to_vec(), b"other".to_vec()]);
    }

    #[test]
    fn ptr_names_lose_the_trailing_dot() {
        let ptr = Record::from_rdata(name("1.2.0.192.in-addr.arpa."), 300, RData::PTR(PTR(name("Mail.Example.org."))));
        assert_eq!(ptr_from(&[ptr]), vec!["mail.example.org".to_string()]);
    }
}
