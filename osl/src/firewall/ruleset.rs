//! The fixed part of the table over nf_tables netlink: the table `inet cnm`,
//! its sets and maps, the chains, and the constant rules as nf_tables
//! expressions, encoded as nft 1.0 encodes the same text (with 32-bit
//! registers; a concatenation takes consecutive registers, each field
//! rounded up to 4 bytes, as the element keys of `elements.rs`).
//!
//! [`ensure`] is one atomic batch: it creates what is missing (`NLM_F_CREATE`
//! without `NLM_F_EXCL` leaves existing objects alone, and resets a base
//! chain's policy to accept) and rewrites the rules of a base chain only if
//! they are not exactly the expected ones. To tell, every rule carries a
//! fingerprint in its userdata (its chain, its name and a hash of its
//! encoded expressions); a chain is left alone when the fingerprints read
//! back by a rule dump are the expected list, in order. A rule added,
//! removed, changed or reordered by hand changes the list, and so do the
//! rules of an older cnm. A chain that differs is flushed and refilled in
//! the same batch, so the result is right whatever the chain holds when the
//! batch commits (another `ensure` may have run since the dump). The `user`
//! chain's rules and other tables are never touched.

use super::TABLE;
use super::nfnl::{Batch, NFPROTO_INET, NFTA_LIST_ELEM, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, Socket, Writer};
use super::nfnl::{attr_str, attrs};
use crate::Result;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
/// libnftnl's `NFTNL_UDATA_SET_KEYBYTEORDER` (a TLV of the set's userdata).
const NFTNL_UDATA_SET_KEYBYTEORDER: u8 = 0;
/// nft's `BYTEORDER_HOST_ENDIAN` and `BYTEORDER_BIG_ENDIAN`.
const BYTEORDER_HOST_ENDIAN: u32 = 1;
const BYTEORDER_BIG_ENDIAN: u32 = 2;
const NFTA_SET_DESC_CONCAT: u16 = 2;
const NFTA_SET_FIELD_LEN: u16 = 1;
const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_MAP: u32 = 0x8;
const NFT_SET_CONCAT: u32 = 0x80;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;

const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_FORWARD: u32 = 2;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_INET_POST_ROUTING: u32 = 4;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NFT_JUMP: i32 = -3;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

const NFT_REG_VERDICT: u32 = 0;
/// The first 32-bit register; `NFT_REG32_00 + n` is the n-th 4-byte slot.
const NFT_REG32_00: u32 = 8;
const R0: u32 = NFT_REG32_00;

const NFT_META_MARK: u32 = 3;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_LOOKUP_F_INV: u32 = 1;
const NFT_CT_STATE: u32 = 0;
const NFT_CT_STATUS: u32 = 2;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 2;
const NFT_NAT_DNAT: u32 = 1;
/// `ct state` bits (host byte order).
const CT_ESTABLISHED: u32 = 1 << 1;
const CT_RELATED: u32 = 1 << 2;
/// `ct status dnat` (`IPS_DST_NAT`, host byte order).
const IPS_DST_NAT: u32 = 1 << 5;
/// `fib daddr type local` (`RTN_LOCAL`, host byte order).
const RTN_LOCAL: u32 = 2;

/// Type of our userdata TLV (one byte of type, one of length, the value, as
/// libnftnl's `nftnl_udata`). nft knows types 0 (comment) and 1 and ignores
/// the others, so the fingerprint does not show in `nft list ruleset`.
const UDATA_CNM_FINGERPRINT: u8 = 0xc0;

/// The regular chain evaluated first from `forward`; created once, never flushed.
pub(crate) const USER_CHAIN: &str = "user";

/// A data type of a set key or map value (nft's type ids and lengths).
#[derive(Debug, Clone, Copy)]
enum Ty {
    Ifname,
    Ipv4,
    Ipv6,
    InetProto,
    InetService,
    /// A VXLAN network identifier and the reserved byte after it (masked
    /// to zero): 4 bytes, of nft's `mark` type (nft cannot list an
    /// integer of its own length inside a concatenation).
    Vni,
}

impl Ty {
    fn id(self) -> u32 {
        match self {
            Ty::Ipv4 => 7,
            Ty::Ipv6 => 8,
            Ty::InetProto => 12,
            Ty::InetService => 13,
            Ty::Ifname => 41,
            Ty::Vni => 19,
        }
    }

    fn len(self) -> u32 {
        match self {
            Ty::Ifname | Ty::Ipv6 => 16,
            Ty::Ipv4 => 4,
            Ty::InetProto => 1,
            Ty::InetService => 2,
            Ty::Vni => 4,
        }
    }

    /// The byte order nft uses to print a value of the type.
    fn byteorder(self) -> u32 {
        match self {
            Ty::Ifname => BYTEORDER_HOST_ENDIAN,
            _ => BYTEORDER_BIG_ENDIAN,
        }
    }
}

/// nft's concatenated type id (6 bits per field) and length (each field of a
/// concatenation rounded up to 4 bytes, a single field as it is).
fn type_of(fields: &[Ty]) -> (u32, u32) {
    let id = fields.iter().fold(0u32, |acc, t| (acc << 6) | t.id());
    let len = match fields {
        [one] => one.len(),
        _ => fields.iter().map(|t| t.len().next_multiple_of(4)).sum(),
    };
    (id, len)
}

/// A set or map of the table.
#[derive(Debug)]
struct SetSpec {
    name: &'static str,
    key: &'static [Ty],
    data: &'static [Ty],
    interval: bool,
}

use Ty::{Ifname, InetProto, InetService, Ipv4, Ipv6, Vni};

