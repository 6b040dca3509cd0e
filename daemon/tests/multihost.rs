//! Multi-host, for real: simulated hosts are scratch namespaces joined by
//! an underlay bridge (192.168.231.0/24), each running its own `cnmd`
//! (inside that namespace) with `--cluster-store` pointing at one etcd the
//! test starts on the underlay (192.168.231.100). Overlay networks are
//! created on one host and used from all; sandboxes on different hosts
//! reach each other by ping over VXLAN.
//!
//! Needs real root, `etcd` (Debian's etcd-server) and `nsenter`.

mod common;

use cnmd::client::Client;
use common::cluster::{cluster, eventually, listed, pings, sandbox_on};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Duration;

/// An overlay network `ov` on `subnet` made on host 1 and listed on host 2,
/// sandboxes `s1` on host 1 and `s2` on host 2 on it, `s1` reaching `s2`:
/// `s1`'s namespace and `s2`'s address.
async fn s1_reaches_s2(c: &[Client], subnet: &str) -> (cnm::osl::Namespace, IpAddr) {
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": subnet }] } });
    let _: Value = c[0].post("/networks/create", &body).await.unwrap();
    eventually("listed on host 2", 5, || listed(&c[1], "ov")).await;
    let (_, ns1) = sandbox_on(&c[0], "s1", "ov").await;
    let (ip2, _ns2) = sandbox_on(&c[1], "s2", "ov").await;
    eventually("s1 reaches s2", 5, || pings(&ns1, ip2)).await;
    (ns1, ip2)
}

