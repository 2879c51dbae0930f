//! The certificate facts of `portcullis check` (crates/check/src/x509.rs): validity and
//! subjectAltNames read from DER that a server the auditor does not trust sent.
//!
//! Input: a mode byte, then the mode's bytes.
//! - raw (0): bytes as DER. When they read as a certificate, bytes after it change nothing (the
//!   reader never looks past the certificate's own length), there are no more names than the
//!   input has room for, and the dates print.
//! - written (1): a certificate made by rcgen with fuzzed validity (any second of the years 1 to
//!   9999, so UTCTime and GeneralizedTime both), serial number, extensions and subjectAltNames
//!   (DNS names, IPv4, IPv6, and kinds the report leaves out), with or without a subject (the
//!   extension is critical without one): the reader must give back exactly that validity and
//!   those names, in order.
//! - edited (2): such a certificate with fuzzed bytes overwritten, inserted or cut, as a hostile
//!   server could send it: read as in raw mode.
//! - times (3): a certificate's skeleton (the fields the reader walks, nothing else) whose
//!   validity holds two fuzzed time elements: a time that is read must print back as the text
//!   it was read from (RFC 5280 §4.1.2.5: YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ, a real date).
#![no_main]
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use portcullis_check::fuzzing::{date, facts, Facts};
use rcgen::string::Ia5String;
use rcgen::{date_time_ymd, CertificateParams, CustomExtension, DistinguishedName, KeyPair, SanType, SerialNumber};

/// The fuzz input, read front to back; past its end every read gives zeros.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }

    fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        bytes.iter_mut().for_each(|b| *b = self.u8());
        u64::from_be_bytes(bytes)
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, in Unix seconds: what both ASN.1 time types
/// can carry between them (RFC 5280 §4.1.2.5).
const FIRST_SECOND: i64 = -62_135_596_800;
const LAST_SECOND: i64 = 253_402_300_799;

fn read_as_raw(der: &[u8]) {
    let Some(read) = facts(der) else { return };
    for trailer in [&b"\x00"[..], b"\x30\x82\xFF\xFF", b"\xA3\x03\x30\x01\x00", der] {
        let mut longer = der.to_vec();
        longer.extend_from_slice(trailer);
        assert_eq!(facts(&longer).as_ref(), Some(&read), "bytes after the certificate changed what was read");
    }
    // Each name takes a tag and a length at least.
    assert!(read.names.len() * 2 <= der.len());
    for unix in [read.not_before, read.not_after] {
        let printed = date(unix);
        assert!(printed.len() >= 10 && printed.as_bytes()[printed.len() - 6] == b'-', "{unix}: {printed}");
    }
}

/// A certificate from fuzzed parameters, and the facts it holds.
fn write(input: &mut Input) -> (Vec<u8>, Facts) {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    let key = KEY.get_or_init(|| KeyPair::generate().expect("a key pair"));

    let span = (LAST_SECOND - FIRST_SECOND + 1) as u64;
    let not_before = FIRST_SECOND + (input.u64() % span) as i64;
    let not_after = FIRST_SECOND + (input.u64() % span) as i64;
    let at = |unix: i64| date_time_ymd(1, 1, 1) + Duration::from_secs((unix - FIRST_SECOND) as u64);

    let flags = input.u8();
    let mut params = CertificateParams::default();
    params.not_before = at(not_before);
    params.not_after = at(not_after);
    if flags & 1 != 0 {
        params.distinguished_name = DistinguishedName::new();
    }
    if flags & 2 != 0 {
        let len = 1 + input.u8() as usize % 40;
        params.serial_number = Some(SerialNumber::from_slice(input.bytes(len)));
    }
    for _ in 0..input.u8() % 3 {
        // Private-use OIDs, never subjectAltName's; contents long enough for long-form lengths.
        let len = input.u8() as usize * 2;
        let mut extension =
            CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, input.u8() as u64], input.bytes(len).to_vec());
        extension.set_criticality(input.u8() & 1 != 0);
        params.custom_extensions.push(extension);
    }
    let mut names = Vec::new();
    for _ in 0..input.u8() % 6 {
        let kind = input.u8();
        let len = 1 + input.u8() as usize % 64;
        let bytes = input.bytes(len);
        let text: String = bytes.iter().map(|b| (b & 0x7F) as char).collect();
        let name = match kind % 5 {
            0 | 1 => {
                names.push(text.clone());
                SanType::DnsName(Ia5String::try_from(text).expect("ASCII"))
            }
            2 => {
                let mut octets = [0u8; 4];
                octets.iter_mut().zip(bytes).for_each(|(o, b)| *o = *b);
                names.push(Ipv4Addr::from(octets).to_string());
                SanType::IpAddress(IpAddr::V4(Ipv4Addr::from(octets)))
            }
            3 => {
                let mut octets = [0u8; 16];
                octets.iter_mut().zip(bytes).for_each(|(o, b)| *o = *b);
                names.push(Ipv6Addr::from(octets).to_string());
                SanType::IpAddress(IpAddr::V6(Ipv6Addr::from(octets)))
            }
            // Kinds the report does not show (rfc822Name, URI): skipped by the reader.
            _ if kind & 0x80 != 0 => SanType::Rfc822Name(Ia5String::try_from(text).expect("ASCII")),
            _ => SanType::URI(Ia5String::try_from(text).expect("ASCII")),
        };
        params.subject_alt_names.push(name);
    }
    let cert = params.self_signed(key).expect("rcgen signs what it was given");
    (cert.der().to_vec(), Facts { not_before, not_after, names })
}

