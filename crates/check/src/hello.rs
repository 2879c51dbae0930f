//! Hand-built ClientHello records and a reader for the server's answer, as pure functions.
//!
//! Why by hand: the question "does this server still accept SSLv3, TLS 1.0 or 1.1, or a TLS 1.2
//! suite without AEAD or forward secrecy?" can only be asked by offering exactly that, and rustls
//! cannot: it implements nothing below TLS 1.2 and only the nine modern suites (on purpose).
//! Linking OpenSSL for it would bring a second TLS stack into a project that has chosen one.
//! The answer needs no cryptography at all: the server's first flight (ServerHello, and for
//! TLS <= 1.2 its Certificate) or its alert is plaintext. So a probe sends one ClientHello
//! built here, reads records until it can tell, and hangs up; no handshake is ever completed.

use crate::suites::{Offer, RENEGOTIATION_SCSV};

pub const SSL3: u16 = 0x0300;
pub const TLS10: u16 = 0x0301;
pub const TLS11: u16 = 0x0302;
pub const TLS12: u16 = 0x0303;
pub const TLS13: u16 = 0x0304;

pub fn version_name(version: u16) -> String {
    match version {
        SSL3 => "SSLv3".into(),
        TLS10 => "TLSv1.0".into(),
        TLS11 => "TLSv1.1".into(),
        TLS12 => "TLSv1.2".into(),
        TLS13 => "TLSv1.3".into(),
        other => format!("0x{other:04X}"),
    }
}

const CONTENT_ALERT: u8 = 21;
const CONTENT_HANDSHAKE: u8 = 22;
const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const HS_CERTIFICATE: u8 = 11;
const HS_SERVER_HELLO_DONE: u8 = 14;

/// Groups for ECDHE (x25519, P-256, P-384, P-521) and one finite-field group for DHE.
const GROUPS: &[u16] = &[0x001D, 0x0017, 0x0018, 0x0019, 0x0100];
/// Signature schemes a TLS 1.2 client accepts; SHA-1 included so an old server can still answer.
const SIGNATURE_SCHEMES: &[u16] =
    &[0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0807, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201];

/// One ClientHello record offering `version` (as client_version) and the suites of `offer`.
///
/// `server_name` goes into SNI when it is a DNS name; `random` is the client random (any bytes:
/// nothing is ever derived from it). SSLv3 gets no extensions at all, as an SSLv3 client would
/// send; the renegotiation SCSV is offered instead of the renegotiation_info extension.
pub fn client_hello(version: u16, offer: Offer, server_name: Option<&str>, random: [u8; 32]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&random);
    body.push(0); // no session id
    let mut suites: Vec<u16> = offer.suites().iter().map(|s| s.id).collect();
    suites.push(RENEGOTIATION_SCSV);
    put_u16(&mut body, (suites.len() * 2) as u16);
    for id in suites {
        put_u16(&mut body, id);
    }
    body.extend_from_slice(&[1, 0]); // compression: null only

    if version > SSL3 {
        let mut ext = Vec::new();
        if let Some(name) = server_name {
            // server_name: a list holding one host_name.
            let name = name.as_bytes();
            let mut list = vec![0u8];
            put_u16(&mut list, name.len() as u16);
            list.extend_from_slice(name);
            let mut data = Vec::new();
            put_u16(&mut data, list.len() as u16);
            data.extend_from_slice(&list);
            put_ext(&mut ext, 0x0000, &data);
        }
        let mut groups = Vec::new();
        put_u16(&mut groups, (GROUPS.len() * 2) as u16);
        GROUPS.iter().for_each(|g| put_u16(&mut groups, *g));
        put_ext(&mut ext, 0x000A, &groups);
        put_ext(&mut ext, 0x000B, &[1, 0]); // ec_point_formats: uncompressed
        if version >= TLS12 {
            let mut schemes = Vec::new();
            put_u16(&mut schemes, (SIGNATURE_SCHEMES.len() * 2) as u16);
            SIGNATURE_SCHEMES.iter().for_each(|s| put_u16(&mut schemes, *s));
            put_ext(&mut ext, 0x000D, &schemes);
        }
        if offer.with_ems() {
            put_ext(&mut ext, 0x0017, &[]); // extended_master_secret (RFC 7627)
        }
        put_u16(&mut body, ext.len() as u16);
        body.extend_from_slice(&ext);
    }

    let mut handshake = vec![HS_CLIENT_HELLO];
    put_u24(&mut handshake, body.len());
    handshake.extend_from_slice(&body);

    // The record layer version stays at TLS 1.0 for newer hellos, as browsers do: some old
    // servers drop a record whose version they do not know before reading the hello.
    let record_version = version.min(TLS10);
    let mut record = vec![CONTENT_HANDSHAKE];
    put_u16(&mut record, record_version);
    put_u16(&mut record, handshake.len() as u16);
    record.extend_from_slice(&handshake);
    record
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u24(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
}

