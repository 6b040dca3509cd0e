//! `cnmd` facing plugins as dockerd does: one `Plugin.Activate` for the
//! daemon's lifetime (a restarted plugin gets the same calls again, on
//! Docker's retry schedule, never a new handshake), and what a driver
//! reports through `EndpointOperInfo` (its port map, its MAC) is what
//! sandbox and network inspect show.

mod common;

use cnm_tests::recorder::{Calls, RecorderPlugin};
use common::Daemon;
use serde_json::{Value, json};
use std::time::Duration;

fn conf(oper_info: Value) -> Value {
    json!({
        "implements": ["NetworkDriver"], "scope": "local", "connectivity_scope": "local",
        "oper_info": oper_info,
    })
}

/// A daemon looking for plugins in a directory of its own (returned with it).
async fn daemon(test: &str) -> Option<(Daemon, tempfile::TempDir)> {
    let plugins = tempfile::tempdir().unwrap();
    let dir = plugins.path().to_str().unwrap().to_string();
    Some((Daemon::start_with_args(test, &["--plugin-dir", &dir]).await?, plugins))
}

fn methods(calls: &Calls) -> Vec<String> {
    calls.take().into_iter().map(|c| c.path.trim_start_matches('/').to_string()).collect()
}

/// The plugin dies after the network is created and comes back 1.5 s
/// later: the connect made meanwhile waits on Docker's schedule and then
/// reaches the new process with its calls, and no call is a new handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_plugin_gets_the_calls_again_without_a_handshake() {
    let Some((d, plugins)) = daemon("restarted_plugin_gets_the_calls_again_without_a_handshake").await else { return };
    let sock = plugins.path().join("rp.sock");
    let calls = Calls::default();
    let plugin = RecorderPlugin::start(&sock, "rp", &conf(json!({})), calls.clone());
    let client = d.client();
    let body = json!({ "Name": "rpn", "Driver": "rp", "IPAM": { "Config": [{ "Subnet": "10.231.41.0/24" }] } });
    let _: Value = client.post("/networks/create", &body).await.expect("create a network on the plugin");
    assert_eq!(methods(&calls), ["Plugin.Activate", "NetworkDriver.GetCapabilities", "NetworkDriver.CreateNetwork"]);

    plugin.stop();
    let again = {
        let (sock, calls) = (sock.clone(), calls.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            RecorderPlugin::start(&sock, "rp", &conf(json!({})), calls)
        })
    };
    let _: Value = client.post("/sandboxes", &json!({ "Name": "s1" })).await.unwrap();
    client
        .post_unit("/networks/rpn/connect", &json!({ "Container": "s1" }))
        .await
        .expect("the connect goes through once the plugin is back");
    let seen = methods(&calls);
    assert!(!seen.iter().any(|m| m == "Plugin.Activate"), "no second handshake: {seen:?}");
    assert_eq!(seen.first().map(String::as_str), Some("NetworkDriver.CreateEndpoint"), "{seen:?}");
    assert!(seen.iter().any(|m| m == "NetworkDriver.Join"), "{seen:?}");
    client.delete("/sandboxes/s1").await.unwrap();
    client.delete("/networks/rpn").await.unwrap();
    again.await.unwrap().stop();
}

/// A driver that reports a port map and a MAC through `EndpointOperInfo`:
/// `GET /sandboxes/{id}` shows the ports and the MAC, network inspect the MAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_reported_ports_and_mac_show_in_inspect() {
    let Some((d, plugins)) = daemon("driver_reported_ports_and_mac_show_in_inspect").await else { return };
    let reported = json!({
        "com.docker.network.endpoint.macaddress": "AkIK5xSW",
        "com.docker.network.portmap": [
            { "Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 18080, "HostPortEnd": 18080 }
        ],
    });
    let calls = Calls::default();
    let plugin = RecorderPlugin::start(&plugins.path().join("op.sock"), "op", &conf(reported), calls.clone());
    let client = d.client();
    let body = json!({ "Name": "opn", "Driver": "op", "IPAM": { "Config": [{ "Subnet": "10.231.42.0/24" }] } });
    let _: Value = client.post("/networks/create", &body).await.unwrap();
    let _: Value = client.post("/sandboxes", &json!({ "Name": "s1", "ExposedPorts": { "80/tcp": {} } })).await.unwrap();
    client.post_unit("/networks/opn/connect", &json!({ "Container": "s1" })).await.unwrap();
    let sb: Value = client.get("/sandboxes/s1").await.unwrap();
    assert_eq!(sb["Networks"]["opn"]["MacAddress"], "02:42:0a:e7:14:96", "{sb}");
    assert_eq!(sb["Ports"]["80/tcp"], json!([{ "HostIp": "", "HostPort": "18080" }]), "{sb}");
    let net: Value = client.get("/networks/opn").await.unwrap();
    let containers = net["Containers"].as_object().unwrap();
    assert_eq!(containers.values().next().unwrap()["MacAddress"], "02:42:0a:e7:14:96", "{net}");
    assert!(methods(&calls).iter().any(|m| m == "NetworkDriver.EndpointOperInfo"));
    client.delete("/sandboxes/s1").await.unwrap();
    client.delete("/networks/opn").await.unwrap();
    plugin.stop();
}