const SETS: &[SetSpec] = &[
    SetSpec { name: "bridges", key: &[Ifname], data: &[], interval: false },
    SetSpec { name: "internal", key: &[Ifname], data: &[], interval: false },
    SetSpec { name: "icc_same", key: &[Ifname, Ifname], data: &[], interval: false },
    SetSpec { name: "hairpin4", key: &[Ifname, Ipv4], data: &[], interval: true },
    SetSpec { name: "hairpin6", key: &[Ifname, Ipv6], data: &[], interval: true },
    SetSpec { name: "masq", key: &[Ifname], data: &[], interval: false },
    // Gateway modes (Docker's `gateway_mode_ipv4|6`): IPv6 masqueraded
    // (`nat`), everything in accepted (`nat-unprotected`), ICMP and the
    // published ports of the containers' own addresses accepted (`routed`).
    SetSpec { name: "masq6", key: &[Ifname], data: &[], interval: false },
    SetSpec { name: "open4", key: &[Ifname], data: &[], interval: false },
    SetSpec { name: "open6", key: &[Ifname], data: &[], interval: false },
    SetSpec { name: "routed4", key: &[Ifname], data: &[], interval: false },
    SetSpec { name: "routed6", key: &[Ifname], data: &[], interval: false },
    SetSpec { name: "routed_ports4", key: &[InetProto, Ipv4, InetService], data: &[], interval: false },
    SetSpec { name: "routed_ports6", key: &[InetProto, Ipv6, InetService], data: &[], interval: false },
    // Single ports in hash maps (constant-time updates at any size); ranges
    // of host ports, one element each, in interval maps.
    SetSpec { name: "ports4", key: &[InetProto, Ipv4, InetService], data: &[Ipv4, InetService], interval: false },
    SetSpec { name: "ports4_any", key: &[InetProto, InetService], data: &[Ipv4, InetService], interval: false },
    SetSpec { name: "ports6", key: &[InetProto, Ipv6, InetService], data: &[Ipv6, InetService], interval: false },
    SetSpec { name: "ports6_any", key: &[InetProto, InetService], data: &[Ipv6, InetService], interval: false },
    SetSpec { name: "ranges4", key: &[InetProto, Ipv4, InetService], data: &[Ipv4, InetService], interval: true },
    SetSpec { name: "ranges4_any", key: &[InetProto, InetService], data: &[Ipv4, InetService], interval: true },
    SetSpec { name: "ranges6", key: &[InetProto, Ipv6, InetService], data: &[Ipv6, InetService], interval: true },
    SetSpec { name: "ranges6_any", key: &[InetProto, InetService], data: &[Ipv6, InetService], interval: true },
    // Overlay networks on this host (VXLAN port and VNI), and the underlay
    // addresses of their peers: the only sources of VXLAN for them.
    SetSpec { name: "vxlan_nets", key: &[InetService, Vni], data: &[], interval: false },
    SetSpec { name: "vxlan_peers", key: &[Ipv4, InetService, Vni], data: &[], interval: false },
];

/// A base chain: its type, hook and priority; the policy is accept.
#[derive(Debug)]
struct BaseChain {
    name: &'static str,
    kind: &'static str,
    hook: u32,
    priority: i32,
}

/// The base chains, in the order they are created.
const BASE_CHAINS: &[BaseChain] = &[
    // Before connection tracking and NAT (nft's `raw` priority): what must
    // never be translated is dropped here.
    BaseChain { name: "raw", kind: "filter", hook: NF_INET_PRE_ROUTING, priority: -300 },
    // Before iptables' filter chains (priority 0): marks traffic of cnm's
    // bridges for cnm's rule in a foreign `FORWARD` chain (`iptables.rs`).
    BaseChain { name: "mark", kind: "filter", hook: NF_INET_FORWARD, priority: -1 },
    BaseChain { name: "forward", kind: "filter", hook: NF_INET_FORWARD, priority: 0 },
    BaseChain { name: "prerouting", kind: "nat", hook: NF_INET_PRE_ROUTING, priority: -100 },
    BaseChain { name: "output", kind: "nat", hook: NF_INET_LOCAL_OUT, priority: -100 },
    BaseChain { name: "postrouting", kind: "nat", hook: NF_INET_POST_ROUTING, priority: 100 },
];

/// A verdict of an `immediate` expression.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    Accept,
    Drop,
    Jump(&'static str),
}