fn put_ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    put_u16(out, kind);
    put_u16(out, data.len() as u16);
    out.extend_from_slice(data);
}

/// What the server said to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It chose a version and a suite, and (`ems`) answered the extended master secret
    /// (RFC 7627) the probe offered. `certificates` is the chain from its Certificate message
    /// when that came in the same flight (TLS <= 1.2; empty otherwise).
    Hello { version: u16, suite: u16, ems: bool, certificates: Vec<Vec<u8>> },
    /// It refused with an alert (usually protocol_version 70 or handshake_failure 40).
    Alert { level: u8, description: u8 },
    /// It hung up, or went quiet, before saying anything.
    Closed,
    /// What came back was not TLS at all (e.g. a plaintext greeting).
    NotTls,
}

impl Answer {
    /// For the report's probe log: what the server said.
    pub fn describe(&self) -> String {
        match self {
            Answer::Hello { version, suite, ems, .. } => {
                let ems = if *ems { ", extended master secret" } else { "" };
                format!("{} {}{ems}", version_name(*version), crate::suites::name(*suite))
            }
            Answer::Alert { description, .. } => format!("alert {}", alert_name(*description)),
            Answer::Closed => "closed without a ServerHello".into(),
            Answer::NotTls => "not TLS".into(),
        }
    }
}

pub fn alert_name(description: u8) -> &'static str {
    match description {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        47 => "illegal_parameter",
        50 => "decode_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        109 => "missing_extension",
        112 => "unrecognized_name",
        _ => "alert",
    }
}

/// Reads the server's first flight, record by record, without doing any I/O itself: the probe
/// pushes whatever bytes arrive and stops as soon as [`FlightReader::push`] has an answer.
#[derive(Debug, Default)]
pub struct FlightReader {
    /// Bytes pushed so far: a first flight is a few kilobytes, a hostile server's stream is not.
    received: usize,
    records: Vec<u8>,
    handshake: Vec<u8>,
    hello: Option<ServerHello>,
    /// Keep reading after the ServerHello until the Certificate message (for the chain).
    pub want_certificates: bool,
}

/// Records larger than this are not something a TLS server sends.
const MAX_RECORD: usize = 16384 + 2048;
/// A first flight (ServerHello, Certificate, key exchange) larger than this is not an answer.
pub const MAX_FLIGHT: usize = 1024 * 1024;

impl FlightReader {
    pub fn new(want_certificates: bool) -> FlightReader {
        FlightReader { want_certificates, ..FlightReader::default() }
    }

    /// Feeds bytes; `Some` once the answer is known.
    pub fn push(&mut self, data: &[u8]) -> Option<Answer> {
        self.received += data.len();
        if self.received > MAX_FLIGHT {
            return Some(self.give_up(Answer::NotTls));
        }
        self.records.extend_from_slice(data);
        loop {
            if self.records.len() < 5 {
                return None;
            }
            let (kind, major, len) =
                (self.records[0], self.records[1], u16::from_be_bytes([self.records[3], self.records[4]]) as usize);
            if !(20..=23).contains(&kind) || major != 3 || len > MAX_RECORD {
                return Some(self.give_up(Answer::NotTls));
            }
            if self.records.len() < 5 + len {
                return None;
            }
            let fragment: Vec<u8> = self.records.drain(..5 + len).skip(5).collect();
            match kind {
                CONTENT_ALERT if self.hello.is_none() => {
                    return Some(match fragment[..] {
                        [level, description, ..] => Answer::Alert { level, description },
                        _ => Answer::NotTls,
                    });
                }
                CONTENT_HANDSHAKE => {
                    self.handshake.extend_from_slice(&fragment);
                    if let Some(answer) = self.handshake_messages() {
                        return Some(answer);
                    }
                }
                // An alert or anything else after the ServerHello: what we have is the answer.
                _ => return Some(self.give_up(Answer::NotTls)),
            }
        }
    }

    /// The answer when the server closes or goes quiet.
    pub fn finish(self) -> Answer {
        self.give_up(Answer::Closed)
    }

    fn give_up(&self, otherwise: Answer) -> Answer {
        match self.hello {
            Some(hello) => hello.answer(Vec::new()),
            None => otherwise,
        }
    }

