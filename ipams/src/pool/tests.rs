//! Tests of the pool allocator, including a property test.

use super::*;
use proptest::prelude::*;
use std::collections::HashSet;

fn net(s: &str) -> IpNet {
    s.parse().expect("test network")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn pool(p: &str) -> AddressPool {
    AddressPool::new(net(p), None).expect("valid pool")
}

#[test]
fn serial_allocation_wraps_around() {
    let mut p = pool("10.0.0.0/29");
    for i in 1..=6 {
        assert_eq!(p.allocate_next().expect("free"), ip(&format!("10.0.0.{i}")));
    }
    assert!(matches!(p.allocate_next(), Err(Error::NoAvailableIps)));
    assert!(p.release(ip("10.0.0.3")).expect("in pool"));
    assert!(p.release(ip("10.0.0.5")).expect("in pool"));
    assert_eq!(p.allocate_next().expect("free"), ip("10.0.0.3"));
    assert_eq!(p.allocate_next().expect("free"), ip("10.0.0.5"));
}

#[test]
fn released_address_not_reused_before_wrap() {
    let mut p = pool("10.0.0.0/24");
    let a = p.allocate_next().expect("free");
    let b = p.allocate_next().expect("free");
    p.release(a).expect("in pool");
    assert_eq!(p.allocate_next().expect("free"), ip("10.0.0.3"));
    assert_ne!(b, a);
    for _ in 0..251 {
        p.allocate_next().expect("free");
    }
    assert_eq!(p.allocate_next().expect("wrapped"), a);
    assert!(matches!(p.allocate_next(), Err(Error::NoAvailableIps)));
    assert_eq!(p.allocated(), 254);
}

#[test]
fn first_free_for_gateways() {
    let mut p = AddressPool::new(net("10.0.0.0/24"), Some(net("10.0.0.128/25"))).expect("ok");
    assert_eq!(p.allocate_next().expect("free"), ip("10.0.0.128"));
    assert_eq!(p.allocate_first().expect("free"), ip("10.0.0.1"));
    assert_eq!(p.allocate_first().expect("free"), ip("10.0.0.2"));
    assert_eq!(p.allocate_next().expect("free"), ip("10.0.0.129"));
}

#[test]
fn sub_pool_is_respected_and_exhausts() {
    let mut p = AddressPool::new(net("10.0.0.0/24"), Some(net("10.0.0.64/30"))).expect("ok");
    let got: Vec<IpAddr> = (0..4).map(|_| p.allocate_next().expect("free")).collect();
    assert_eq!(got, ["10.0.0.64", "10.0.0.65", "10.0.0.66", "10.0.0.67"].map(ip));
    assert!(matches!(p.allocate_next(), Err(Error::NoAvailableIps)));
    assert_eq!(p.allocate(ip("10.0.0.10")).expect("aux"), ip("10.0.0.10"));
}

#[test]
fn sub_pool_at_the_pool_edges_excludes_network_and_broadcast() {
    let mut p = AddressPool::new(net("10.0.0.0/24"), Some(net("10.0.0.0/30"))).expect("ok");
    assert_eq!(p.capacity(), 3);
    let mut q = AddressPool::new(net("10.0.0.0/24"), Some(net("10.0.0.252/30"))).expect("ok");
    assert_eq!(q.capacity(), 3);
    for _ in 0..3 {
        assert_ne!(p.allocate_next().expect("free"), ip("10.0.0.0"));
        assert_ne!(q.allocate_next().expect("free"), ip("10.0.0.255"));
    }
}

#[test]
fn preferred_addresses() {
    let mut p = pool("192.168.1.0/24");
    assert_eq!(p.allocate(ip("192.168.1.100")).expect("ok"), ip("192.168.1.100"));
    assert!(matches!(p.allocate(ip("192.168.1.100")), Err(Error::AddressInUse(_))));
    assert!(matches!(p.allocate(ip("192.168.2.1")), Err(Error::AddressOutOfRange(_))));
    assert!(matches!(p.allocate(ip("192.168.1.0")), Err(Error::AddressOutOfRange(_))));
    assert!(matches!(p.allocate(ip("192.168.1.255")), Err(Error::AddressOutOfRange(_))));
    assert!(matches!(p.allocate(ip("fd00::1")), Err(Error::AddressOutOfRange(_))));
    assert!(p.is_allocated(ip("192.168.1.100")));
}

#[test]
fn release_semantics() {
    let mut p = pool("192.168.1.0/24");
    assert!(!p.release(ip("192.168.1.7")).expect("idempotent"));
    assert!(matches!(p.release(ip("10.0.0.1")), Err(Error::AddressOutOfRange(_))));
    p.allocate(ip("192.168.1.7")).expect("ok");
    assert!(p.release(ip("192.168.1.7")).expect("ok"));
    assert!(!p.is_allocated(ip("192.168.1.7")));
}

#[test]
fn slash_31_and_32_use_every_address() {
    let mut p = pool("10.0.0.0/31");
    assert_eq!(p.allocate_next().expect("free"), ip("10.0.0.0"));
    assert_eq!(p.allocate_next().expect("free"), ip("10.0.0.1"));
    assert!(matches!(p.allocate_next(), Err(Error::NoAvailableIps)));
    let mut q = pool("10.0.0.9/32");
    assert_eq!(q.allocate_first().expect("free"), ip("10.0.0.9"));
    assert!(matches!(q.allocate_next(), Err(Error::NoAvailableIps)));
}

#[test]
fn slash_29_exhausts() {
    let mut p = pool("10.0.0.8/29");
    for _ in 0..6 {
        let a = p.allocate_next().expect("free");
        assert!(a != ip("10.0.0.8") && a != ip("10.0.0.15"));
    }
    assert!(matches!(p.allocate_next(), Err(Error::NoAvailableIps)));
    assert!(matches!(p.allocate_first(), Err(Error::NoAvailableIps)));
}

#[test]
fn ipv6_large_pools_stay_small() {
    for p in ["fd00::/64", "fd00::/48", "::/0"] {
        let mut p = pool(p);
        let first = p.allocate_next().expect("free");
        assert_eq!(addr_to_u128(first) - addr_to_u128(p.network().network()), 1);
        for _ in 0..10_000 {
            p.allocate_next().expect("free");
        }
        assert!(p.memory_bytes() < 1024, "{} bytes", p.memory_bytes());
        assert!(p.release(first).expect("in pool"));
        assert!(p.memory_bytes() < 1024);
        assert_eq!(p.allocated(), 10_000);
    }
}

#[test]
fn ipv6_never_hands_out_the_zero_host_address() {
    let mut p = pool("fd00::/126");
    let got: Vec<IpAddr> = (0..3).map(|_| p.allocate_next().expect("free")).collect();
    assert_eq!(got, ["fd00::1", "fd00::2", "fd00::3"].map(ip));
    assert!(matches!(p.allocate_next(), Err(Error::NoAvailableIps)));
    assert!(matches!(p.allocate(ip("fd00::")), Err(Error::AddressOutOfRange(_))));
}

#[test]
fn invalid_pools() {
    assert!(matches!(AddressPool::new(net("10.0.0.1/24"), None), Err(Error::InvalidPool(_))));
    assert!(matches!(AddressPool::new(net("10.0.0.0/24"), Some(net("10.0.1.0/25"))), Err(Error::InvalidSubPool(_))));
    assert!(matches!(AddressPool::new(net("10.0.0.0/24"), Some(net("10.0.0.1/25"))), Err(Error::InvalidSubPool(_))));
    assert!(matches!(AddressPool::new(net("10.0.0.0/24"), Some(net("fd00::/120"))), Err(Error::InvalidSubPool(_))));
}

#[test]
fn full_slash_8_fits_in_4_mib() {
    let mut p = pool("10.0.0.0/8");
    for _ in 0..(1u32 << 24) - 2 {
        p.allocate_next().expect("free");
    }
    assert!(matches!(p.allocate_next(), Err(Error::NoAvailableIps)));
    assert!(p.memory_bytes() <= 4 << 20, "{} bytes", p.memory_bytes());
}

#[derive(Debug, Clone)]
enum Op {
    Next,
    First,
    Preferred(u32),
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Next),
        1 => Just(Op::First),
        1 => any::<u32>().prop_map(Op::Preferred),
        3 => any::<usize>().prop_map(Op::Release),
    ]
}

