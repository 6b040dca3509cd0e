//! Multi-host through the library alone: two controllers embedded in this
//! test binary (no daemon), each on its own scratch host, members of one
//! cluster through a real etcd over TLS (`ControllerBuilder::cluster`),
//! the hosts joined by an underlay veth (192.168.233.1 and .2). Everything
//! a member does is the controller's: publishing and adopting global
//! networks, sharing names between the resolvers, the gateway bridge,
//! refusing a removal while another host has endpoints.
//!
//! Needs root, `etcd` (Debian's etcd-server) and `openssl`.

use cnm::osl::{Namespace, VethSpec};
use cnm::{Controller, EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_tests::TestHost;
use cnm_tests::etcd::Etcd;
use cnm_tests::eventually;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

/// A controller on `h`, a member through `etcd` with underlay address
/// `advertise`: the null, bridge and overlay drivers, the default IPAM
/// keeping the global address space in the cluster, the null IPAM.
async fn member(h: &TestHost, etcd: &Etcd, advertise: Ipv4Addr) -> Controller {
    let run = h.dir.path().join("run");
    cnm_tests::crash::cluster::controller(h.config().embedded_dns(true), &run, etcd.member("/cnm-embedded", advertise))
        .await
        .expect("a member controller")
}

async fn pings(ns: &Namespace, ip: IpAddr) -> bool {
    cnm::osl::probe::ping(ns, ip, Duration::from_millis(500)).await.is_ok()
}

/// A sandbox `name` on `ctrl`'s host joined to network `net`: its namespace and address.
async fn sandbox_on(ctrl: &Controller, name: &str, net: &str) -> (cnm::Sandbox, Namespace, Ipv4Addr) {
    let sb = ctrl.new_sandbox(name, SandboxConfig::default()).await.unwrap();
    let net = ctrl.network_by_name(net).await.unwrap();
    let ep = net.connect(name, EndpointConfig::default(), &sb, JoinOptions::default()).await.unwrap();
    let ip = match ep.info().await.unwrap().ipv4.unwrap().addr() {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => unreachable!("an IPv4 network"),
    };
    let ns = Namespace::open(sb.key()).unwrap();
    (sb, ns, ip)
}

/// An overlay network created on controller 1 is adopted by controller 2
/// (no caller shares it); sandboxes on the two hosts ping each other over
/// VXLAN and resolve each other's names; each also reaches its own host's
/// gateway bridge (its default route, which the controller attached); the
/// network cannot be removed while host 2 has an endpoint on it; once that
/// endpoint leaves, its removal on host 1 is followed on host 2 (which
/// forgets it) and nothing of it stays in the store (checked key by key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_embedded_controllers_share_an_overlay_network() {
    let test = "two_embedded_controllers_share_an_overlay_network";
    let Some(h1) = TestHost::new(test).await else { return };
    let Some(h2) = TestHost::new(test).await else { return };
    if !cnm_tests::tools(test, &["etcd"], "etcd-server") || !cnm_tests::tools(test, &["openssl"], "openssl") {
        return;
    }
    let spec = VethSpec { name: "ul0", peer_name: "ul0", peer_namespace: Some(&h2.ns), up: true, ..Default::default() };
    h1.nl.link_add_veth(&spec).await.unwrap();
    let ul1 = h1.nl.link_get("ul0").await.unwrap().unwrap();
    h1.nl.addr_add(ul1.index, "192.168.233.1/24".parse().unwrap()).await.unwrap();
    let ul2 = h2.nl.link_get("ul0").await.unwrap().unwrap();
    h2.nl.addr_add(ul2.index, "192.168.233.2/24".parse().unwrap()).await.unwrap();
    h2.nl.link_set_up(ul2.index).await.unwrap();
    let etcd = Etcd::start().await;
    let c1 = member(&h1, &etcd, Ipv4Addr::new(192, 168, 233, 1)).await;
    let c2 = member(&h2, &etcd, Ipv4Addr::new(192, 168, 233, 2)).await;

    let config = NetworkConfig::default().with_subnet("10.231.79.0/24".parse().unwrap());
    c1.new_network("overlay", "ov", config).await.expect("an overlay network on host 1");
    eventually("host 2 adopts the network", 5, || async { c2.network_by_name("ov").await.is_ok() }).await;

    let (_sb1, ns1, ip1) = sandbox_on(&c1, "s1", "ov").await;
    let (sb2, ns2, ip2) = sandbox_on(&c2, "s2", "ov").await;
    eventually("s1 reaches s2 across the hosts", 5, || pings(&ns1, ip2.into())).await;
    eventually("s2 reaches s1 across the hosts", 5, || pings(&ns2, ip1.into())).await;
    eventually("s1 resolves s2", 5, || async { cnm_tests::dns::lookup_a(&ns1, "s2").await == Ok(vec![ip2]) }).await;
    eventually("s2 resolves s1", 5, || async { cnm_tests::dns::lookup_a(&ns2, "s1").await == Ok(vec![ip1]) }).await;

    // The default route: each sandbox was joined to its host's gateway bridge.
    for (ctrl, ns) in [(&c1, &ns1), (&c2, &ns2)] {
        let gw = ctrl.network_by_name(cnm::GWBRIDGE).await.expect("the gateway bridge was made");
        let gateway = gw.info().await.unwrap().ipv4[0].gateway.unwrap().addr();
        assert!(pings(ns, gateway).await, "the sandbox reaches its gateway bridge at {gateway}");
    }

    let ov1 = c1.network_by_name("ov").await.unwrap();
    let ep1 = ov1.endpoint("s1").await.unwrap();
    let sb1 = c1.sandbox("s1").await.unwrap();
    ep1.leave_and_delete(&sb1).await.unwrap();
    let refused = ov1.delete().await.expect_err("host 2 still has an endpoint");
    assert!(cnm::chain(&refused).contains("has active endpoints (on hosts 192.168.233.2)"), "{refused}");
    let ov2 = c2.network_by_name("ov").await.unwrap();
    ov2.endpoint("s2").await.unwrap().leave_and_delete(&sb2).await.unwrap();
    eventually("s2's name goes with it", 5, || async { cnm_tests::dns::lookup_a(&ns1, "s2").await.is_err() }).await;
    ov1.delete().await.expect("removed on host 1 once no host has endpoints");
    eventually("host 2 forgets the network", 5, || async { c2.network_by_name("ov").await.is_err() }).await;
    // Nothing of it stays in the store: its record, claims, pool, addresses and VNI.
    let store =
        cnm_cluster::Cluster::connect(etcd.member("/cnm-embedded", Ipv4Addr::new(192, 168, 233, 9))).await.unwrap();
    for prefix in ["networks/", "endpoints/", "ipam/pools/", "ipam/addrs/", "overlay/vni/", "overlay/peers/", "names/"]
    {
        let (left, _) = store.list(prefix).await.unwrap();
        assert!(left.is_empty(), "{prefix} left in the store: {left:?}");
    }
}

