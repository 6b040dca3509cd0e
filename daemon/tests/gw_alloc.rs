//! Docker 28's `GwAllocChecker`, as dockerd 28 asks it: a plugin whose
//! capabilities say `GwAllocChecker` is asked `NetworkDriver.GwAllocCheck`
//! with the network's options before any pool is allocated, and a family
//! it answers `Skip` for gets no gateway address reserved — unless the
//! user gave one. A plugin without the capability is never asked (the
//! control), and gets its gateway as before.

mod common;

use cnm_tests::recorder::{Call, Calls, RecorderPlugin};
use common::Daemon;
use serde_json::{Value, json};

/// The `CreateNetwork` among `calls`: its IPv4 gateway ("" if none).
fn created_gateway(calls: &[Call]) -> String {
    let c = calls.iter().find(|c| c.path == "/NetworkDriver.CreateNetwork").expect("a CreateNetwork");
    c.body["IPv4Data"][0]["Gateway"].as_str().unwrap_or_default().to_string()
}

/// The address the `CreateEndpoint` among `calls` asked for.
fn endpoint_address(calls: &[Call]) -> String {
    let c = calls.iter().find(|c| c.path == "/NetworkDriver.CreateEndpoint").expect("a CreateEndpoint");
    c.body["Interface"]["Address"].as_str().unwrap_or_default().to_string()
}

fn paths(calls: &[Call]) -> Vec<&str> {
    calls.iter().map(|c| c.path.trim_start_matches("/NetworkDriver.")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_needs_no_gateway_gets_none() {
    let plugins = tempfile::tempdir().unwrap();
    let dir = plugins.path().to_str().unwrap().to_string();
    let Some(d) = Daemon::start_with_args("a_plugin_that_needs_no_gateway_gets_none", &["--plugin-dir", &dir]).await
    else {
        return;
    };
    let base = json!({ "implements": ["NetworkDriver"], "scope": "local", "connectivity_scope": "local" });
    let mut skipping = base.clone();
    skipping["gw_alloc_check"] = json!({ "SkipIPv4": true });
    let (skip_calls, plain_calls) = (Calls::default(), Calls::default());
    let _skip = RecorderPlugin::start(&plugins.path().join("nogw.sock"), "nogw", &skipping, skip_calls.clone());
    let _plain = RecorderPlugin::start(&plugins.path().join("plain.sock"), "plain", &base, plain_calls.clone());
    let client = d.client();
    let create = |name: &str, driver: &str, ipam: Value| json!({ "Name": name, "Driver": driver, "IPAM": { "Config": [ipam] }, "Options": { "com.example.mode": "l3" } });

    // Asked first, with the network's options; no gateway reserved.
    let _: Value =
        client.post("/networks/create", &create("a", "nogw", json!({ "Subnet": "10.231.70.0/24" }))).await.unwrap();
    let calls = skip_calls.take();
    let p = paths(&calls);
    let check = p.iter().position(|m| *m == "GwAllocCheck").expect("GwAllocCheck is asked");
    assert!(
        check < p.iter().position(|m| *m == "CreateNetwork").unwrap(),
        "asked before the network is created: {p:?}"
    );
    let asked = calls.iter().find(|c| c.path == "/NetworkDriver.GwAllocCheck").unwrap();
    assert_eq!(asked.body["Options"]["com.docker.network.generic"]["com.example.mode"], "l3", "{}", asked.body);
    assert_eq!(created_gateway(&calls), "", "no gateway for a driver that needs none");
    let inspect: Value = client.get("/networks/a").await.unwrap();
    assert!(inspect["IPAM"]["Config"][0]["Gateway"].as_str().unwrap_or_default().is_empty(), "{inspect}");
    // The first address is free for a container.
    let _: Value = client.post("/sandboxes", &json!({ "Name": "c1" })).await.unwrap();
    client.post_unit("/networks/a/connect", &json!({ "Container": "c1" })).await.unwrap();
    assert_eq!(endpoint_address(&skip_calls.take()), "10.231.70.1/24");

    // A gateway the user gives is reserved anyway.
    let with_gw = json!({ "Subnet": "10.231.71.0/24", "Gateway": "10.231.71.254" });
    let _: Value = client.post("/networks/create", &create("b", "nogw", with_gw)).await.unwrap();
    assert_eq!(created_gateway(&skip_calls.take()), "10.231.71.254/24");

    // The control: a plugin without the capability is not asked, and gets its gateway.
    let _: Value =
        client.post("/networks/create", &create("c", "plain", json!({ "Subnet": "10.231.72.0/24" }))).await.unwrap();
    let calls = plain_calls.take();
    assert!(!paths(&calls).contains(&"GwAllocCheck"), "{:?}", paths(&calls));
    assert_eq!(created_gateway(&calls), "10.231.72.1/24");
}
