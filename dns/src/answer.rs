//! One query, answered from the records: a reply built here, or the verdict
//! that the name is not internal and goes upstream.

use crate::records::{Lookup, Records};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::seq::SliceRandom;
use std::net::IpAddr;

/// TTL of internal answers (Docker's).
pub const INTERNAL_TTL: u32 = 600;
/// The UDP payload we accept with EDNS0.
pub const EDNS_PAYLOAD: u16 = 4096;

/// What to do with a query.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Not an internal name: forward the query to the sandbox's upstreams.
    Forward(Box<ForwardQuery>),
    /// Not even a DNS header: say nothing.
    Drop,
}

/// A query to forward, with what the cache keys on.
#[derive(Debug)]
pub(crate) struct ForwardQuery {
    /// The query's id.
    pub id: u16,
    /// Lower-case name, type and class, and whether DNSSEC records are wanted.
    pub key: (String, u16, u16, bool),
    /// The parsed query, to build an error reply from.
    pub message: Message,
}

/// Answers `bytes` for `sandbox`. `udp_limit` is the size a UDP reply may
/// have at most (`None` for TCP).
pub(crate) fn answer(records: &Records, sandbox: &str, bytes: &[u8], udp: bool) -> Outcome {
    let query = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(_) if bytes.len() >= 2 => {
            let id = u16::from_be_bytes([bytes[0], bytes[1]]);
            return Outcome::Reply(encode(&Message::error_msg(id, OpCode::Query, ResponseCode::FormErr), None));
        }
        Err(_) => return Outcome::Drop,
    };
    if query.metadata.message_type != MessageType::Query {
        return Outcome::Drop;
    }
    if query.metadata.op_code != OpCode::Query || query.queries.len() != 1 {
        return Outcome::Reply(error_reply(&query, ResponseCode::NotImp));
    }
    let q = &query.queries[0];
    let name = q.name().to_ascii();
    let limit = udp.then(|| udp_limit(&query));
    match q.query_type() {
        RecordType::PTR => {
            let ip = q.name().parse_arpa_name().ok().filter(|n| n.prefix_len() == n.max_prefix_len()).map(|n| n.addr());
            if let Some(target) = ip.and_then(|ip| records.reverse(sandbox, ip))
                && let Ok(target) = Name::from_ascii(format!("{target}."))
            {
                let rec = Record::from_rdata(q.name().clone(), INTERNAL_TTL, RData::PTR(PTR(target)));
                return Outcome::Reply(encode(&reply(&query, vec![rec]), limit));
            }
        }
        qtype => {
            if let Lookup::Internal(mut addrs) = records.lookup(sandbox, &name) {
                addrs.shuffle(&mut rand::rng());
                let answers = addrs
                    .into_iter()
                    .filter_map(|ip| match (qtype, ip) {
                        (RecordType::A, IpAddr::V4(v4)) => Some(RData::A(A(v4))),
                        (RecordType::AAAA, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(v6))),
                        _ => None,
                    })
                    .map(|rd| Record::from_rdata(q.name().clone(), INTERNAL_TTL, rd))
                    .collect();
                // Other types of an internal name: NOERROR, no records; it never goes upstream.
                return Outcome::Reply(encode(&reply(&query, answers), limit));
            }
        }
    }
    let dnssec_ok = query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    let key = (name.to_ascii_lowercase(), u16::from(q.query_type()), u16::from(q.query_class()), dnssec_ok);
    Outcome::Forward(Box::new(ForwardQuery { id: query.metadata.id, key, message: query }))
}

/// The largest UDP reply the asker takes: 512, or its EDNS0 payload size.
fn udp_limit(query: &Message) -> usize {
    query.edns.as_ref().map_or(512, |e| usize::from(e.max_payload().max(512)))
}

/// A reply to `query` with `answers`: same id, question and RD bit; RA set;
/// an OPT record when the query had one.
fn reply(query: &Message, answers: Vec<Record>) -> Message {
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.authoritative = true;
    m.add_queries(query.queries.iter().cloned());
    m.add_answers(answers);
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        m.set_edns(edns);
    }
    m
}

