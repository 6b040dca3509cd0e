//! Crash injection at every step: for each kill point of `cnm_tests::crash::all_points`
//! (the controller's and the bridge driver's, in the default network's
//! creation at start too), a child process starts a controller and runs the
//! crash scenario on a scratch host, stops at that point, and is killed
//! with SIGKILL; a controller restarted over the same state must then leave
//! the kernel and the firewall matching it:
//!
//! - the default network is there (made again if the crash cut its creation);
//! - every network has its bridge and every cnm bridge a network;
//! - every joined endpoint has its veth and every veth a joined endpoint;
//! - every sandbox has its namespace and every namespace a sandbox;
//! - no address is lost or handed out twice: refilling each network's /26
//!   gets every address the endpoints do not hold;
//! - the firewall's bridges set lists exactly the networks, and its port
//!   map exactly the published ports of the live sandboxes;
//!
//! and after removing everything nothing is left, and the whole scenario
//! then runs again to its end (the interrupted operation can be repeated).

use cnm::osl::firewall::NftFirewall;
use cnm::{Controller, EndpointConfig};
use cnm_tests::TestHost;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the child until it stops at `point`, then kills it with SIGKILL.
fn crash_at(h: &TestHost, point: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnm-kill-child"));
    child.arg(h.dir.path().join("data")).arg(h.dir.path().join("run")).arg(h.ns_path());
    cnm_tests::crash::kill_at(child, point);
}

/// Links of the scratch host, with their aliases, waiting (bounded) for the
/// reaper to finish links it was deleting.
async fn settled_links(h: &TestHost) -> Vec<cnm::osl::Link> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let links = h.nl.link_list().await.unwrap();
        if !links.iter().any(|l| l.alias.as_deref() == Some("cnm:deleting")) || Instant::now() > end {
            return links;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A set's elements; none when cnm's table does not exist (yet).
async fn elements(fw: &NftFirewall, set: &str) -> Vec<cnm::osl::firewall::SetElement> {
    match fw.elements(set).await {
        Ok(v) => v,
        Err(e) if e.to_string().contains("No such file or directory") => Vec::new(),
        Err(e) => panic!("list {set}: {e}"),
    }
}

/// The container address a port map element sends to (IPv4).
fn target(e: &cnm::osl::firewall::SetElement) -> Option<IpAddr> {
    let d = e.data.as_ref()?;
    let b: [u8; 4] = d.get(..4)?.try_into().ok()?;
    Some(IpAddr::V4(b.into()))
}

/// Every invariant of the module's docs, against the kernel.
async fn check(point: &str, h: &TestHost, ctrl: &Controller) {
    let nets = ctrl.networks().await;
    assert!(ctrl.default_network().await.is_some(), "{point}: no default network");
    let links = settled_links(h).await;
    // Bridges.
    let owned: BTreeSet<String> = links
        .iter()
        .filter_map(|l| l.alias.as_deref()?.strip_prefix("cnm:").filter(|id| id.len() == 64).map(str::to_string))
        .collect();
    let ids: BTreeSet<String> = nets.iter().map(|n| n.id().to_string()).collect();
    assert_eq!(owned, ids, "{point}: cnm's bridges are the networks'");
    // Veths and joined endpoints.
    let mut joined = BTreeSet::new();
    let mut addrs: Vec<IpAddr> = Vec::new();
    for net in &nets {
        for ep in net.endpoints().await {
            let info = ep.info().await.unwrap();
            addrs.extend(info.ipv4.map(|a| a.addr()));
            if info.sandbox_id.is_some() {
                joined.insert(format!("veth{}", &info.id[..11]));
            }
        }
    }
    let veths: BTreeSet<String> = links.iter().filter(|l| l.name.starts_with("veth")).map(|l| l.name.clone()).collect();
    assert_eq!(veths, joined, "{point}: the veths are the joined endpoints'");
    let unique: BTreeSet<&IpAddr> = addrs.iter().collect();
    assert_eq!(unique.len(), addrs.len(), "{point}: an address is held twice: {addrs:?}");
    // Namespaces.
    let mut keys = BTreeSet::new();
    for sb in ctrl.sandboxes().await {
        keys.insert(sb.info().await.unwrap().key);
    }
    let files: BTreeSet<_> = h.netns_files().into_iter().collect();
    assert_eq!(files, keys, "{point}: the namespaces are the sandboxes'");
    // The firewall: bridges and published ports.
    let fw = NftFirewall::new(h.ns.clone());
    let bridges = elements(&fw, "bridges").await.len();
    assert_eq!(bridges, nets.len(), "{point}: the firewall's bridges are the networks'");
    let mut published = BTreeSet::new();
    for sb in ctrl.sandboxes().await {
        for p in sb.info().await.unwrap().published_ports {
            published.insert(p.host_port);
        }
    }
    let mapped = elements(&fw, "ports4_any").await;
    for e in &mapped {
        let to = target(e).expect("an IPv4 mapping");
        assert!(addrs.contains(&to), "{point}: a port mapping to {to}, which no endpoint holds");
    }
    assert_eq!(mapped.len(), published.len(), "{point}: one mapping per published port: {mapped:?} vs {published:?}");
    // Refill: every free address can be had, once.
    for net in &nets {
        let info = net.info().await.unwrap();
        let held = info.endpoints.len();
        let mut filled = Vec::new();
        loop {
            match net.create_endpoint(&format!("fill{}", filled.len()), EndpointConfig::default()).await {
                Ok(ep) => filled.push(ep),
                Err(e) => {
                    assert_eq!(e.kind(), cnm::ErrorKind::Unavailable, "{point}: refill of {}: {e}", info.name);
                    break;
                }
            }
        }
        // A /26: 62 addresses, one the gateway's.
        assert_eq!(filled.len() + held, 61, "{point}: {} lost addresses", info.name);
        for ep in filled {
            ep.delete().await.unwrap();
        }
    }
}

async fn assert_clean(point: &str, h: &TestHost) {
    let links = settled_links(h).await;
    let ours: Vec<_> = links.iter().filter(|l| l.name.starts_with("veth") || l.alias.is_some()).collect();
    assert!(ours.is_empty(), "{point}: links left: {ours:?}");
    assert!(h.netns_files().is_empty(), "{point}: namespaces left: {:?}", h.netns_files());
    let fw = NftFirewall::new(h.ns.clone());
    for set in ["bridges", "ports4_any", "masq"] {
        let left = elements(&fw, set).await;
        assert!(left.is_empty(), "{point}: {set} left: {left:?}");
    }
}

/// Every kill point in turn (the count and the time are printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_leaves_nothing_the_restart_cannot_account_for() {
    let start = Instant::now();
    let points = cnm_tests::crash::all_points();
    for point in &points {
        let Some(h) = TestHost::new("a_crash_at_any_step_leaves_nothing_the_restart_cannot_account_for").await else {
            return;
        };
        crash_at(&h, point);
        let ctrl = cnm_tests::crash::controller(h.config()).await.unwrap_or_else(|e| panic!("{point}: restart: {e}"));
        check(point, &h, &ctrl).await;
        cnm_tests::remove_all(&ctrl).await;
        assert_clean(point, &h).await;
        cnm_tests::crash::scenario(&ctrl).await.unwrap_or_else(|e| panic!("{point}: the scenario again: {e}"));
        assert_clean(point, &h).await;
    }
    eprintln!("{} kill points, {:.1} s", points.len(), start.elapsed().as_secs_f64());
}
