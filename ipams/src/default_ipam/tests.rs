//! Tests of the default IPAM through the `Ipam` trait.

use super::*;
use crate::config::PoolSpec;
use cnm_ipamapi::StaticHostNetworks;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

fn net(s: &str) -> IpNet {
    s.parse().expect("test network")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn pool_req(space: &str, pool: Option<&str>, sub: Option<&str>, v6: bool) -> RequestPoolRequest {
    RequestPoolRequest {
        address_space: space.to_string(),
        pool: pool.map(net),
        sub_pool: sub.map(net),
        options: BTreeMap::new(),
        v6,
    }
}

fn addr_req(id: &str, address: Option<&str>, gateway: bool) -> RequestAddressRequest {
    RequestAddressRequest {
        pool_id: id.to_string(),
        address: address.map(ip),
        options: gateway.then(|| {
            BTreeMap::from([(
                cnm_ipamapi::label::REQUEST_ADDRESS_TYPE.to_string(),
                cnm_ipamapi::label::GATEWAY.to_string(),
            )])
        }),
    }
}

async fn local(ipam: &DefaultIpam, pool: &str) -> String {
    ipam.request_pool(pool_req(LOCAL_DEFAULT, Some(pool), None, pool.contains(':'))).await.expect("pool").pool_id
}

async fn next(ipam: &DefaultIpam, id: &str) -> Result<IpNet> {
    ipam.request_address(addr_req(id, None, false)).await.map(|r| r.address)
}

async fn release(ipam: &DefaultIpam, id: &str, a: &str) -> Result<()> {
    ipam.release_address(ReleaseAddressRequest { pool_id: id.to_string(), address: ip(a) }).await
}

/// Host networks that count how often they are asked.
struct CountingHost {
    nets: Vec<IpNet>,
    calls: AtomicUsize,
}

#[async_trait]
impl HostNetworks for CountingHost {
    async fn networks(&self) -> std::io::Result<Vec<IpNet>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.nets.clone())
    }
}

/// Host networks that cannot be listed.
struct FailingHost;

#[async_trait]
impl HostNetworks for FailingHost {
    async fn networks(&self) -> std::io::Result<Vec<IpNet>> {
        Err(std::io::Error::other("netlink is down"))
    }
}

#[test]
fn is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<DefaultIpam>();
}

#[tokio::test]
async fn address_spaces() {
    let ipam = DefaultIpam::default();
    let spaces = ipam.default_address_spaces().await.expect("spaces");
    assert_eq!((spaces.local.as_str(), spaces.global.as_str()), (LOCAL_DEFAULT, GLOBAL_DEFAULT));
    let err = ipam.request_pool(pool_req("Nope", None, None, false)).await;
    assert!(matches!(err, Err(Error::InvalidAddressSpace(s)) if s == "Nope"));
}

#[tokio::test]
async fn serial_allocation_with_prefix_and_wrap_around() {
    let ipam = DefaultIpam::default();
    let id = local(&ipam, "10.0.0.0/29").await;
    assert_eq!(id, "LocalDefault/10.0.0.0/29");
    for i in 1..=6 {
        assert_eq!(next(&ipam, &id).await.expect("free"), net(&format!("10.0.0.{i}/29")));
    }
    assert!(matches!(next(&ipam, &id).await, Err(Error::NoAvailableIps)));
    release(&ipam, &id, "10.0.0.2").await.expect("release");
    release(&ipam, &id, "10.0.0.2").await.expect("idempotent release");
    assert_eq!(next(&ipam, &id).await.expect("wrapped"), net("10.0.0.2/29"));
}

/// With Docker's serial option, a released address comes back only after the range wraps.
#[tokio::test]
async fn serial_option_delays_reuse() {
    let ipam = DefaultIpam::default();
    let mut req = pool_req(LOCAL_DEFAULT, Some("10.0.0.0/24"), None, false);
    req.options.insert(crate::SERIAL_OPTION.into(), "true".into());
    let id = ipam.request_pool(req).await.expect("pool").pool_id;
    assert_eq!(next(&ipam, &id).await.expect("a"), net("10.0.0.1/24"));
    release(&ipam, &id, "10.0.0.1").await.expect("release");
    assert_eq!(next(&ipam, &id).await.expect("b"), net("10.0.0.2/24"));
}