/// One nf_tables expression.
#[derive(Debug, Clone)]
enum Expr {
    Meta { key: u32, dreg: u32 },
    MetaSet { key: u32, sreg: u32 },
    Payload { base: u32, offset: u32, len: u32, dreg: u32 },
    Cmp { sreg: u32, op: u32, data: Vec<u8> },
    Bitwise { sreg: u32, dreg: u32, mask: Vec<u8>, xor: Vec<u8> },
    Lookup { set: &'static str, sreg: u32, dreg: Option<u32>, invert: bool },
    Ct { key: u32, dreg: u32 },
    Fib { flags: u32, result: u32, dreg: u32 },
    Immediate(Verdict),
    Dnat { family: u8, addr: u32, proto: u32 },
    Masq,
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } | Expr::MetaSet { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Lookup { .. } => "lookup",
            Expr::Ct { .. } => "ct",
            Expr::Fib { .. } => "fib",
            Expr::Immediate(_) => "immediate",
            Expr::Dnat { .. } => "nat",
            Expr::Masq => "masq",
        }
    }

    /// The expression's attributes (`NFTA_EXPR_DATA`), numbered as in
    /// `linux/netfilter/nf_tables.h`.
    fn encode_data(&self, w: &mut Writer) {
        match self {
            Expr::Meta { key, dreg } => {
                w.attr_u32(2, *key); // NFTA_META_KEY
                w.attr_u32(1, *dreg); // NFTA_META_DREG
            }
            Expr::MetaSet { key, sreg } => {
                w.attr_u32(2, *key); // NFTA_META_KEY
                w.attr_u32(3, *sreg); // NFTA_META_SREG
            }
            Expr::Payload { base, offset, len, dreg } => {
                w.attr_u32(1, *dreg); // NFTA_PAYLOAD_DREG
                w.attr_u32(2, *base); // NFTA_PAYLOAD_BASE
                w.attr_u32(3, *offset); // NFTA_PAYLOAD_OFFSET
                w.attr_u32(4, *len); // NFTA_PAYLOAD_LEN
            }
            Expr::Cmp { sreg, op, data } => {
                w.attr_u32(1, *sreg); // NFTA_CMP_SREG
                w.attr_u32(2, *op); // NFTA_CMP_OP
                w.data(3, data); // NFTA_CMP_DATA
            }
            Expr::Bitwise { sreg, dreg, mask, xor } => {
                w.attr_u32(1, *sreg); // NFTA_BITWISE_SREG
                w.attr_u32(2, *dreg); // NFTA_BITWISE_DREG
                w.attr_u32(3, mask.len() as u32); // NFTA_BITWISE_LEN
                w.data(4, mask); // NFTA_BITWISE_MASK
                w.data(5, xor); // NFTA_BITWISE_XOR
            }
            Expr::Lookup { set, sreg, dreg, invert } => {
                w.attr_u32(2, *sreg); // NFTA_LOOKUP_SREG
                if let Some(d) = dreg {
                    w.attr_u32(3, *d); // NFTA_LOOKUP_DREG
                }
                w.attr_str(1, set); // NFTA_LOOKUP_SET
                if *invert {
                    w.attr_u32(5, NFT_LOOKUP_F_INV); // NFTA_LOOKUP_FLAGS
                }
            }
            Expr::Ct { key, dreg } => {
                w.attr_u32(2, *key); // NFTA_CT_KEY
                w.attr_u32(1, *dreg); // NFTA_CT_DREG
            }
            Expr::Fib { flags, result, dreg } => {
                w.attr_u32(3, *flags); // NFTA_FIB_FLAGS
                w.attr_u32(2, *result); // NFTA_FIB_RESULT
                w.attr_u32(1, *dreg); // NFTA_FIB_DREG
            }
            Expr::Immediate(v) => {
                w.attr_u32(1, NFT_REG_VERDICT); // NFTA_IMMEDIATE_DREG
                // NFTA_IMMEDIATE_DATA { NFTA_DATA_VERDICT { NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN } }
                w.nest(2, |w| {
                    w.nest(2, |w| {
                        let (code, chain) = match v {
                            Verdict::Accept => (NF_ACCEPT, None),
                            Verdict::Drop => (NF_DROP, None),
                            Verdict::Jump(c) => (NFT_JUMP as u32, Some(*c)),
                        };
                        w.attr_u32(1, code);
                        if let Some(c) = chain {
                            w.attr_str(2, c);
                        }
                    })
                });
            }
            Expr::Dnat { family, addr, proto } => {
                w.attr_u32(1, NFT_NAT_DNAT); // NFTA_NAT_TYPE
                w.attr_u32(2, u32::from(*family)); // NFTA_NAT_FAMILY
                w.attr_u32(3, *addr); // NFTA_NAT_REG_ADDR_MIN
                w.attr_u32(5, *proto); // NFTA_NAT_REG_PROTO_MIN
            }
            Expr::Masq => {}
        }
    }
}

/// The contents of `NFTA_RULE_EXPRESSIONS`.
fn encode_exprs(exprs: &[Expr]) -> Vec<u8> {
    let mut w = Writer::default();
    for e in exprs {
        w.nest(NFTA_LIST_ELEM, |w| {
            w.attr_str(NFTA_EXPR_NAME, e.name());
            w.nest(NFTA_EXPR_DATA, |w| e.encode_data(w));
        });
    }
    w.into_bytes()
}

/// A value loaded into registers.
#[derive(Debug, Clone, Copy)]
enum Field {
    Meta(u32),
    Network { offset: u32, len: u32 },
    Transport { offset: u32, len: u32 },
}

impl Field {
    fn len(self) -> u32 {
        match self {
            Field::Meta(NFT_META_IIFNAME | NFT_META_OIFNAME) => 16,
            Field::Meta(_) => 1,
            Field::Network { len, .. } | Field::Transport { len, .. } => len,
        }
    }
}

/// Loads a value, or the fields of a concatenation into consecutive
/// registers from `NFT_REG32_00` (each field rounded up to 4 bytes).
fn load(fields: &[Field]) -> Vec<Expr> {
    let mut slot = 0;
    let mut out = Vec::new();
    for f in fields {
        let dreg = NFT_REG32_00 + slot;
        out.push(match *f {
            Field::Meta(key) => Expr::Meta { key, dreg },
            Field::Network { offset, len } => Expr::Payload { base: NFT_PAYLOAD_NETWORK_HEADER, offset, len, dreg },
            Field::Transport { offset, len } => Expr::Payload { base: NFT_PAYLOAD_TRANSPORT_HEADER, offset, len, dreg },
        });
        slot += f.len().div_ceil(4);
    }
    out
}

/// `… @set` on the loaded fields (`!= @set` with `invert`).
fn in_set(fields: &[Field], set: &'static str, invert: bool) -> Vec<Expr> {
    let mut v = load(fields);
    v.push(Expr::Lookup { set, sreg: R0, dreg: None, invert });
    v
}

/// `meta nfproto ipv4|ipv6`: the explicit check nft inserts before an
/// `ip`/`ip6` header match in an inet table.
fn nfproto(family: u8) -> Vec<Expr> {
    vec![Expr::Meta { key: NFT_META_NFPROTO, dreg: R0 }, Expr::Cmp { sreg: R0, op: NFT_CMP_EQ, data: vec![family] }]
}

/// `ct <key> <bits>` (any of the bits set): a masked compare of the host-order word.
fn ct_any(key: u32, bits: u32) -> Vec<Expr> {
    vec![
        Expr::Ct { key, dreg: R0 },
        Expr::Bitwise { sreg: R0, dreg: R0, mask: bits.to_ne_bytes().to_vec(), xor: vec![0; 4] },
        Expr::Cmp { sreg: R0, op: NFT_CMP_NEQ, data: vec![0; 4] },
    ]
}