    fn handshake_messages(&mut self) -> Option<Answer> {
        loop {
            if self.handshake.len() < 4 {
                return None;
            }
            let kind = self.handshake[0];
            let len = u32::from_be_bytes([0, self.handshake[1], self.handshake[2], self.handshake[3]]) as usize;
            if len > 1 << 20 {
                return Some(self.give_up(Answer::NotTls));
            }
            if self.handshake.len() < 4 + len {
                return None;
            }
            let body: Vec<u8> = self.handshake.drain(..4 + len).skip(4).collect();
            match (kind, self.hello) {
                (HS_SERVER_HELLO, None) => {
                    let Some(hello) = parse_server_hello(&body) else {
                        return Some(Answer::NotTls);
                    };
                    self.hello = Some(hello);
                    // TLS 1.3 encrypts everything after the ServerHello.
                    if !self.want_certificates || hello.version >= TLS13 {
                        return Some(self.give_up(Answer::Closed));
                    }
                }
                (HS_CERTIFICATE, Some(hello)) => {
                    let certificates = parse_certificate_list(&body).unwrap_or_default();
                    return Some(hello.answer(certificates));
                }
                (HS_SERVER_HELLO_DONE, Some(_)) => return Some(self.give_up(Answer::Closed)),
                (_, None) => return Some(Answer::NotTls),
                _ => {}
            }
        }
    }
}

/// What a ServerHello says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerHello {
    pub version: u16,
    pub suite: u16,
    /// It carries the extended_master_secret extension (RFC 7627 §5.1: the server uses it).
    pub ems: bool,
}

impl ServerHello {
    fn answer(self, certificates: Vec<Vec<u8>>) -> Answer {
        Answer::Hello { version: self.version, suite: self.suite, ems: self.ems, certificates }
    }
}

/// The negotiated version, cipher suite and extended master secret from a ServerHello body.
/// The supported_versions extension, when present, carries the real version (TLS 1.3 says 1.2
/// in the legacy field).
pub fn parse_server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut r = Reader(body);
    let legacy_version = r.u16()?;
    r.take(32)?; // random
    let sid = r.u8()? as usize;
    r.take(sid)?;
    let suite = r.u16()?;
    r.u8()?; // compression
    let mut version = legacy_version;
    let mut ems = false;
    if let Some(len) = r.u16() {
        let mut ext = Reader(r.take(len as usize)?);
        while let (Some(kind), Some(len)) = (ext.u16(), ext.u16()) {
            let data = ext.take(len as usize)?;
            match kind {
                0x002B if data.len() == 2 => version = u16::from_be_bytes([data[0], data[1]]),
                0x0017 => ems = true,
                _ => {}
            }
        }
    }
    Some(ServerHello { version, suite, ems })
}

