//! dockerd's error paths toward a misbehaving plugin, at the daemon level:
//! `cnmd` (own roots, scratch host, `--plugin-dir`) faces a recorder plugin
//! that answers some methods with an error, and the calls it receives must
//! be the ones dockerd 20.10 makes (libnetwork's `sbJoin`, `sbLeave`,
//! `Delete` and the daemon's connect, read in moby's source):
//!
//! * external connectivity that fails at a start (a connect to a running
//!   container) fails the connect and undoes it: `Leave`, then
//!   `DeleteEndpoint`; no `EndpointOperInfo` after the failed join; the
//!   address goes back to the pool;
//! * a driver's failing `RevokeExternalConnectivity`, `Leave` or
//!   `DeleteEndpoint` during a removal (a
//!   disconnect, or the forced removal of a container) is logged and the
//!   removal goes on: the request succeeds, the endpoint is gone, its
//!   address is free, and the network can be removed;
//! * a `--config-from` network passes on to the plugin every option of
//!   its configuration network, those set to `false` too, and its pool.

mod common;

use cnm_tests::recorder::{Calls, RecorderPlugin};
use common::Daemon;
use serde_json::{Value, json};

const PLUGIN: &str = "rec-fail";

/// The methods received, without the handshake and `EndpointOperInfo`
/// (checked on their own), as `Method` names.
fn methods(calls: &Calls) -> Vec<String> {
    calls.take().into_iter().map(|c| c.path.trim_start_matches("/NetworkDriver.").to_string()).collect()
}

/// The daemon, a recorder answering `fail`'s methods with an error, and a
/// network of it with a /24.
async fn setup(test: &str, fail: Value, subnet: &str) -> Option<(Daemon, RecorderPlugin, Calls, tempfile::TempDir)> {
    let plugins = tempfile::tempdir().unwrap();
    let dir = plugins.path().to_str().unwrap().to_string();
    let d = Daemon::start_with_args(test, &["--plugin-dir", &dir]).await?;
    let calls = Calls::default();
    let conf = json!({
        "implements": ["NetworkDriver"], "scope": "local", "connectivity_scope": "local", "fail": fail,
    });
    let plugin = RecorderPlugin::start(&plugins.path().join(format!("{PLUGIN}.sock")), PLUGIN, &conf, calls.clone());
    let body = json!({ "Name": "n", "Driver": PLUGIN, "IPAM": { "Config": [{ "Subnet": subnet }] } });
    let _: Value = d.client().post("/networks/create", &body).await.expect("network create");
    calls.take();
    Some((d, plugin, calls, plugins))
}

async fn sandbox(d: &Daemon, name: &str) {
    let _: Value = d.client().post("/sandboxes", &json!({ "Name": name })).await.expect("sandbox");
}

