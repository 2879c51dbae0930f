//! The TLS hellos of `portcullis check` (crates/check/src/hello.rs): the reader of a first flight
//! written by a server the auditor does not trust, and the ClientHello the auditor sends.
//!
//! Input: a mode byte, then the mode's bytes.
//! - raw (0): bytes as any server might send them, to `FlightReader`; the answer must not
//!   depend on how the bytes are split into reads, and the certificates it hands back must fit
//!   in the bytes it was given. The single-message readers take the same bytes on their own.
//! - server (1): a first flight written here from fuzzed fields (ServerHello with or without
//!   extensions and supported_versions, Certificate, ServerHelloDone), cut into records of fuzzed
//!   sizes and pushed in reads of fuzzed sizes; the reader must answer exactly what was written,
//!   on the read that completes the record deciding it, and never before.
//! - client (2): a ClientHello from `client_hello` (fuzzed version, offer, name, random), read by
//!   rustls's server side: a TLS 1.2 hello must carry the name, the suites (and the SCSV) and
//!   signature schemes offered; an older one must fail for nothing but the signature_algorithms
//!   extension it leaves out on purpose.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use portcullis_check::fuzzing::{
    client_hello, parse_certificate_list, parse_server_hello, Answer, FlightReader, Offer, RENEGOTIATION_SCSV, SSL3,
    TLS10, TLS11, TLS12, TLS13,
};
use rustls::pki_types::ServerName;
use rustls::server::Acceptor;
use rustls::{Error, PeerIncompatible};

/// The fuzz input, read front to back; past its end every read gives zeros.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// A size from one byte, from 1 up to `max`, small sizes more likely.
    fn size(&mut self, max: usize) -> usize {
        let b = self.u8() as usize;
        (1 + b * b * max / (255 * 255)).min(max)
    }
}

/// The whole answer to `chunks`, pushed one after another as reads.
fn answer<'a>(want_certificates: bool, chunks: impl IntoIterator<Item = &'a [u8]>) -> Answer {
    let mut reader = FlightReader::new(want_certificates);
    for chunk in chunks {
        if let Some(answer) = reader.push(chunk) {
            return answer;
        }
    }
    reader.finish()
}

/// Bytes a certificate list takes on the wire: its length and each certificate's.
fn wire_size(certificates: &[Vec<u8>]) -> usize {
    3 + certificates.iter().map(|c| 3 + c.len()).sum::<usize>()
}

fn raw(input: &mut Input) {
    let want_certificates = input.u8() & 1 != 0;
    let step = input.size(64);
    let data = input.0;
    let whole = answer(want_certificates, [data]);
    assert_eq!(answer(want_certificates, data.chunks(step)), whole, "in reads of {step}");
    assert_eq!(answer(want_certificates, data.chunks(1)), whole, "byte by byte");
    if let Answer::Hello { certificates, .. } = &whole {
        assert!(certificates.is_empty() || wire_size(certificates) <= data.len());
    }
    if let Some(certificates) = parse_certificate_list(data) {
        assert!(wire_size(&certificates) <= data.len());
    }
    let _ = parse_server_hello(data);
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u24(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
}

fn handshake(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    put_u24(out, body.len());
    out.extend_from_slice(body);
}

fn server(input: &mut Input) {
    let flags = input.u8();
    let want_certificates = flags & 1 != 0;
    let legacy_version = input.u16();
    let suite = input.u16();
    let supported_version = (flags & 2 != 0).then(|| input.u16());
    let session_id_len = (input.u8() % 33) as usize;
    let session_id = input.bytes(session_id_len);
    let mut extensions = Vec::new();
    for _ in 0..input.u8() % 4 {
        let kind = match input.u16() {
            0x002B => 0xFF01, // supported_versions only where the expected answer says so
            kind => kind,
        };
        let len = input.u8() as usize;
        extensions.push((kind, input.bytes(len)));
    }
    let certificates: Option<Vec<Vec<u8>>> = (flags & 4 != 0).then(|| {
        (0..input.u8() % 4)
            .map(|_| {
                let len = input.size(2000);
                input.bytes(len).to_vec()
            })
            .collect()
    });
    let done = flags & 8 != 0;
    let record_minor = input.u8();

    // ServerHello (RFC 5246 §7.4.1.3, RFC 8446 §4.1.3), then what TLS <= 1.2 sends after it.
    let mut body = Vec::new();
    put_u16(&mut body, legacy_version);
    body.extend_from_slice(&[0x5A; 32]);
    body.push(session_id.len() as u8);
    body.extend_from_slice(session_id);
    put_u16(&mut body, suite);
    body.push(0);
    if flags & 16 != 0 || !extensions.is_empty() || supported_version.is_some() {
        let mut block = Vec::new();
        for (kind, data) in &extensions {
            put_u16(&mut block, *kind);
            put_u16(&mut block, data.len() as u16);
            block.extend_from_slice(data);
        }
        if let Some(version) = supported_version {
            put_u16(&mut block, 0x002B);
            put_u16(&mut block, 2);
            put_u16(&mut block, version);
        }
        put_u16(&mut body, block.len() as u16);
        body.extend_from_slice(&block);
    }
    let mut messages = Vec::new();
    handshake(&mut messages, 2, &body);
    let hello_end = messages.len();
    if let Some(certificates) = &certificates {
        let mut list = Vec::new();
        for c in certificates {
            put_u24(&mut list, c.len());
            list.extend_from_slice(c);
        }
        let mut body = Vec::new();
        put_u24(&mut body, list.len());
        body.extend_from_slice(&list);
        handshake(&mut messages, 11, &body);
    }
    let certificate_end = messages.len();
    if done {
        handshake(&mut messages, 14, &[]);
    }

    // What the reader must say, and where in the messages it can first tell.
    let version = supported_version.unwrap_or(legacy_version);
    let ems = extensions.iter().any(|(kind, _)| *kind == 0x0017);
    let hello = |certificates: Vec<Vec<u8>>| Answer::Hello { version, suite, ems, certificates };
    let (expected, decided_at) = if !want_certificates || version >= TLS13 {
        (hello(vec![]), Some(hello_end))
    } else if let Some(certificates) = certificates {
        (hello(certificates), Some(certificate_end))
    } else if done {
        (hello(vec![]), Some(messages.len()))
    } else {
        (hello(vec![]), None)
    };

    // The messages in handshake records of fuzzed sizes (RFC 5246 §6.2.1: they may be split
    // and joined freely); `decision` is the end of the record that completes the deciding one.
    let sizes: Vec<usize> = (0..4).map(|_| input.size(16384)).collect();
    let mut stream = Vec::new();
    let mut decision = None;
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at == messages.len() {
            break;
        }
        let fragment = &messages[at..(at + size).min(messages.len())];
        stream.extend_from_slice(&[22, 3, record_minor]);
        put_u16(&mut stream, fragment.len() as u16);
        stream.extend_from_slice(fragment);
        at += fragment.len();
        if decision.is_none() && decided_at.is_some_and(|d| d <= at) {
            decision = Some(stream.len());
        }
    }

    let reads: Vec<usize> = (0..4).map(|_| input.size(4096)).collect();
    let mut reader = FlightReader::new(want_certificates);
    let mut read = 0;
    for size in reads.iter().cycle() {
        if read == stream.len() {
            break;
        }
        let end = (read + size).min(stream.len());
        let answer = reader.push(&stream[read..end]);
        read = end;
        match decision {
            Some(decision) if read >= decision => {
                assert_eq!(answer, Some(expected), "answered on the read that completes byte {decision}");
                return;
            }
            _ => assert_eq!(answer, None, "answered after {read} of {} bytes", stream.len()),
        }
    }
    assert_eq!(decision, None);
    assert_eq!(reader.finish(), expected);
}