/// `meta mark set meta mark or FORWARD_MARK` (the mark is a host-order word).
fn set_mark_bit() -> Vec<Expr> {
    let bit = super::iptables::FORWARD_MARK;
    vec![
        Expr::Meta { key: NFT_META_MARK, dreg: R0 },
        Expr::Bitwise { sreg: R0, dreg: R0, mask: (!bit).to_ne_bytes().to_vec(), xor: bit.to_ne_bytes().to_vec() },
        Expr::MetaSet { key: NFT_META_MARK, sreg: R0 },
    ]
}

const IIF: Field = Field::Meta(NFT_META_IIFNAME);
const OIF: Field = Field::Meta(NFT_META_OIFNAME);
const L4PROTO: Field = Field::Meta(NFT_META_L4PROTO);
const TH_DPORT: Field = Field::Transport { offset: 2, len: 2 };
const IP_SADDR: Field = Field::Network { offset: 12, len: 4 };
/// The VNI of a VXLAN header after the UDP header and the reserved byte
/// after it (masked out by [`vxlan_key`]).
const VXLAN_VNI: Field = Field::Transport { offset: 12, len: 4 };

/// `… @set` (`!= @set` with `invert`) on `fields` followed by a VXLAN
/// header's VNI (`@th,96,24`): the VNI's word is loaded with the reserved
/// byte after it, which is masked to zero, so that a frame cannot step
/// around the lookup by setting it.
fn vxlan_key(fields: &[Field], set: &'static str, invert: bool) -> Vec<Expr> {
    let mut all = fields.to_vec();
    all.push(VXLAN_VNI);
    let mut v = load(&all);
    let vni_reg = R0 + fields.iter().map(|f| f.len().div_ceil(4)).sum::<u32>();
    v.push(Expr::Bitwise { sreg: vni_reg, dreg: vni_reg, mask: vec![0xff, 0xff, 0xff, 0], xor: vec![0; 4] });
    v.push(Expr::Lookup { set, sreg: R0, dreg: None, invert });
    v
}
const IP_DADDR: Field = Field::Network { offset: 16, len: 4 };
const IP6_SADDR: Field = Field::Network { offset: 8, len: 16 };
const IP6_DADDR: Field = Field::Network { offset: 24, len: 16 };

/// One constant rule: its chain, a short name (in its fingerprint) and its expressions.
#[derive(Debug, Clone)]
struct Rule {
    chain: &'static str,
    name: &'static str,
    exprs: Vec<Expr>,
}

impl Rule {
    fn new(chain: &'static str, name: &'static str, parts: Vec<Vec<Expr>>) -> Self {
        Rule { chain, name, exprs: parts.concat() }
    }

    /// The userdata TLV: `<chain>/<name> <hash of the encoded expressions>`.
    fn userdata(&self, encoded: &[u8]) -> Vec<u8> {
        let text = format!("cnm {}/{} {:016x}", self.chain, self.name, fnv1a(encoded));
        let value = &text.as_bytes()[..text.len().min(usize::from(u8::MAX))];
        let mut v = vec![UDATA_CNM_FINGERPRINT, value.len() as u8];
        v.extend_from_slice(value);
        v
    }
}