/// The DER certificates of a TLS <= 1.2 Certificate message.
pub fn parse_certificate_list(body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut r = Reader(body);
    let total = r.u24()?;
    let mut list = Reader(r.take(total)?);
    let mut certs = Vec::new();
    while let Some(len) = list.u24() {
        certs.push(list.take(len)?.to_vec());
    }
    Some(certs)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3).map(|b| u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (record version, client version, suites, extensions as (type, data)).
    type Parts = (u16, u16, Vec<u16>, Vec<(u16, Vec<u8>)>);

    /// Walks a ClientHello record the way a server would and returns its parts.
    fn dissect(record: &[u8]) -> Parts {
        let mut r = Reader(record);
        assert_eq!(r.u8(), Some(CONTENT_HANDSHAKE));
        let record_version = r.u16().unwrap();
        let len = r.u16().unwrap() as usize;
        assert_eq!(len, r.0.len(), "record length");
        assert_eq!(r.u8(), Some(HS_CLIENT_HELLO));
        assert_eq!(r.u24(), Some(len - 4), "handshake length");
        let version = r.u16().unwrap();
        r.take(32).unwrap();
        assert_eq!(r.u8(), Some(0));
        let n = r.u16().unwrap() as usize;
        let mut suites = Reader(r.take(n).unwrap());
        let suites: Vec<u16> = std::iter::from_fn(|| suites.u16()).collect();
        assert_eq!(r.take(2), Some(&[1u8, 0][..]));
        let mut exts = Vec::new();
        if let Some(n) = r.u16() {
            let mut e = Reader(r.take(n as usize).unwrap());
            while let Some(kind) = e.u16() {
                let len = e.u16().unwrap() as usize;
                exts.push((kind, e.take(len).unwrap().to_vec()));
            }
        }
        assert!(r.0.is_empty(), "trailing bytes");
        (record_version, version, suites, exts)
    }

    #[test]
    fn tls10_hello_offers_only_what_tls10_can_use() {
        let hello = client_hello(TLS10, Offer::AnyFor(TLS10), Some("mail.example.org"), [7; 32]);
        let (record_version, version, suites, exts) = dissect(&hello);
        assert_eq!((record_version, version), (TLS10, TLS10));
        assert!(suites.contains(&0xC013) && suites.contains(&0x002F) && suites.contains(&RENEGOTIATION_SCSV));
        assert!(!suites.contains(&0xC02F), "GCM does not exist before TLS 1.2");
        let kinds: Vec<u16> = exts.iter().map(|e| e.0).collect();
        assert_eq!(kinds, [0x0000, 0x000A, 0x000B, 0x0017], "no signature_algorithms before TLS 1.2");
        let sni = &exts[0].1;
        assert_eq!(&sni[5..], b"mail.example.org");
        assert_eq!(u16::from_be_bytes([sni[3], sni[4]]) as usize, "mail.example.org".len());
    }

    #[test]
    fn ssl3_hello_has_no_extensions() {
        let hello = client_hello(SSL3, Offer::AnyFor(SSL3), Some("x.example"), [0; 32]);
        let (record_version, version, _, exts) = dissect(&hello);
        assert_eq!((record_version, version), (SSL3, SSL3));
        assert!(exts.is_empty());
    }

    #[test]
    fn tls12_class_hellos() {
        let hello = client_hello(TLS12, Offer::NonForwardSecret, None, [1; 32]);
        let (record_version, version, suites, exts) = dissect(&hello);
        assert_eq!((record_version, version), (TLS10, TLS12));
        assert!(suites.contains(&0x009C) && suites.contains(&0x002F));
        assert!(!suites.iter().any(|id| [0xC02F, 0xC013, 0x000A].contains(id)));
        assert!(exts.iter().any(|e| e.0 == 0x000D), "TLS 1.2 needs signature_algorithms");
        assert!(!exts.iter().any(|e| e.0 == 0x0000), "no SNI without a name");
    }

    fn record(kind: u8, version: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        put_u16(&mut out, version);
        put_u16(&mut out, payload.len() as u16);
        out.extend_from_slice(payload);
        out
    }

    fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        put_u24(&mut out, body.len());
        out.extend_from_slice(body);
        out
    }

    fn server_hello(version: u16, suite: u16, supported_version: Option<u16>) -> Vec<u8> {
        server_hello_with(version, suite, supported_version, false)
    }

    fn server_hello_with(version: u16, suite: u16, supported_version: Option<u16>, ems: bool) -> Vec<u8> {
        let mut body = Vec::new();
        put_u16(&mut body, version);
        body.extend_from_slice(&[9; 32]);
        body.push(32);
        body.extend_from_slice(&[3; 32]);
        put_u16(&mut body, suite);
        body.push(0);
        let mut ext = Vec::new();
        put_ext(&mut ext, 0xFF01, &[0]);
        if let Some(v) = supported_version {
            put_ext(&mut ext, 0x002B, &v.to_be_bytes());
        }
        if ems {
            put_ext(&mut ext, 0x0017, &[]);
        }
        put_u16(&mut body, ext.len() as u16);
        body.extend_from_slice(&ext);
        handshake(HS_SERVER_HELLO, &body)
    }

    fn certificate(certs: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for c in certs {
            put_u24(&mut list, c.len());
            list.extend_from_slice(c);
        }
        let mut body = Vec::new();
        put_u24(&mut body, list.len());
        body.extend_from_slice(&list);
        handshake(HS_CERTIFICATE, &body)
    }

    #[test]
    fn server_hello_then_certificate_byte_by_byte() {
        let mut flight = server_hello(TLS10, 0xC009, None);
        flight.extend(certificate(&[b"leaf", b"intermediate"]));
        let mut bytes = record(CONTENT_HANDSHAKE, TLS10, &flight);
        let first_record = bytes.len();
        bytes.extend(record(CONTENT_HANDSHAKE, TLS10, &handshake(HS_SERVER_HELLO_DONE, &[])));
        let mut reader = FlightReader::new(true);
        let mut answer = None;
        for (i, b) in bytes.iter().enumerate() {
            answer = reader.push(&[*b]);
            if answer.is_some() {
                assert_eq!(i + 1, first_record, "stops at the Certificate message");
                break;
            }
        }
        assert_eq!(
            answer,
            Some(Answer::Hello {
                version: TLS10,
                suite: 0xC009,
                ems: false,
                certificates: vec![b"leaf".to_vec(), b"intermediate".to_vec()]
            })
        );
    }

    #[test]
    fn handshake_split_over_records() {
        let hello = server_hello(TLS12, 0xC02F, None);
        let (a, b) = hello.split_at(10);
        let mut reader = FlightReader::new(false);
        assert_eq!(reader.push(&record(CONTENT_HANDSHAKE, TLS12, a)), None);
        assert_eq!(
            reader.push(&record(CONTENT_HANDSHAKE, TLS12, b)),
            Some(Answer::Hello { version: TLS12, suite: 0xC02F, ems: false, certificates: vec![] })
        );
    }

    #[test]
    fn tls13_version_comes_from_supported_versions() {
        let mut reader = FlightReader::new(true);
        let answer = reader.push(&record(CONTENT_HANDSHAKE, TLS12, &server_hello(TLS12, 0x1301, Some(TLS13))));
        assert_eq!(answer, Some(Answer::Hello { version: TLS13, suite: 0x1301, ems: false, certificates: vec![] }));
    }

    #[test]
    fn alerts_closes_and_plaintext() {
        let mut reader = FlightReader::new(false);
        assert_eq!(
            reader.push(&record(CONTENT_ALERT, TLS10, &[2, 70])),
            Some(Answer::Alert { level: 2, description: 70 })
        );
        assert_eq!(alert_name(70), "protocol_version");
        let mut reader = FlightReader::new(false);
        assert_eq!(reader.push(&[22, 3]), None);
        assert_eq!(reader.finish(), Answer::Closed);
        let mut reader = FlightReader::new(false);
        assert_eq!(reader.push(b"* OK IMAP ready\r\n"), Some(Answer::NotTls));
        let mut reader = FlightReader::new(false);
        assert_eq!(reader.push(b"220 mail.example.org ESMTP\r\n"), Some(Answer::NotTls));
    }

    #[test]
    fn hello_without_certificate_before_close_still_counts() {
        let mut reader = FlightReader::new(true);
        assert_eq!(reader.push(&record(CONTENT_HANDSHAKE, TLS11, &server_hello(TLS11, 0x002F, None))), None);
        assert_eq!(reader.finish(), Answer::Hello { version: TLS11, suite: 0x002F, ems: false, certificates: vec![] });
    }

    #[test]
    fn the_extended_master_secret_is_offered_and_its_answer_read() {
        let (_, _, _, exts) = dissect(&client_hello(TLS12, Offer::AnyFor(TLS12), None, [1; 32]));
        assert!(exts.iter().any(|e| e.0 == 0x0017), "offered by every probe but one");
        let (_, _, suites, exts) = dissect(&client_hello(TLS12, Offer::WithoutEms, None, [1; 32]));
        assert!(!exts.iter().any(|e| e.0 == 0x0017), "the one probe without it");
        assert_eq!(suites.len(), Offer::AnyFor(TLS12).suites().len() + 1, "the same suites, and the SCSV");
        let mut reader = FlightReader::new(false);
        let answer = reader.push(&record(CONTENT_HANDSHAKE, TLS12, &server_hello_with(TLS12, 0xC02F, None, true)));
        assert_eq!(answer, Some(Answer::Hello { version: TLS12, suite: 0xC02F, ems: true, certificates: vec![] }));
        assert_eq!(answer.unwrap().describe(), "TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, extended master secret");
    }

    #[test]
    fn an_endless_flight_is_not_an_answer() {
        // A ServerHello, then handshake messages of an unknown type that never end.
        let mut reader = FlightReader::new(true);
        assert_eq!(reader.push(&record(CONTENT_HANDSHAKE, TLS12, &server_hello(TLS12, 0xC02F, None))), None);
        let filler = record(CONTENT_HANDSHAKE, TLS12, &handshake(99, &[0; 1000]));
        let mut pushed = 0;
        let answer = loop {
            if let Some(answer) = reader.push(&filler) {
                break answer;
            }
            pushed += filler.len();
            assert!(pushed <= MAX_FLIGHT, "still reading after {pushed} bytes");
        };
        assert_eq!(answer, Answer::Hello { version: TLS12, suite: 0xC02F, ems: false, certificates: vec![] });
    }

    #[test]
    fn truncated_server_hello_is_not_tls() {
        let mut reader = FlightReader::new(false);
        assert_eq!(
            reader.push(&record(CONTENT_HANDSHAKE, TLS12, &handshake(HS_SERVER_HELLO, &[3, 3, 0]))),
            Some(Answer::NotTls)
        );
    }
}
