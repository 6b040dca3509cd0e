//! WireGuard devices set up through `cnm::osl::wireguard` (generic
//! netlink, no `wg` tool): two hosts (namespaces) joined by a veth, each
//! with a device keyed by a private key of its own and the other as its
//! peer, ping each other's inner addresses; the kernel reports the peer's
//! handshake and bytes; a peer removed is cut off (the control: the same
//! ping answered before). This VM's kernel may lack WireGuard: where it
//! does, the device is refused naming the module; `in_the_second_kernel`
//! runs the success path in Debian's stock kernel.

use cnm::osl::wireguard::{self, DeviceConfig, Key, PeerConfig};
use cnm::osl::{Namespace, Netlink, VethSpec};
use cnm_tests::kernel::{self, Feature};
use cnm_tests::{assert_no_ping, assert_ping};
use std::net::SocketAddr;

/// RFC 7748's X25519 test vector (section 6.1, Alice's key pair).
const RFC7748_PRIVATE: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const RFC7748_PUBLIC: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

fn hex_key(hex: &str) -> Key {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    Key(k)
}

/// A host: a namespace with `eth0` on the shared segment (10.98.0.N/24)
/// and `wg0`, whose inner address is 10.97.0.N/24.
struct Host {
    ns: Namespace,
    nl: Netlink,
}