/// FNV-1a, 64 bits: a hash that stays the same across builds and Rust versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The constant rules of every base chain, in order.
fn rules() -> Vec<Rule> {
    let accept = || vec![Expr::Immediate(Verdict::Accept)];
    let drop = || vec![Expr::Immediate(Verdict::Drop)];
    let f = "forward";
    // `meta iifname != "lo"`: an interface name is compared as 16 bytes, zero-padded.
    let not_from_lo = || {
        let mut lo = b"lo".to_vec();
        lo.resize(16, 0);
        vec![Expr::Meta { key: NFT_META_IIFNAME, dreg: R0 }, Expr::Cmp { sreg: R0, op: NFT_CMP_NEQ, data: lo }]
    };
    let mut v = vec![
        // Loopback stays loopback: a packet to 127.0.0.0/8 or ::1 that did not
        // come in on `lo` (a LAN neighbour's frame to the host's MAC, a
        // container's frame to its gateway's MAC) is dropped before NAT, so a
        // port published on 127.0.0.1 and the host's loopback services
        // (exposed to bridges by `route_localnet`) answer the host alone
        // (moby#41872, CVE-2020-8558).
        Rule::new(
            "raw",
            "loopback4",
            vec![
                nfproto(NFPROTO_IPV4),
                // `ip daddr 127.0.0.0/8`: nft compares the first byte only.
                load(&[Field::Network { offset: 16, len: 1 }]),
                vec![Expr::Cmp { sreg: R0, op: NFT_CMP_EQ, data: vec![127] }],
                not_from_lo(),
                drop(),
            ],
        ),
        Rule::new(
            "raw",
            "loopback6",
            vec![
                nfproto(NFPROTO_IPV6),
                load(&[IP6_DADDR]),
                vec![Expr::Cmp { sreg: R0, op: NFT_CMP_EQ, data: std::net::Ipv6Addr::LOCALHOST.octets().to_vec() }],
                not_from_lo(),
                drop(),
            ],
        ),
        // VXLAN for an overlay network of this host from an address that is
        // not one of the network's peers (in the cluster store) is dropped
        // before it is decapsulated: whoever reaches the underlay cannot
        // inject frames into an overlay network by guessing its VNI.
        // `udp dport . @th,96,24 @vxlan_nets ip saddr . udp dport . @th,96,24 != @vxlan_peers drop`.
        Rule::new(
            "raw",
            "vxlan-peers",
            vec![
                nfproto(NFPROTO_IPV4),
                load(&[L4PROTO]),
                vec![Expr::Cmp { sreg: R0, op: NFT_CMP_EQ, data: vec![17] }],
                vxlan_key(&[TH_DPORT], "vxlan_nets", false),
                vxlan_key(&[IP_SADDR, TH_DPORT], "vxlan_peers", true),
                drop(),
            ],
        ),
        // Traffic of cnm's bridges, in or out: `meta mark set meta mark or
        // FORWARD_MARK`, for foreign chains to accept (the verdict stays here).
        Rule::new("mark", "mark-in", vec![in_set(&[IIF], "bridges", false), set_mark_bit()]),
        Rule::new("mark", "mark-out", vec![in_set(&[OIF], "bridges", false), set_mark_bit()]),
        Rule::new(f, "jump-user", vec![vec![Expr::Immediate(Verdict::Jump(USER_CHAIN))]]),
        // Traffic within a network that allows ICC: routed through the host,
        // or bridged when br_netfilter makes bridged frames pass this hook.
        Rule::new(f, "icc", vec![in_set(&[IIF, OIF], "icc_same", false), accept()]),
        // Internal networks: nothing in or out.
        Rule::new(f, "internal-in", vec![in_set(&[IIF], "internal", false), drop()]),
        Rule::new(f, "internal-out", vec![in_set(&[OIF], "internal", false), drop()]),
        Rule::new(
            f,
            "established",
            vec![in_set(&[OIF], "bridges", false), ct_any(NFT_CT_STATE, CT_ESTABLISHED | CT_RELATED), accept()],
        ),
        // Published ports, from anywhere (hairpin included).
        Rule::new(f, "published", vec![in_set(&[OIF], "bridges", false), ct_any(NFT_CT_STATUS, IPS_DST_NAT), accept()]),
        // Isolation between networks, and ICC off within one.
        Rule::new(f, "isolation", vec![in_set(&[IIF], "bridges", false), in_set(&[OIF], "bridges", false), drop()]),
        // Nothing unsolicited from outside reaches a container.
        Rule::new(f, "unsolicited", vec![in_set(&[OIF], "bridges", false), drop()]),
    ];
    // Gateway modes, before `unsolicited`: `nat-unprotected` takes anything
    // in; `routed` takes ICMP and the published ports at the containers'
    // addresses.
    let unsolicited = v.len() - 1;
    let mut modes = Vec::new();
    for (family, daddr, proto, [open, routed, icmp, ports, ports_rule]) in [
        (NFPROTO_IPV4, IP_DADDR, 1u8, ["open4", "routed4", "routed-icmp4", "routed_ports4", "routed-ports4"]),
        (NFPROTO_IPV6, IP6_DADDR, 58u8, ["open6", "routed6", "routed-icmp6", "routed_ports6", "routed-ports6"]),
    ] {
        modes.push(Rule::new(f, open, vec![nfproto(family), in_set(&[OIF], open, false), accept()]));
        modes.push(Rule::new(
            f,
            icmp,
            vec![
                nfproto(family),
                in_set(&[OIF], routed, false),
                load(&[L4PROTO]),
                vec![Expr::Cmp { sreg: R0, op: NFT_CMP_EQ, data: vec![proto] }],
                accept(),
            ],
        ));
        modes.push(Rule::new(
            f,
            ports_rule,
            vec![nfproto(family), in_set(&[L4PROTO, daddr, TH_DPORT], ports, false), accept()],
        ));
    }
    v.splice(unsolicited..unsolicited, modes);
    for chain in ["prerouting", "output"] {
        for (family, map) in [
            (NFPROTO_IPV4, "ports4"),
            (NFPROTO_IPV4, "ports4_any"),
            (NFPROTO_IPV4, "ranges4"),
            (NFPROTO_IPV4, "ranges4_any"),
            (NFPROTO_IPV6, "ports6"),
            (NFPROTO_IPV6, "ports6_any"),
            (NFPROTO_IPV6, "ranges6"),
            (NFPROTO_IPV6, "ranges6_any"),
        ] {
            v.push(Rule::new(chain, map, vec![dnat_rule(family, map)]));
        }
    }
    let p = "postrouting";
    let masq = || vec![Expr::Masq];
    v.extend([
        // The host reaching a published port through localhost (route_localnet on the bridge).
        Rule::new(
            p,
            "localhost",
            vec![
                in_set(&[OIF], "bridges", false),
                nfproto(NFPROTO_IPV4),
                // `ip saddr 127.0.0.0/8`: nft compares the first byte only.
                load(&[Field::Network { offset: 12, len: 1 }]),
                vec![Expr::Cmp { sreg: R0, op: NFT_CMP_EQ, data: vec![127] }],
                masq(),
            ],
        ),
        // A container reaching a published port of its own network through
        // the host (by output bridge and source subnet: with br_netfilter,
        // bridged packets have no input device here).
        Rule::new(
            p,
            "hairpin4",
            vec![
                nfproto(NFPROTO_IPV4),
                in_set(&[OIF, IP_SADDR], "hairpin4", false),
                ct_any(NFT_CT_STATUS, IPS_DST_NAT),
                masq(),
            ],
        ),
        Rule::new(
            p,
            "hairpin6",
            vec![
                nfproto(NFPROTO_IPV6),
                in_set(&[OIF, IP6_SADDR], "hairpin6", false),
                ct_any(NFT_CT_STATUS, IPS_DST_NAT),
                masq(),
            ],
        ),
        // Outbound IPv4 from networks that masquerade (IPv6 is routed
        // unless the network's IPv6 gateway mode is `nat`).
        Rule::new(
            p,
            "masquerade",
            vec![nfproto(NFPROTO_IPV4), in_set(&[IIF], "masq", false), in_set(&[OIF], "bridges", true), masq()],
        ),
        Rule::new(
            p,
            "masquerade6",
            vec![nfproto(NFPROTO_IPV6), in_set(&[IIF], "masq6", false), in_set(&[OIF], "bridges", true), masq()],
        ),
    ]);
    v
}

