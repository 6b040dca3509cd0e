//! The embedded resolver, by packets: sandboxes ask 127.0.0.11 from their
//! own namespaces; upstream servers run in the "outside" host or on the
//! scratch host's loopback.

use cnm::{Controller, EndpointConfig, JoinOptions, Network, NetworkConfig, Sandbox, SandboxConfig};
use cnm_dns::proto::op::ResponseCode;
use cnm_dns::proto::rr::{RData, RecordType};
use cnm_tests::TestHost;
use cnm_tests::dns::{BIG_TXT_BYTES, EXT_ADDR, RESOLVER, TestUpstream, UpstreamMode, ask, lookup_a};
use std::net::{IpAddr, Ipv4Addr};

/// A container: a sandbox named `name` joined to `net` with `aliases`.
async fn container(
    ctrl: &Controller,
    net: &Network,
    name: &str,
    aliases: &[&str],
    cfg: SandboxConfig,
) -> (Sandbox, Ipv4Addr) {
    let ep_cfg = EndpointConfig { aliases: aliases.iter().map(|a| a.to_string()).collect(), ..Default::default() };
    let ep = net.create_endpoint(name, ep_cfg).await.unwrap();
    let sb = ctrl.new_sandbox(name, cfg).await.unwrap();
    ep.join(&sb, JoinOptions::default()).await.unwrap();
    let IpAddr::V4(ip) = ep.info().await.unwrap().ipv4.unwrap().addr() else { unreachable!() };
    (sb, ip)
}

/// Sandboxes resolve each other by container name, host name, alias and
/// `name.network` on a shared network, not across networks; PTR; other
/// types of internal names answer empty and never go upstream; names go on
/// disconnect; `resolv.conf` names 127.0.0.11.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolve_on_shared_networks_only() {
    let Some(h) = TestHost::new("names_resolve_on_shared_networks_only").await else { return };
    let out = h.outside().await;
    let upstream = TestUpstream::start(&out.ns, cnm_tests::OUTSIDE.parse().unwrap(), UpstreamMode::Answering).await;
    let ctrl = cnm_tests::dns::controller(&h).await;
    let front = ctrl.new_network("bridge", "front", NetworkConfig::default()).await.unwrap();
    let back = ctrl.new_network("bridge", "back", NetworkConfig::default()).await.unwrap();
    let cfg = |host: &str| SandboxConfig {
        hostname: host.into(),
        dns: vec![cnm_tests::OUTSIDE.parse().unwrap()],
        ..Default::default()
    };
    let (a, _) = container(&ctrl, &front, "a", &[], cfg("")).await;
    let (b, b_ip) = container(&ctrl, &front, "b", &["db"], cfg("bhost")).await;
    let (c, _) = container(&ctrl, &back, "c", &[], cfg("")).await;
    let a_ns = a.namespace().unwrap();

    let resolv = std::fs::read_to_string(a.resolv_conf_path()).unwrap();
    assert!(resolv.starts_with("nameserver 127.0.0.11\n"), "{resolv}");
    for name in ["b", "db", "bhost", "b.front", "DB.front."] {
        assert_eq!(lookup_a(&a_ns, name).await.unwrap(), vec![b_ip], "{name}");
    }
    let before = upstream.queries();
    let mx = ask(&a_ns, RESOLVER, "db", RecordType::MX, false, false).await.unwrap();
    assert_eq!((mx.metadata.response_code, mx.answers.len()), (ResponseCode::NoError, 0));
    let aaaa = ask(&a_ns, RESOLVER, "db", RecordType::AAAA, false, false).await.unwrap();
    assert_eq!((aaaa.metadata.response_code, aaaa.answers.len()), (ResponseCode::NoError, 0));
    assert_eq!(upstream.queries(), before, "internal names never go upstream");

    let ptr_name =
        format!("{}.in-addr.arpa.", b_ip.octets().iter().rev().map(u8::to_string).collect::<Vec<_>>().join("."));
    let ptr = ask(&a_ns, RESOLVER, &ptr_name, RecordType::PTR, false, false).await.unwrap();
    assert!(matches!(&ptr.answers[0].data, RData::PTR(p) if p.0.to_ascii() == "b.front."), "{ptr:?}");

    // c is on another network: its name goes upstream, which has never heard of it.
    let err = lookup_a(&a_ns, "c").await.unwrap_err();
    assert!(err.contains("NXDomain"), "{err}");
    assert!(upstream.queries() > before);
    assert!(lookup_a(&c.namespace().unwrap(), "b").await.is_err());

    // Disconnected, b's names are gone at once.
    let ep_b = b.endpoints().await.remove(0);
    ep_b.leave(&b).await.unwrap();
    assert!(lookup_a(&a_ns, "db").await.unwrap_err().contains("NXDomain"));
    cnm_tests::remove_all(&ctrl).await;
}