/// The two transactions a removal and an attach race through, against a
/// real etcd, in both orders: a claim made first makes the withdrawal
/// refuse (and the record stays); a withdrawal made first makes the claim
/// refuse (the record is gone, nothing is claimed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_and_a_withdrawal_exclude_each_other() {
    let test = "a_claim_and_a_withdrawal_exclude_each_other";
    if !cnm_tests::tools(test, &["etcd"], "etcd-server") || !cnm_tests::tools(test, &["openssl"], "openssl") {
        return;
    }
    let etcd = Etcd::start().await;
    let store = cnm_cluster::Cluster::connect(etcd.member("/cnm-txn", Ipv4Addr::new(192, 168, 233, 1))).await.unwrap();
    // The claim first.
    assert!(store.create("networks/a", b"{}").await.unwrap());
    assert!(store.put_under_leased("endpoints/a/e1", b"{}", "networks/a").await.unwrap(), "claimed");
    assert!(!store.delete_if_none_under("networks/a", "endpoints/a/").await.unwrap(), "a claim holds the network");
    assert!(store.get("networks/a").await.unwrap().is_some(), "the record stays");
    store.delete("endpoints/a/e1").await.unwrap();
    assert!(store.delete_if_none_under("networks/a", "endpoints/a/").await.unwrap(), "withdrawn once unclaimed");
    // The withdrawal first.
    assert!(store.create("networks/b", b"{}").await.unwrap());
    assert!(store.delete_if_none_under("networks/b", "endpoints/b/").await.unwrap());
    assert!(
        !store.put_under_leased("endpoints/b/e2", b"{}", "networks/b").await.unwrap(),
        "no claim on a withdrawn network"
    );
    let (claims, _) = store.list("endpoints/").await.unwrap();
    assert!(claims.is_empty(), "{claims:?}");
}