/// One DER element with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n @ 0..0x80 => out.push(n as u8),
        n @ 0x80..0x100 => out.extend_from_slice(&[0x81, n as u8]),
        n => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// How a time the reader gave back is written: YYYYMMDDHHMMSS (GeneralizedTime) or YYMMDDHHMMSS
/// (UTCTime, whose years are 1950 to 2049), then Z.
fn written_as(unix: i64, tag: u8) -> Option<Vec<u8>> {
    let day = date(unix).replace('-', "");
    let seconds = unix.rem_euclid(86400);
    let text = format!("{day}{:02}{:02}{:02}Z", seconds / 3600, seconds / 60 % 60, seconds % 60);
    let year: i64 = text[..4].parse().ok()?;
    match tag {
        0x17 => (1950..2050).contains(&year).then(|| text[2..].into()),
        _ => Some(text.into_bytes()),
    }
}

fn times(input: &mut Input) {
    let mut validity = Vec::new();
    let mut fields = Vec::new();
    for _ in 0..2 {
        let tag = if input.u8() & 1 == 0 { 0x17 } else { 0x18 };
        let len = input.u8() as usize % 20;
        let value = input.bytes(len).to_vec();
        validity.extend(tlv(tag, &value));
        fields.push((tag, value));
    }
    let tbs = [
        tlv(0xA0, &tlv(0x02, &[2])),
        tlv(0x02, &[1]),
        tlv(0x30, &[]),
        tlv(0x30, &[]),
        tlv(0x30, &validity),
        tlv(0x30, &[]),
        tlv(0x30, &[]),
    ]
    .concat();
    let der = tlv(0x30, &[tlv(0x30, &tbs), tlv(0x30, &[]), tlv(0x03, &[0])].concat());
    let Some(read) = facts(&der) else { return };
    for ((tag, value), unix) in fields.iter().zip([read.not_before, read.not_after]) {
        // A leap second (60) is read as the first second of the next minute.
        if value.get(value.len().saturating_sub(3)..value.len().saturating_sub(1)) == Some(&b"60"[..]) {
            continue;
        }
        assert_eq!(
            written_as(unix, *tag).as_deref(),
            Some(&value[..]),
            "{:?} read as {unix} ({})",
            String::from_utf8_lossy(value),
            date(unix)
        );
    }
    read_as_raw(&der);
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    match input.u8() % 4 {
        3 => times(&mut input),
        0 => read_as_raw(input.0),
        1 => {
            let (der, written) = write(&mut input);
            assert_eq!(facts(&der), Some(written));
            read_as_raw(&der);
        }
        _ => {
            let (mut der, _) = write(&mut input);
            for _ in 0..1 + input.u8() % 4 {
                let at = (input.u64() % der.len() as u64) as usize;
                let byte = input.u8();
                match input.u8() % 3 {
                    0 => der[at] = byte,
                    1 => der.insert(at, byte),
                    _ => der.truncate(at.max(1)),
                }
            }
            read_as_raw(&der);
        }
    }
});
