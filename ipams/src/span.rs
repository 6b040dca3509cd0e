//! Integer views of IP addresses and networks, shared by the allocators.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address as an integer (IPv4 addresses occupy the low 32 bits).
pub(crate) fn addr_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of the given family whose integer value is `v` (truncated to 32 bits for IPv4).
pub(crate) fn u128_to_addr(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        // Truncation is intended: IPv4 values never exceed 32 bits here.
        IpAddr::V4(Ipv4Addr::from(v as u32))
    }
}

/// The largest host offset of a network of `prefix` bits in a family of `bits` bits.
pub(crate) fn host_mask(bits: u8, prefix: u8) -> u128 {
    let host_bits = u32::from(bits.saturating_sub(prefix));
    if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 }
}

/// The first and last address of a network, as integers (inclusive).
pub(crate) fn span(net: &IpNet) -> (u128, u128) {
    let start = addr_to_u128(net.network());
    (start, start | host_mask(net.max_prefix_len(), net.prefix_len()))
}

/// Whether the network's address has host bits set.
pub(crate) fn has_host_bits(net: &IpNet) -> bool {
    net.addr() != net.network()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test network")
    }

    #[test]
    fn spans_of_networks() {
        assert_eq!(span(&net("10.0.0.0/8")), (0x0a00_0000, 0x0aff_ffff));
        assert_eq!(span(&net("::/0")), (0, u128::MAX));
        assert_eq!(span(&net("10.1.2.3/32")), (0x0a01_0203, 0x0a01_0203));
    }

    #[test]
    fn masks_and_conversions() {
        assert_eq!(host_mask(32, 24), 255);
        assert_eq!(host_mask(128, 0), u128::MAX);
        assert_eq!(host_mask(128, 128), 0);
        let ip: IpAddr = "192.168.1.7".parse().expect("ip");
        assert_eq!(u128_to_addr(addr_to_u128(ip), false), ip);
        let ip6: IpAddr = "fd00::1".parse().expect("ip");
        assert_eq!(u128_to_addr(addr_to_u128(ip6), true), ip6);
    }

    #[test]
    fn host_bits() {
        assert!(has_host_bits(&net("10.0.0.1/24")));
        assert!(!has_host_bits(&net("10.0.0.0/24")));
    }
}
