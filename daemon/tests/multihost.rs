//! Multi-host, for real: simulated hosts are scratch namespaces joined by
//! an underlay bridge (192.168.231.0/24), each running its own `cnmd`
//! (inside that namespace) with `--cluster-store` pointing at one etcd the
//! test starts on the underlay (192.168.231.100). Overlay networks are
//! created on one host and used from all; sandboxes on different hosts
//! reach each other by ping over VXLAN.
//!
//! Needs real root, `etcd` (Debian's etcd-server) and `nsenter`.

mod common;

use cnm_tests::eventually;
use cnmd::client::Client;
use common::cluster::{cluster, listed, pings, sandbox_on};
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
        .as_store_client(move |etcd| async move {
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
        .await
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

/// A VXLAN frame as an attacker on the underlay writes it: VNI `vni`, an
/// Ethernet frame to `mac` carrying UDP from `src` to `dst:port` with `payload`.
fn vxlan_frame(
    vni: u32,
    mac: [u8; 6],
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let v = vni.to_be_bytes();
    let mut f = vec![0x08, 0, 0, 0, v[1], v[2], v[3], 0];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x02, 0x42, 0xde, 0xad, 0xbe, 0xef, 0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = ip.chunks(2).fold(0u32, |s, w| s + u32::from(u16::from_be_bytes([w[0], w[1]])));
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&5555u16.to_be_bytes());
    f.extend_from_slice(&port.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// VXLAN for an overlay network is taken only from its peers' hosts: a
/// frame an attacker on the underlay (not a host of the network) sends to
/// host 1's VXLAN port, with the network's VNI and a sandbox's MAC and
/// address inside, never reaches the sandbox, while the sandboxes of the
/// two hosts keep reaching each other. Control: once the store holds a
/// peer record naming the attacker's address (as a writer to etcd could
/// add), the same frame is delivered; once it is deleted, it is dropped
/// again; and after cnm's table is removed behind cnm's back (and
/// repaired), it is dropped still.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_from_a_non_peer_is_dropped() {
    let test = "vxlan_from_a_non_peer_is_dropped";
    let Some((underlay, hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let (ns1, ip2) = s1_reaches_s2(&c, "10.231.76.0/24").await;
    let net: Value = c[0].get("/networks/ov").await.unwrap();
    let nid = net["Id"].as_str().unwrap().to_string();
    let vni: u32 = net["Options"][VXLANID_LIST].as_str().expect("the VNI in the options").parse().unwrap();
    let sb: Value = c[0].get("/sandboxes/s1").await.unwrap();
    let ip1: std::net::Ipv4Addr = sb["Networks"]["ov"]["IPAddress"].as_str().unwrap().parse().unwrap();
    let nl1 = cnm::osl::Netlink::connect(&ns1, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    let mac1 = nl1.link_get("eth0").await.unwrap().expect("s1's eth0").mac.unwrap();
    let rx = ns1
        .run(|| {
            let rx = std::net::UdpSocket::bind("0.0.0.0:7788")?;
            rx.set_read_timeout(Some(Duration::from_millis(700)))?;
            Ok::<_, std::io::Error>(rx)
        })
        .await
        .unwrap()
        .unwrap();
    let frame = vxlan_frame(vni, mac1, "10.231.76.200".parse().unwrap(), ip1, 7788, b"injected");
    // From the underlay namespace (192.168.231.100, etcd's address): no host of the network.
    let attacker = underlay.ns.clone();
    let inject = || {
        let (frame, attacker) = (frame.clone(), attacker.clone());
        async move {
            attacker
                .run(move || {
                    let tx = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
                    tx.send_to(&frame, "192.168.231.1:4789").unwrap();
                })
                .await
                .unwrap();
        }
    };
    let delivered = |rx: &std::net::UdpSocket| {
        let mut buf = [0u8; 64];
        matches!(rx.recv(&mut buf), Ok(n) if &buf[..n] == b"injected")
    };
    for _ in 0..3 {
        inject().await;
        assert!(!delivered(&rx), "a VXLAN frame from a non-peer reached the sandbox");
    }
    assert!(pings(&ns1, ip2).await, "the peers' traffic still passes");

    // The control: the attacker's address made a peer through the store.
    let key = format!("overlay/peers/{nid}/{}", "fe".repeat(32));
    let record =
        json!({ "ip": "10.231.76.200", "mac": [2, 0x42, 0xde, 0xad, 0xbe, 0xef], "host": common::cluster::ETCD });
    let (k, v) = (key.clone(), serde_json::to_vec(&record).unwrap());
    underlay.as_store_client(move |etcd| async move { assert!(etcd.create(&k, &v).await.unwrap()) }).await;
    let mut seen = false;
    for _ in 0..10 {
        inject().await;
        if delivered(&rx) {
            seen = true;
            break;
        }
    }
    assert!(seen, "the control: from a peer's address, the same frame is delivered");
    let k = key.clone();
    underlay.as_store_client(move |etcd| async move { etcd.delete(&k).await.unwrap() }).await;
    // Dropped again once the record is gone (the watch may take a moment).
    let host1 = hosts[0].host.ns_path();
    let peers = move || {
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", host1.display()))
            .args(["nft", "list", "set", "inet", "cnm", "vxlan_peers"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let p = peers.clone();
    eventually("the attacker's address leaves the peers", 10, || {
        let p = p.clone();
        async move { !p().contains(common::cluster::ETCD) }
    })
    .await;
    while delivered(&rx) {}
    for _ in 0..3 {
        inject().await;
        assert!(!delivered(&rx), "the peer's removal closed the filter again: {}", peers());
    }

    // cnm's table removed behind cnm's back: the filter comes back with it
    // (a filter that stayed away would let the frame through: see the control).
    cnm_tests::nft(&hosts[0].host.ns, &["delete", "table", "inet", "cnm"]).await;
    let p = peers.clone();
    eventually("the VXLAN filter is put back", 10, || {
        let p = p.clone();
        async move { p().contains("192.168.231.2") }
    })
    .await;
    for _ in 0..3 {
        inject().await;
        assert!(!delivered(&rx), "after the table's repair, a VXLAN frame from a non-peer reached the sandbox");
    }
    assert!(pings(&ns1, ip2).await, "the peers' traffic passes after the repair");
}

/// As an administrator holding the test CA's client certificate: the
/// `root` user (needed by etcd to enable auth), a user `cnm` with a role
/// that reads and writes the keys under `/cnm/` only, and auth enabled.
async fn enable_etcd_auth(underlay: &common::cluster::Underlay, cnm_password: &str) {
    let ca = std::fs::read(underlay.cert("ca.pem")).unwrap();
    let identity = Some((
        std::fs::read(underlay.cert("client.pem")).unwrap(),
        std::fs::read(underlay.cert("client.key")).unwrap(),
    ));
    let tls = cnm_cluster::etcd::Tls { ca, identity };
    let password = cnm_password.to_string();
    underlay
        .ns
        .run(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let endpoints = [format!("{}:2379", common::cluster::ETCD)];
                let admin =
                    cnm_cluster::etcd::Etcd::with_security(&endpoints, Duration::from_secs(5), Some(&tls), None)
                        .unwrap();
                cnm_tests::etcd::enable_auth(&admin, "/cnm/", "cnm", &password).await;
            })
        })
        .await
        .unwrap();
}

/// The cluster store as an operator runs it: etcd over TLS taking only
/// clients with a certificate of its CA, then with users. cnmd reaches it
/// with `--cluster-store-opt kv.cacertfile=… kv.certfile=… kv.keyfile=…`
/// (every multi-host test does) and publishes a global network; a client
/// without a certificate, one with a certificate of another CA, and one
/// speaking plain HTTP read nothing (control: the same read with the
/// CA's certificate sees the network). With auth enabled, cnmd without a
/// user is refused; given one in its TOML file (`[cluster-store-opts]`
/// `kv.username`, `kv.passwordfile`) with a wrong password, its error says
/// the authentication failed; with the right one, its global networks
/// reach the store again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_takes_only_trusted_clients_and_known_users() {
    let test = "the_store_takes_only_trusted_clients_and_known_users";
    let Some((underlay, mut hosts)) = cluster(test, 1).await else { return };
    let c = hosts[0].client();
    let ov = |name: &str, subnet: &str| json!({ "Name": name, "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": subnet }] } });
    let _: Value = c.post("/networks/create", &ov("ov", "10.231.77.0/24")).await.expect("a global network over TLS");
    let read = |mut config: cnm_cluster::ClusterConfig| {
        config.timeout = Duration::from_secs(2);
        underlay.with_store_config(config, |etcd| async move {
            etcd.list("networks/").await.map(|(kvs, _)| kvs.len()).map_err(|e| cnm::chain(&e))
        })
    };
    assert_eq!(
        read(underlay.store_config(Some(("client.pem", "client.key")))).await,
        Ok(1),
        "control: the CA's client reads the network"
    );
    let no_cert = read(underlay.store_config(None)).await;
    assert!(no_cert.is_err(), "a client without a certificate read {no_cert:?}");
    let stranger = read(underlay.store_config(Some(("stranger.pem", "stranger.key")))).await;
    assert!(stranger.is_err(), "a certificate of another CA read {stranger:?}");
    let store = format!("etcd://{}:2379", common::cluster::ETCD);
    let plain = read(cnm_cluster::ClusterConfig::parse(&store, common::cluster::ETCD.parse().unwrap()).unwrap()).await;
    assert!(plain.is_err(), "plain HTTP read {plain:?}");

    // A user configured while etcd's authentication is off: requests go
    // without it (and with it once authentication is turned on).
    let dir = hosts[0].host.dir.path().to_path_buf();
    let with_password = |password: &str| {
        std::fs::write(dir.join("etcd-password"), format!("{password}\n")).unwrap();
        let toml = format!(
            "[cluster-store-opts]\n\"kv.username\" = \"cnm\"\n\"kv.passwordfile\" = \"{}\"\n",
            dir.join("etcd-password").display()
        );
        std::fs::write(dir.join("cnmd.toml"), toml).unwrap();
    };
    with_password("cnm-secret");
    assert!(hosts[0].sigterm());
    hosts[0].spawn();
    let made = c.post::<_, Value>("/networks/create", &ov("ov1", "10.231.76.0/24")).await;
    made.unwrap_or_else(|e| panic!("a user while etcd's authentication is off: {}", cnm::chain(&e)));
    enable_etcd_auth(&underlay, "cnm-secret").await;
    let made = c.post::<_, Value>("/networks/create", &ov("ov3", "10.231.75.0/24")).await;
    made.unwrap_or_else(|e| panic!("the same daemon once authentication is on: {}", cnm::chain(&e)));

    std::fs::write(dir.join("cnmd.toml"), "").unwrap();
    assert!(hosts[0].sigterm());
    hosts[0].spawn();
    let e = c.post::<_, Value>("/networks/create", &ov("ov2", "10.231.78.0/24")).await.unwrap_err();
    assert!(cnm::chain(&e).contains("cluster store"), "without a user, refused by the store: {e}");

    // A wrong password is told at start.
    with_password("wrong");
    assert!(hosts[0].sigterm());
    let log = hosts[0].spawn_fails();
    assert!(log.contains("authentication as etcd user \"cnm\" failed"), "{log}");
    assert!(!log.contains("wrong"), "the password is never printed: {log}");
    with_password("cnm-secret");
    hosts[0].spawn();
    let made = c.post::<_, Value>("/networks/create", &ov("ov2", "10.231.78.0/24")).await;
    made.unwrap_or_else(|e| panic!("the user cnm with its password: {}", cnm::chain(&e)));
    let mut config = underlay.store_config(Some(("client.pem", "client.key")));
    config.credentials = Some(cnm_cluster::etcd::Credentials { user: "cnm".into(), password: "cnm-secret".into() });
    assert_eq!(read(config).await, Ok(4), "the four networks are in the store, read as the user cnm");
}

/// A host cut off from etcd and the other hosts for longer than its lease
/// (5 s) is withdrawn by the others (the store keeps none of its
/// endpoints); meanwhile the other host attaches sandboxes, none of which
/// gets the cut host's address. When the link is back, the cut host
/// publishes everything it owns again on a new lease: the other host
/// reaches its sandbox at the same address and resolves its name, and it
/// reaches the sandboxes attached during the partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_longer_than_the_lease_heals() {
    let test = "a_partition_longer_than_the_lease_heals";
    let Some((underlay, hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.80.0/24" }] } });
    let _: Value = c[0].post("/networks/create", &body).await.unwrap();
    eventually("listed on host 2", 5, || listed(&c[1], "ov")).await;
    let nid = c[0].get::<Value>("/networks/ov").await.unwrap()["Id"].as_str().unwrap().to_string();
    let (_, ns1) = sandbox_on(&c[0], "s1", "ov").await;
    let (ip2, ns2) = sandbox_on(&c[1], "s2", "ov").await;
    eventually("s1 reaches s2", 5, || pings(&ns1, ip2)).await;

    underlay.cut(2, true).await;
    eventually("host 2's endpoint leaves the store with its lease", 20, || async {
        underlay.peers_of(&nid, "192.168.231.2").await == 0
    })
    .await;
    let mut during = Vec::new();
    for i in 0..3 {
        let (ip, _) = sandbox_on(&c[0], &format!("m{i}"), "ov").await;
        assert_ne!(ip, ip2, "the cut host's address was handed out again");
        during.push(ip);
    }

    underlay.cut(2, false).await;
    eventually("host 1 reaches s2 again, at the same address", 30, || pings(&ns1, ip2)).await;
    for ip in &during {
        eventually(&format!("s2 reaches {ip}, attached during the partition"), 10, || pings(&ns2, *ip)).await;
    }
    let want = vec![match ip2 {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => unreachable!("an IPv4 overlay"),
    }];
    eventually("s1 resolves s2 again", 10, || async { cnm_tests::dns::lookup_a(&ns1, "s2").await == Ok(want.clone()) })
        .await;
    let sb: Value = c[1].get("/sandboxes/s2").await.unwrap();
    assert_eq!(sb["Networks"]["ov"]["IPAddress"].as_str(), Some(ip2.to_string().as_str()), "s2 kept its address");
}

/// A removal on one host racing an attach on the other never lets both
/// succeed: the attach claims its endpoint in the store before it gets an
/// address, the removal withdraws the network only if no claim exists,
/// each in one etcd transaction. Ten rounds: exactly one of the two
/// succeeds; when the removal wins, the network is gone on both hosts and
/// the sandbox has no endpoint on it; when the attach wins, the removal is
/// refused naming the host, and succeeds once the sandbox has left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_racing_an_attach_never_lets_both_succeed() {
    let test = "a_removal_racing_an_attach_never_lets_both_succeed";
    let Some((_underlay, hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let mut wins = (0, 0);
    for round in 0..10 {
        let name = format!("r{round}");
        let body = json!({ "Name": name, "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": format!("10.231.{}.0/24", 90 + round) }] } });
        let _: Value = c[0].post("/networks/create", &body).await.unwrap();
        eventually("listed on host 2", 5, || listed(&c[1], &name)).await;
        let sandbox = format!("x{round}");
        let _: Value = c[1].post("/sandboxes", &json!({ "Name": sandbox })).await.unwrap();
        let (path, body, gone) =
            (format!("/networks/{name}/connect"), json!({ "Container": sandbox }), format!("/networks/{name}"));
        let (removed, attached) = tokio::join!(c[0].delete(&gone), c[1].post_unit(&path, &body));
        match (removed, attached) {
            (Ok(()), Err(_)) => {
                wins.0 += 1;
                eventually("the network is gone on host 2", 5, || async { !listed(&c[1], &name).await }).await;
                let sb: Value = c[1].get(&format!("/sandboxes/{sandbox}")).await.unwrap();
                assert!(sb["Networks"].as_object().is_none_or(|n| n.is_empty()), "round {round}: {sb}");
            }
            (Err(e), Ok(())) => {
                wins.1 += 1;
                assert!(cnm::chain(&e).contains("has active endpoints (on hosts 192.168.231.2)"), "round {round}: {e}");
                c[1].delete(&format!("/sandboxes/{sandbox}")).await.unwrap();
                c[0].delete(&format!("/networks/{name}")).await.expect("removed once the sandbox left");
            }
            (removed, attached) => panic!("round {round}: removal {removed:?}, attach {attached:?}"),
        }
        let _ = c[1].delete(&format!("/sandboxes/{sandbox}")).await;
    }
    eprintln!("removal won {} rounds, the attach {}", wins.0, wins.1);
}

