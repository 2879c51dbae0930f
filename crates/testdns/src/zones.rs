//! The data a test DNS server serves: records added from Rust ([`Zones::txt`], [`Zones::mx`],
//! ...) or parsed from zone-file text (RFC 1035 §5, through hickory-proto's parser), and the
//! lookup a recursive resolver would answer from them: records, NODATA or NXDOMAIN.

use hickory_proto::rr::rdata::{A, AAAA, MX, PTR, SOA, TLSA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The TTL of records added from Rust, and of the negative answers (RFC 2308 §5).
const TTL: u32 = 60;

/// What the server knows. Every name outside these records does not exist (NXDOMAIN), as a
/// recursive resolver for a world made only of the test domains would say.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    records: Vec<Record>,
    /// Origins of zones, for the SOA of negative answers (RFC 2308 §3).
    origins: Vec<Name>,
    /// Names under which answers are "validated": AD=1 when the query asks (RFC 6840 §5.7).
    authenticated: Vec<Name>,
}

/// What a question finds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Found {
    Records(Vec<Record>),
    NoData,
    NxDomain,
}

impl Zones {
    pub fn new() -> Zones {
        Zones::default()
    }

    /// Adds a zone written as a zone file: `$ORIGIN`, `$TTL`, relative names and `@` work
    /// as in any master file. The error says what the parser did not understand.
    pub fn zone_text(mut self, origin: &str, text: &str) -> Result<Zones, String> {
        let origin = name(origin);
        let (_, sets) = Parser::new(text, None, Some(origin.clone())).parse().map_err(|e| e.to_string())?;
        for set in sets.values() {
            self.records.extend(set.records_without_rrsigs().cloned());
        }
        self.origins.push(origin);
        Ok(self)
    }

    /// Declares `origin` a zone: its SOA is sent with negative answers under it.
    pub fn zone(mut self, origin: &str) -> Zones {
        self.origins.push(name(origin));
        self
    }

    /// Answers for `suffix` and every name under it carry AD=1 when the query set AD or DO.
    pub fn authenticated(mut self, suffix: &str) -> Zones {
        self.authenticated.push(name(suffix));
        self
    }

    /// Any record, for what the helpers below do not cover.
    pub fn record(mut self, owner: &str, data: RData) -> Zones {
        self.records.push(Record::from_rdata(name(owner), TTL, data));
        self
    }

    pub fn a(self, owner: &str, ip: Ipv4Addr) -> Zones {
        self.record(owner, RData::A(A(ip)))
    }

    pub fn aaaa(self, owner: &str, ip: Ipv6Addr) -> Zones {
        self.record(owner, RData::AAAA(AAAA(ip)))
    }

    /// An MX; `"."` as the exchange with preference 0 is a null MX (RFC 7505).
    pub fn mx(self, owner: &str, preference: u16, exchange: &str) -> Zones {
        self.record(owner, RData::MX(MX::new(preference, name(exchange))))
    }

    /// A TXT record holding `text`, split into character-strings of at most 255 octets as a
    /// zone file would (RFC 1035 §3.3.14), so any length can be served (up to the 64 KiB
    /// of a DNS message).
    pub fn txt(self, owner: &str, text: &str) -> Zones {
        let strings: Vec<&[u8]> = text.as_bytes().chunks(255).collect();
        let strings = if strings.is_empty() { vec![&b""[..]] } else { strings };
        self.record(owner, RData::TXT(TXT::from_bytes(strings)))
    }

    /// The PTR of an address: `ip` points back to `host`.
    pub fn ptr(self, ip: IpAddr, host: &str) -> Zones {
        let owner = Name::from(ip);
        let mut zones = self;
        zones.records.push(Record::from_rdata(owner, TTL, RData::PTR(PTR(name(host)))));
        zones
    }

    /// A TLSA record (RFC 6698 §2.1).
    pub fn tlsa(self, owner: &str, usage: u8, selector: u8, matching: u8, data: &[u8]) -> Zones {
        let tlsa = TLSA::new(usage.into(), selector.into(), matching.into(), data.to_vec());
        self.record(owner, RData::TLSA(tlsa))
    }

    pub(crate) fn lookup(&self, qname: &Name, qtype: RecordType) -> Found {
        let answers: Vec<Record> =
            self.records.iter().filter(|r| r.name == *qname && r.record_type() == qtype).cloned().collect();
        if !answers.is_empty() {
            return Found::Records(answers);
        }
        // The name exists if it owns any record or is an empty non-terminal (RFC 8020 §2).
        let exists = self.records.iter().any(|r| qname.zone_of(&r.name)) || self.origins.contains(qname);
        if exists {
            Found::NoData
        } else {
            Found::NxDomain
        }
    }