/// Three sandboxes under one alias: every address is answered, in shuffled order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_over_a_shared_alias() {
    let Some(h) = TestHost::new("round_robin_over_a_shared_alias").await else { return };
    let ctrl = cnm_tests::dns::controller(&h).await;
    let net = ctrl.new_network("bridge", "rr", NetworkConfig::default()).await.unwrap();
    let mut sandboxes = Vec::new();
    let mut ips = Vec::new();
    for name in ["web1", "web2", "web3"] {
        let (sb, ip) = container(&ctrl, &net, name, &["web"], SandboxConfig::default()).await;
        sandboxes.push(sb);
        ips.push(ip);
    }
    ips.sort();
    let ns = sandboxes[0].namespace().unwrap();
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let mut got = lookup_a(&ns, "web").await.unwrap();
        firsts.insert(got[0]);
        got.sort();
        assert_eq!(got, ips);
    }
    assert!(firsts.len() > 1, "the order never changed: {firsts:?}");
    cnm_tests::remove_all(&ctrl).await;
}

/// Other names go to the sandbox's servers: a dead one and a failing one
/// are skipped, NXDOMAIN is final, an answer is cached for its TTL, a
/// truncated UDP answer is passed through and the same query over TCP gets
/// the whole 5 KB answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_fails_over_and_falls_back_to_tcp() {
    let Some(h) = TestHost::new("forwarding_fails_over_and_falls_back_to_tcp").await else { return };
    let out = h.outside().await;
    let eth0 = out.nl.link_get("eth0").await.unwrap().unwrap();
    for ip in ["10.250.0.3/24", "10.250.0.4/24"] {
        out.nl.addr_add(eth0.index, ip.parse().unwrap()).await.unwrap();
    }
    let good = TestUpstream::start(&out.ns, cnm_tests::OUTSIDE.parse().unwrap(), UpstreamMode::Answering).await;
    let failing = TestUpstream::start(&out.ns, "10.250.0.3".parse().unwrap(), UpstreamMode::Failing).await;
    let ctrl = cnm_tests::dns::controller(&h).await;
    let net = ctrl.new_network("bridge", "fwd", NetworkConfig::default()).await.unwrap();
    // 10.250.0.4 has nothing on port 53.
    let dns = ["10.250.0.4", "10.250.0.3", cnm_tests::OUTSIDE].iter().map(|s| s.parse().unwrap()).collect();
    let (sb, _) = container(&ctrl, &net, "asker", &[], SandboxConfig { dns, ..Default::default() }).await;
    let ns = sb.namespace().unwrap();

    assert_eq!(lookup_a(&ns, "ext.test").await.unwrap(), vec![EXT_ADDR]);
    assert_eq!((failing.queries(), good.queries()), (1, 1));
    assert_eq!(lookup_a(&ns, "EXT.test.").await.unwrap(), vec![EXT_ADDR], "from the cache");
    assert_eq!(good.queries(), 1, "cached");

    let nx = ask(&ns, RESOLVER, "nothing.test", RecordType::A, false, false).await.unwrap();
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);

    let udp = ask(&ns, RESOLVER, "big.test", RecordType::TXT, false, true).await.unwrap();
    assert!(udp.metadata.truncation, "a 5 KB answer does not fit in UDP");
    let tcp = ask(&ns, RESOLVER, "big.test", RecordType::TXT, true, true).await.unwrap();
    let RData::TXT(txt) = &tcp.answers[0].data else { panic!("{tcp:?}") };
    assert_eq!(txt.txt_data.iter().map(|d| d.len()).sum::<usize>(), BIG_TXT_BYTES);

    // Only failing servers: SERVFAIL.
    let (lone, _) = container(
        &ctrl,
        &net,
        "lone",
        &[],
        SandboxConfig { dns: vec!["10.250.0.3".parse().unwrap()], ..Default::default() },
    )
    .await;
    let fail = ask(&lone.namespace().unwrap(), RESOLVER, "ext.test", RecordType::A, false, false).await.unwrap();
    assert_eq!(fail.metadata.response_code, ResponseCode::ServFail);
    cnm_tests::remove_all(&ctrl).await;
}

