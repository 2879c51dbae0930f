//! Lookups that report the AD (authenticated data) bit of the answer, for DANE (RFC 7672
//! §2.2: TLSA records, and the MX and address records leading to them, count only when the
//! validating resolver says they were validated).
//!
//! Why not through hickory's resolver: it sets neither the AD nor the DO bit in its queries
//! unless it validates DNSSEC itself, and a resolver answers with AD=1 only to a query that
//! asked (RFC 6840 §5.7). So these few queries are sent here, with AD=1, straight to the
//! configured servers (UDP, then TCP when the answer is truncated: RFC 7766 §5), uncached.
//! The AD bit is only as trustworthy as the path to the resolver (RFC 6698 §4.1, RFC 4035
//! §4.9.3): point `[dns] servers` at a validating resolver on this host or a trusted network.

use crate::error::{DnsError, MalformedPart, TemporaryCause};
use crate::records::{self, Mx, Tlsa};
use crate::{fqdn, Resolver};
use hickory_resolver::proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, Record, RecordType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// A lookup result with the AD bit of the answer it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated<T> {
    pub value: T,
    /// The resolver validated the answer with DNSSEC (AD=1).
    pub authentic_data: bool,
}

/// The EDNS UDP payload size asked for (RFC 9715 and DNS flag day 2020: 1232 avoids
/// fragmentation on every common path).
const EDNS_PAYLOAD: u16 = 1232;

/// The servers and limits of the AD-bit exchange, taken from the resolver's settings.
#[derive(Debug, Clone)]
pub(crate) struct DirectServers {
    pub(crate) servers: Vec<SocketAddr>,
    pub(crate) timeout: Duration,
    pub(crate) attempts: usize,
}

/// The AD-reporting lookups of a [`Resolver`]; from [`Resolver::authenticated`].
pub struct AuthenticatedLookups<'r> {
    pub(crate) resolver: &'r Resolver,
}

impl AuthenticatedLookups<'_> {
    /// The TLSA records of a service: `_{port}._tcp.{host}` (RFC 6698 §3, RFC 7672 §3).
    pub async fn tlsa(&self, port: u16, host: &str) -> Result<Authenticated<Vec<Tlsa>>, DnsError> {
        let name = fqdn(&format!("_{port}._tcp.{}", host.trim_end_matches('.')))?;
        let (records, authentic_data) = self.ask(&name, RecordType::TLSA).await?;
        non_empty(records::tlsa_from(&records), authentic_data)
    }

    /// MX, with the AD bit: DANE applies only to exchangers named by a secure MX RRset.
    pub async fn mx(&self, domain: &str) -> Result<Authenticated<Mx>, DnsError> {
        let name = fqdn(domain)?;
        let (records, authentic_data) = self.ask(&name, RecordType::MX).await?;
        let mx = records::mx_from(&records).ok_or(DnsError::NotFound(crate::Absence::NoData))?;
        Ok(Authenticated { value: mx, authentic_data })
    }

    pub async fn ipv4(&self, host: &str) -> Result<Authenticated<Vec<Ipv4Addr>>, DnsError> {
        let (records, authentic_data) = self.ask(&fqdn(host)?, RecordType::A).await?;
        non_empty(records::ipv4_from(&records), authentic_data)
    }

    pub async fn ipv6(&self, host: &str) -> Result<Authenticated<Vec<Ipv6Addr>>, DnsError> {
        let (records, authentic_data) = self.ask(&fqdn(host)?, RecordType::AAAA).await?;
        non_empty(records::ipv6_from(&records), authentic_data)
    }

    /// Asks each server in turn, `attempts` rounds, each try bounded by the timeout; the
    /// first definite answer (records, NXDOMAIN or NODATA) wins.
    async fn ask(&self, name: &Name, rtype: RecordType) -> Result<(Vec<Record>, bool), DnsError> {
        let direct = &self.resolver.direct;
        let mut last = DnsError::Temporary(TemporaryCause::Network("no DNS server configured".into()));
        for _ in 0..direct.attempts.max(1) {
            for &server in &direct.servers {
                match tokio::time::timeout(direct.timeout, exchange(server, name, rtype)).await {
                    Ok(Ok(answer)) => match answer.metadata.response_code {
                        ResponseCode::NoError if answer.answers.is_empty() => {
                            return Err(DnsError::from_rcode(ResponseCode::NoError))
                        }
                        ResponseCode::NoError => {
                            let ad = answer.metadata.authentic_data;
                            return Ok((answer.answers, ad));
                        }
                        ResponseCode::NXDomain => return Err(DnsError::from_rcode(ResponseCode::NXDomain)),
                        code => last = DnsError::from_rcode(code), // SERVFAIL, REFUSED: try the next
                    },
                    Ok(Err(err)) => last = err,
                    Err(_) => last = DnsError::Temporary(TemporaryCause::Timeout),
                }
            }
        }
        Err(last)
    }
}