/// An overlay network created on host 1 is listed on hosts 2 and 3 (as
/// global); sandboxes on the three hosts ping each other over VXLAN and
/// resolve each other by name; the
/// network cannot be removed while any host has endpoints on it; removed
/// on host 2, it is gone everywhere, and its VNI and pool are free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_network_spans_three_hosts() {
    let Some((_underlay, hosts)) = cluster("overlay_network_spans_three_hosts", 3).await else { return };
    // The VNI a user asks for is the one used (and held cluster-wide).
    let c0 = hosts[0].client();
    let fixed = json!({ "Name": "fixed", "Driver": "overlay", "Options": { "com.docker.network.driver.overlay.vxlanid_list": "5000" } });
    let _: Value = c0.post("/networks/create", &fixed).await.unwrap();
    let again = json!({ "Name": "again", "Driver": "overlay", "Options": { "com.docker.network.driver.overlay.vxlanid_list": "5000" } });
    let e = c0.post::<_, Value>("/networks/create", &again).await.unwrap_err();
    assert!(cnm::chain(&e).contains("VXLAN id 5000 is already in use"), "{e}");
    c0.delete("/networks/fixed").await.unwrap();
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.60.0/24" }] } });
    let _: Value = c[0].post("/networks/create", &body).await.expect("create an overlay network on host 1");
    for h in &c[1..] {
        eventually("the network is listed on the other hosts", 5, || listed(h, "ov")).await;
    }
    let inspect: Value = c[1].get("/networks/ov").await.unwrap();
    assert_eq!(inspect["Scope"], "global", "{inspect}");
    assert_eq!(inspect["Driver"], "overlay");

    let mut sandboxes = Vec::new();
    for (i, h) in c.iter().enumerate() {
        sandboxes.push(sandbox_on(h, &format!("s{}", i + 1), "ov").await);
    }
    let ips: Vec<IpAddr> = sandboxes.iter().map(|(ip, _)| *ip).collect();
    assert_eq!(ips.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "three addresses: {ips:?}");
    for (i, (_, ns)) in sandboxes.iter().enumerate() {
        for (j, ip) in ips.iter().enumerate() {
            if i != j {
                let (ns, ip) = (ns, *ip);
                eventually(&format!("s{} reaches s{} at {ip}", i + 1, j + 1), 5, || pings(ns, ip)).await;
            }
        }
    }

    // Names too: each sandbox resolves the others through its embedded resolver.
    for (i, (_, ns)) in sandboxes.iter().enumerate() {
        for (j, ip) in ips.iter().enumerate() {
            if i != j {
                let name = format!("s{}", j + 1);
                let want = vec![match ip {
                    IpAddr::V4(v4) => *v4,
                    IpAddr::V6(_) => unreachable!("an IPv4 overlay"),
                }];
                eventually(&format!("s{} resolves {name}", i + 1), 5, || async {
                    cnm_tests::dns::lookup_a(ns, &name).await.is_ok_and(|a| a == want)
                })
                .await;
            }
        }
    }
    // A sandbox that leaves is no longer resolved elsewhere.
    c[2].post_unit("/networks/ov/disconnect", &json!({ "Container": "s3" })).await.unwrap();
    eventually("s3's name goes with it", 5, || async {
        cnm_tests::dns::lookup_a(&sandboxes[0].1, "s3").await.is_err()
    })
    .await;

    let refused = c[1].delete("/networks/ov").await.unwrap_err();
    assert!(refused.to_string().contains("active endpoints"), "{refused}");
    for (i, h) in c.iter().enumerate().take(2) {
        h.delete(&format!("/sandboxes/s{}", i + 1)).await.unwrap();
    }
    c[1].delete("/networks/ov").await.expect("remove the network on host 2");
    for h in [&c[0], &c[2]] {
        eventually("the network is gone on every host", 5, || async { !listed(h, "ov").await }).await;
    }
    // Every host removed its namespace (bridge, VXLAN device and all).
    for d in &hosts {
        let dir = d.run_dir().join("overlay");
        eventually("the overlay namespaces are gone", 5, || async {
            std::fs::read_dir(&dir).map(|r| r.count() == 0).unwrap_or(true)
        })
        .await;
    }
    // Its pool is free again, cluster-wide.
    let _: Value = c[2].post("/networks/create", &body).await.expect("the pool is free again");
    c[2].delete("/networks/ov").await.unwrap();

    let enc = json!({ "Name": "secret", "Driver": "overlay", "Options": { "encrypted": "" } });
    let e = c[0].post::<_, Value>("/networks/create", &enc).await.unwrap_err().to_string();
    // Refused for the reason that holds on this kernel.
    let wireguard = cnm_tests::kernel::has(cnm_tests::kernel::Feature::Wireguard).await;
    if wireguard || cnm::osl::kernel::module_available("esp4") {
        assert!(e.contains("not supported by this version of cnm (this kernel has"), "{e}");
    } else {
        assert!(e.contains("needs IPsec ESP (xfrm with esp4) or WireGuard, which this kernel lacks"), "{e}");
    }
}

