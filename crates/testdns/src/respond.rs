//! From a query's bytes to the bytes sent back (or silence): the answer from the zones, or
//! the hostile behaviour a test switched on. Pure, so both transports (UDP, TCP) share it.
//!
//! Written by hand on hickory-proto's message codec rather than with hickory-server, because
//! the hostile modes must send what no correct server sends: nothing at all, or an answer
//! whose bytes do not decode.

use crate::zones::{Found, Zones};
use crate::Fault;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

/// Largest UDP answer when the query has no EDNS (RFC 1035 §4.2.1).
const PLAIN_UDP_LIMIT: usize = 512;
/// The EDNS payload size this server announces (RFC 6891 §6.2.5).
const OUR_PAYLOAD: u16 = 1232;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// The question of a query, for the log and for per-name faults.
#[derive(Debug, Clone)]
pub(crate) struct Question {
    pub(crate) name: Name,
    pub(crate) rtype: RecordType,
}

pub(crate) fn question(query: &[u8]) -> Option<(Message, Question)> {
    let message = Message::from_vec(query).ok()?;
    if message.metadata.message_type != MessageType::Query || message.metadata.op_code != OpCode::Query {
        return None;
    }
    let first = message.queries.first()?;
    let question = Question { name: first.name().clone(), rtype: first.query_type() };
    Some((message, question))
}

/// The bytes to send for `query`, or `None` to stay silent.
pub(crate) fn respond(
    zones: &Zones,
    query: &Message,
    question: &Question,
    fault: Option<Fault>,
    transport: Transport,
) -> Option<Vec<u8>> {
    match fault {
        Some(Fault::Silent) => return None,
        Some(Fault::ServFail) => return encode(error(query, ResponseCode::ServFail)),
        Some(Fault::Refused) => return encode(error(query, ResponseCode::Refused)),
        Some(Fault::Malformed) => return Some(malformed(zones, query, question)),
        None => {}
    }
    let response = answer(zones, query, question);
    let bytes = encode(response.clone())?;
    let limit = match (transport, &query.edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, Some(edns)) => usize::from(edns.max_payload().max(512)),
        (Transport::Udp, None) => PLAIN_UDP_LIMIT,
    };
    if bytes.len() <= limit {
        return Some(bytes);
    }
    // RFC 1035 §4.2.1 / RFC 7766 §5: too big for this datagram, so TC=1 and no records;
    // the client asks again over TCP.
    encode(response.truncate())
}

fn answer(zones: &Zones, query: &Message, question: &Question) -> Message {
    let mut response = reply_to(query);
    match zones.lookup(&question.name, question.rtype) {
        Found::Records(records) => {
            let asked_for_ad =
                query.metadata.authentic_data || query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
            response.metadata.authentic_data = asked_for_ad && zones.is_authenticated(&question.name);
            response.add_answers(records);
        }
        found @ (Found::NoData | Found::NxDomain) => {
            if found == Found::NxDomain {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
            if let Some(soa) = zones.soa_for(&question.name) {
                response.add_authority(soa);
            }
        }
    }
    response
}

/// A response skeleton: the query's ID, question and RD bit; RA set, as a recursive
/// resolver's; EDNS echoed when the query had it (RFC 6891 §7).
fn reply_to(query: &Message) -> Message {
    let mut response = Message::response(query.metadata.id, OpCode::Query);
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.add_queries(query.queries.iter().cloned());
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(OUR_PAYLOAD);
        response.set_edns(edns);
    }
    response
}

fn error(query: &Message, code: ResponseCode) -> Message {
    let mut response = reply_to(query);
    response.metadata.response_code = code;
    response
}

fn encode(message: Message) -> Option<Vec<u8>> {
    message.to_vec().ok()
}