/// The address the `CreateEndpoint` among `calls` asked for.
fn created_address(calls: &[cnm_tests::recorder::Call]) -> String {
    let c = calls.iter().find(|c| c.path == "/NetworkDriver.CreateEndpoint").expect("a CreateEndpoint");
    c.body["Interface"]["Address"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_external_connectivity_undoes_the_connect() {
    let fail = json!({ "NetworkDriver.ProgramExternalConnectivity": "no way out" });
    let Some((d, plugin, calls, _dir)) =
        setup("failed_external_connectivity_undoes_the_connect", fail, "10.231.60.0/24").await
    else {
        return;
    };
    let client = d.client();
    let mut addresses = Vec::new();
    for name in ["c1", "c2"] {
        sandbox(&d, name).await;
        let err = client.post_unit("/networks/n/connect", &json!({ "Container": name })).await.unwrap_err();
        assert!(cnm::chain(&err).contains("no way out"), "the plugin's error is reported: {err}");
        let got = calls.take();
        addresses.push(created_address(&got));
        let got: Vec<&str> = got.iter().map(|c| c.path.trim_start_matches("/NetworkDriver.")).collect();
        assert_eq!(
            got,
            ["CreateEndpoint", "Join", "ProgramExternalConnectivity", "Leave", "DeleteEndpoint"],
            "dockerd's calls for a start whose external connectivity fails (no EndpointOperInfo)\n{}",
            d.log()
        );
        let net: Value = client.get("/networks/n").await.unwrap();
        assert_eq!(net["Containers"], json!({}), "nothing of the failed connect is left");
    }
    assert_eq!(addresses[0], addresses[1], "the failed connect's address went back to the pool");
    client.delete("/networks/n").await.expect("the network has no endpoint left");
    assert_eq!(methods(&calls), ["DeleteNetwork"]);
    plugin.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_leave_and_delete_are_logged_and_the_removal_goes_on() {
    let fail = json!({
        "NetworkDriver.RevokeExternalConnectivity": "revoke refused",
        "NetworkDriver.Leave": "leave refused",
        "NetworkDriver.DeleteEndpoint": "delete refused",
    });
    let Some((d, plugin, calls, _dir)) =
        setup("failing_leave_and_delete_are_logged_and_the_removal_goes_on", fail, "10.231.61.0/24").await
    else {
        return;
    };
    let client = d.client();
    let mut addresses = Vec::new();
    // A disconnect, then the forced removal of a running container.
    for (name, disconnect) in [("c1", true), ("c2", false), ("c3", true)] {
        sandbox(&d, name).await;
        client.post_unit("/networks/n/connect", &json!({ "Container": name })).await.expect("connect");
        let got = calls.take();
        addresses.push(created_address(&got));
        if disconnect {
            client
                .post_unit("/networks/n/disconnect", &json!({ "Container": name }))
                .await
                .expect("a disconnect succeeds when the driver's leave and delete fail, as dockerd's");
        } else {
            client.delete(&format!("/sandboxes/{name}")).await.expect("a forced removal succeeds");
        }
        let got: Vec<String> = methods(&calls).into_iter().filter(|m| m != "EndpointOperInfo").collect();
        assert_eq!(got, ["RevokeExternalConnectivity", "Leave", "DeleteEndpoint"], "{name}\n{}", d.log());
        let net: Value = client.get("/networks/n").await.unwrap();
        assert_eq!(net["Containers"], json!({}), "{name}: the endpoint is gone");
        if disconnect {
            client.delete(&format!("/sandboxes/{name}")).await.expect("sandbox rm");
            calls.take();
        }
    }
    assert!(addresses.iter().all(|a| a == &addresses[0]), "each address went back to the pool: {addresses:?}");
    let log = d.log();
    for failure in ["revoke refused", "leave refused", "delete refused"] {
        assert!(log.contains(failure), "the failure {failure:?} is logged:\n{log}");
    }
    client.delete("/networks/n").await.expect("the network can be removed");
    assert_eq!(methods(&calls), ["DeleteNetwork"]);
    plugin.stop();
}

/// The fourth: a `--config-from` network hands the plugin everything the
/// configuration network set, options set to `false` included (libnetwork's
/// `applyConfigurationTo` copies the generic options whole), and its pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_from_network_passes_on_false_options_to_the_plugin() {
    let Some((d, plugin, calls, _dir)) =
        setup("a_config_from_network_passes_on_false_options_to_the_plugin", json!({}), "10.231.62.0/24").await
    else {
        return;
    };
    let client = d.client();
    let conf = json!({
        "Name": "conf", "ConfigOnly": true, "Labels": { "team": "blue" },
        "Options": { "com.example.flag": "false", "com.example.size": "7" },
        "IPAM": { "Config": [{ "Subnet": "10.231.63.0/24", "Gateway": "10.231.63.254" }] },
    });
    let _: Value = client.post("/networks/create", &conf).await.expect("a configuration network");
    assert!(methods(&calls).is_empty(), "a configuration network reaches no driver");
    let derived = json!({ "Name": "derived", "Driver": PLUGIN, "ConfigFrom": { "Network": "conf" } });
    let _: Value = client.post("/networks/create", &derived).await.expect("a network from the configuration");
    let got = calls.take();
    let create = got.iter().find(|c| c.path == "/NetworkDriver.CreateNetwork").expect("a CreateNetwork");
    let generic = &create.body["Options"]["com.docker.network.generic"];
    assert_eq!(generic["com.example.flag"], "false", "an option set to false is passed on: {}", create.body);
    assert_eq!(generic["com.example.size"], "7", "{}", create.body);
    assert_eq!(create.body["IPv4Data"][0]["Pool"], "10.231.63.0/24", "the configuration's pool: {}", create.body);
    assert_eq!(create.body["IPv4Data"][0]["Gateway"], "10.231.63.254/24", "{}", create.body);
    let net: Value = client.get("/networks/derived").await.unwrap();
    assert_eq!(net["Labels"]["team"], "blue", "{net}");
    // An endpoint's driver options reach the plugin's CreateEndpoint as
    // dockerd hands them (cnm's own, the interface's name, do not).
    sandbox(&d, "c1").await;
    let opts = json!({ "com.example.queue": "4", "com.docker.network.endpoint.ifname": "data0" });
    let connect = json!({ "Container": "c1", "EndpointConfig": { "DriverOpts": opts } });
    client.post_unit("/networks/derived/connect", &connect).await.expect("connect with driver options");
    let got = calls.take();
    let create = got.iter().find(|c| c.path == "/NetworkDriver.CreateEndpoint").expect("a CreateEndpoint");
    assert_eq!(create.body["Options"]["com.example.queue"], "4", "{}", create.body);
    assert!(create.body["Options"].get("com.docker.network.endpoint.ifname").is_none(), "{}", create.body);
    client.delete("/sandboxes/c1").await.unwrap();
    client.delete("/networks/derived").await.unwrap();
    client.delete("/networks/conf").await.unwrap();
    plugin.stop();
}