/// Two hosts attaching at the same moment never get the same address: 50
/// rounds of a connect on host 1 and one on host 2 at once, 100 distinct addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_attaches_on_two_hosts_never_share_an_address() {
    let test = "concurrent_attaches_on_two_hosts_never_share_an_address";
    let Some((_underlay, hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.61.0/24" }] } });
    let _: Value = c[0].post("/networks/create", &body).await.unwrap();
    eventually("the network is listed on host 2", 5, || listed(&c[1], "ov")).await;
    let mut all = std::collections::BTreeSet::new();
    for round in 0..50 {
        let (na, nb) = (format!("a{round}"), format!("b{round}"));
        let (a, b) = tokio::join!(sandbox_on(&c[0], &na, "ov"), sandbox_on(&c[1], &nb, "ov"));
        assert_ne!(a.0, b.0, "round {round}: both hosts got {}", a.0);
        assert!(all.insert(a.0) && all.insert(b.0), "round {round}: an address handed out twice");
    }
    assert_eq!(all.len(), 100);
}

/// A host whose daemon dies: after its lease expires the other hosts drop
/// its endpoints (its sandbox stops answering over the overlay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_hosts_endpoints_go_when_its_lease_expires() {
    let test = "a_dead_hosts_endpoints_go_when_its_lease_expires";
    let Some((_underlay, mut hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let (ns1, ip2) = s1_reaches_s2(&c, "10.231.62.0/24").await;
    hosts[1].sigkill();
    // The datapath outlives the daemon until host 2's lease (5 s) expires.
    eventually("host 2's endpoint is dropped after its lease", 20, || async { !pings(&ns1, ip2).await }).await;
}

/// A daemon restarted (killed, started again) publishes its joined
/// endpoints on its new lease: well after the old lease expired, the other
/// host still reaches its sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_keeps_its_endpoints_reachable() {
    let test = "a_restarted_daemon_keeps_its_endpoints_reachable";
    let Some((_underlay, mut hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let (ns1, ip2) = s1_reaches_s2(&c, "10.231.63.0/24").await;
    hosts[1].sigkill();
    hosts[1].spawn();
    let _: Value = c[1].get("/networks").await.unwrap();
    // Past the old lease's 5 s: the endpoint was published again.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(pings(&ns1, ip2).await, "s2 is still reachable from host 1 after host 2's daemon restarted");
    // The network's pool and the endpoint's address are the cluster's: not asked for again at the restart.
    let log = hosts[1].log();
    assert!(!log.contains("failed to claim"), "the restart claimed cluster-held addresses again:\n{log}");
}

/// etcd stopped under running sandboxes: traffic goes on, global changes
/// are refused with an error naming the store; etcd back: a network created
/// then on host 1 reaches host 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_etcd_keeps_traffic_and_refuses_global_changes() {
    let test = "losing_etcd_keeps_traffic_and_refuses_global_changes";
    let Some((mut underlay, hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let (ns1, ip2) = s1_reaches_s2(&c, "10.231.64.0/24").await;

    underlay.stop_etcd();
    assert!(pings(&ns1, ip2).await, "traffic goes on without etcd");
    let body2 = json!({ "Name": "ov2", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.65.0/24" }] } });
    let e = c[0].post::<_, Value>("/networks/create", &body2).await.unwrap_err();
    assert!(cnm::chain(&e).contains("cluster store"), "a clear error: {e}");
    // A local network still works.
    let local = json!({ "Name": "br", "IPAM": { "Config": [{ "Subnet": "10.231.66.0/24" }] } });
    let _: Value = c[0].post("/networks/create", &local).await.expect("local changes go on");

    underlay.start_etcd().await;
    eventually("global changes are accepted again", 20, || async {
        c[0].post::<_, Value>("/networks/create", &body2).await.is_ok()
    })
    .await;
    eventually("the new network reaches host 2", 10, || listed(&c[1], "ov2")).await;
    assert!(pings(&ns1, ip2).await, "traffic still goes");
}

/// A sandbox on an overlay network gets its default route from the gateway
/// bridge (Docker's `docker_gwbridge`, with masquerading): it reaches a host
/// outside that has no route back to it; it leaves the bridge with the overlay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_sandboxes_reach_outside_through_the_gateway_bridge() {
    let test = "overlay_sandboxes_reach_outside_through_the_gateway_bridge";
    let Some((_underlay, hosts)) = cluster(test, 1).await else { return };
    let _outside = hosts[0].host.outside().await;
    let c = hosts[0].client();
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.67.0/24" }] } });
    let _: Value = c.post("/networks/create", &body).await.unwrap();
    let (_, ns) = sandbox_on(&c, "s1", "ov").await;
    let sb: Value = c.get("/sandboxes/s1").await.unwrap();
    assert!(sb["Networks"]["docker_gwbridge"].is_object(), "joined the gateway bridge: {sb}");
    assert!(pings(&ns, cnm_tests::OUTSIDE.parse().unwrap()).await, "the outside host answers through masquerading");
    c.post_unit("/networks/ov/disconnect", &json!({ "Container": "s1" })).await.unwrap();
    let sb: Value = c.get("/sandboxes/s1").await.unwrap();
    assert!(sb["Networks"].as_object().unwrap().is_empty(), "left the gateway bridge with the overlay: {sb}");
}

/// With br_netfilter loaded (as on every Docker host), frames bridged in an
/// overlay network's namespace skip that namespace's IP hooks: a counter in
/// an nft forward chain there stays at zero while two sandboxes on one host
/// ping each other. Control: with the namespace's `bridge-nf-call-iptables`
/// turned back on, the same pings are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_bridged_frames_skip_netfilter() {
    let test = "overlay_bridged_frames_skip_netfilter";
    let Some((_underlay, hosts)) = cluster(test, 1).await else { return };
    if !cnm_tests::tools(test, &["nft"], "nftables") {
        return;
    }
    // br_netfilter loaded first, as on a Docker host (loading it later
    // switches its calls on in existing namespaces: a join looks again).
    let key = "net/bridge/bridge-nf-call-iptables";
    if hosts[0].host.ns.sysctl_get(key).await.is_err() {
        let _ = std::process::Command::new("modprobe").arg("br_netfilter").status();
        if hosts[0].host.ns.sysctl_get(key).await.is_err() {
            cnm_tests::skip(test, "the kernel has no br_netfilter");
            return;
        }
    }
    let c = hosts[0].client();
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.68.0/24" }] } });
    let _: Value = c.post("/networks/create", &body).await.unwrap();
    let (_, ns1) = sandbox_on(&c, "s1", "ov").await;
    let (ip2, _ns2) = sandbox_on(&c, "s2", "ov").await;
    let net: Value = c.get("/networks/ov").await.unwrap();
    let id = net["Id"].as_str().unwrap();
    let overlay = cnm::osl::Namespace::open(hosts[0].run_dir().join("overlay").join(format!("ov-{}", &id[..12])))
        .expect("the overlay network's namespace");
    for cmd in [
        "add table inet probe",
        "add chain inet probe forward { type filter hook forward priority 0 ; }",
        "add rule inet probe forward ip daddr 10.231.68.0/24 counter",
    ] {
        cnm_tests::nft(&overlay, &cmd.split(' ').collect::<Vec<_>>()).await;
    }
    let counted = || async {
        let out = cnm_tests::nft(&overlay, &["list", "chain", "inet", "probe", "forward"]).await;
        let packets =
            out.split("packets ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse::<u64>().ok());
        packets.unwrap_or_else(|| panic!("no counter in {out}"))
    };
    for _ in 0..3 {
        assert!(pings(&ns1, ip2).await, "s1 reaches s2");
    }
    assert_eq!(counted().await, 0, "bridged frames passed the overlay namespace's IP hooks");
    overlay.sysctl_set(key, "1").await.unwrap();
    for _ in 0..3 {
        assert!(pings(&ns1, ip2).await, "s1 reaches s2");
    }
    assert!(counted().await > 0, "the control: with br_netfilter's calls on, the counter sees the pings");
}

/// Sends `size` bytes of UDP from `from` to `to:7777` with fragmentation
/// forbidden (IP_PMTUDISC_DO), where `rx` (bound in the receiver's
/// namespace) waits: `Ok(received length)`, or the sender's error.
async fn datagram(
    from: &cnm::osl::Namespace,
    rx: &std::net::UdpSocket,
    to: IpAddr,
    size: usize,
) -> std::io::Result<usize> {
    let sent = from
        .run(move || -> std::io::Result<()> {
            use std::os::fd::AsRawFd;
            let tx = std::net::UdpSocket::bind("0.0.0.0:0")?;
            let on: nix::libc::c_int = nix::libc::IP_PMTUDISC_DO;
            // SAFETY: a valid socket, and a pointer to a c_int of the size given.
            let rc = unsafe {
                nix::libc::setsockopt(
                    tx.as_raw_fd(),
                    nix::libc::IPPROTO_IP,
                    nix::libc::IP_MTU_DISCOVER,
                    (&on as *const nix::libc::c_int).cast(),
                    std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            tx.send_to(&vec![7u8; size], (to, 7777)).map(|_| ())
        })
        .await
        .expect("enter the sender's namespace");
    sent?;
    let mut buf = vec![0u8; 65536];
    rx.recv(&mut buf)
}

/// A network's options are read strictly: one the overlay driver does not
/// know is refused with its name (and no network is made); the MTU asked
/// for (`com.docker.network.driver.mtu`) is the network's: a 1400-byte
/// datagram that may not be fragmented crosses between two sandboxes, one
/// of 1401 bytes cannot leave. Control: on a network of the default MTU
/// (the underlay's less 50) the 1401-byte datagram crosses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_options_are_honoured_or_refused_by_name() {
    let test = "overlay_options_are_honoured_or_refused_by_name";
    let Some((_underlay, hosts)) = cluster(test, 1).await else { return };
    let c = hosts[0].client();
    let typo = json!({ "Name": "typo", "Driver": "overlay", "Options": { "com.docker.network.driver.overlay.vxlanid": "5000" } });
    let e = c.post::<_, Value>("/networks/create", &typo).await.unwrap_err().to_string();
    assert!(e.contains("has no option \"com.docker.network.driver.overlay.vxlanid\""), "{e}");
    assert!(!listed(&c, "typo").await, "no network of a refused option");

    let mut results = Vec::new();
    for (name, subnet, mtu) in [("small", "10.231.69.0/24", Some("1400")), ("default", "10.231.70.0/24", None)] {
        let mut body = json!({ "Name": name, "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": subnet }] } });
        if let Some(mtu) = mtu {
            body["Options"] = json!({ "com.docker.network.driver.mtu": mtu });
        }
        let _: Value = c.post("/networks/create", &body).await.unwrap();
        let (_, ns1) = sandbox_on(&c, &format!("{name}1"), name).await;
        let (ip2, ns2) = sandbox_on(&c, &format!("{name}2"), name).await;
        assert!(pings(&ns1, ip2).await, "{name}: s1 reaches s2");
        let rx = ns2
            .run(|| {
                let rx = std::net::UdpSocket::bind("0.0.0.0:7777")?;
                rx.set_read_timeout(Some(Duration::from_secs(2)))?;
                Ok::<_, std::io::Error>(rx)
            })
            .await
            .unwrap()
            .unwrap();
        // 28 bytes of IP and UDP headers.
        let fits = datagram(&ns1, &rx, ip2, 1400 - 28).await;
        let over = datagram(&ns1, &rx, ip2, 1401 - 28).await;
        results.push((name, fits, over));
    }
    let (_, fits, over) = &results[0];
    assert_eq!(fits.as_ref().ok(), Some(&1372), "a 1400-byte datagram crosses: {fits:?}");
    assert_eq!(over.as_ref().map_err(|e| e.raw_os_error()), Err(Some(nix::libc::EMSGSIZE)), "1401 bytes cannot leave");
    let (_, fits, over) = &results[1];
    assert_eq!(fits.as_ref().ok(), Some(&1372), "control: {fits:?}");
    assert_eq!(over.as_ref().ok(), Some(&1373), "control: 1401 bytes cross at the default MTU: {over:?}");
}

const VXLANID_LIST: &str = "com.docker.network.driver.overlay.vxlanid_list";

/// Writes `records` (each a genuine network record with edits; `vni` sets
/// the VNI among the driver's options) straight
/// into the cluster store, as anyone with access to etcd could: a client
/// of its own, on a thread inside the underlay (where etcd listens).
async fn forge(underlay: &common::cluster::Underlay, genuine: &str, records: Vec<Value>) {
    let genuine = genuine.to_string();
    underlay
        .ns
        .run(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let store = format!("etcd://{}:2379", common::cluster::ETCD);
                let config = cnm_cluster::ClusterConfig::parse(&store, common::cluster::ETCD.parse().unwrap()).unwrap();
                let etcd = cnm_cluster::Cluster::connect(config).await.expect("a client of etcd");
                let (all, _) = etcd.list("networks/").await.unwrap();
                let base: Value = all
                    .iter()
                    .map(|(_, v)| serde_json::from_slice::<Value>(v).unwrap())
                    .find(|v| v["name"] == genuine.as_str())
                    .expect("the genuine record");
                for edits in records {
                    let mut rec = base.clone();
                    for (k, v) in edits.as_object().unwrap() {
                        match k.as_str() {
                            // The VNI sits in the driver's options.
                            "vni" => rec["config"]["driver_options"][VXLANID_LIST] = v.clone(),
                            _ => rec[k] = v.clone(),
                        }
                    }
                    let key = format!("networks/{}", rec["id"].as_str().unwrap());
                    assert!(etcd.create(&key, &serde_json::to_vec(&rec).unwrap()).await.unwrap(), "{key} was free");
                }
            })
        })
        .await
        .unwrap();
}

