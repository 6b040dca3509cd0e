//! nf_tables set and map elements over netlink (`NETLINK_NETFILTER`), the
//! hot path of the firewall: adding a network or publishing ports is one
//! batch of element messages, with no process to start and no ruleset to
//! parse. The sets and maps themselves are created by `ruleset.rs`.

use super::nfnl::{Batch, NFTA_LIST_ELEM, NLM_F_CREATE};

const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
/// Elements per message (a nested attribute's length is 16 bits: an IPv6
/// map element takes about 80 bytes); a batch holds as many messages as needed.
const CHUNK: usize = 512;

/// One set or map element: its key (and range end), and its value for maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub key: Vec<u8>,
    pub key_end: Option<Vec<u8>>,
    pub data: Option<Vec<u8>>,
}

/// Elements to add to, or delete from, one set of the table.
#[derive(Debug, Clone)]
pub(crate) struct ElementOp {
    pub set: &'static str,
    pub elements: Vec<Element>,
    pub delete: bool,
}

/// Key encodings: each field of a concatenation takes a multiple of 4 bytes.
pub(crate) mod key {
    use std::net::IpAddr;

    /// An interface name (IFNAMSIZ bytes, zero padded).
    pub fn ifname(name: &str) -> Vec<u8> {
        let mut v = vec![0u8; 16];
        let b = name.as_bytes();
        v[..b.len().min(15)].copy_from_slice(&b[..b.len().min(15)]);
        v
    }

    /// An IP protocol number, padded.
    pub fn proto(p: u8) -> Vec<u8> {
        vec![p, 0, 0, 0]
    }

    /// A port in network order, padded.
    pub fn port(p: u16) -> Vec<u8> {
        let b = p.to_be_bytes();
        vec![b[0], b[1], 0, 0]
    }

    /// An address in network order.
    pub fn addr(ip: IpAddr) -> Vec<u8> {
        match ip {
            IpAddr::V4(v) => v.octets().to_vec(),
            IpAddr::V6(v) => v.octets().to_vec(),
        }
    }

    /// Fields concatenated.
    pub fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }
}

/// Encodes the operations as one batch (one message per set and chunk).
pub(crate) fn batch(table: &str, ops: &[ElementOp]) -> Batch {
    let mut b = Batch::new();
    for op in ops {
        for chunk in op.elements.chunks(CHUNK) {
            let (msg, flags, what) = if op.delete {
                (NFT_MSG_DELSETELEM, 0, format!("delete elements from set inet {table} {}", op.set))
            } else {
                (NFT_MSG_NEWSETELEM, NLM_F_CREATE, format!("add elements to set inet {table} {}", op.set))
            };
            b.push(msg, flags, what, |w| {
                w.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
                w.attr_str(NFTA_SET_ELEM_LIST_SET, op.set);
                w.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
                    for e in chunk {
                        w.nest(NFTA_LIST_ELEM, |w| {
                            w.data(NFTA_SET_ELEM_KEY, &e.key);
                            if let Some(end) = &e.key_end {
                                w.data(NFTA_SET_ELEM_KEY_END, end);
                            }
                            if let Some(d) = &e.data
                                && !op.delete
                            {
                                w.data(NFTA_SET_ELEM_DATA, d);
                            }
                        });
                    }
                });
            });
        }
    }
    b
}

/// The value of an `NFTA_DATA_VALUE` nest.
fn data_value(nest: &[u8]) -> Option<Vec<u8>> {
    super::nfnl::attrs(nest).find(|(t, _)| *t == super::nfnl::NFTA_DATA_VALUE).map(|(_, v)| v.to_vec())
}

/// Every element of set `set` of `table` (blocking; call off the async threads).
pub(crate) fn list(sock: &mut super::nfnl::Socket, table: &str, set: &str) -> crate::Result<Vec<Element>> {
    let what = format!("list set inet {table} {set}");
    let answers = sock.request(NFT_MSG_GETSETELEM, super::nfnl::NLM_F_DUMP, super::nfnl::NFPROTO_INET, &what, |w| {
        w.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
        w.attr_str(NFTA_SET_ELEM_LIST_SET, set);
    })?;
    let mut out = Vec::new();
    for answer in &answers {
        for (ty, list) in super::nfnl::attrs(answer) {
            if ty != NFTA_SET_ELEM_LIST_ELEMENTS {
                continue;
            }
            for (_, elem) in super::nfnl::attrs(list).filter(|(t, _)| *t == NFTA_LIST_ELEM) {
                let mut e = Element { key: Vec::new(), key_end: None, data: None };
                for (t, v) in super::nfnl::attrs(elem) {
                    match t {
                        NFTA_SET_ELEM_KEY => e.key = data_value(v).unwrap_or_default(),
                        NFTA_SET_ELEM_KEY_END => e.key_end = data_value(v),
                        NFTA_SET_ELEM_DATA => e.data = data_value(v),
                        _ => {}
                    }
                }
                out.push(e);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::nfnl::{attr_str, messages};
    use super::*;

    #[test]
    fn keys_are_padded_to_registers() {
        assert_eq!(key::concat(&[key::proto(6), key::port(8080)]), vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(key::ifname("br-1").len(), 16);
        assert_eq!(&key::ifname("br-1")[..5], b"br-1\0");
    }

    #[test]
    fn batch_has_begin_elements_end_and_aligned_lengths() {
        let op = ElementOp {
            set: "bridges",
            elements: vec![Element { key: key::ifname("br-1"), key_end: None, data: None }],
            delete: false,
        };
        let b = batch("cnm", &[op]);
        assert_eq!(b.len(), 1);
        let bytes = b.encode(100);
        // Walk the messages: BEGIN, NEWSETELEM, END.
        let msgs: Vec<_> = messages(&bytes).collect();
        let types: Vec<u16> = msgs.iter().map(|m| m.ty).collect();
        assert_eq!(types, vec![16, (10 << 8) | 12, 17]);
        assert_eq!(msgs[1].seq, 101);
        assert!(msgs.iter().all(|m| m.payload.len() % 4 == 0));
        let set = msgs[1].attrs().find(|(t, _)| *t == NFTA_SET_ELEM_LIST_SET).map(|(_, v)| attr_str(v));
        assert_eq!(set, Some("bridges"));
    }
}