/// A loopback upstream of the host (127.0.0.53, as systemd-resolved) is
/// asked from the host's namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_upstream_is_asked_from_the_host() {
    let Some(h) = TestHost::new("a_loopback_upstream_is_asked_from_the_host").await else { return };
    // The scratch host's resolv.conf names 127.0.0.53 first.
    let up = TestUpstream::start(&h.ns, "127.0.0.53".parse().unwrap(), UpstreamMode::Answering).await;
    let ctrl = cnm_tests::dns::controller(&h).await;
    let net = ctrl.new_network("bridge", "lo-up", NetworkConfig::default()).await.unwrap();
    let (sb, _) = container(&ctrl, &net, "asker", &[], SandboxConfig::default()).await;
    assert_eq!(lookup_a(&sb.namespace().unwrap(), "ext.test").await.unwrap(), vec![EXT_ADDR]);
    assert_eq!(up.queries(), 1);
    let resolv = std::fs::read_to_string(sb.resolv_conf_path()).unwrap();
    assert!(resolv.contains("embedded resolver: 127.0.0.53 10.255.0.53"), "{resolv}");
    cnm_tests::remove_all(&ctrl).await;
}

/// DNS off (by the network's option): no server at 127.0.0.11, the host's
/// servers in `resolv.conf`; a restarted controller serves names again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_can_be_off_and_comes_back_after_restart() {
    let Some(h) = TestHost::new("dns_can_be_off_and_comes_back_after_restart").await else { return };
    let ctrl = cnm_tests::dns::controller(&h).await;
    let off =
        ctrl.new_network("bridge", "quiet", NetworkConfig { disable_dns: true, ..Default::default() }).await.unwrap();
    let (q1, _) = container(&ctrl, &off, "q1", &[], SandboxConfig::default()).await;
    let (q2, _) = container(&ctrl, &off, "q2", &[], SandboxConfig::default()).await;
    assert!(ask(&q1.namespace().unwrap(), RESOLVER, "q2", RecordType::A, false, false).await.is_err());
    let resolv = std::fs::read_to_string(q1.resolv_conf_path()).unwrap();
    assert!(resolv.starts_with("nameserver 10.255.0.53\n"), "{resolv}");

    let on = ctrl.new_network("bridge", "loud", NetworkConfig::default()).await.unwrap();
    let (s1, _) = container(&ctrl, &on, "s1", &[], SandboxConfig::default()).await;
    let (s2, s2_ip) = container(&ctrl, &on, "s2", &[], SandboxConfig::default()).await;
    let s1_ns = s1.namespace().unwrap();
    assert_eq!(lookup_a(&s1_ns, "s2").await.unwrap(), vec![s2_ip]);
    // Every handle goes, so the controller (and its servers) stop.
    drop((q1, q2, s1, s2, off, on, ctrl));
    // Aborted tasks close their sockets as the runtime drops them: wait, bounded.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ask(&s1_ns, RESOLVER, "s2", RecordType::A, false, false).await.is_ok() {
        assert!(std::time::Instant::now() < end, "the server still answers 5 s after the controller went");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let ctrl = cnm_tests::dns::controller(&h).await;
    assert_eq!(lookup_a(&s1_ns, "s2").await.unwrap(), vec![s2_ip], "after a restart");
    cnm_tests::remove_all(&ctrl).await;
}

