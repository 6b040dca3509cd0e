//! Rootless with a way out: `cnm-rootless-way-out` runs a controller as an
//! unprivileged user, in a user namespace of its own with slirp4netns as
//! its way out, and proves by packets that a sandbox reaches a TCP server
//! on the host's loopback and that a port it publishes answers on the
//! host's loopback (and stops answering when the sandbox goes).
//!
//! As real root, the program becomes `nobody` first. Rootless (this test
//! binary runs in a user namespace of its own), the test's own namespace
//! plays the host: it gets a link and a default route first, as any host
//! has, for slirp4netns to copy.

use std::os::unix::fs::PermissionsExt;

const TEST: &str = "a_rootless_controller_reaches_the_host_and_publishes_ports";

#[tokio::test(flavor = "current_thread")]
async fn a_rootless_controller_reaches_the_host_and_publishes_ports() {
    if !cnm_tests::privileged(TEST) || !cnm_tests::tools(TEST, &["slirp4netns"], "slirp4netns") {
        return;
    }
    let tun_for_all = std::fs::metadata("/dev/net/tun").is_ok_and(|m| m.permissions().mode() & 0o006 == 0o006);
    let _host_link = match cnm::rootless::entered() {
        None => None,
        // slirp4netns opens /dev/net/tun as this user: where it is root's
        // alone (no udev on this machine), only real root can lend it.
        Some(_) if !tun_for_all => {
            cnm_tests::real_root(TEST);
            return;
        }
        Some(_) => Some(host_route().await),
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnm-rootless-way-out"))
        .env("CNM_TEST_NO_USERNS", "1")
        .output()
        .expect("run cnm-rootless-way-out");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "cnm-rootless-way-out: {}", out.status);
    for line in ["CNM-WAY-OUT outbound OK", "CNM-WAY-OUT published OK", "CNM-WAY-OUT unpublished OK"] {
        assert!(stdout.contains(line), "{line} missing");
    }
}

/// Gives this test's own namespace (rootless: a namespace of this process
/// alone) what a host has and slirp4netns copies: a link with an address
/// and a default route (through a veth to a scratch namespace).
async fn host_route() -> cnm_tests::TestHost {
    let h = cnm_tests::TestHost::new(TEST).await.expect("a scratch namespace");
    let me = cnm::osl::Namespace::current().unwrap();
    let nl = cnm::osl::Netlink::connect(&me, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    let spec = cnm::osl::VethSpec {
        name: "uplink0",
        peer_name: "eth0",
        peer_namespace: Some(&h.ns),
        up: true,
        ..Default::default()
    };
    nl.link_add_veth(&spec).await.unwrap();
    let up = nl.link_get("uplink0").await.unwrap().unwrap().index;
    nl.addr_add(up, "10.214.0.1/24".parse().unwrap()).await.unwrap();
    nl.route_add(&cnm::osl::Route::default_via("10.214.0.2".parse().unwrap(), up)).await.unwrap();
    h
}
