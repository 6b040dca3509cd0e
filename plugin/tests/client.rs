//! The plugin client over real unix sockets against fake plugins: Docker's
//! request shape, Docker's reading of answers, discovery, registration, and
//! faults (garbage, wrong status, empty body, closed connection, hang,
//! plugin gone, restarted, socket path that is not a socket).

mod common;

use cnm_driver_remote::{ClientConfig, Discovery, Error, PluginProvider, RetryPolicy};
use cnm_driverapi::{self as d, Driver, ErrorKind};
use cnm_ipamapi::Ipam;
use common::{Action, FakePlugin, http};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const NET: &str = r#"{"Implements":["NetworkDriver"]}"#;
const CAPS: &str = r#"{"Scope":"local","ConnectivityScope":"local"}"#;

fn provider(dir: &std::path::Path) -> PluginProvider {
    PluginProvider::new(Discovery::in_dir(dir)).client_config(common::quick_config())
}

/// A fake network plugin: activation and capabilities, then `rest` for every other call.
fn net_plugin(
    path: &std::path::Path,
    rest: impl Fn(&common::RawRequest) -> Action + Send + Sync + 'static,
) -> FakePlugin {
    FakePlugin::start(path, move |r| match r.path.as_str() {
        "/Plugin.Activate" => http(200, NET),
        "/NetworkDriver.GetCapabilities" => http(200, CAPS),
        _ => rest(r),
    })
}

fn create_network_req() -> d::CreateNetworkRequest {
    serde_json::from_str(
        r#"{"NetworkID":"n1","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{"a":"<&>"}},
            "IPv4Data":[{"AddressSpace":"LocalDefault","Gateway":"10.0.0.1/24","Pool":"10.0.0.0/24"}],"IPv6Data":[]}"#,
    )
    .unwrap()
}

fn ep_req() -> d::DeleteEndpointRequest {
    d::DeleteEndpointRequest { network_id: "n1".into(), endpoint_id: "e1".into() }
}

/// Requests carry exactly Docker's headers (no Content-Type, empty Host on a
/// unix socket), an empty body for calls without arguments, and compact JSON
/// with Go's escapes plus a newline otherwise.
#[tokio::test]
async fn requests_have_dockers_shape() {
    let dir = tempfile::tempdir().unwrap();
    let fake = net_plugin(&dir.path().join("p.sock"), |_| http(200, "{}"));
    let drv = provider(dir.path()).remote_driver("p").await.unwrap().expect("plugin found");
    drv.create_network(create_network_req()).await.unwrap();
    let reqs = fake.requests.lock().unwrap().clone();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/Plugin.Activate", "/NetworkDriver.GetCapabilities", "/NetworkDriver.CreateNetwork"]);
    for r in &reqs {
        let names: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["Host", "User-Agent", "Content-Length", "Accept"], "{}", r.path);
        let get = |n: &str| r.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str()).unwrap();
        assert_eq!(get("Host"), "");
        assert_eq!(get("User-Agent"), "Go-http-client/1.1");
        assert_eq!(get("Accept"), "application/vnd.docker.plugins.v1.2+json");
        assert_eq!(get("Content-Length"), r.body.len().to_string());
    }
    assert!(reqs[0].body.is_empty() && reqs[1].body.is_empty(), "argument-less calls have an empty body");
    let body = String::from_utf8(reqs[2].body.clone()).unwrap();
    assert_eq!(
        body,
        "{\"NetworkID\":\"n1\",\"Options\":{\"com.docker.network.enable_ipv6\":false,\"com.docker.network.generic\":{\"a\":\"\\u003c\\u0026\\u003e\"}},\"IPv4Data\":[{\"AddressSpace\":\"LocalDefault\",\"Gateway\":\"10.0.0.1/24\",\"Pool\":\"10.0.0.0/24\"}],\"IPv6Data\":[]}\n"
    );
    fake.stop().await;
}