/// Host names: mostly what a DNS name may hold, in both cases.
const NAME_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._*";

fn client(input: &mut Input) {
    let version = [SSL3, TLS10, TLS11, TLS12][(input.u8() % 4) as usize];
    let offer = match input.u8() % 5 {
        0 => Offer::AnyFor(version),
        1 => Offer::AnyFor(input.u16()),
        2 => Offer::NonAead,
        3 => Offer::NonForwardSecret,
        _ => Offer::Obsolete,
    };
    let mut random = [0u8; 32];
    let from_input = input.bytes(32);
    random[..from_input.len()].copy_from_slice(from_input);
    let name: String = input.bytes(300).iter().map(|b| NAME_CHARS[*b as usize % NAME_CHARS.len()] as char).collect();
    // The probe names a server in SNI only with a DNS name rustls accepts (probe.rs `sni`).
    let sni = match ServerName::try_from(name.as_str()) {
        Ok(ServerName::DnsName(dns)) => Some(dns.as_ref().to_string()),
        _ => None,
    };
    let record = client_hello(version, offer, sni.as_deref(), random);

    let mut acceptor = Acceptor::default();
    assert_eq!(acceptor.read_tls(&mut &record[..]).unwrap(), record.len());
    let mut suites: Vec<u16> = offer.suites().iter().map(|s| s.id).collect();
    suites.push(RENEGOTIATION_SCSV);
    match acceptor.accept() {
        Ok(Some(accepted)) => {
            assert_eq!(version, TLS12, "rustls accepted a hello without signature_algorithms");
            let hello = accepted.client_hello();
            // rustls hands the name over lower-cased.
            assert_eq!(hello.server_name(), sni.map(|n| n.to_ascii_lowercase()).as_deref());
            let offered: Vec<u16> = hello.cipher_suites().iter().map(|&s| u16::from(s)).collect();
            assert_eq!(offered, suites);
            assert!(!hello.signature_schemes().is_empty());
            assert!(hello.named_groups().is_some_and(|g| !g.is_empty()));
        }
        Ok(None) => panic!("rustls wants more than the one record of the hello"),
        Err((Error::PeerIncompatible(PeerIncompatible::SignatureAlgorithmsExtensionRequired), _))
            if version < TLS12 => {}
        Err((e, _)) => panic!("rustls refused a {version:#06x} hello: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    match input.u8() % 3 {
        0 => raw(&mut input),
        1 => server(&mut input),
        _ => client(&mut input),
    }
});