/// By default (Docker 20.10), the lowest free address: a released one comes back at once.
#[tokio::test]
async fn lowest_free_address_by_default() {
    let ipam = DefaultIpam::default();
    let id = local(&ipam, "10.0.0.0/24").await;
    for i in 1..=4 {
        assert_eq!(next(&ipam, &id).await.unwrap(), net(&format!("10.0.0.{i}/24")));
    }
    release(&ipam, &id, "10.0.0.2").await.unwrap();
    release(&ipam, &id, "10.0.0.3").await.unwrap();
    assert_eq!(next(&ipam, &id).await.unwrap(), net("10.0.0.2/24"), "the reconnecting container's address");
    assert_eq!(next(&ipam, &id).await.unwrap(), net("10.0.0.3/24"));
    assert_eq!(next(&ipam, &id).await.unwrap(), net("10.0.0.5/24"));
    // The serial option on one request works too (Docker passes it per address request).
    let serial = RequestAddressRequest {
        pool_id: id.clone(),
        address: None,
        options: Some(BTreeMap::from([(crate::SERIAL_OPTION.to_string(), "true".to_string())])),
    };
    release(&ipam, &id, "10.0.0.1").await.unwrap();
    assert_eq!(ipam.request_address(serial).await.unwrap().address, net("10.0.0.6/24"), "serial continues");
}

#[tokio::test]
async fn gateway_takes_first_address_of_the_pool() {
    let ipam = DefaultIpam::default();
    let resp = ipam
        .request_pool(pool_req(LOCAL_DEFAULT, Some("10.1.0.0/24"), Some("10.1.0.64/26"), false))
        .await
        .expect("pool");
    assert_eq!(resp.pool_id, "LocalDefault/10.1.0.0/24/10.1.0.64/26");
    assert!(resp.data.is_empty());
    let id = resp.pool_id;
    let gw = ipam.request_address(addr_req(&id, None, true)).await.expect("gw");
    assert_eq!(gw.address, net("10.1.0.1/24"));
    assert!(gw.data.is_empty());
    assert_eq!(next(&ipam, &id).await.expect("ep"), net("10.1.0.64/24"));
    // Aux addresses may lie outside the sub-pool, but not outside the pool.
    let aux = ipam.request_address(addr_req(&id, Some("10.1.0.10"), false)).await;
    assert_eq!(aux.expect("aux").address, net("10.1.0.10/24"));
    let out = ipam.request_address(addr_req(&id, Some("10.1.1.10"), false)).await;
    assert!(matches!(out, Err(Error::AddressOutOfRange(_))));
    let used = ipam.request_address(addr_req(&id, Some("10.1.0.1"), false)).await;
    assert!(matches!(used, Err(Error::AddressInUse(_))));
    for special in ["10.1.0.0", "10.1.0.255"] {
        let r = ipam.request_address(addr_req(&id, Some(special), false)).await;
        assert!(matches!(r, Err(Error::AddressOutOfRange(_))), "{special}");
    }
}

#[tokio::test]
async fn invalid_pools_and_sub_pools() {
    let ipam = DefaultIpam::default();
    let r = ipam.request_pool(pool_req(LOCAL_DEFAULT, Some("10.0.0.1/24"), None, false)).await;
    assert!(matches!(r, Err(Error::InvalidPool(m)) if m.contains("10.0.0.0/24")));
    let r = ipam.request_pool(pool_req(LOCAL_DEFAULT, Some("10.0.0.0/24"), None, true)).await;
    assert!(matches!(r, Err(Error::InvalidPool(_))));
    let r = ipam.request_pool(pool_req(LOCAL_DEFAULT, Some("fd00::/64"), None, false)).await;
    assert!(matches!(r, Err(Error::InvalidPool(_))));
    let r = ipam.request_pool(pool_req(LOCAL_DEFAULT, Some("10.0.0.0/24"), Some("10.0.1.0/26"), false)).await;
    assert!(matches!(r, Err(Error::InvalidSubPool(_))));
    let r = ipam.request_pool(pool_req(LOCAL_DEFAULT, None, Some("10.0.1.0/26"), false)).await;
    assert!(matches!(r, Err(Error::InvalidSubPool(_))));
    assert_eq!(ipam.lock().pools.len(), 0, "failed requests allocate nothing");
}

