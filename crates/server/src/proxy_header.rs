//! The PROXY protocol header a load balancer writes before a client's first byte (HAProxy's
//! proxy-protocol.txt, versions 1 and 2), sans-IO: [`next_read`] says how many more bytes to
//! read so that not one byte past the header is taken from the socket (what follows belongs to
//! the client: a TLS ClientHello, an SMTP command), and [`decode`] turns the complete header
//! into the client's address. The parsing itself is the `ppp` crate's, which is fuzzed
//! upstream; this file only bounds the reading and decides what a header means here.

use std::net::SocketAddr;

use portcullis_events::ProxyRefusal;
use ppp::{v1, v2, HeaderResult};

/// The v2 signature (proxy-protocol.txt §2.2): no text protocol can begin with it.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part of a v2 header: signature, version and command, family, length.
const V2_FIXED: usize = 16;
/// The longest v1 header, CRLF included (§2.1: "a receiver may be configured to read at most
/// 107 bytes").
const V1_MAX: usize = 107;
/// The longest v2 header taken: room for the addresses and a few TLVs (unique id, SSL
/// information). §2.2 allows 64 KiB; nothing a balancer needs to tell us comes near this.
pub const V2_MAX: usize = 1024;

/// What the reader should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Read exactly this many more bytes (never past the end of the header).
    Read(usize),
    /// `read` holds the whole header and nothing more.
    Complete,
}

/// Given the bytes read so far from a new connection, how many more the header needs, or why
/// this is not going to be a header.
pub fn next_read(read: &[u8]) -> Result<Next, ProxyRefusal> {
    match read.first() {
        None => Ok(Next::Read(1)),
        Some(b'P') => next_v1(read),
        Some(b'\r') => next_v2(read),
        Some(_) => Err(ProxyRefusal::MissingHeader),
    }
}

/// v1 is a line: read it a byte at a time up to its CRLF, so that the client's own first line
/// stays in the socket.
fn next_v1(read: &[u8]) -> Result<Next, ProxyRefusal> {
    const PREFIX: &[u8] = b"PROXY ";
    let n = read.len().min(PREFIX.len());
    if read[..n] != PREFIX[..n] {
        return Err(ProxyRefusal::MissingHeader);
    }
    if read.ends_with(b"\r\n") {
        return Ok(Next::Complete);
    }
    if read.len() >= V1_MAX || read.contains(&b'\n') {
        return Err(ProxyRefusal::BadHeader);
    }
    Ok(Next::Read(1))
}

/// v2 is the fixed 16 bytes, whose last two give the length of the rest (big-endian).
fn next_v2(read: &[u8]) -> Result<Next, ProxyRefusal> {
    let n = read.len().min(V2_SIGNATURE.len());
    if read[..n] != V2_SIGNATURE[..n] {
        return Err(ProxyRefusal::MissingHeader);
    }
    if read.len() < V2_FIXED {
        return Ok(Next::Read(V2_FIXED - read.len()));
    }
    let total = V2_FIXED + usize::from(u16::from_be_bytes([read[14], read[15]]));
    if total > V2_MAX {
        return Err(ProxyRefusal::BadHeader);
    }
    match total.checked_sub(read.len()) {
        Some(0) => Ok(Next::Complete),
        Some(more) => Ok(Next::Read(more)),
        None => Err(ProxyRefusal::BadHeader),
    }
}

/// Who the connection is from, as the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Relayed for this client.
    Client(SocketAddr),
    /// The balancer speaking for itself (v2 `LOCAL`, a health check; v1 `UNKNOWN`; v2 with no
    /// address family): the connection's own address stands (§2.1, §2.2).
    Local,
}

