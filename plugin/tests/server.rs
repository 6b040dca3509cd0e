//! The plugin server over real sockets: activation, Docker's request
//! encodings, refusal of empty or malformed bodies, error kinds mapped to
//! statuses and fields, TCP on loopback only, concurrent calls.

mod common;

use bytes::Bytes;
use cnm_driver_remote::{PluginAddress, PluginClient, PluginServer};
use cnm_driverapi::{self as d, Driver, ErrorKind};
use common::{Answers, Log, RecordingDriver, RecordingIpam, RunningPlugin};
use std::sync::Arc;

fn setup(dir: &std::path::Path, ipam: bool) -> (RunningPlugin, PluginClient, Arc<RecordingDriver>, Log) {
    let log = Log::default();
    let drv = Arc::new(RecordingDriver::new("r", log.clone(), Answers::Emulate));
    let mut server = PluginServer::new().with_driver(drv.clone());
    if ipam {
        server = server.with_ipam(Arc::new(RecordingIpam::new(log.clone(), Answers::Emulate)));
    }
    let path = dir.join("r.sock");
    let running = RunningPlugin::start(&path, server);
    (running, PluginClient::new("r", PluginAddress::Unix(path), common::quick_config()), drv, log)
}

fn json(b: &Bytes) -> serde_json::Value {
    serde_json::from_slice(b).unwrap()
}

/// Activation lists the roles served; unknown methods and missing roles are
/// 404 (Docker: "not implemented"); only POST is accepted.
#[tokio::test]
async fn activation_and_unknown_methods() {
    let dir = tempfile::tempdir().unwrap();
    let (running, client, _, _) = setup(dir.path(), true);
    let a = client.call("Plugin.Activate", Bytes::new()).await.unwrap();
    assert_eq!(json(&a.body), serde_json::json!({"Implements": ["NetworkDriver", "IpamDriver"]}));
    let a = client.call("NetworkDriver.Nonsense", Bytes::from_static(b"{}\n")).await.unwrap();
    assert_eq!((a.status.as_u16(), &a.body[..]), (404, &b"404 page not found\n"[..]));
    running.stop().await;
    let (running, client, _, _) = setup(dir.path(), false);
    let a = client.call("IpamDriver.RequestPool", Bytes::from_static(b"{}\n")).await.unwrap();
    assert_eq!(a.status, 404, "no IPAM role served");
    running.stop().await;
}

/// An empty body where arguments are expected (a retried Docker request)
/// and malformed JSON are refused with 400 and a message, never answered as success.
#[tokio::test]
async fn empty_and_malformed_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (running, client, _, log) = setup(dir.path(), true);
    for m in ["NetworkDriver.CreateNetwork", "NetworkDriver.Join", "IpamDriver.RequestAddress"] {
        let a = client.call(m, Bytes::new()).await.unwrap();
        assert_eq!(a.status, 400, "{m}");
        assert_eq!(json(&a.body)["Err"], format!("{m}: empty request body"));
        let a = client.call(m, Bytes::from_static(b"{\"NetworkID\": 5}")).await.unwrap();
        assert_eq!(a.status, 400, "{m}");
    }
    assert_eq!(log.len(), 0, "no driver call was made");
    // Field names in any case are accepted, as a Go plugin would.
    let a = client.call("NetworkDriver.DeleteNetwork", Bytes::from_static(b"{\"networkid\":\"n1\"}")).await.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(log.take(), vec![("NetworkDriver.DeleteNetwork".to_string(), serde_json::json!({"NetworkID": "n1"}))]);
    running.stop().await;
}