async fn host(dir: &std::path::Path, n: u8) -> Host {
    let (ns, nl) = Netlink::create_namespace(dir.join(format!("h{n}")), cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    nl.link_set_up(1).await.unwrap();
    Host { ns, nl }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_talk_through_wireguard_and_a_removed_peer_is_cut_off() {
    let test = "two_hosts_talk_through_wireguard_and_a_removed_peer_is_cut_off";
    if !cnm_tests::privileged(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (host(dir.path(), 1).await, host(dir.path(), 2).await);
    if !kernel::has(Feature::Wireguard).await {
        let e = a.nl.link_add_wireguard("wg0").await.unwrap_err();
        assert!(matches!(e, cnm::osl::Error::Unsupported(_)), "{e}");
        let e = wireguard::get(&a.ns, "wg0").await.unwrap_err();
        assert!(e.to_string().contains("module wireguard"), "{e}");
        return;
    }
    let spec =
        VethSpec { name: "eth0", peer_name: "eth0", peer_namespace: Some(&b.ns), up: true, ..Default::default() };
    a.nl.link_add_veth(&spec).await.unwrap();
    let mut keys = Vec::new();
    a.nl.link_add_wireguard("wg1").await.unwrap();
    for (n, h) in [(1u8, &a), (2, &b)] {
        let eth0 = h.nl.link_get("eth0").await.unwrap().unwrap().index;
        h.nl.addr_add(eth0, format!("10.98.0.{n}/24").parse().unwrap()).await.unwrap();
        h.nl.link_set_up(eth0).await.unwrap();
        h.nl.link_add_wireguard("wg0").await.unwrap();
        let wg0 = h.nl.link_get("wg0").await.unwrap().unwrap().index;
        h.nl.addr_add(wg0, format!("10.97.0.{n}/24").parse().unwrap()).await.unwrap();
        let private = Key::generate_private().unwrap();
        let config = DeviceConfig {
            private_key: Some(private),
            listen_port: Some(51820),
            fwmark: Some(0x4e4d),
            ..Default::default()
        };
        wireguard::set(&h.ns, "wg0", config).await.unwrap();
        h.nl.link_set_up(wg0).await.unwrap();
        let info = wireguard::get(&h.ns, "wg0").await.unwrap();
        assert_eq!((info.listen_port, info.fwmark), (51820, 0x4e4d));
        keys.push(info.public_key.expect("the kernel derives the public key"));
    }
    // The kernel's public key of a known private key (RFC 7748, 6.1: Alice's).
    let known = DeviceConfig { private_key: Some(hex_key(RFC7748_PRIVATE)), ..Default::default() };
    wireguard::set(&a.ns, "wg1", known).await.unwrap();
    let public = wireguard::get(&a.ns, "wg1").await.unwrap().public_key;
    assert_eq!(public, Some(hex_key(RFC7748_PUBLIC)), "the key pair of RFC 7748");
    // Many peers, and a peer with many allowed IPs: several requests, and
    // answers that split the peer list and a peer's allowed IPs, read back whole.
    let crowd: Vec<PeerConfig> = (0..300u32)
        .map(|i| {
            let mut k = [7u8; 32];
            k[..4].copy_from_slice(&i.to_be_bytes());
            let count = if i == 0 { 2000 } else { 10 };
            let allowed_ips = (0..count).map(|j| format!("fd00:{i:x}::{j:x}/128").parse().unwrap()).collect();
            PeerConfig { public_key: Key(k), endpoint: None, allowed_ips, persistent_keepalive: None }
        })
        .collect();
    wireguard::set(&a.ns, "wg1", DeviceConfig { peers: crowd.clone(), ..Default::default() }).await.unwrap();
    let mut read = wireguard::get(&a.ns, "wg1").await.unwrap().peers;
    read.sort_by_key(|p| p.public_key.0);
    assert_eq!(read.len(), crowd.len(), "one entry per peer");
    for (got, want) in read.iter().zip(&crowd) {
        assert_eq!(got.public_key, want.public_key);
        let mut ips = got.allowed_ips.clone();
        ips.sort();
        let mut expected = want.allowed_ips.clone();
        expected.sort();
        assert_eq!(ips, expected, "every allowed IP of a peer");
    }
    let peer = |n: u8, key: Key| PeerConfig {
        public_key: key,
        endpoint: Some(SocketAddr::new(format!("10.98.0.{n}").parse().unwrap(), 51820)),
        allowed_ips: vec![format!("10.97.0.{n}/32").parse().unwrap()],
        persistent_keepalive: None,
    };
    let with_peer = |p: PeerConfig| DeviceConfig { peers: vec![p], ..Default::default() };
    // Before peers, nothing passes: the control of the tunnel itself.
    assert_no_ping(&a.ns, "10.97.0.2".parse().unwrap()).await;
    wireguard::set(&a.ns, "wg0", with_peer(peer(2, keys[1]))).await.unwrap();
    wireguard::set(&b.ns, "wg0", with_peer(peer(1, keys[0]))).await.unwrap();
    assert_ping(&a.ns, "10.97.0.2".parse().unwrap()).await;
    assert_ping(&b.ns, "10.97.0.1".parse().unwrap()).await;
    let info = wireguard::get(&a.ns, "wg0").await.unwrap();
    assert_eq!(info.peers.len(), 1, "{info:?}");
    let p = &info.peers[0];
    assert_eq!((p.public_key, p.endpoint), (keys[1], peer(2, keys[1]).endpoint));
    assert_eq!(p.allowed_ips, vec!["10.97.0.2/32".parse::<ipnet::IpNet>().unwrap()]);
    assert!(p.last_handshake.is_some() && p.rx_bytes > 0 && p.tx_bytes > 0, "{p:?}");

    // B withdraws A: A is cut off.
    let remove = DeviceConfig { remove_peers: vec![keys[0]], ..Default::default() };
    wireguard::set(&b.ns, "wg0", remove).await.unwrap();
    assert!(wireguard::get(&b.ns, "wg0").await.unwrap().peers.is_empty());
    assert_no_ping(&a.ns, "10.97.0.2".parse().unwrap()).await;
    // Replacing the peer set puts it back: B, with no session with A any
    // more, makes one (A would only notice its old one dead after 15 s).
    let back = DeviceConfig { replace_peers: true, peers: vec![peer(1, keys[0])], ..Default::default() };
    wireguard::set(&b.ns, "wg0", back).await.unwrap();
    assert_ping(&b.ns, "10.97.0.1".parse().unwrap()).await;
    assert_ping(&a.ns, "10.97.0.2".parse().unwrap()).await;
    for n in 1..=2 {
        Namespace::remove(dir.path().join(format!("h{n}"))).unwrap();
    }
}

/// The test above in Debian's stock kernel, which has WireGuard.
#[test]
fn in_the_second_kernel() {
    kernel::run_in_second_kernel(
        "wireguard_in_the_second_kernel",
        &["two_hosts_talk_through_wireguard_and_a_removed_peer_is_cut_off"],
    );
}
