//! The hot path: an A or AAAA query for an internal name, in the plain form
//! every stub resolver sends (one question, no other records), answered
//! straight from the bytes, without building messages. Everything else —
//! EDNS0, PTR, other types, names that go upstream, answers that would not
//! fit in 512 bytes — returns `None` and takes the general path
//! ([`crate::answer`], with hickory-proto). This is what makes a lookup by
//! container name cost a few hundred nanoseconds of the server's time.

use crate::answer::INTERNAL_TTL;
use crate::records::{Lookup, Records};
use rand::seq::SliceRandom;
use std::net::IpAddr;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const HEADER: usize = 12;

/// The answer to `q`, when it is a plain A/AAAA query for an internal name.
pub(crate) fn answer(records: &Records, sandbox: &str, q: &[u8], udp: bool) -> Option<Vec<u8>> {
    if q.len() < HEADER + 5 {
        return None;
    }
    // QR = 0, OPCODE = 0; one question and nothing else.
    if q[2] & 0xf8 != 0 || q[4..12] != [0, 1, 0, 0, 0, 0, 0, 0] {
        return None;
    }
    let mut name = String::with_capacity(64);
    let mut pos = HEADER;
    loop {
        let len = usize::from(*q.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        // No compression in a question of one; labels of 63 bytes at most.
        if len > 63 || pos + len > q.len() || name.len() + len > 254 {
            return None;
        }
        if !name.is_empty() {
            name.push('.');
        }
        for &b in &q[pos..pos + len] {
            if !b.is_ascii_graphic() || b == b'.' {
                return None;
            }
            name.push(char::from(b.to_ascii_lowercase()));
        }
        pos += len;
    }
    if pos + 4 != q.len() {
        return None;
    }
    let qtype = u16::from_be_bytes([q[pos], q[pos + 1]]);
    let qclass = u16::from_be_bytes([q[pos + 2], q[pos + 3]]);
    if qclass != CLASS_IN || !matches!(qtype, TYPE_A | TYPE_AAAA) {
        return None;
    }
    let Lookup::Internal(mut addrs) = records.lookup(sandbox, &name) else { return None };
    addrs.retain(|a| if qtype == TYPE_A { a.is_ipv4() } else { a.is_ipv6() });
    addrs.shuffle(&mut rand::rng());
    let rdlen: usize = if qtype == TYPE_A { 4 } else { 16 };
    let size = q.len() + addrs.len() * (12 + rdlen);
    if udp && size > 512 {
        return None;
    }
    let mut r = Vec::with_capacity(size);
    r.extend_from_slice(&q[..2]);
    // QR, AA, and the asker's RD; RA; NOERROR.
    r.push(0x84 | (q[2] & 0x01));
    r.push(0x80);
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&u16::try_from(addrs.len()).ok()?.to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&q[HEADER..]);
    for a in addrs {
        // The owner is the question's name (a pointer to offset 12).
        r.extend_from_slice(&[0xc0, 0x0c]);
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&INTERNAL_TTL.to_be_bytes());
        r.extend_from_slice(&(rdlen as u16).to_be_bytes());
        match a {
            IpAddr::V4(v4) => r.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => r.extend_from_slice(&v6.octets()),
        }
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Entry;
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::RecordType;

    fn records() -> Records {
        Records::new([Entry {
            network_id: "n".into(),
            network_name: "net".into(),
            sandbox_id: "s".into(),
            names: vec!["web".into()],
            addrs: vec!["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
        }])
    }

    /// The fast answer is the one the general path gives, byte for byte where it matters.
    #[test]
    fn same_answer_as_the_general_path() {
        let r = records();
        for qtype in [RecordType::A, RecordType::AAAA] {
            let q = crate::query_bytes(77, "WEB.net.", qtype, false);
            let fast = Message::from_vec(&answer(&r, "s", &q, true).expect("fast path")).unwrap();
            let crate::answer::Outcome::Reply(slow) = crate::answer::answer(&r, "s", &q, true) else { panic!() };
            let slow = Message::from_vec(&slow).unwrap();
            assert_eq!(fast.metadata, slow.metadata);
            assert_eq!(fast.queries, slow.queries);
            assert_eq!(fast.answers, slow.answers);
            assert_eq!(fast.metadata.response_code, ResponseCode::NoError);
        }
    }

    #[test]
    fn anything_else_takes_the_general_path() {
        let r = records();
        assert!(answer(&r, "s", &crate::query_bytes(1, "web", RecordType::A, true), true).is_none(), "EDNS0");
        assert!(answer(&r, "s", &crate::query_bytes(1, "web", RecordType::MX, false), true).is_none());
        assert!(answer(&r, "s", &crate::query_bytes(1, "example.com", RecordType::A, false), true).is_none());
        assert!(answer(&r, "other", &crate::query_bytes(1, "web", RecordType::A, false), true).is_none());
        assert!(answer(&r, "s", &[0; 20], true).is_none());
    }
}