/// A dual-stack overlay network (`EnableIPv6` with an IPv4 and an IPv6
/// subnet): sandboxes on the two hosts reach each other over IPv6 too
/// (their IPv6 addresses published with their IPv4 ones, neighbour entries
/// for both on the VXLAN devices), and each reaches the network's IPv6
/// gateway on its own host's bridge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_pings_cross_hosts_on_a_dual_stack_overlay() {
    let test = "ipv6_pings_cross_hosts_on_a_dual_stack_overlay";
    let Some((_underlay, hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let body = json!({ "Name": "ov6", "Driver": "overlay", "EnableIPv6": true, "IPAM": { "Config": [
        { "Subnet": "10.231.83.0/24" }, { "Subnet": "fd00:231:83::/64", "Gateway": "fd00:231:83::1" } ] } });
    let _: Value = c[0].post("/networks/create", &body).await.unwrap();
    eventually("listed on host 2", 5, || listed(&c[1], "ov6")).await;
    let (ip1, ns1) = sandbox_on(&c[0], "s1", "ov6").await;
    let (ip2, ns2) = sandbox_on(&c[1], "s2", "ov6").await;
    let v6 = |c: &Client, name: &'static str| {
        let c = c.clone();
        async move {
            let sb: Value = c.get(&format!("/sandboxes/{name}")).await.unwrap();
            let a = sb["Networks"]["ov6"]["GlobalIPv6Address"].as_str().unwrap_or_else(|| panic!("{name}: {sb}"));
            a.parse::<IpAddr>().unwrap()
        }
    };
    let (a1, a2) = (v6(&c[0], "s1").await, v6(&c[1], "s2").await);
    assert!(a1.is_ipv6() && a2.is_ipv6() && a1 != a2, "{a1} {a2}");
    eventually("s1 reaches s2 over IPv4", 5, || pings(&ns1, ip2)).await;
    eventually("s1 reaches s2 over IPv6", 10, || pings(&ns1, a2)).await;
    eventually("s2 reaches s1 over IPv6", 10, || pings(&ns2, a1)).await;
    eventually("s2 reaches s1 over IPv4", 5, || pings(&ns2, ip1)).await;
    let gateway: IpAddr = "fd00:231:83::1".parse().unwrap();
    for ns in [&ns1, &ns2] {
        eventually("the IPv6 gateway on the host's own bridge", 10, || pings(ns, gateway)).await;
    }
}