/// A VNI freed by a removal is not handed out again at once (the next
/// network gets the one after it): a host cut off meanwhile may still
/// have the old network, whose VXLAN device holds that VNI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freed_vni_is_not_handed_out_again_at_once() {
    let test = "a_freed_vni_is_not_handed_out_again_at_once";
    let Some(h) = TestHost::new(test).await else { return };
    if !cnm_tests::tools(test, &["etcd"], "etcd-server") || !cnm_tests::tools(test, &["openssl"], "openssl") {
        return;
    }
    cnm_tests::crash::cluster::underlay(&h, Ipv4Addr::new(192, 168, 233, 1)).await;
    let etcd = Etcd::start().await;
    let c = member(&h, &etcd, Ipv4Addr::new(192, 168, 233, 1)).await;
    let vni = |net: &cnm::Network| {
        let net = net.clone();
        async move {
            let info = net.info().await.unwrap();
            info.config.driver_options[cnm_driver_overlay::VXLANID_LIST].parse::<u32>().unwrap()
        }
    };
    let config = || NetworkConfig::default().with_subnet("10.231.70.0/28".parse().unwrap());
    let a = c.new_network("overlay", "va", config()).await.unwrap();
    let first = vni(&a).await;
    a.delete().await.unwrap();
    let b = c.new_network("overlay", "vb", config()).await.unwrap();
    let second = vni(&b).await;
    assert_eq!(second, first + 1, "the next VNI, not the one just freed");
    b.delete().await.unwrap();
}

/// etcd's tokens expire (here after 1 s: `--auth-token-ttl 1`); a session
/// authenticated as a user renews its token when etcd refuses it, so its
/// requests keep passing. Control: the token taken before the wait is
/// refused after it, so the second request did need a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_etcd_token_is_renewed() {
    use cnm_cluster::etcd::proto::{AuthenticateRequest, AuthenticateResponse, RangeRequest, RangeResponse};
    let test = "an_expired_etcd_token_is_renewed";
    if !cnm_tests::tools(test, &["etcd"], "etcd-server") || !cnm_tests::tools(test, &["openssl"], "openssl") {
        return;
    }
    let etcd = Etcd::start_with(&["--auth-token-ttl", "1"]).await;
    cnm_tests::etcd::enable_auth(&etcd.client(), "/cnm-token/", "cnm", "cnm-secret").await;
    let mut config = etcd.member("/cnm-token", Ipv4Addr::new(192, 168, 233, 1));
    config.credentials = Some(cnm_cluster::etcd::Credentials { user: "cnm".into(), password: "cnm-secret".into() });
    let store = cnm_cluster::Cluster::connect(config).await.unwrap();
    assert!(store.create("networks/a", b"{}").await.unwrap(), "written as cnm");

    // The control's token, taken now by hand.
    let login = AuthenticateRequest { name: "cnm".into(), password: "cnm-secret".into() };
    let answer: AuthenticateResponse = etcd.client().call("/etcdserverpb.Auth/Authenticate", login).await.unwrap();
    let old = answer.token;
    let with_old = || async {
        let range = RangeRequest { key: b"/cnm-token/networks/a".to_vec(), range_end: vec![] };
        etcd.client().call_with_token::<_, RangeResponse>("/etcdserverpb.KV/Range", range, &old).await
    };
    assert!(with_old().await.is_ok(), "the control's token works at first");
    // Each use of a token extends it: it expires after 1 s left idle
    // (etcd's check runs every second or so), so the control waits idle.
    let mut expired = false;
    for idle in [1500, 3000, 6000] {
        tokio::time::sleep(Duration::from_millis(idle)).await;
        if with_old().await.is_err() {
            expired = true;
            break;
        }
    }
    assert!(expired, "the control's token expired");
    let got = store.get("networks/a").await.unwrap_or_else(|e| panic!("after the token expired: {}", cnm::chain(&e)));
    assert_eq!(got.as_deref(), Some(&b"{}"[..]), "read as cnm with a renewed token");
}

