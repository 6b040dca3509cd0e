//! Bad input gets a clear error and loses nothing.

use cnm::{EndpointConfig, ErrorKind, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_tests::TestHost;

/// Deleting a network with endpoints is refused; it works once they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_network_with_endpoints_is_refused() {
    let Some(h) = TestHost::new("delete_network_with_endpoints_is_refused").await else { return };
    let ctrl = h.controller().await;
    let net = ctrl.new_network("bridge", "busy", NetworkConfig::default()).await.unwrap();
    let ep = net.create_endpoint("e", EndpointConfig::default()).await.unwrap();
    let err = net.delete().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert!(cnm::chain(&err).contains("has active endpoints"), "{err}");
    assert!(ctrl.network_by_name("busy").await.is_ok(), "the network is still there");
    ep.delete().await.unwrap();
    net.delete().await.unwrap();
}

/// A full pool gives the no-available-IPs error, and a freed address can be had again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipam_exhaustion() {
    let Some(h) = TestHost::new("ipam_exhaustion").await else { return };
    let ctrl = h.controller().await;
    // A /29 has 6 usable addresses: the gateway and 5 endpoints.
    let net = ctrl
        .new_network("bridge", "tiny", NetworkConfig::default().with_subnet("10.66.0.0/29".parse().unwrap()))
        .await
        .unwrap();
    let mut eps = Vec::new();
    for i in 0..5 {
        eps.push(net.create_endpoint(&format!("e{i}"), EndpointConfig::default()).await.unwrap());
    }
    let err = net.create_endpoint("one-too-many", EndpointConfig::default()).await.unwrap_err();
    assert!(matches!(&err, cnm::Error::Ipam { source: cnm::ipamapi::Error::NoAvailableIps, .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let freed = eps[2].info().await.unwrap().ipv4.unwrap();
    eps.remove(2).delete().await.unwrap();
    let again = net.create_endpoint("again", EndpointConfig::default()).await.unwrap();
    assert_eq!(again.info().await.unwrap().ipv4.unwrap(), freed);
}

/// Names, drivers, subnets and options are checked before anything is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_refused_clearly() {
    let Some(h) = TestHost::new("invalid_requests_are_refused_clearly").await else { return };
    let ctrl = h.controller().await;
    let err = ctrl.new_network("brdge", "x", NetworkConfig::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(cnm::chain(&err).contains("bridge") && cnm::chain(&err).contains("null"), "lists the drivers: {err}");
    let err = ctrl.new_network("bridge", "", NetworkConfig::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    assert!(cnm::chain(&err).contains("name is empty"), "{err}");
    let err = ctrl.new_network("bridge", "two\nlines", NetworkConfig::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    let err = ctrl
        .new_network("bridge", "x", NetworkConfig::default().with_subnet("10.1.2.3/24".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(cnm::chain(&err).contains("10.1.2.0/24"), "suggests the network address: {err}");
    // A typo among the bridge's own keys is refused by name (a key that is
    // not the bridge's is kept and shown, as Docker keeps it: below).
    let typo = NetworkConfig::default().with_option("com.docker.network.bridge.colour", "blue");
    let err = ctrl.new_network("bridge", "x", typo).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    assert!(cnm::chain(&err).contains("com.docker.network.bridge.colour"), "{err}");
    let ok = ctrl
        .new_network("bridge", "x", NetworkConfig::default().with_subnet("10.5.0.0/16".parse().unwrap()))
        .await
        .unwrap();
    let err = ctrl.new_network("bridge", "x", NetworkConfig::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "name clash: {err}");
    let err = ctrl
        .new_network("bridge", "y", NetworkConfig::default().with_subnet("10.5.3.0/24".parse().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "overlapping pool, as dockerd: {err}");
    // Nothing of the failed attempts is left: only x's bridge exists.
    assert_eq!(ctrl.networks().await.len(), 1);
    let bridges: Vec<String> = h.links().await.into_iter().filter(|l| l.starts_with("br-")).collect();
    assert_eq!(bridges, vec![format!("br-{}", &ok.id()[..12])]);
    let kept =
        ctrl.new_network("bridge", "kept", NetworkConfig::default().with_option("colour", "blue")).await.unwrap();
    let info = kept.info().await.unwrap();
    assert_eq!(
        info.config.driver_options.get("colour").map(String::as_str),
        Some("blue"),
        "{:?}",
        info.config.driver_options
    );
    kept.delete().await.unwrap();
    // Endpoint and sandbox clashes.
    let ep = ok.create_endpoint("e", EndpointConfig::default()).await.unwrap();
    assert_eq!(ok.create_endpoint("e", EndpointConfig::default()).await.unwrap_err().kind(), ErrorKind::Conflict);
    let sb = ctrl.new_sandbox("c", SandboxConfig::default()).await.unwrap();
    assert_eq!(ctrl.new_sandbox("c", SandboxConfig::default()).await.unwrap_err().kind(), ErrorKind::Conflict);
    ep.join(&sb, JoinOptions::default()).await.unwrap();
    assert_eq!(ep.join(&sb, JoinOptions::default()).await.unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(ep.delete().await.unwrap_err().kind(), ErrorKind::Forbidden, "joined endpoints are not deleted");
    let err = ok
        .create_endpoint("far", EndpointConfig { ipv4: Some("10.6.0.1".parse().unwrap()), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidParameter, "{err}");
    sb.delete().await.unwrap();
    ok.delete().await.unwrap();
}