/// An address (and the MAC made from it) released on one host and given
/// to a sandbox on the other is reachable at once: the other host's
/// bridge had learnt the MAC behind its VXLAN device from the first
/// sandbox's frames, and forgets it when that endpoint goes. Control: the
/// first sandbox answered from the other host before it went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_moving_to_another_host_is_reachable_at_once() {
    let test = "an_address_moving_to_another_host_is_reachable_at_once";
    let Some((_underlay, hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.84.0/24" }] } });
    let _: Value = c[0].post("/networks/create", &body).await.unwrap();
    eventually("listed on host 2", 5, || listed(&c[1], "ov")).await;
    let (_, w1) = sandbox_on(&c[0], "w1", "ov").await;
    let (_, w2) = sandbox_on(&c[1], "w2", "ov").await;
    let (ip, _) = sandbox_on(&c[0], "first", "ov").await;
    eventually("the control: host 2 reaches the first sandbox", 5, || pings(&w2, ip)).await;
    c[0].delete("/sandboxes/first").await.unwrap();
    let (again, _) = sandbox_on(&c[1], "second", "ov").await;
    assert_eq!(again, ip, "the released address is handed out again");
    eventually("host 1 reaches the address on host 2", 3, || pings(&w1, ip)).await;
    eventually("host 2 reaches it locally", 3, || pings(&w2, ip)).await;
}