/// An error reply to `query`.
pub(crate) fn error_reply(query: &Message, code: ResponseCode) -> Vec<u8> {
    let mut m = reply(query, Vec::new());
    m.metadata.authoritative = false;
    m.metadata.response_code = code;
    encode(&m, None)
}

/// Serializes `m`; over `limit` bytes, the answers go and the TC bit is set
/// (the asker retries over TCP).
fn encode(m: &Message, limit: Option<usize>) -> Vec<u8> {
    let bytes = m.to_vec().unwrap_or_default();
    match limit {
        Some(max) if bytes.len() > max => {
            let mut t = Message::response(m.metadata.id, m.metadata.op_code);
            t.metadata = m.metadata;
            t.metadata.truncation = true;
            t.add_queries(m.queries.iter().cloned());
            if let Some(e) = &m.edns {
                t.set_edns(e.clone());
            }
            t.to_vec().unwrap_or_default()
        }
        _ => bytes,
    }
}

/// A query message for `name` and `qtype` (for tests and benchmarks).
pub fn query_bytes(id: u16, name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    if let Ok(n) = Name::from_ascii(name) {
        m.add_query(Query::query(n, qtype));
    }
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(EDNS_PAYLOAD);
        m.set_edns(e);
    }
    m.to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Entry;

    fn records() -> Records {
        let mut entries = Vec::new();
        for i in 2..40u8 {
            entries.push(Entry {
                network_id: "n".into(),
                network_name: "net".into(),
                sandbox_id: format!("s{i}"),
                names: vec![format!("c{i}"), "svc".into()],
                addrs: vec![IpAddr::from([10, 0, 0, i])],
            });
        }
        Records::new(entries)
    }

    fn reply_of(o: Outcome) -> Message {
        match o {
            Outcome::Reply(b) => Message::from_vec(&b).unwrap(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn internal_names_are_answered_and_others_forwarded() {
        let r = records();
        let m = reply_of(answer(&r, "s2", &query_bytes(7, "c3", RecordType::A, false), true));
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.answers.len(), 1);
        let m = reply_of(answer(&r, "s2", &query_bytes(7, "c3.net.", RecordType::MX, false), true));
        assert_eq!((m.metadata.response_code, m.answers.len()), (ResponseCode::NoError, 0));
        let m = reply_of(answer(&r, "s2", &query_bytes(7, "3.0.0.10.in-addr.arpa.", RecordType::PTR, false), true));
        assert_eq!(m.answers[0].data, RData::PTR(PTR(Name::from_ascii("c3.net.").unwrap())));
        assert!(matches!(
            answer(&r, "s2", &query_bytes(7, "example.com.", RecordType::A, false), true),
            Outcome::Forward(_)
        ));
        assert!(matches!(answer(&r, "x", &query_bytes(7, "c3", RecordType::A, false), true), Outcome::Forward(_)));
    }

    #[test]
    fn too_large_for_udp_is_truncated_unless_edns() {
        let r = records();
        let small = reply_of(answer(&r, "s2", &query_bytes(1, "svc", RecordType::A, false), true));
        assert!(small.metadata.truncation && small.answers.is_empty());
        let big = reply_of(answer(&r, "s2", &query_bytes(1, "svc", RecordType::A, true), true));
        assert!(!big.metadata.truncation);
        assert_eq!(big.answers.len(), 38);
        let tcp = reply_of(answer(&r, "s2", &query_bytes(1, "svc", RecordType::A, false), false));
        assert_eq!(tcp.answers.len(), 38);
    }

    #[test]
    fn garbage_gets_formerr_or_nothing() {
        assert!(matches!(answer(&records(), "s2", &[1], true), Outcome::Drop));
        let m = reply_of(answer(&records(), "s2", &[0, 9, 1, 2, 3], true));
        assert_eq!((m.metadata.id, m.metadata.response_code), (9, ResponseCode::FormErr));
    }
}