    /// The SOA of the closest zone holding `qname`, for a negative answer.
    pub(crate) fn soa_for(&self, qname: &Name) -> Option<Record> {
        let origin = self.origins.iter().filter(|o| o.zone_of(qname)).max_by_key(|o| o.num_labels())?;
        let explicit = self.records.iter().find(|r| r.name == *origin && r.record_type() == RecordType::SOA);
        Some(explicit.cloned().unwrap_or_else(|| {
            let soa = SOA::new(
                Name::from_ascii("ns").and_then(|ns| ns.append_domain(origin)).unwrap_or_else(|_| origin.clone()),
                Name::from_ascii("hostmaster").and_then(|h| h.append_domain(origin)).unwrap_or_else(|_| origin.clone()),
                1,
                3600,
                600,
                86400,
                TTL,
            );
            Record::from_rdata(origin.clone(), TTL, RData::SOA(soa))
        }))
    }

    pub(crate) fn is_authenticated(&self, qname: &Name) -> bool {
        self.authenticated.iter().any(|suffix| suffix.zone_of(qname))
    }
}

/// Names given by tests are trusted: a bad one is a bug in the test, so it panics here with
/// the name, at the line that wrote it.
fn name(text: &str) -> Name {
    let mut parsed = Name::from_utf8(text).unwrap_or_else(|e| panic!("test zone name {text:?}: {e}"));
    parsed.set_fqdn(true);
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Name {
        name(text)
    }

    #[test]
    fn records_nodata_and_nxdomain_are_told_apart() {
        let zones = Zones::new().zone("example.test").a("mail.example.test", Ipv4Addr::new(192, 0, 2, 1));
        assert!(matches!(zones.lookup(&q("MAIL.example.test"), RecordType::A), Found::Records(r) if r.len() == 1));
        assert_eq!(zones.lookup(&q("mail.example.test"), RecordType::MX), Found::NoData);
        assert_eq!(zones.lookup(&q("example.test"), RecordType::MX), Found::NoData); // the apex exists
        assert_eq!(zones.lookup(&q("nope.example.test"), RecordType::A), Found::NxDomain);
    }

    #[test]
    fn an_empty_non_terminal_exists() {
        let zones = Zones::new().txt("sel._domainkey.example.test", "v=DKIM1; p=");
        assert_eq!(zones.lookup(&q("_domainkey.example.test"), RecordType::TXT), Found::NoData);
    }

    #[test]
    fn zone_text_is_parsed_with_relative_names() {
        let text = "$TTL 300\n@ IN MX 10 mx\nmx IN A 192.0.2.7\n@ IN TXT \"v=spf1 \" \"-all\"\n";
        let zones = Zones::new().zone_text("example.test", text).unwrap();
        let Found::Records(mx) = zones.lookup(&q("example.test"), RecordType::MX) else { panic!() };
        assert_eq!(mx[0].data, RData::MX(MX::new(10, q("mx.example.test"))));
        assert!(matches!(zones.lookup(&q("mx.example.test"), RecordType::A), Found::Records(_)));
        let Found::Records(txt) = zones.lookup(&q("example.test"), RecordType::TXT) else { panic!() };
        let RData::TXT(txt) = &txt[0].data else { panic!() };
        assert_eq!(txt.txt_data.len(), 2);
    }

    #[test]
    fn long_txt_is_split_into_strings_of_255() {
        let zones = Zones::new().txt("big.example.test", &"x".repeat(600));
        let Found::Records(txt) = zones.lookup(&q("big.example.test"), RecordType::TXT) else { panic!() };
        let RData::TXT(txt) = &txt[0].data else { panic!() };
        let lengths: Vec<usize> = txt.txt_data.iter().map(|s| s.len()).collect();
        assert_eq!(lengths, [255, 255, 90]);
    }

    #[test]
    fn negative_answers_carry_the_closest_zones_soa() {
        let zones = Zones::new().zone("test").zone("example.test");
        let soa = zones.soa_for(&q("x.example.test")).unwrap();
        assert_eq!(soa.name, q("example.test"));
        assert!(zones.soa_for(&q("other.invalid")).is_none());
    }
}