fn non_empty<T>(value: Vec<T>, authentic_data: bool) -> Result<Authenticated<Vec<T>>, DnsError> {
    if value.is_empty() {
        // Records came, none of the type asked (a CNAME chain ending nowhere): NODATA.
        return Err(DnsError::NotFound(crate::Absence::NoData));
    }
    Ok(Authenticated { value, authentic_data })
}

/// One query to one server: UDP, and TCP again if the answer was truncated.
async fn exchange(server: SocketAddr, name: &Name, rtype: RecordType) -> Result<Message, DnsError> {
    let query = build_query(name, rtype);
    let id = query.metadata.id;
    let wire = query.to_vec().map_err(|e| DnsError::invalid_name(&name.to_ascii(), e))?;
    let answer = exchange_udp(server, &wire, id, name, rtype).await?;
    if !answer.metadata.truncation {
        return Ok(answer);
    }
    exchange_tcp(server, &wire, id, name, rtype).await
}

fn build_query(name: &Name, rtype: RecordType) -> Message {
    let mut query = Message::query(); // a random ID (RFC 5452 §9.2)
    query.metadata.recursion_desired = true;
    query.metadata.authentic_data = true; // RFC 6840 §5.7: "tell me whether you validated it"
    query.add_query(Query::query(name.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    query.set_edns(edns);
    query
}

async fn exchange_udp(
    server: SocketAddr,
    wire: &[u8],
    id: u16,
    name: &Name,
    rtype: RecordType,
) -> Result<Message, DnsError> {
    let local: SocketAddr = match server.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(network)?;
    socket.connect(server).await.map_err(network)?; // only the server's datagrams reach us
    socket.send(wire).await.map_err(network)?;
    let mut buf = vec![0u8; usize::from(EDNS_PAYLOAD).max(512) * 4];
    loop {
        let len = socket.recv(&mut buf).await.map_err(network)?;
        // RFC 5452 §9.1: a datagram with another ID is not our answer (late, or forged): wait on.
        if len < 2 || u16::from_be_bytes([buf[0], buf[1]]) != id {
            continue;
        }
        return parse_answer(&buf[..len], id, name, rtype);
    }
}

async fn exchange_tcp(
    server: SocketAddr,
    wire: &[u8],
    id: u16,
    name: &Name,
    rtype: RecordType,
) -> Result<Message, DnsError> {
    let mut stream = TcpStream::connect(server).await.map_err(network)?;
    let len = u16::try_from(wire.len()).map_err(|_| DnsError::invalid_name(&name.to_ascii(), "query too long"))?;
    let mut framed = Vec::with_capacity(wire.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes()); // RFC 1035 §4.2.2: two-octet length prefix
    framed.extend_from_slice(wire);
    stream.write_all(&framed).await.map_err(network)?;
    let answer_len = stream.read_u16().await.map_err(network)?;
    let mut buf = vec![0u8; usize::from(answer_len)];
    stream.read_exact(&mut buf).await.map_err(network)?;
    parse_answer(&buf, id, name, rtype)
}

/// Decodes an answer and checks it answers our question (RFC 5452 §9.1: ID, name, type).
fn parse_answer(bytes: &[u8], id: u16, name: &Name, rtype: RecordType) -> Result<Message, DnsError> {
    let malformed = |why: String| DnsError::Malformed(MalformedPart::Answer(why));
    let answer = Message::from_vec(bytes).map_err(|e| malformed(e.to_string()))?;
    if answer.metadata.id != id || answer.metadata.message_type != MessageType::Response {
        return Err(malformed("not a response to our query".into()));
    }
    let echoed = answer.queries.first();
    // Name equality is case-insensitive (RFC 4343), as a resolver may echo another case.
    if !echoed.is_some_and(|q| q.query_type() == rtype && q.name() == name) {
        return Err(malformed(format!("the answer is for another question than {name} {rtype}")));
    }
    Ok(answer)
}

fn network(err: std::io::Error) -> DnsError {
    DnsError::Temporary(TemporaryCause::Network(err.to_string()))
}