/// Answers are read as Docker reads them: field names in any case, unknown
/// fields ignored, the error fields, 404 as success only where Docker says so.
#[tokio::test]
async fn answers_are_read_as_docker_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let fake = net_plugin(&dir.path().join("p.sock"), |r| match r.path.as_str() {
        "/NetworkDriver.Join" => http(
            200,
            r#"{"interfacename":{"srcname":"v0","dstprefix":"eth","DstName":"ignored"},"gateway":"10.0.0.1","junk":[1]}"#,
        ),
        "/NetworkDriver.CreateEndpoint" => http(200, r#"{"Interface":{"MacAddress":"","Address":""}}"#),
        "/NetworkDriver.ProgramExternalConnectivity" | "/NetworkDriver.RevokeExternalConnectivity" => {
            http(404, "404 page not found\n")
        }
        "/NetworkDriver.EndpointOperInfo" => http(404, "404 page not found\n"),
        "/NetworkDriver.Leave" => http(200, r#"{"Err":"still busy"}"#),
        "/NetworkDriver.DeleteEndpoint" => http(201, "{}"),
        "/NetworkDriver.DeleteNetwork" => http(500, r#"{"Err":"rec: DeleteNetwork refused (500)"}"#),
        _ => http(200, "{}"),
    });
    let drv = provider(dir.path()).remote_driver("p").await.unwrap().unwrap();
    assert_eq!(drv.capability(), d::Capability::local());
    let join = drv
        .join(d::JoinRequest {
            network_id: "n1".into(),
            endpoint_id: "e1".into(),
            sandbox_key: "/x".into(),
            options: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(join.interface_name.unwrap().src_name, "v0");
    assert_eq!(join.gateway, Some("10.0.0.1".parse().unwrap()));
    let ce = drv
        .create_endpoint(d::CreateEndpointRequest {
            network_id: "n1".into(),
            endpoint_id: "e1".into(),
            interface: Default::default(),
            options: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(ce.interface, None, "an interface with every field empty adds nothing");
    drv.program_external_connectivity(d::ProgramExternalConnectivityRequest {
        network_id: "n1".into(),
        endpoint_id: "e1".into(),
        options: Default::default(),
    })
    .await
    .expect("404 = not implemented = success");
    drv.revoke_external_connectivity(ep_req()).await.expect("404 = success");
    let e = drv.endpoint_oper_info(ep_req()).await.unwrap_err();
    assert_eq!(e.to_string(), "NetworkDriver.EndpointOperInfo: 404 page not found", "404 is fatal here");
    assert_eq!(e.kind(), ErrorKind::NotImplemented);
    assert_eq!(drv.leave(ep_req()).await.unwrap_err().to_string(), "remote: still busy");
    let e = drv.delete_endpoint(ep_req()).await.unwrap_err();
    assert!(e.to_string().starts_with("NetworkDriver.DeleteEndpoint:"), "only 200 is success: {e}");
    let e = drv.delete_network(d::DeleteNetworkRequest { network_id: "n1".into() }).await.unwrap_err();
    assert_eq!(e.to_string(), "NetworkDriver.DeleteNetwork: rec: DeleteNetwork refused (500)");
    fake.stop().await;
}

/// Garbage, an empty 200 body, unparsable values and plain-text errors each
/// give a clear error naming the call.
#[tokio::test]
async fn bad_answers_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fake = net_plugin(&dir.path().join("p.sock"), |r| match r.path.as_str() {
        "/NetworkDriver.CreateNetwork" => http(200, "{nope"),
        "/NetworkDriver.DeleteNetwork" => http(200, ""),
        "/NetworkDriver.Join" => http(200, r#"{"Gateway":"10.0.0.1/24"}"#),
        "/NetworkDriver.Leave" => http(500, "plain text failure"),
        "/NetworkDriver.DeleteEndpoint" => Action::Reply(b"this is not HTTP\r\n\r\n".to_vec()),
        _ => http(200, "{}"),
    });
    let drv = provider(dir.path()).remote_driver("p").await.unwrap().unwrap();
    let e = drv.create_network(create_network_req()).await.unwrap_err();
    assert!(
        e.to_string().contains("NetworkDriver.CreateNetwork") && e.to_string().contains("key must be a string"),
        "{e}"
    );
    let e = drv.delete_network(d::DeleteNetworkRequest { network_id: "n1".into() }).await.unwrap_err();
    assert_eq!(e.to_string(), "NetworkDriver.DeleteNetwork: invalid answer from plugin: EOF");
    let e = drv
        .join(d::JoinRequest {
            network_id: "n1".into(),
            endpoint_id: "e1".into(),
            sandbox_key: "/x".into(),
            options: Default::default(),
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("NetworkDriver.Join: invalid answer"), "{e}");
    assert_eq!(drv.leave(ep_req()).await.unwrap_err().to_string(), "NetworkDriver.Leave: plain text failure");
    let e = drv.delete_endpoint(ep_req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("NetworkDriver.DeleteEndpoint: cannot reach plugin"), "{e}");
    fake.stop().await;
}

/// A plugin that closes the connection is retried (Docker's rule) and then
/// reported as unreachable; one that hangs fails with a timeout error.
#[tokio::test]
async fn closed_connection_is_retried_and_a_hang_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let fake = net_plugin(&dir.path().join("p.sock"), |r| match r.path.as_str() {
        "/NetworkDriver.CreateNetwork" => Action::Close,
        "/NetworkDriver.Join" => Action::Hang,
        _ => http(200, "{}"),
    });
    let config = ClientConfig {
        timeout: Duration::from_millis(300),
        retry: RetryPolicy::new(Duration::from_millis(20), Duration::from_millis(200)),
    };
    let p = PluginProvider::new(Discovery::in_dir(dir.path())).client_config(config);
    let drv = p.remote_driver("p").await.unwrap().unwrap();
    let e = drv.create_network(create_network_req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let attempts = fake.paths().iter().filter(|p| *p == "/NetworkDriver.CreateNetwork").count();
    assert!(attempts >= 3, "retried: {attempts} attempts");
    assert_eq!(
        fake.paths().iter().filter(|p| *p == "/Plugin.Activate").count(),
        1,
        "no new handshake: {:?}",
        fake.paths()
    );

    let start = Instant::now();
    let e = drv
        .join(d::JoinRequest {
            network_id: "n1".into(),
            endpoint_id: "e1".into(),
            sandbox_key: "/x".into(),
            options: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("did not answer within 300ms"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2), "timeouts are not retried: {:?}", start.elapsed());
    fake.stop().await;
}

/// A plugin that disappears between calls gives an unreachable error; when
/// it comes back (restarted) the next call simply reaches it, as in Docker:
/// one `Plugin.Activate` for the client's lifetime, the same calls again.
#[tokio::test]
async fn plugin_gone_then_restarted_gets_the_call_without_a_new_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.sock");
    let fake = net_plugin(&path, |_| http(200, "{}"));
    let drv = provider(dir.path()).remote_driver("p").await.unwrap().unwrap();
    drv.create_network(create_network_req()).await.unwrap();
    fake.stop().await;
    let e = drv.delete_network(d::DeleteNetworkRequest { network_id: "n1".into() }).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "names the address: {e}");

    let again = net_plugin(&path, |_| http(200, "{}"));
    drv.delete_network(d::DeleteNetworkRequest { network_id: "n1".into() }).await.unwrap();
    drv.leave(ep_req()).await.unwrap();
    assert_eq!(again.paths(), ["/NetworkDriver.DeleteNetwork", "/NetworkDriver.Leave"]);
    again.stop().await;

    // Restarted while a kept connection was idle: the call is sent again on a new one, with its body.
    let third = net_plugin(&path, |r| if r.body.is_empty() { http(500, "empty body") } else { http(200, "{}") });
    drv.leave(ep_req()).await.unwrap();
    assert_eq!(third.paths(), ["/NetworkDriver.Leave"]);
    third.stop().await;
}

/// Discovery: a socket shadows a spec file, the first spec directory
/// shadows the second, `.spec` and `.json` with TCP addresses work, a path
/// that is not a socket is no plugin, and an absent plugin is answered at once.
#[tokio::test]
async fn discovery_follows_dockers_order() {
    let sockets = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    let usr = tempfile::tempdir().unwrap();
    let discovery = Discovery {
        socket_dirs: vec![sockets.path().to_path_buf()],
        spec_dirs: vec![etc.path().to_path_buf(), usr.path().to_path_buf()],
    };
    // A TCP plugin on loopback, named by a .spec and by a .json file.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let log = common::Log::default();
    let server = cnm_driver_remote::PluginServer::new().with_driver(Arc::new(common::RecordingDriver::new(
        "t",
        log.clone(),
        common::Answers::Emulate,
    )));
    let task = tokio::spawn(server.serve(tcp));
    std::fs::write(usr.path().join("t.spec"), format!("tcp://127.0.0.1:{port}\n")).unwrap();
    std::fs::create_dir(etc.path().join("j")).unwrap();
    std::fs::write(etc.path().join("j/j.json"), format!(r#"{{"Name":"other","Addr":"tcp://127.0.0.1:{port}"}}"#))
        .unwrap();
    // Shadowing: the /etc-like directory wins over the /usr/lib-like one.
    std::fs::write(etc.path().join("s.spec"), "unix:///nonexistent/s.sock").unwrap();
    std::fs::write(usr.path().join("s.spec"), format!("tcp://127.0.0.1:{port}")).unwrap();
    // A regular file where a socket should be; a spec without a scheme.
    std::fs::write(sockets.path().join("f.sock"), "").unwrap();
    std::fs::write(etc.path().join("bad.spec"), "127.0.0.1:1").unwrap();

    let spec = discovery.lookup("s").unwrap().unwrap();
    assert_eq!(spec.address, cnm_driver_remote::PluginAddress::Unix("/nonexistent/s.sock".into()));
    assert_eq!(discovery.lookup("f").unwrap(), None, "a path that is not a socket is not a plugin");
    let e = discovery.lookup("bad").unwrap_err();
    assert!(e.to_string().contains("unknown protocol"), "{e}");
    // A spec asking for TLS is refused, never used in plaintext.
    let tls =
        format!(r#"{{"Addr":"tcp://127.0.0.1:{port}","TLSConfig":{{"InsecureSkipVerify":false,"CAFile":"/ca.pem"}}}}"#);
    std::fs::write(etc.path().join("tls.json"), tls).unwrap();
    let e = discovery.lookup("tls").unwrap_err();
    assert!(e.to_string().contains("refusing to talk to the plugin in plaintext"), "{e}");
    std::fs::remove_file(etc.path().join("tls.json")).unwrap();
    assert_eq!(discovery.names(), ["bad", "j", "s", "t"]);

    let p = PluginProvider::new(discovery.clone()).client_config(common::quick_config());
    for name in ["t", "j"] {
        let drv = p.remote_driver(name).await.unwrap().expect(name);
        assert_eq!(drv.name(), name, "the name comes from the file name");
        drv.create_network(create_network_req()).await.unwrap();
    }
    assert_eq!(log.methods(), ["NetworkDriver.CreateNetwork", "NetworkDriver.CreateNetwork"]);

    // A socket shadows a spec of the same name.
    let sock = FakePlugin::start(&sockets.path().join("t.sock"), |r| match r.path.as_str() {
        "/Plugin.Activate" => http(200, NET),
        "/NetworkDriver.GetCapabilities" => http(200, r#"{"Scope":"global"}"#),
        _ => http(200, "{}"),
    });
    let fresh = PluginProvider::new(discovery.clone()).client_config(common::quick_config());
    assert_eq!(fresh.remote_driver("t").await.unwrap().unwrap().capability().data_scope, d::Scope::Global);

    // A spec naming something that is not a socket: a clear transport error.
    let e = fresh.remote_driver("s").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("Plugin.Activate"), "{e}");

    let start = Instant::now();
    assert!(fresh.remote_driver("absent").await.unwrap().is_none());
    assert!(start.elapsed() < Duration::from_millis(100), "absent plugins answer fast: {:?}", start.elapsed());
    let waiting = PluginProvider::new(discovery)
        .lookup_retry(RetryPolicy::new(Duration::from_millis(10), Duration::from_millis(100)));
    let start = Instant::now();
    assert!(waiting.remote_driver("absent").await.unwrap().is_none());
    assert!(start.elapsed() >= Duration::from_millis(70), "Docker-style lookup retries: {:?}", start.elapsed());
    sock.stop().await;
    task.abort();
}

/// Registration as Docker does it: a failed activation is retried on next
/// use; a bad scope fails registration; IPAM capabilities are optional (404
/// fine) but address spaces are mandatory; the IPAM error field is `Error`;
/// a plugin lacking the role is refused clearly.
#[tokio::test]
async fn registration_and_ipam_answers() {
    let dir = tempfile::tempdir().unwrap();
    let activations = Arc::new(AtomicUsize::new(0));
    let a = activations.clone();
    let fake = FakePlugin::start(&dir.path().join("i.sock"), move |r| match r.path.as_str() {
        "/Plugin.Activate" if a.fetch_add(1, Ordering::SeqCst) == 0 => http(500, r#"{"Err":"not ready"}"#),
        "/Plugin.Activate" => http(200, r#"{"Implements":["IpamDriver","VolumeDriver"]}"#),
        "/IpamDriver.GetCapabilities" => http(404, "404 page not found\n"),
        "/IpamDriver.GetDefaultAddressSpaces" => {
            http(200, r#"{"localdefaultaddressspace":"L","GlobalDefaultAddressSpace":"G"}"#)
        }
        "/IpamDriver.RequestPool" => http(200, r#"{"PoolID":"L/10.9.0.0/24","Pool":"10.9.0.0/24","Data":null}"#),
        "/IpamDriver.RequestAddress" if r.body.windows(16).any(|w| w == b"\"Address\":\"10.9.") => {
            http(200, r#"{"Address":"10.9.0.7"}"#)
        }
        "/IpamDriver.RequestAddress" => http(200, r#"{"Address":""}"#),
        "/IpamDriver.ReleasePool" => http(200, r#"{"Error":"pool busy","Err":""}"#),
        "/IpamDriver.ReleaseAddress" => http(200, r#"{"Err":"ignored at 200 for IPAM"}"#),
        _ => http(200, "{}"),
    });
    let p = provider(dir.path());
    let e = p.remote_ipam("i").await.unwrap_err();
    assert_eq!(e.to_string(), "Plugin.Activate: not ready");
    let ipam = p.remote_ipam("i").await.unwrap().expect("activated on the next use");
    assert_eq!(ipam.capability(), cnm_ipamapi::IpamCapability::default(), "404: no capabilities");
    let spaces = ipam.default_address_spaces().await.unwrap();
    assert_eq!((spaces.local.as_str(), spaces.global.as_str()), ("L", "G"));
    let calls_before = fake.paths().len();
    ipam.default_address_spaces().await.unwrap();
    assert_eq!(fake.paths().len(), calls_before, "address spaces are learnt once, at registration");
    let pool = ipam
        .request_pool(cnm_ipamapi::RequestPoolRequest {
            address_space: "L".into(),
            pool: None,
            sub_pool: None,
            options: Default::default(),
            v6: false,
        })
        .await
        .unwrap();
    assert_eq!(pool.pool, "10.9.0.0/24".parse::<ipnet::IpNet>().unwrap());
    let ra = |address: Option<std::net::IpAddr>| cnm_ipamapi::RequestAddressRequest {
        pool_id: pool.pool_id.clone(),
        address,
        options: None,
    };
    let e = ipam.request_address(ra(None)).await.unwrap_err();
    assert!(e.to_string().contains("no address returned"), "{e}");
    let e = ipam.request_address(ra(Some("10.9.0.7".parse().unwrap()))).await.unwrap_err();
    assert!(e.to_string().contains("invalid CIDR address: 10.9.0.7"), "a bare IP is refused: {e}");
    let e = ipam.release_pool(cnm_ipamapi::ReleasePoolRequest { pool_id: pool.pool_id.clone() }).await.unwrap_err();
    assert_eq!(e.to_string(), "remote: pool busy");
    ipam.release_address(cnm_ipamapi::ReleaseAddressRequest {
        pool_id: pool.pool_id.clone(),
        address: "10.9.0.7".parse().unwrap(),
    })
    .await
    .expect("`Err` at 200 is not an IPAM error");
    let e = p.remote_driver("i").await.unwrap_err();
    assert!(matches!(e, Error::RoleNotImplemented { .. }), "{e}");
    assert_eq!(e.to_string(), "plugin \"i\" does not implement the requested driver (NetworkDriver)");
    fake.stop().await;

    // A network plugin with an invalid scope is not registered.
    let bad = FakePlugin::start(&dir.path().join("b.sock"), |r| match r.path.as_str() {
        "/Plugin.Activate" => http(200, NET),
        _ => http(200, r#"{"Scope":"planet"}"#),
    });
    let e = p.remote_driver("b").await.unwrap_err();
    assert!(e.to_string().contains("invalid scope \"planet\""), "{e}");
    bad.stop().await;
}
