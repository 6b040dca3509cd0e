//! Crash injection at every step of a global network's life, with a real
//! etcd (over TLS): for each kill point of
//! `cnm_tests::crash::cluster::all_points` (the controller's, its cluster
//! steps and the overlay driver's), a child process starts a member
//! controller on a scratch host and runs the cluster crash scenario, stops
//! at that point and is killed with SIGKILL. A member restarted over the
//! same state and store, once the dead process's lease has expired (ended
//! here at once, as etcd does when its TTL passes), must leave the cluster
//! store matching what the host holds, key by key:
//!
//! - `networks/`: exactly its global networks (one whose creation was
//!   published goes on; one that was not is rolled back; a removal whose
//!   record was withdrawn goes on);
//! - `ipam/pools/`, `ipam/addrs/`: exactly their pools, and the gateways'
//!   and endpoints' addresses: none lost, none held twice (refilling the
//!   pool gets every address no endpoint holds);
//! - `overlay/vni/`: one VNI per global network; `endpoints/`: a claim per
//!   endpoint; `overlay/peers/` and `names/`: the joined endpoints';
//! - the kernel: an overlay namespace and a VXLAN filter entry per network,
//!   a namespace per sandbox;
//!
//! and after removing everything the store is empty, and the whole scenario
//! runs again to its end.
//!
//! Needs root, `etcd` (Debian's etcd-server) and `openssl`.

use cnm::osl::firewall::NftFirewall;
use cnm::{Controller, EndpointConfig};
use cnm_tests::TestHost;
use cnm_tests::crash::cluster::ADVERTISE;
use cnm_tests::etcd::Etcd;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the child until it stops at `point`, then kills it with SIGKILL.
fn crash_at(h: &TestHost, etcd: &Etcd, prefix: &str, point: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnm-cluster-kill-child"));
    child
        .arg(h.dir.path().join("data"))
        .arg(h.dir.path().join("run"))
        .arg(h.ns_path())
        .arg(&etcd.endpoint)
        .arg(etcd.certs())
        .arg(prefix);
    cnm_tests::crash::kill_at(child, point);
}

/// The store's keys under `prefix`, relative to it (values of `overlay/vni/`
/// appended), but the overlay driver's note of the last VNI it handed out.
async fn store_keys(etcd: &Etcd, prefix: &str) -> BTreeSet<String> {
    let base = format!("{prefix}/");
    etcd.keys(&base)
        .await
        .into_iter()
        .filter_map(|(k, v, _)| {
            let k = k.strip_prefix(&base)?.to_string();
            if k == "overlay/vni-last" {
                return None;
            }
            Some(if k.starts_with("overlay/vni/") { format!("{k}={}", String::from_utf8_lossy(&v)) } else { k })
        })
        .collect()
}

/// The keys the store must hold for what `ctrl` has (see the module's docs).
async fn expected_keys(ctrl: &Controller) -> BTreeSet<String> {
    let enc = |n: &ipnet::IpNet| n.to_string().replace('/', "_");
    let mut keys = BTreeSet::new();
    for net in ctrl.networks().await {
        let info = net.info().await.unwrap();
        if !info.global {
            continue;
        }
        let nid = net.id().to_string();
        keys.insert(format!("networks/{nid}"));
        let vni = info.config.driver_options.get(cnm_driver_overlay::VXLANID_LIST).expect("a VNI").clone();
        keys.insert(format!("overlay/vni/{vni}={nid}"));
        let pools: Vec<ipnet::IpNet> = info.ipv4.iter().map(|p| p.subnet).collect();
        for p in &info.ipv4 {
            keys.insert(format!("ipam/pools/{}", enc(&p.subnet)));
            if let Some(gw) = p.gateway {
                keys.insert(format!("ipam/addrs/{}/{}", enc(&p.subnet), gw.addr()));
            }
        }
        for ep in net.endpoints().await {
            let e = ep.info().await.unwrap();
            let eid = ep.id();
            keys.insert(format!("endpoints/{nid}/{eid}"));
            if let Some(a) = e.ipv4 {
                let pool = pools.iter().find(|p| p.contains(&a.addr())).expect("the endpoint's pool");
                keys.insert(format!("ipam/addrs/{}/{}", enc(pool), a.addr()));
            }
            if e.sandbox_id.is_some() {
                keys.insert(format!("overlay/peers/{nid}/{eid}"));
                keys.insert(format!("names/{nid}/{eid}"));
            }
        }
    }
    keys
}