/// `fib daddr type local dnat ip|ip6 to <key> map @map`, the key being
/// `meta l4proto . [ip|ip6 daddr .] th dport`.
///
/// The text rules also had `meta l4proto { tcp, udp, sctp }` first; it is
/// left out (no anonymous set to create): the map key starts with the
/// protocol and only TCP, UDP and SCTP elements are ever added, so other
/// protocols never match anyway. nft also inserts a no-op `byteorder` (one
/// byte converted in units of two) before the keys of interval maps; it is
/// left out too.
fn dnat_rule(family: u8, map: &'static str) -> Vec<Expr> {
    let mut v = vec![
        Expr::Fib { flags: NFTA_FIB_F_DADDR, result: NFT_FIB_RESULT_ADDRTYPE, dreg: R0 },
        Expr::Cmp { sreg: R0, op: NFT_CMP_EQ, data: RTN_LOCAL.to_ne_bytes().to_vec() },
    ];
    let any = map.ends_with("_any");
    let daddr = if family == NFPROTO_IPV4 { IP_DADDR } else { IP6_DADDR };
    if !any {
        v.extend(nfproto(family));
    }
    let key: &[Field] = if any { &[L4PROTO, TH_DPORT] } else { &[L4PROTO, daddr, TH_DPORT] };
    v.extend(load(key));
    v.push(Expr::Lookup { set: map, sreg: R0, dreg: Some(R0), invert: false });
    // The value is `address . port`: the port follows the address's registers.
    let addr_len = if family == NFPROTO_IPV4 { 4 } else { 16 };
    v.push(Expr::Dnat { family, addr: R0, proto: R0 + addr_len / 4 });
    v
}

/// A rule of the table read back: its chain and userdata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CurrentRule {
    pub chain: String,
    pub userdata: Option<Vec<u8>>,
}

/// Adds the creation of the table, sets, maps and chains (no-ops for existing ones).
fn push_creates(b: &mut Batch) {
    b.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, format!("add table inet {TABLE}"), |w| {
        w.attr_str(NFTA_TABLE_NAME, TABLE);
        w.attr_u32(NFTA_TABLE_FLAGS, 0);
    });
    for (id, s) in (1u32..).zip(SETS) {
        let kind = if s.data.is_empty() { "set" } else { "map" };
        b.push(NFT_MSG_NEWSET, NLM_F_CREATE, format!("add {kind} inet {TABLE} {}", s.name), |w| {
            let concat = s.key.len() > 1;
            let mut flags = 0;
            if !s.data.is_empty() {
                flags |= NFT_SET_MAP;
            }
            if s.interval {
                flags |= NFT_SET_INTERVAL;
                if concat {
                    flags |= NFT_SET_CONCAT;
                }
            }
            let (key_type, key_len) = type_of(s.key);
            w.attr_str(NFTA_SET_TABLE, TABLE);
            w.attr_str(NFTA_SET_NAME, s.name);
            w.attr_u32(NFTA_SET_FLAGS, flags);
            w.attr_u32(NFTA_SET_KEY_TYPE, key_type);
            w.attr_u32(NFTA_SET_KEY_LEN, key_len);
            if !s.data.is_empty() {
                let (data_type, data_len) = type_of(s.data);
                w.attr_u32(NFTA_SET_DATA_TYPE, data_type);
                w.attr_u32(NFTA_SET_DATA_LEN, data_len);
            }
            // Required by the kernel; it names the set within the batch (the
            // rules use its name).
            w.attr_u32(NFTA_SET_ID, id);
            if s.interval && concat {
                // The field lengths, unpadded, for the kernel's pipapo set (as nft sends them).
                w.nest(NFTA_SET_DESC, |w| {
                    w.nest(NFTA_SET_DESC_CONCAT, |w| {
                        for t in s.key {
                            w.nest(NFTA_LIST_ELEM, |w| w.attr_u32(NFTA_SET_FIELD_LEN, t.len()));
                        }
                    })
                });
            }
            if let [one] = s.key {
                // Only for nft's listing: it prints a single-field key by the
                // byte order kept here (an ifname key without it prints as "");
                // a concatenation's fields print by their types.
                let mut udata = vec![NFTNL_UDATA_SET_KEYBYTEORDER, 4];
                udata.extend_from_slice(&one.byteorder().to_ne_bytes());
                w.attr(NFTA_SET_USERDATA, &udata);
            }
        });
    }
    b.push(NFT_MSG_NEWCHAIN, NLM_F_CREATE, format!("add chain inet {TABLE} {USER_CHAIN}"), |w| {
        w.attr_str(NFTA_CHAIN_TABLE, TABLE);
        w.attr_str(NFTA_CHAIN_NAME, USER_CHAIN);
    });
    for c in BASE_CHAINS {
        b.push(NFT_MSG_NEWCHAIN, NLM_F_CREATE, format!("add chain inet {TABLE} {}", c.name), |w| {
            w.attr_str(NFTA_CHAIN_TABLE, TABLE);
            w.attr_str(NFTA_CHAIN_NAME, c.name);
            w.attr_str(NFTA_CHAIN_TYPE, c.kind);
            w.attr_u32(NFTA_CHAIN_POLICY, NF_ACCEPT);
            w.nest(NFTA_CHAIN_HOOK, |w| {
                w.attr_u32(NFTA_HOOK_HOOKNUM, c.hook);
                w.attr_u32(NFTA_HOOK_PRIORITY, c.priority as u32);
            });
        });
    }
}

/// The batch that makes the table what it should be, given its current
/// rules: the creates, and for each base chain whose rules differ from the
/// expected ones, a flush and the rules.
pub(crate) fn ensure_batch(current: &[CurrentRule]) -> Batch {
    let mut b = Batch::new();
    push_creates(&mut b);
    let rules = rules();
    for c in BASE_CHAINS {
        let want: Vec<(&Rule, Vec<u8>, Vec<u8>)> = rules
            .iter()
            .filter(|r| r.chain == c.name)
            .map(|r| {
                let exprs = encode_exprs(&r.exprs);
                let udata = r.userdata(&exprs);
                (r, exprs, udata)
            })
            .collect();
        let have: Vec<Option<&[u8]>> =
            current.iter().filter(|r| r.chain == c.name).map(|r| r.userdata.as_deref()).collect();
        let same = have.len() == want.len() && have.iter().zip(&want).all(|(h, w)| *h == Some(w.2.as_slice()));
        if same {
            continue;
        }
        // Flushed even if seen empty (or just created by this batch): rules
        // added since the dump must not stay in front of or beside ours.
        b.push(NFT_MSG_DELRULE, 0, format!("flush chain inet {TABLE} {}", c.name), |w| {
            w.attr_str(NFTA_RULE_TABLE, TABLE);
            w.attr_str(NFTA_RULE_CHAIN, c.name);
        });
        for (r, exprs, udata) in want {
            let what = format!("add rule inet {TABLE} {} ({})", c.name, r.name);
            b.push(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, what, |w| {
                w.attr_str(NFTA_RULE_TABLE, TABLE);
                w.attr_str(NFTA_RULE_CHAIN, c.name);
                w.attr_nested(NFTA_RULE_EXPRESSIONS, &exprs);
                w.attr(NFTA_RULE_USERDATA, &udata);
            });
        }
    }
    b
}