/// Error kinds become statuses and fields that Docker and our client
/// understand: the message in `Err` (and `Error` for IPAM), 404 only for
/// "not implemented" (which Docker treats as success for external connectivity).
#[tokio::test]
async fn errors_map_to_statuses_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (running, client, drv, _) = setup(dir.path(), true);
    let client = Arc::new(client);
    let remote = cnm_driver_remote::RemoteDriver::register(client.clone()).await.unwrap();
    let body = cnm_driver_remote::encode::to_body(&d::DeleteNetworkRequest { network_id: "n1".into() }).unwrap();
    for (kind, status) in [
        (ErrorKind::NotFound, 500),
        (ErrorKind::InvalidParameter, 400),
        (ErrorKind::Conflict, 409),
        (ErrorKind::Internal, 500),
    ] {
        *drv.fail.lock().unwrap() = Some(("DeleteNetwork".into(), d::Error::new(kind, "no luck")));
        let a = client.call("NetworkDriver.DeleteNetwork", body.clone()).await.unwrap();
        assert_eq!(a.status, status, "{kind}");
        assert_eq!(json(&a.body), serde_json::json!({"Err": "no luck"}));
        *drv.fail.lock().unwrap() = Some(("DeleteNetwork".into(), d::Error::new(kind, "no luck")));
        let e = remote.delete_network(d::DeleteNetworkRequest { network_id: "n1".into() }).await.unwrap_err();
        assert_eq!(e.kind(), kind, "our client recovers the exact kind");
        assert_eq!(cnm_driverapi::chain(&e), "NetworkDriver.DeleteNetwork: no luck");
    }
    *drv.fail.lock().unwrap() =
        Some(("ProgramExternalConnectivity".into(), d::Error::not_implemented("ProgramExternalConnectivity")));
    let req = d::ProgramExternalConnectivityRequest {
        network_id: "n1".into(),
        endpoint_id: "e1".into(),
        options: Default::default(),
    };
    remote.program_external_connectivity(req).await.expect("not implemented = 404 = success");
    let a = client.call("IpamDriver.ReleasePool", Bytes::from_static(b"{\"PoolID\":\"nope\"}\n")).await.unwrap();
    assert_eq!(a.status, 200, "the recording IPAM ignores unknown pools");
    let a = client
        .call(
            "IpamDriver.RequestAddress",
            Bytes::from_static(b"{\"PoolID\":\"nope\",\"Address\":\"\",\"Options\":null}\n"),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 500);
    assert_eq!(json(&a.body), serde_json::json!({"Err": "pool nope not found", "Error": "pool nope not found"}));
    assert_eq!(a.kind, Some(ErrorKind::NotFound));
    running.stop().await;
}

/// TCP works on loopback and is refused elsewhere; concurrent calls are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_loopback_only_and_concurrent_calls() {
    let anywhere = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let log = Log::default();
    let drv: Arc<dyn Driver> = Arc::new(RecordingDriver::new("t", log.clone(), Answers::Emulate));
    let e = cnm_driver_remote::serve(anywhere, drv.clone()).await.unwrap_err();
    assert!(cnm_driverapi::chain(&e).contains("use a loopback address"), "{e}");

    let lo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = lo.local_addr().unwrap();
    let task = tokio::spawn(cnm_driver_remote::serve(lo, drv));
    let client = Arc::new(PluginClient::new("t", PluginAddress::Tcp(addr.to_string()), common::quick_config()));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let body = format!("{{\"NetworkID\":\"n{i}\",\"EndpointID\":\"e{i}\"}}\n");
            c.call("NetworkDriver.Leave", Bytes::from(body)).await.unwrap().status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let mut ids: Vec<String> =
        log.take().into_iter().map(|(_, v)| v["EndpointID"].as_str().unwrap().to_string()).collect();
    ids.sort();
    assert_eq!(ids, (0..8).map(|i| format!("e{i}")).collect::<Vec<_>>());
    task.abort();
}

/// Ids from the wire are checked before any driver sees them: a non-ASCII
/// `NetworkID` (which drivers would cut into interface names), one with a
/// path separator, an empty or an overlong one are refused with 400 and the
/// field named, in any letter case of the field.
#[tokio::test]
async fn invalid_ids_never_reach_the_driver() {
    let dir = tempfile::tempdir().unwrap();
    let (running, client, _, log) = setup(dir.path(), false);
    let long = "a".repeat(200);
    for (field, id) in
        [("NetworkID", "né-ééééééééééé"), ("networkid", "../../etc"), ("EndpointID", ""), ("NetworkID", long.as_str())]
    {
        let body = serde_json::json!({ field: id, "Options": {} }).to_string();
        let a = client.call("NetworkDriver.CreateNetwork", Bytes::from(body)).await.unwrap();
        assert_eq!(a.status, 400, "{field}={id:?}");
        let err = json(&a.body)["Err"].as_str().unwrap().to_string();
        assert!(err.contains(&format!("invalid {field}")), "{err}");
    }
    assert_eq!(log.len(), 0, "no driver call was made");
    // Docker's ids pass.
    let body = serde_json::json!({ "NetworkID": "0a1b".repeat(16), "Options": {} }).to_string();
    let a = client.call("NetworkDriver.CreateNetwork", Bytes::from(body)).await.unwrap();
    assert_eq!(a.status, 200);
    running.stop().await;
}