/// Waits (at most 10 s: the restarted member claims and publishes again in
/// the background) until the store holds exactly what `ctrl` has.
async fn store_matches(point: &str, etcd: &Etcd, prefix: &str, ctrl: &Controller) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (want, have) = (expected_keys(ctrl).await, store_keys(etcd, prefix).await);
        if want == have {
            return;
        }
        if Instant::now() > end {
            let missing: Vec<_> = want.difference(&have).collect();
            let extra: Vec<_> = have.difference(&want).collect();
            panic!("{point}: the store does not match the host: missing {missing:?}, not accounted for {extra:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A set's elements; none when cnm's table does not exist (yet).
async fn elements(fw: &NftFirewall, set: &str) -> usize {
    match fw.elements(set).await {
        Ok(v) => v.len(),
        Err(e) if e.to_string().contains("No such file or directory") => 0,
        Err(e) => panic!("list {set}: {e}"),
    }
}

/// The kernel's side: an overlay namespace and a VXLAN filter entry per
/// global network, a namespace per sandbox.
async fn kernel_matches(point: &str, h: &TestHost, ctrl: &Controller) {
    let mut global = 0;
    for net in ctrl.networks().await {
        if net.info().await.unwrap().global {
            global += 1;
        }
    }
    let overlay_ns = std::fs::read_dir(h.dir.path().join("run/overlay")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(overlay_ns, global, "{point}: an overlay namespace per global network");
    let fw = NftFirewall::new(h.ns.clone());
    assert_eq!(elements(&fw, "vxlan_nets").await, global, "{point}: a VXLAN filter entry per global network");
    let mut keys = BTreeSet::new();
    for sb in ctrl.sandboxes().await {
        keys.insert(sb.info().await.unwrap().key);
    }
    let files: BTreeSet<_> = h.netns_files().into_iter().collect();
    assert_eq!(files, keys, "{point}: the namespaces are the sandboxes'");
}

/// Every free address of each global network can be had, once (the
/// store's addresses are exactly the held ones).
async fn refill(point: &str, ctrl: &Controller) {
    for net in ctrl.networks().await {
        if !net.info().await.unwrap().global {
            continue;
        }
        let held = net.endpoints().await.len();
        let mut filled = Vec::new();
        loop {
            match net.create_endpoint(&format!("fill{}", filled.len()), EndpointConfig::default()).await {
                Ok(ep) => filled.push(ep),
                Err(e) => {
                    assert_eq!(e.kind(), cnm::ErrorKind::Unavailable, "{point}: refill: {e}");
                    break;
                }
            }
        }
        // A /28: 14 addresses, one the gateway's.
        assert_eq!(filled.len() + held, 13, "{point}: lost addresses");
        for ep in filled {
            ep.delete().await.unwrap();
        }
    }
}

/// Every kill point in turn (the count and the time are printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_cluster_step_leaves_the_store_matching_the_host() {
    let test = "a_crash_at_any_cluster_step_leaves_the_store_matching_the_host";
    if !cnm_tests::tools(test, &["etcd"], "etcd-server") || !cnm_tests::tools(test, &["openssl"], "openssl") {
        return;
    }
    let Some(probe) = TestHost::new(test).await else { return };
    drop(probe);
    let etcd = Etcd::start().await;
    let start = Instant::now();
    // `CNM_KILL_POINTS=a,b` runs only those (while debugging).
    let only = std::env::var("CNM_KILL_POINTS").ok();
    let points: Vec<String> = cnm_tests::crash::cluster::all_points()
        .into_iter()
        .filter(|p| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == p)))
        .collect();
    for (i, point) in points.iter().enumerate() {
        let h = TestHost::new(test).await.expect("a scratch host");
        cnm_tests::crash::cluster::underlay(&h, ADVERTISE).await;
        let prefix = format!("/cnm-kill-{i}");
        crash_at(&h, &etcd, &prefix, point);
        // The dead process's lease, ended once the member is back (keys it
        // had published again by then are on the new lease).
        let dead: BTreeSet<i64> =
            etcd.keys(&format!("{prefix}/")).await.into_iter().map(|(_, _, l)| l).filter(|l| *l != 0).collect();
        let exec_root = h.dir.path().join("run");
        let member = etcd.member(&prefix, ADVERTISE);
        let ctrl = cnm_tests::crash::cluster::controller(h.config(), &exec_root, member)
            .await
            .unwrap_or_else(|e| panic!("{point}: restart: {e:#}"));
        for lease in dead {
            etcd.expire(lease).await;
        }
        store_matches(point, &etcd, &prefix, &ctrl).await;
        kernel_matches(point, &h, &ctrl).await;
        refill(point, &ctrl).await;
        store_matches(point, &etcd, &prefix, &ctrl).await;

        cnm_tests::remove_all(&ctrl).await;
        store_matches(point, &etcd, &prefix, &ctrl).await;
        assert!(store_keys(&etcd, &prefix).await.is_empty(), "{point}: the store is empty once everything is removed");
        kernel_matches(point, &h, &ctrl).await;
        cnm_tests::crash::cluster::scenario(&ctrl)
            .await
            .unwrap_or_else(|e| panic!("{point}: the scenario again: {}", cnm::chain(&e)));
        cnm_tests::remove_all(&ctrl).await;
        assert!(store_keys(&etcd, &prefix).await.is_empty(), "{point}: the store is empty after the scenario again");
    }
    let addr: IpAddr = ADVERTISE.into();
    eprintln!("{} kill points (underlay {addr}), {:.1} s", points.len(), start.elapsed().as_secs_f64());
}