/// A release by a host that lags (its network was removed and the pool
/// given to another network since: a crash's rollback at a restart) never
/// takes the pool or its addresses from the network that has them now:
/// the pool's id carries the store's revision that created its key.
/// Control: the current id releases them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_release_never_takes_a_pool_given_again() {
    use cnm::ipamapi::{Ipam, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest, RequestPoolRequest};
    let test = "a_lagging_release_never_takes_a_pool_given_again";
    if !cnm_tests::tools(test, &["etcd"], "etcd-server") || !cnm_tests::tools(test, &["openssl"], "openssl") {
        return;
    }
    let etcd = Etcd::start().await;
    let store = cnm_cluster::Cluster::connect(etcd.member("/cnm-lag", Ipv4Addr::new(192, 168, 233, 1))).await.unwrap();
    let ipam = cnm_cluster::GlobalIpam::new(store, Arc::new(cnm_ipams::DefaultIpam::default()));
    let subnet: ipnet::IpNet = "10.231.60.0/24".parse().unwrap();
    let pool = || RequestPoolRequest {
        address_space: "GlobalDefault".into(),
        pool: Some(subnet),
        sub_pool: None,
        options: Default::default(),
        v6: false,
    };
    let addr =
        |id: &str, a: Option<std::net::IpAddr>| RequestAddressRequest { pool_id: id.into(), address: a, options: None };
    let old = ipam.request_pool(pool()).await.unwrap().pool_id;
    let first = ipam.request_address(addr(&old, None)).await.unwrap().address.addr();
    ipam.release_pool(ReleasePoolRequest { pool_id: old.clone() }).await.unwrap();
    let new = ipam.request_pool(pool()).await.expect("the pool, given again").pool_id;
    assert_ne!(old, new, "another id for the pool given again");
    let again = ipam.request_address(addr(&new, None)).await.unwrap().address.addr();
    assert_eq!(first, again, "the same address, held by the new network");

    // The lagging host's releases change nothing.
    ipam.release_address(ReleaseAddressRequest { pool_id: old.clone(), address: first }).await.unwrap();
    ipam.release_pool(ReleasePoolRequest { pool_id: old.clone() }).await.unwrap();
    let taken = ipam.request_address(addr(&new, Some(again))).await.expect_err("still held");
    assert!(cnm::chain(&taken).contains("in use") || cnm::chain(&taken).contains("already"), "{taken}");
    assert!(ipam.request_pool(pool()).await.is_err(), "the pool is still given");
    // Control: the current id releases them.
    ipam.release_address(ReleaseAddressRequest { pool_id: new.clone(), address: again }).await.unwrap();
    assert!(ipam.request_address(addr(&new, Some(again))).await.is_ok(), "released by its holder");
    ipam.release_pool(ReleasePoolRequest { pool_id: new }).await.unwrap();
    assert!(ipam.request_pool(pool()).await.is_ok(), "the pool is free once its holder releases it");
}

/// Two hosts sharing an overlay network again, in Debian's stock kernel
/// (with a real etcd inside the guest): the overlay is not tied to this
/// VM's kernel.
#[test]
fn overlay_in_the_second_kernel() {
    cnm_tests::kernel::run_in_second_kernel_with(
        "overlay_in_the_second_kernel",
        &["two_embedded_controllers_share_an_overlay_network"],
        &[("etcd", "etcd-server"), ("openssl", "openssl"), ("/usr/lib/ssl/openssl.cnf", "openssl")],
    );
}
