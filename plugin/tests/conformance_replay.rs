//! Conformance (a): every request of every recorded trace, replayed over a
//! real unix socket against our plugin server backed by recording test
//! drivers, decodes to the expected typed call, and every answer encodes to
//! what the recorder answered (and Docker Engine accepted).

mod common;

use bytes::Bytes;
use cnm_driver_remote::{PluginAddress, PluginClient, PluginServer};
use common::{Answers, Log, RecordingDriver, RecordingIpam, RunningPlugin};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Methods whose answer comes from the driver's declared capability, not from the queue.
const NO_QUEUE: [&str; 4] = [
    "/Plugin.Activate",
    "/NetworkDriver.GetCapabilities",
    "/IpamDriver.GetCapabilities",
    "/IpamDriver.GetDefaultAddressSpaces",
];

/// Per plugin: its roles, then the recorded answers of its network and IPAM calls.
type Recorded = (Vec<String>, VecDeque<Value>, VecDeque<Value>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_traced_request_is_served_as_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut replayed = 0;
    for file in cnm_tests::traces::files() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let calls = cnm_tests::traces::read_jsonl(&file);
        // Per plugin: its roles (from its Activate answer) and the queued answers.
        let mut plugins: BTreeMap<String, Recorded> = BTreeMap::new();
        for c in &calls {
            let p = plugins.entry(c["plugin"].as_str().unwrap().to_string()).or_default();
            let path = c["path"].as_str().unwrap();
            assert_eq!(c["status"], 200, "{name}#{}: the visible traces only hold successful calls", c["seq"]);
            if path == "/Plugin.Activate" {
                p.0 = serde_json::from_value(c["response"]["Implements"].clone()).unwrap();
            } else if !NO_QUEUE.contains(&path) {
                let q = if path.starts_with("/IpamDriver.") { &mut p.2 } else { &mut p.1 };
                q.push_back(c["response"].clone());
            }
        }
        let mut servers = BTreeMap::new();
        for (pname, (roles, net_q, ipam_q)) in plugins {
            let log = Log::default();
            let mut server = PluginServer::new();
            if roles.iter().any(|r| r == "NetworkDriver") {
                let drv = RecordingDriver::new(&pname, log.clone(), Answers::Queue(Mutex::new(net_q)));
                server = server.with_driver(Arc::new(drv));
            }
            if roles.iter().any(|r| r == "IpamDriver") {
                server =
                    server.with_ipam(Arc::new(RecordingIpam::new(log.clone(), Answers::Queue(Mutex::new(ipam_q)))));
            }
            let path = dir.path().join(format!("{pname}.sock"));
            let running = RunningPlugin::start(&path, server);
            let client = PluginClient::new(&pname, PluginAddress::Unix(path), common::quick_config());
            servers.insert(pname, (running, client, log));
        }

        for c in &calls {
            let what = format!("{name}#{} {}", c["seq"], c["path"]);
            let (_, client, log) = &servers[c["plugin"].as_str().unwrap()];
            let method = c["path"].as_str().unwrap().trim_start_matches('/');
            let body = match &c["request"] {
                Value::Null => Bytes::new(),
                v => cnm_driver_remote::encode::to_body(v).unwrap(),
            };
            let before = log.len();
            let answer = client.call(method, body).await.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(answer.status, 200, "{what}: {}", String::from_utf8_lossy(&answer.body));
            assert_eq!(answer.body.last(), Some(&b'\n'), "{what}: answers end with a newline, as Go's encoder writes");
            let got: Value = serde_json::from_slice(&answer.body).unwrap_or_else(|e| panic!("{what}: {e}"));
            let expected = &c["response"];
            match method {
                "IpamDriver.GetCapabilities" => {
                    let a: cnm_ipamapi::IpamCapability = cnm_driver_remote::decode::from_value(got).unwrap();
                    let b: cnm_ipamapi::IpamCapability = serde_json::from_value(expected.clone()).unwrap();
                    assert_eq!(a, b, "{what}");
                }
                _ => assert_eq!(&got, expected, "{what}: answer"),
            }
            // The call reached the driver as the typed request Docker meant.
            match method {
                "Plugin.Activate" | "NetworkDriver.GetCapabilities" | "IpamDriver.GetCapabilities" => {
                    assert_eq!(log.len(), before, "{what}: answered without a driver call");
                }
                "IpamDriver.GetDefaultAddressSpaces" => {
                    assert_eq!(log.take().pop().map(|c| c.0), Some(method.to_string()), "{what}");
                }
                _ => {
                    let calls = log.take();
                    assert_eq!(calls.len(), 1, "{what}: one driver call");
                    assert_eq!(calls[0].0, method, "{what}");
                    assert_eq!(&calls[0].1, &c["request"], "{what}: typed request");
                }
            }
            replayed += 1;
        }
        for (_, (running, _, _)) in servers {
            running.stop().await;
        }
    }
    assert!(replayed >= 368, "replayed only {replayed} calls");
}

/// Answers the recorder lower-cased (Docker accepted them) decode to the
/// same typed answers through our client's case-insensitive decoding.
#[test]
fn lower_cased_answers_decode_like_the_originals() {
    fn lower(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.to_lowercase(), lower(v))).collect()),
            Value::Array(a) => Value::Array(a.iter().map(lower).collect()),
            other => other.clone(),
        }
    }
    let mut checked = 0;
    for file in cnm_tests::traces::files() {
        for c in cnm_tests::traces::read_jsonl(&file) {
            let r = &c["response"];
            let path = c["path"].as_str().unwrap();
            macro_rules! same {
                ($t:ty) => {{
                    let a: $t = serde_json::from_value(r.clone()).unwrap();
                    let b: $t = cnm_driver_remote::decode::from_value(lower(r)).unwrap();
                    assert_eq!(a, b, "{path}");
                    checked += 1;
                }};
            }
            match path {
                "/NetworkDriver.GetCapabilities" => same!(cnm_driverapi::Capability),
                "/NetworkDriver.CreateEndpoint" => same!(cnm_driverapi::CreateEndpointResponse),
                "/NetworkDriver.Join" => same!(cnm_driverapi::JoinResponse),
                "/IpamDriver.RequestPool" => same!(cnm_ipamapi::RequestPoolResponse),
                "/IpamDriver.RequestAddress" => same!(cnm_ipamapi::RequestAddressResponse),
                "/IpamDriver.GetDefaultAddressSpaces" => same!(cnm_ipamapi::AddressSpaces),
                _ => {}
            }
        }
    }
    assert!(checked > 50, "{checked}");
}