/// An answer with the right ID and question whose last record is cut short: the header
/// promises more bytes than follow, so no decoder can read it.
fn malformed(zones: &Zones, query: &Message, question: &Question) -> Vec<u8> {
    let mut response = answer(zones, query, question);
    response.edns = None; // the cut must land in a record, not in the OPT pseudo-record
    if response.answers.is_empty() {
        response.add_answer(hickory_proto::rr::Record::from_rdata(
            question.name.clone(),
            60,
            hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 1)),
        ));
    }
    let mut bytes = encode(response).unwrap_or_default();
    let keep = bytes.len().saturating_sub(3).max(12);
    bytes.truncate(keep);
    if bytes.len() < 12 {
        // Not even a header could be built: send the ID alone, which is just as broken.
        bytes = query.metadata.id.to_be_bytes().to_vec();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use std::net::Ipv4Addr;

    fn query_for(name: &str, rtype: RecordType, edns: bool) -> (Message, Question) {
        let mut query = Message::query();
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            query.set_edns(e);
        }
        question(&query.to_vec().unwrap()).unwrap()
    }

    fn zones() -> Zones {
        Zones::new()
            .zone("example.test")
            .a("a.example.test", Ipv4Addr::new(192, 0, 2, 9))
            .txt("big.example.test", &"y".repeat(3000))
    }

    #[test]
    fn a_record_is_answered_with_the_querys_id() {
        let (query, q) = query_for("a.example.test.", RecordType::A, false);
        let bytes = respond(&zones(), &query, &q, None, Transport::Udp).unwrap();
        let response = Message::from_vec(&bytes).unwrap();
        assert_eq!(response.metadata.id, query.metadata.id);
        assert_eq!(response.answers.len(), 1);
        assert!(!response.metadata.authentic_data);
    }

    #[test]
    fn unknown_names_are_nxdomain_with_the_soa() {
        let (query, q) = query_for("zzz.example.test.", RecordType::A, false);
        let response = Message::from_vec(&respond(&zones(), &query, &q, None, Transport::Udp).unwrap()).unwrap();
        assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(response.authorities.len(), 1);
    }

    #[test]
    fn too_big_for_udp_is_truncated_and_whole_over_tcp() {
        let (query, q) = query_for("big.example.test.", RecordType::TXT, true);
        let udp = Message::from_vec(&respond(&zones(), &query, &q, None, Transport::Udp).unwrap()).unwrap();
        assert!(udp.metadata.truncation && udp.answers.is_empty());
        let tcp = Message::from_vec(&respond(&zones(), &query, &q, None, Transport::Tcp).unwrap()).unwrap();
        assert!(!tcp.metadata.truncation && tcp.answers.len() == 1);
    }

    #[test]
    fn faults_answer_as_told() {
        let (query, q) = query_for("a.example.test.", RecordType::A, true);
        assert!(respond(&zones(), &query, &q, Some(Fault::Silent), Transport::Udp).is_none());
        let servfail = respond(&zones(), &query, &q, Some(Fault::ServFail), Transport::Udp).unwrap();
        assert_eq!(Message::from_vec(&servfail).unwrap().metadata.response_code, ResponseCode::ServFail);
        let garbage = respond(&zones(), &query, &q, Some(Fault::Malformed), Transport::Udp).unwrap();
        assert_eq!(&garbage[..2], &query.metadata.id.to_be_bytes());
        assert!(Message::from_vec(&garbage).is_err(), "a malformed answer must not decode");
    }

    #[test]
    fn ad_is_set_only_when_asked_and_the_zone_is_authenticated() {
        let zones = zones().authenticated("example.test");
        let (mut query, q) = query_for("a.example.test.", RecordType::A, true);
        let plain = Message::from_vec(&respond(&zones, &query, &q, None, Transport::Udp).unwrap()).unwrap();
        assert!(!plain.metadata.authentic_data);
        query.metadata.authentic_data = true;
        let asked = Message::from_vec(&respond(&zones, &query, &q, None, Transport::Udp).unwrap()).unwrap();
        assert!(asked.metadata.authentic_data);
    }
}