#[tokio::test]
async fn overlap_is_refused_within_a_space_only() {
    let ipam = DefaultIpam::default();
    local(&ipam, "10.0.0.0/16").await;
    let r = ipam.request_pool(pool_req(LOCAL_DEFAULT, Some("10.0.3.0/24"), None, false)).await;
    match r {
        Err(Error::PoolOverlap { requested, existing }) => {
            assert_eq!((requested.as_str(), existing.as_str()), ("10.0.3.0/24", "10.0.0.0/16"));
        }
        other => panic!("expected an overlap, got {other:?}"),
    }
    let r = ipam.request_pool(pool_req(GLOBAL_DEFAULT, Some("10.0.3.0/24"), None, false)).await;
    assert_eq!(r.expect("other space").pool_id, "GlobalDefault/10.0.3.0/24");
}

#[tokio::test]
async fn automatic_choice_skips_host_networks_and_allocated_pools() {
    let host = Arc::new(CountingHost { nets: vec![net("172.17.0.0/16")], calls: AtomicUsize::new(0) });
    let ipam = DefaultIpam::default().with_host_networks(host.clone());
    let first = ipam.request_pool(pool_req(LOCAL_DEFAULT, None, None, false)).await.expect("auto");
    assert_eq!(first.pool, net("172.18.0.0/16"));
    assert_eq!(first.pool_id, "LocalDefault/172.18.0.0/16");
    let second = ipam.request_pool(pool_req(LOCAL_DEFAULT, None, None, false)).await.expect("auto");
    assert_eq!(second.pool, net("172.19.0.0/16"));
    assert_eq!(host.calls.load(Ordering::SeqCst), 2);
    local(&ipam, "172.20.0.0/16").await;
    ipam.request_pool(pool_req(GLOBAL_DEFAULT, None, None, false)).await.expect("global");
    assert_eq!(host.calls.load(Ordering::SeqCst), 2, "explicit and global pools skip the host");
    let third = ipam.request_pool(pool_req(LOCAL_DEFAULT, None, None, false)).await.expect("auto");
    assert_eq!(third.pool, net("172.21.0.0/16"));
}

#[tokio::test]
async fn automatic_choice_without_host_starts_at_172_17() {
    let ipam = DefaultIpam::default().with_host_networks(Arc::new(StaticHostNetworks(vec![net("10.0.0.0/8")])));
    let r = ipam.request_pool(pool_req(LOCAL_DEFAULT, None, None, false)).await.expect("auto");
    assert_eq!(r.pool, net("172.17.0.0/16"));
}

#[tokio::test]
async fn host_failure_is_internal() {
    let ipam = DefaultIpam::default().with_host_networks(Arc::new(FailingHost));
    let r = ipam.request_pool(pool_req(LOCAL_DEFAULT, None, None, false)).await;
    match r {
        Err(e @ Error::Other { .. }) => {
            assert_eq!(e.kind(), ErrorKind::Internal);
            assert!(e.to_string().contains("netlink is down"));
        }
        other => panic!("expected an internal error, got {other:?}"),
    }
}

#[tokio::test]
async fn global_space_gives_consecutive_slash_24s() {
    let ipam = DefaultIpam::default();
    for expected in ["10.0.0.0/24", "10.0.1.0/24"] {
        let r = ipam.request_pool(pool_req(GLOBAL_DEFAULT, None, None, false)).await.expect("auto");
        assert_eq!(r.pool, net(expected));
        assert_eq!(r.pool_id, format!("GlobalDefault/{expected}"));
    }
}