/// What a complete header (as [`next_read`] delimited it) says.
pub fn decode(header: &[u8]) -> Result<Origin, ProxyRefusal> {
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(h)) if h.header.len() == header.len() => Ok(match h.addresses {
            v1::Addresses::Tcp4(a) => Origin::Client(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Tcp6(a) => Origin::Client(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Unknown => Origin::Local,
        }),
        HeaderResult::V2(Ok(h)) if h.len() == header.len() => match (h.command, h.protocol, h.addresses) {
            (v2::Command::Local, _, _) | (v2::Command::Proxy, _, v2::Addresses::Unspecified) => Ok(Origin::Local),
            (v2::Command::Proxy, v2::Protocol::Stream, v2::Addresses::IPv4(a)) => {
                Ok(Origin::Client(SocketAddr::from((a.source_address, a.source_port))))
            }
            (v2::Command::Proxy, v2::Protocol::Stream, v2::Addresses::IPv6(a)) => {
                Ok(Origin::Client(SocketAddr::from((a.source_address, a.source_port))))
            }
            // A UNIX socket or a datagram names no TCP client this server could ban or greet.
            _ => Err(ProxyRefusal::BadHeader),
        },
        _ => Err(ProxyRefusal::BadHeader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` the way the reader does, returning the header it delimits and the outcome.
    fn delimit(input: &[u8]) -> (Vec<u8>, Result<Origin, ProxyRefusal>) {
        let mut read = Vec::new();
        loop {
            match next_read(&read) {
                Ok(Next::Complete) => {
                    let origin = decode(&read);
                    return (read, origin);
                }
                Ok(Next::Read(n)) => {
                    let start = read.len();
                    let Some(more) = input.get(start..start + n) else {
                        return (read, Err(ProxyRefusal::MissingHeader));
                    };
                    read.extend_from_slice(more);
                }
                Err(e) => return (read, Err(e)),
            }
        }
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        h.extend_from_slice(addresses);
        h
    }

    #[test]
    fn v1_names_the_client_and_leaves_its_first_bytes_unread() {
        let input = b"PROXY TCP4 192.0.2.10 198.51.100.1 50000 465\r\nEHLO x\r\n";
        let (header, origin) = delimit(input);
        assert_eq!(header, b"PROXY TCP4 192.0.2.10 198.51.100.1 50000 465\r\n");
        assert_eq!(origin, Ok(Origin::Client("192.0.2.10:50000".parse().unwrap())));
        let (_, origin) = delimit(b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 993\r\n");
        assert_eq!(origin, Ok(Origin::Client("[2001:db8::7]:4000".parse().unwrap())));
        assert_eq!(delimit(b"PROXY UNKNOWN\r\n").1, Ok(Origin::Local));
    }

    #[test]
    fn v2_proxy_names_the_client_and_local_is_the_balancer_itself() {
        let addresses = [192, 0, 2, 10, 198, 51, 100, 1, 0xC3, 0x50, 0x01, 0xD1];
        let mut input = v2(1, 0x11, &addresses);
        let header_len = input.len();
        input.extend_from_slice(b"\x16\x03\x01 a ClientHello");
        let (header, origin) = delimit(&input);
        assert_eq!(header.len(), header_len, "not one byte of the client's is taken");
        assert_eq!(origin, Ok(Origin::Client("192.0.2.10:50000".parse().unwrap())));
        let mut six = [0u8; 36];
        six[0..2].copy_from_slice(&[0x20, 0x01]);
        six[15] = 7;
        six[32..34].copy_from_slice(&4000u16.to_be_bytes());
        assert_eq!(delimit(&v2(1, 0x21, &six)).1, Ok(Origin::Client("[2001::7]:4000".parse().unwrap())));
        assert_eq!(delimit(&v2(0, 0x00, &[])).1, Ok(Origin::Local), "LOCAL: a health check");
        assert_eq!(delimit(&v2(1, 0x00, &[])).1, Ok(Origin::Local), "PROXY with no address family");
    }

    #[test]
    fn anything_but_a_header_is_refused_early() {
        assert_eq!(delimit(b"EHLO client\r\n").1, Err(ProxyRefusal::MissingHeader));
        assert_eq!(delimit(b"\x16\x03\x01\x02\x00").1, Err(ProxyRefusal::MissingHeader), "a bare ClientHello");
        assert_eq!(delimit(b"PROXX TCP4").1, Err(ProxyRefusal::MissingHeader));
        assert_eq!(delimit(b"\r\n\r\nQUIT").1, Err(ProxyRefusal::MissingHeader));
        assert_eq!(delimit(b"PROXY TCP4 1.2.3").1, Err(ProxyRefusal::MissingHeader), "cut short");
    }

    #[test]
    fn malformed_or_oversized_headers_are_bad() {
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        let (read, origin) = delimit(long.as_bytes());
        assert_eq!(origin, Err(ProxyRefusal::BadHeader));
        assert!(read.len() <= V1_MAX, "reading stops at the bound");
        assert_eq!(delimit(b"PROXY TCP4 300.0.2.10 198.51.100.1 1 2\r\n").1, Err(ProxyRefusal::BadHeader));
        assert_eq!(delimit(b"PROXY TCP4 a\nb\r\n").1, Err(ProxyRefusal::BadHeader));
        // A length past the bound is refused from the fixed part alone, before reading it.
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        assert_eq!(next_read(&huge), Err(ProxyRefusal::BadHeader));
        // Addresses too short for their family, a UNIX socket, a datagram, a bad version.
        assert_eq!(delimit(&v2(1, 0x11, &[1, 2, 3])).1, Err(ProxyRefusal::BadHeader));
        assert_eq!(delimit(&v2(1, 0x31, &[0; 216])).1, Err(ProxyRefusal::BadHeader));
        assert_eq!(delimit(&v2(1, 0x12, &[192, 0, 2, 1, 192, 0, 2, 2, 0, 1, 0, 2])).1, Err(ProxyRefusal::BadHeader));
        let mut v3 = v2(1, 0x11, &[192, 0, 2, 1, 192, 0, 2, 2, 0, 1, 0, 2]);
        v3[12] = 0x31;
        assert_eq!(delimit(&v3).1, Err(ProxyRefusal::BadHeader));
    }
}