proptest! {
    #[test]
    fn never_duplicates_nor_network_or_broadcast(
        prefix in 24u8..=32,
        v6 in any::<bool>(),
        half in 0u8..3,
        ops in proptest::collection::vec(op(), 1..400),
    ) {
        let p = if v6 {
            net(&format!("fd00::/{}", prefix + 96))
        } else {
            net(&format!("10.1.2.0/{prefix}")).trunc()
        };
        // No sub-pool, or the lower or upper half of the pool.
        let sub = match (half, p.subnets(p.prefix_len().saturating_add(1))) {
            (1 | 2, Ok(mut halves)) if prefix < 32 => halves.nth(usize::from(half - 1)),
            _ => None,
        };
        let mut pool = AddressPool::new(p, sub).expect("valid");
        let size = 1u128 << (32 - prefix);
        let mut held: Vec<IpAddr> = Vec::new();
        let mut seen: HashSet<IpAddr> = HashSet::new();
        for op in ops {
            let got = match op {
                Op::Next => pool.allocate_next(),
                Op::First => pool.allocate_first(),
                Op::Preferred(o) => {
                    let base = addr_to_u128(p.network());
                    pool.allocate(u128_to_addr(base + u128::from(o) % size, v6))
                }
                Op::Release(i) => {
                    if !held.is_empty() {
                        let a = held.swap_remove(i % held.len());
                        prop_assert!(pool.release(a).expect("in pool"));
                        seen.remove(&a);
                    }
                    continue;
                }
            };
            match got {
                Ok(a) => {
                    prop_assert!(p.contains(&a));
                    prop_assert!(seen.insert(a), "{} handed out twice", a);
                    if v6 {
                        prop_assert_ne!(a, p.network());
                    } else if prefix <= 30 {
                        prop_assert_ne!(a, p.network());
                        prop_assert_ne!(a, p.broadcast());
                    }
                    if let (Op::Next, Some(sub)) = (&op, sub) {
                        prop_assert!(sub.contains(&a), "{} outside sub-pool {}", a, sub);
                    }
                    held.push(a);
                }
                Err(Error::NoAvailableIps) => {
                    prop_assert!(!matches!(op, Op::Preferred(_)));
                }
                Err(Error::AddressInUse(a)) => {
                    prop_assert!(seen.contains(&ip(&a)));
                }
                Err(Error::AddressOutOfRange(a)) => {
                    let a = ip(&a);
                    prop_assert!(a == p.network() || (!v6 && prefix <= 30 && a == p.broadcast()));
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
            prop_assert_eq!(pool.allocated(), held.len() as u128);
        }
    }
}