/// Parses the answers of a rule dump.
fn parse_rules(answers: &[Vec<u8>]) -> Vec<CurrentRule> {
    answers
        .iter()
        .filter_map(|a| {
            let (mut table, mut chain, mut userdata) = (None, None, None);
            for (ty, v) in attrs(a) {
                match ty {
                    NFTA_RULE_TABLE => table = Some(attr_str(v)),
                    NFTA_RULE_CHAIN => chain = Some(attr_str(v).to_string()),
                    NFTA_RULE_USERDATA => userdata = Some(v.to_vec()),
                    _ => {}
                }
            }
            (table == Some(TABLE)).then_some(CurrentRule { chain: chain?, userdata })
        })
        .collect()
}

/// The rules of the table now (none if it does not exist).
fn current_rules(sock: &mut Socket) -> Result<Vec<CurrentRule>> {
    const ATTEMPTS: usize = 3;
    let what = format!("list rules of table inet {TABLE}");
    let mut attempt = 1;
    loop {
        match sock.request(NFT_MSG_GETRULE, NLM_F_DUMP, NFPROTO_INET, &what, |w| w.attr_str(NFTA_RULE_TABLE, TABLE)) {
            Ok(answers) => return Ok(parse_rules(&answers)),
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            // The ruleset changed during the dump (EINTR): the answer may be inconsistent.
            Err(e) if e.errno() == Some(libc::EINTR) && attempt < ATTEMPTS => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Creates what is missing and repairs the base chains' rules, in one
/// transaction (blocking; call off the async threads).
pub(crate) fn ensure(sock: &mut Socket) -> Result<()> {
    let current = current_rules(sock)?;
    sock.send(&ensure_batch(&current))
}

fn remove_batch() -> Batch {
    let mut b = Batch::new();
    b.push(NFT_MSG_DELTABLE, 0, format!("delete table inet {TABLE}"), |w| w.attr_str(NFTA_TABLE_NAME, TABLE));
    b
}

/// Deletes the table with everything in it; a missing table is fine.
pub(crate) fn remove(sock: &mut Socket) -> Result<()> {
    match sock.send(&remove_batch()) {
        Err(e) if e.is_not_found() => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::super::nfnl::messages;
    use super::*;

    /// `(message type, chain or set name)` of every message of a batch.
    fn summary(b: &Batch) -> Vec<(u16, String)> {
        let bytes = b.encode(1);
        messages(&bytes)
            .map(|m| {
                let name = m
                    .attrs()
                    .find(|(t, _)| *t == 2 || *t == 3)
                    .map(|(_, v)| attr_str(v).to_string())
                    .unwrap_or_default();
                (m.ty & 0xff, name)
            })
            .collect()
    }

    fn count(s: &[(u16, String)], msg: u16, chain: &str) -> usize {
        s.iter().filter(|(t, c)| *t == msg && c == chain).count()
    }

    /// The rules as the kernel would return them after `ensure_batch`.
    fn expected() -> Vec<CurrentRule> {
        rules()
            .iter()
            .map(|r| CurrentRule { chain: r.chain.into(), userdata: Some(r.userdata(&encode_exprs(&r.exprs))) })
            .collect()
    }

    #[test]
    fn a_new_table_gets_everything() {
        let b = ensure_batch(&[]);
        let s = summary(&b);
        assert_eq!(s.first().map(|m| m.0), Some(16), "BEGIN");
        assert_eq!(s.last().map(|m| m.0), Some(17), "END");
        assert_eq!(s.iter().filter(|m| m.0 == NFT_MSG_NEWSET).count(), 23);
        assert_eq!(s.iter().filter(|m| m.0 == NFT_MSG_NEWCHAIN).count(), 7);
        for (chain, n) in [
            ("raw", 3),
            ("mark", 2),
            ("forward", 14),
            ("prerouting", 8),
            ("output", 8),
            ("postrouting", 5),
            (USER_CHAIN, 0),
        ] {
            assert_eq!(count(&s, NFT_MSG_NEWRULE, chain), n, "{chain}");
            assert_eq!(count(&s, NFT_MSG_DELRULE, chain), usize::from(n > 0), "{chain}");
        }
        // Each flush comes before its chain's rules, after the chain's creation.
        let pos = |msg: u16, chain: &str| s.iter().position(|m| m.0 == msg && m.1 == chain);
        assert!(pos(NFT_MSG_NEWCHAIN, "forward") < pos(NFT_MSG_DELRULE, "forward"));
        assert!(pos(NFT_MSG_DELRULE, "forward") < pos(NFT_MSG_NEWRULE, "forward"));
    }

    #[test]
    fn the_user_chain_is_never_flushed() {
        // Every chain differs (rules of an older cnm without fingerprints, and user rules).
        let current: Vec<CurrentRule> = ["forward", "prerouting", "output", "postrouting", USER_CHAIN, USER_CHAIN]
            .iter()
            .map(|c| CurrentRule { chain: c.to_string(), userdata: None })
            .collect();
        let s = summary(&ensure_batch(&current));
        for chain in ["raw", "mark", "forward", "prerouting", "output", "postrouting"] {
            assert_eq!(count(&s, NFT_MSG_DELRULE, chain), 1, "{chain}");
        }
        assert_eq!(count(&s, NFT_MSG_DELRULE, USER_CHAIN), 0);
        assert_eq!(count(&s, NFT_MSG_NEWRULE, USER_CHAIN), 0);
        assert_eq!(s.iter().filter(|m| m.0 == NFT_MSG_NEWRULE).count(), 40);
    }

    #[test]
    fn matching_rules_are_left_alone_and_one_difference_repairs_its_chain() {
        let mut current = expected();
        current.push(CurrentRule { chain: USER_CHAIN.into(), userdata: None });
        let s = summary(&ensure_batch(&current));
        assert!(!s.iter().any(|m| m.0 == NFT_MSG_NEWRULE || m.0 == NFT_MSG_DELRULE), "{s:?}");
        // A rule deleted from forward, and two swapped in postrouting.
        let mut current = expected();
        current.remove(5);
        let n = current.len();
        current.swap(n - 1, n - 2);
        let s = summary(&ensure_batch(&current));
        assert_eq!(count(&s, NFT_MSG_DELRULE, "forward"), 1);
        assert_eq!(count(&s, NFT_MSG_NEWRULE, "forward"), 14);
        assert_eq!(count(&s, NFT_MSG_DELRULE, "postrouting"), 1);
        assert_eq!(count(&s, NFT_MSG_NEWRULE, "postrouting"), 5);
        assert_eq!(count(&s, NFT_MSG_DELRULE, "prerouting") + count(&s, NFT_MSG_NEWRULE, "output"), 0);
        // A rule added by hand to a base chain.
        let mut current = expected();
        current.insert(0, CurrentRule { chain: "output".into(), userdata: Some(vec![0, 2, b'x', 0]) });
        let s = summary(&ensure_batch(&current));
        assert_eq!(count(&s, NFT_MSG_DELRULE, "output"), 1);
        assert_eq!(count(&s, NFT_MSG_NEWRULE, "output"), 8);
    }

    #[test]
    fn fingerprints_are_distinct_and_fit_a_tlv() {
        let all = expected();
        for r in &all {
            let u = r.userdata.as_deref().unwrap_or_default();
            assert_eq!(u[0], UDATA_CNM_FINGERPRINT);
            assert_eq!(usize::from(u[1]) + 2, u.len());
        }
        let mut set: Vec<_> = all.iter().map(|r| r.userdata.clone()).collect();
        set.sort();
        set.dedup();
        assert_eq!(set.len(), all.len());
    }

    #[test]
    fn set_types_match_nft_and_the_element_encoder() {
        assert_eq!(type_of(&[Ifname]), (0x29, 16));
        assert_eq!(type_of(&[Ifname, Ifname]), (0xa69, 32));
        assert_eq!(type_of(&[Ifname, Ipv4]), (0xa47, 20));
        assert_eq!(type_of(&[InetProto, Ipv4, InetService]), (0xc1cd, 12));
        assert_eq!(type_of(&[InetProto, InetService]), (0x30d, 8));
        assert_eq!(type_of(&[Ipv6, InetService]), (0x20d, 20));
        use super::super::elements::key;
        let k = key::concat(&[key::proto(6), key::addr("::1".parse().unwrap()), key::port(80)]);
        assert_eq!(k.len() as u32, type_of(&[InetProto, Ipv6, InetService]).1);
    }

    #[test]
    fn the_vni_is_masked_in_its_own_register() {
        // `ip saddr . udp dport . vni`: 4 + 4 (a port, padded) bytes before the VNI's word.
        let v = vxlan_key(&[IP_SADDR, TH_DPORT], "vxlan_peers", true);
        let masked = v.iter().find_map(|e| match e {
            Expr::Bitwise { sreg, dreg, mask, .. } => Some((*sreg, *dreg, mask.clone())),
            _ => None,
        });
        assert_eq!(masked, Some((R0 + 2, R0 + 2, vec![0xff, 0xff, 0xff, 0])));
        assert!(matches!(v.last(), Some(Expr::Lookup { set: "vxlan_peers", sreg: R0, invert: true, .. })));
        assert_eq!(type_of(&[InetService, Vni]), ((13 << 6) | 19, 8));
    }

    #[test]
    fn concatenations_take_consecutive_registers() {
        let v = load(&[L4PROTO, IP6_DADDR, TH_DPORT]);
        let regs: Vec<u32> = v
            .iter()
            .map(|e| match e {
                Expr::Meta { dreg, .. } | Expr::Payload { dreg, .. } => *dreg,
                _ => 0,
            })
            .collect();
        assert_eq!(regs, vec![8, 9, 13]);
        assert!(matches!(dnat_rule(NFPROTO_IPV6, "ports6").last(), Some(Expr::Dnat { addr: 8, proto: 12, .. })));
        assert!(matches!(dnat_rule(NFPROTO_IPV4, "ports4_any").last(), Some(Expr::Dnat { addr: 8, proto: 9, .. })));
    }

    #[test]
    fn dumped_rules_are_read_by_table_and_chain() {
        let mut w = Writer::default();
        w.attr_str(NFTA_RULE_TABLE, TABLE);
        w.attr_str(NFTA_RULE_CHAIN, "forward");
        w.attr(NFTA_RULE_USERDATA, &[UDATA_CNM_FINGERPRINT, 1, b'x']);
        let mine = w.into_bytes();
        let mut w = Writer::default();
        w.attr_str(NFTA_RULE_TABLE, "other");
        w.attr_str(NFTA_RULE_CHAIN, "forward");
        let other = w.into_bytes();
        let got = parse_rules(&[mine, other, vec![1, 2, 3]]);
        assert_eq!(got, vec![CurrentRule { chain: "forward".into(), userdata: Some(vec![0xc0, 1, b'x']) }]);
    }

    #[test]
    fn removal_is_one_deltable() {
        let s = summary(&remove_batch());
        assert_eq!(s.iter().map(|m| m.0).collect::<Vec<_>>(), vec![16, NFT_MSG_DELTABLE, 17]);
    }
}