#[tokio::test]
async fn exhausted_predefined_pools() {
    let config = DefaultIpamConfig {
        local_pools: vec![PoolSpec::new(net("10.9.0.0/23"), 24).expect("spec")],
        ..DefaultIpamConfig::default()
    };
    let ipam = DefaultIpam::new(config);
    for _ in 0..2 {
        ipam.request_pool(pool_req(LOCAL_DEFAULT, None, None, false)).await.expect("auto");
    }
    let r = ipam.request_pool(pool_req(LOCAL_DEFAULT, None, None, false)).await;
    assert!(matches!(r, Err(Error::NoAvailablePool)));
    let r = ipam.request_pool(pool_req(LOCAL_DEFAULT, None, None, true)).await;
    assert!(matches!(r, Err(Error::NoAvailablePool)), "no IPv6 pools by default");
}

#[tokio::test]
async fn automatic_ipv6_pools() {
    let config = DefaultIpamConfig {
        local_pools_v6: vec![PoolSpec::new(net("fd00::/48"), 64).expect("spec")],
        ..DefaultIpamConfig::default()
    };
    let ipam = DefaultIpam::new(config).with_host_networks(Arc::new(StaticHostNetworks(vec![net("fd00::/64")])));
    let r = ipam.request_pool(pool_req(LOCAL_DEFAULT, None, None, true)).await.expect("auto");
    assert_eq!(r.pool, net("fd00:0:0:1::/64"));
    assert_eq!(next(&ipam, &r.pool_id).await.expect("addr"), net("fd00:0:0:1::1/64"));
}

#[tokio::test]
async fn release_pool_frees_pool_and_addresses() {
    let ipam = DefaultIpam::default();
    let id = local(&ipam, "192.168.5.0/24").await;
    next(&ipam, &id).await.expect("addr");
    ipam.release_pool(ReleasePoolRequest { pool_id: id.clone() }).await.expect("release");
    let r = ipam.release_pool(ReleasePoolRequest { pool_id: id.clone() }).await;
    assert!(matches!(r, Err(Error::PoolNotFound(_))));
    assert!(matches!(next(&ipam, &id).await, Err(Error::PoolNotFound(_))));
    assert!(matches!(release(&ipam, &id, "192.168.5.1").await, Err(Error::PoolNotFound(_))));
    let id = local(&ipam, "192.168.5.0/24").await;
    assert_eq!(next(&ipam, &id).await.expect("fresh"), net("192.168.5.1/24"));
}

#[tokio::test]
async fn release_address_outside_the_pool() {
    let ipam = DefaultIpam::default();
    let id = local(&ipam, "192.168.5.0/24").await;
    let r = release(&ipam, &id, "192.168.6.1").await;
    assert!(matches!(r, Err(Error::AddressOutOfRange(_))));
}

#[tokio::test]
async fn slash_31_and_slash_32() {
    let ipam = DefaultIpam::default();
    let id = local(&ipam, "10.2.0.0/31").await;
    assert_eq!(next(&ipam, &id).await.expect("a"), net("10.2.0.0/31"));
    assert_eq!(next(&ipam, &id).await.expect("b"), net("10.2.0.1/31"));
    assert!(matches!(next(&ipam, &id).await, Err(Error::NoAvailableIps)));
    let id = local(&ipam, "10.3.0.7/32").await;
    assert_eq!(next(&ipam, &id).await.expect("a"), net("10.3.0.7/32"));
    assert!(matches!(next(&ipam, &id).await, Err(Error::NoAvailableIps)));
}

#[tokio::test]
async fn ipv6_slash_64_and_48_stay_small() {
    let ipam = DefaultIpam::default();
    for p in ["fd00:1::/64", "fd00:2::/48"] {
        let id = local(&ipam, p).await;
        let gw = ipam.request_address(addr_req(&id, None, true)).await.expect("gw");
        assert_eq!(gw.address.prefix_len(), net(p).prefix_len());
        for _ in 0..1000 {
            next(&ipam, &id).await.expect("addr");
        }
        release(&ipam, &id, &gw.address.addr().to_string()).await.expect("release");
    }
    let high = ipam
        .request_address(addr_req("LocalDefault/fd00:1::/64", Some("fd00:1::ffff:ffff:ffff:ffff"), false))
        .await
        .expect("last address");
    assert_eq!(high.address, net("fd00:1::ffff:ffff:ffff:ffff/64"));
    assert!(ipam.memory_bytes() < 4096, "{} bytes", ipam.memory_bytes());
}