/// Records read from the cluster store are checked before anything is
/// configured: a forged record of a bridge network (with another network's
/// gateway), one whose gateway lies outside its pool, and one overlapping a
/// local network of the host are ignored — nothing is listed and no bridge
/// or gateway address appears. Control: a well-formed copy written the
/// same way, after them, is adopted on both hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_network_records_change_nothing() {
    let test = "forged_network_records_change_nothing";
    let Some((underlay, hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.71.0/24" }] } });
    let _: Value = c[0].post("/networks/create", &body).await.unwrap();
    eventually("listed on host 2", 5, || listed(&c[1], "ov")).await;
    let lan = json!({ "Name": "lan", "Driver": "bridge", "IPAM": { "Config": [{ "Subnet": "10.231.72.0/24" }] } });
    let _: Value = c[1].post("/networks/create", &lan).await.unwrap();

    let pool = |net: &str, gw: &str| {
        json!([{ "address_space": "GlobalDefault", "pool_id": format!("GlobalDefault/{net}"), "pool": net,
                 "sub_pool": null, "gateway": gw, "aux": {} }])
    };
    let id = |n: u8| format!("{n:02x}{}", "ab".repeat(31));
    forge(
        &underlay,
        "ov",
        vec![
            json!({ "id": id(1), "name": "forged-bridge", "driver": "bridge", "vni": "6001",
                    "ipv4": pool("10.231.74.0/24", "10.231.74.1/24") }),
            json!({ "id": id(2), "name": "forged-gateway", "vni": "6002", "ipv4": pool("10.231.75.0/24", "192.168.231.1/24") }),
            json!({ "id": id(3), "name": "forged-overlap", "vni": "6003", "ipv4": pool("10.231.72.0/24", "10.231.72.1/24") }),
            json!({ "id": id(4), "name": "copy", "vni": "6004", "ipv4": pool("10.231.73.0/24", "10.231.73.1/24") }),
        ],
    )
    .await;
    // The control, written last: adopted on both hosts.
    for h in &c {
        eventually("the well-formed copy is adopted", 5, || listed(h, "copy")).await;
    }
    for h in &c {
        for name in ["forged-bridge", "forged-gateway"] {
            assert!(!listed(h, name).await, "{name} was adopted");
        }
    }
    assert!(!listed(&c[1], "forged-overlap").await, "a record overlapping a local network was adopted");
    let links = hosts[1].host.nl.link_list().await.unwrap();
    assert!(!links.iter().any(|l| l.name.starts_with("br-01abab")), "a forged bridge was made: {links:?}");
    let addrs = hosts[1].host.nl.addr_list(None).await.unwrap();
    assert!(!addrs.iter().any(|a| a.net.to_string().starts_with("10.231.74.")), "a forged gateway: {addrs:?}");
}