/// As in Docker, the default network has no embedded resolver: its
/// sandboxes keep the host's servers and 127.0.0.11 does not answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dns_on_the_default_network() {
    let Some(h) = TestHost::new("no_dns_on_the_default_network").await else { return };
    let default = cnm::DefaultNetwork::new("bridge", "bridge", NetworkConfig::default());
    let ctrl = cnm_tests::with_defaults(Controller::builder(h.config().embedded_dns(true).default_network(default)))
        .driver_on_host(|host| cnm_driver_bridge::BridgeDriver::new(host.clone()))
        .build()
        .await
        .expect("start controller");
    let net = ctrl.default_network().await.expect("created at start");
    let (d1, _) = container(&ctrl, &net, "d1", &[], SandboxConfig::default()).await;
    let (_d2, _) = container(&ctrl, &net, "d2", &[], SandboxConfig::default()).await;
    assert!(ask(&d1.namespace().unwrap(), RESOLVER, "d2", RecordType::A, false, false).await.is_err());
    let resolv = std::fs::read_to_string(d1.resolv_conf_path()).unwrap();
    assert!(resolv.starts_with("nameserver 10.255.0.53\n"), "{resolv}");
    cnm_tests::remove_all(&ctrl).await;
}

/// At most `MAX_IN_FLIGHT` forwarded queries wait on upstreams per sandbox:
/// with an upstream that never answers (an address nobody has), a burst of
/// 150 distinct names gets SERVFAIL at once for every query past the bound,
/// while the others wait for the upstream's timeout; a local name still
/// answers during the burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_queries_in_flight_are_bounded() {
    let Some(h) = TestHost::new("forwarded_queries_in_flight_are_bounded").await else { return };
    let _out = h.outside().await;
    let ctrl = cnm_tests::dns::controller(&h).await;
    let net = ctrl.new_network("bridge", "burst", NetworkConfig::default()).await.unwrap();
    // 10.250.0.99 is on the outside link but nobody has it: queries to it go unanswered.
    let cfg = SandboxConfig { dns: vec!["10.250.0.99".parse().unwrap()], ..Default::default() };
    let (asker, _) = container(&ctrl, &net, "asker", &[], cfg).await;
    let (_peer, peer_ip) = container(&ctrl, &net, "peer", &[], SandboxConfig::default()).await;
    let ns = asker.namespace().unwrap();
    let burst = 150usize;
    let quick = ns
        .run(move || -> std::io::Result<usize> {
            let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
            s.connect(RESOLVER)?;
            for i in 0..burst {
                s.send(&cnm_dns::query_bytes(i as u16, &format!("n{i}.example.test"), RecordType::A, false))?;
            }
            // Everything answered within a second was answered without waiting on the upstream.
            s.set_read_timeout(Some(std::time::Duration::from_millis(200)))?;
            let end = std::time::Instant::now() + std::time::Duration::from_secs(1);
            let (mut servfail, mut buf) = (0, [0u8; 512]);
            while std::time::Instant::now() < end {
                if let Ok(n) = s.recv(&mut buf)
                    && n > 3
                    && buf[3] & 0x0f == 2
                {
                    servfail += 1;
                }
            }
            Ok(servfail)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(quick, burst - cnm_dns::MAX_IN_FLIGHT, "every query past the bound is refused at once");
    assert_eq!(lookup_a(&ns, "peer").await.unwrap(), vec![peer_ip], "local names still answer");
    cnm_tests::remove_all(&ctrl).await;
}
