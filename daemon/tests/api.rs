//! The API served in-process (privileged: the controller works in a scratch
//! host namespace; a no-op driver, no sandbox namespaces): bad requests get the right status and a clear
//! message and the daemon keeps serving; the OpenAPI document and the
//! router agree route for route.

use cnmd::api::{ApiState, DaemonFacts};
use cnmd::client::{Answer, Client};
use cnmd::listen::{ListenAddr, Listener};
use hyper::{Method, StatusCode};
use std::collections::BTreeSet;

/// A driver that accepts everything and touches nothing, so that API tests
/// can create many networks without root (`null` allows only one).
struct NoopDriver;

#[async_trait::async_trait]
impl cnm::driverapi::Driver for NoopDriver {
    fn name(&self) -> &str {
        "noop"
    }
    fn capability(&self) -> cnm::driverapi::Capability {
        cnm::driverapi::Capability::local()
    }
    async fn create_network(&self, _: cnm::driverapi::CreateNetworkRequest) -> cnm::driverapi::Result<()> {
        Ok(())
    }
    async fn delete_network(&self, _: cnm::driverapi::DeleteNetworkRequest) -> cnm::driverapi::Result<()> {
        Ok(())
    }
    async fn create_endpoint(
        &self,
        _: cnm::driverapi::CreateEndpointRequest,
    ) -> cnm::driverapi::Result<cnm::driverapi::CreateEndpointResponse> {
        Ok(Default::default())
    }
    async fn delete_endpoint(&self, _: cnm::driverapi::DeleteEndpointRequest) -> cnm::driverapi::Result<()> {
        Ok(())
    }
    async fn join(&self, _: cnm::driverapi::JoinRequest) -> cnm::driverapi::Result<cnm::driverapi::JoinResponse> {
        Ok(Default::default())
    }
    async fn leave(&self, _: cnm::driverapi::LeaveRequest) -> cnm::driverapi::Result<()> {
        Ok(())
    }
}

struct Server {
    client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    host: cnm_tests::TestHost,
}

/// The server in a scratch host, or `None` when the test must be skipped (not root).
async fn server(test: &str) -> Option<Server> {
    let host = cnm_tests::TestHost::new(test).await?;
    let config = host.config();
    let ctrl = cnm_tests::with_defaults(cnm::Controller::builder(config))
        .driver_arc(std::sync::Arc::new(NoopDriver))
        .build()
        .await
        .expect("controller");
    let state = ApiState::new(ctrl, DaemonFacts::default());
    let inflight = state.inflight.clone();
    let addr = ListenAddr::Unix(host.dir.path().join("api.sock"));
    let listener = Listener::bind(&addr).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(cnmd::server::serve(vec![listener], cnmd::server::router(state), inflight, async {
        let _ = rx.await;
    }));
    Some(Server { client: Client::new(addr), stop: Some(tx), task, host })
}

impl Server {
    async fn req(&self, method: Method, path: &str, body: Option<&str>) -> Answer {
        self.client.raw(method, path, body.map(|b| b.as_bytes().to_vec())).await.expect("request")
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
        assert!(self.host.netns_files().is_empty());
    }
}

fn message(a: &Answer) -> String {
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_else(|_| panic!("not JSON: {:?}", a.body));
    v["message"].as_str().expect("a message field").to_string()
}

async fn expect(s: &Server, method: Method, path: &str, body: Option<&str>, status: StatusCode, words: &[&str]) {
    let a = s.req(method.clone(), path, body).await;
    assert_eq!(a.status, status, "{method} {path} {body:?}: {:?}", String::from_utf8_lossy(&a.body));
    let m = message(&a);
    for w in words {
        assert!(m.contains(w), "{method} {path}: message {m:?} should mention {w:?}");
    }
}

/// `POST /networks/create` with `body` declared as `content_type`, over a
/// raw connection; the whole answer as text.
async fn raw_with_content_type(s: &Server, content_type: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::UnixStream::connect(s.host.dir.path().join("api.sock")).await.unwrap();
    let req = format!(
        "POST /networks/create HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    out
}

/// Every kind of bad request gets its status and a message naming the
/// problem, and the daemon goes on serving good requests.
#[tokio::test]
async fn bad_requests_get_clear_errors_and_the_daemon_keeps_serving() {
    let Some(s) = server("bad_requests_get_clear_errors_and_the_daemon_keeps_serving").await else { return };
    let create = |b: &'static str| (Method::POST, "/networks/create", Some(b));
    let ok = s.req(Method::POST, "/v1.41/networks/create", Some(r#"{"Name":"n1","Driver":"noop"}"#)).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);

    let (m, p, b) = create(r#"{"Name": "x", "#);
    expect(&s, m, p, b, StatusCode::BAD_REQUEST, &["invalid JSON"]).await;
    // A body not declared JSON (what a web page can send without a preflight) is refused.
    let forged = raw_with_content_type(&s, "text/plain", r#"{"Name":"forged","Driver":"noop"}"#).await;
    assert!(forged.starts_with("HTTP/1.1 400"), "{forged}");
    assert!(forged.contains("Content-Type specified (text/plain) must be 'application/json'"), "{forged}");
    let declared =
        raw_with_content_type(&s, "application/json; charset=utf-8", r#"{"Name":"declared","Driver":"noop"}"#);
    assert!(declared.await.starts_with("HTTP/1.1 201"));
    s.client.delete("/networks/declared").await.unwrap();
    // As dockerd: a field it does not know is ignored, a null is a zero
    // value (docker-py's IPAMPool sends nulls for what is not given).
    let lenient = s
        .req(
            Method::POST,
            "/networks/create",
            Some(
                r#"{"Name":"lenient","Driver":"noop","Colour":"red","Internal":null,"Labels":null,"IPAM":{"Driver":null,"Options":null,"Config":[{"Subnet":"10.9.7.0/24","IPRange":null,"Gateway":null,"AuxiliaryAddresses":null}]}}"#,
            ),
        )
        .await;
    assert_eq!(lenient.status, StatusCode::CREATED, "{:?}", lenient.body);
    let shown: serde_json::Value = s.client.get("/networks/lenient").await.unwrap();
    assert_eq!(shown["IPAM"]["Config"][0]["Subnet"], "10.9.7.0/24", "{shown}");
    assert_eq!(shown["Internal"], false, "{shown}");
    s.client.delete("/networks/lenient").await.unwrap();
    let (m, p, b) = create(r#"{"Name":"x","Internal":"yes"}"#);
    expect(&s, m, p, b, StatusCode::BAD_REQUEST, &["invalid type"]).await;
    let (m, p, b) = create(r#"{"Name":"x","Driver":"noop","IPAM":{"Config":[{"Subnet":"10.300.0.0/24"}]}}"#);
    expect(&s, m, p, b, StatusCode::BAD_REQUEST, &["Subnet", "10.300.0.0/24"]).await;
    let (m, p, b) =
        create(r#"{"Name":"x","Driver":"noop","IPAM":{"Config":[{"Subnet":"10.9.0.0/24","Gateway":"10.8.0.1"}]}}"#);
    expect(&s, m, p, b, StatusCode::BAD_REQUEST, &["10.8.0.1"]).await;
    let (m, p, b) = create(r#"{"Name":"n1","Driver":"noop"}"#);
    expect(&s, m, p, b, StatusCode::CONFLICT, &["n1 already exists"]).await;
    // dockerd's classes: an overlapping pool is 403, a swarm network 403,
    // swarm requests 503 (a node outside any swarm).
    let (m, p, b) = create(r#"{"Name":"o1","Driver":"noop","IPAM":{"Config":[{"Subnet":"10.9.8.0/24"}]}}"#);
    assert_eq!(s.req(m, p, b).await.status, StatusCode::CREATED);
    let (m, p, b) = create(r#"{"Name":"o2","Driver":"noop","IPAM":{"Config":[{"Subnet":"10.9.8.0/25"}]}}"#);
    expect(&s, m, p, b, StatusCode::FORBIDDEN, &["overlaps"]).await;
    s.client.delete("/networks/o1").await.unwrap();
    let (m, p, b) = create(r#"{"Name":"sw","Driver":"noop","Scope":"swarm"}"#);
    expect(&s, m, p, b, StatusCode::FORBIDDEN, &["not a swarm manager"]).await;
    for (m, p) in [(Method::GET, "/swarm"), (Method::POST, "/v1.41/swarm/leave")] {
        expect(&s, m, p, None, StatusCode::SERVICE_UNAVAILABLE, &["not part of a swarm"]).await;
    }
    let (m, p, b) = create(r#"{"Name":"x","Driver":"brigde"}"#);
    expect(&s, m, p, b, StatusCode::NOT_FOUND, &["brigde", "available drivers", "noop, null"]).await;
    // Any name dockerd takes (it refuses only the empty one); no control character.
    let spaced = s.req(Method::POST, "/networks/create", Some(r#"{"Name":"test 01","Driver":"noop"}"#)).await;
    assert_eq!(spaced.status, StatusCode::CREATED, "{:?}", spaced.body);
    let shown: serde_json::Value = s.client.get("/networks/test%2001").await.unwrap();
    assert_eq!(shown["Name"], "test 01");
    s.client.delete("/networks/test%2001").await.unwrap();
    let (m, p, b) = create(r#"{"Name":"","Driver":"noop"}"#);
    expect(&s, m, p, b, StatusCode::BAD_REQUEST, &["name is empty"]).await;
    let (m, p, b) = create(r#"{"Name":"two\nlines","Driver":"noop"}"#);
    expect(&s, m, p, b, StatusCode::BAD_REQUEST, &["control characters"]).await;
    let (m, p, b) = create("");
    expect(&s, m, p, b, StatusCode::BAD_REQUEST, &["empty"]).await;
    let big = format!(r#"{{"Name":"x","Labels":{{"a":"{}"}}}}"#, "x".repeat(2 << 20));
    let a = s.req(Method::POST, "/networks/create", Some(&big)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message(&a).contains("too large"));

    expect(&s, Method::GET, "/networks/nope", None, StatusCode::NOT_FOUND, &["network nope not found"]).await;
    expect(&s, Method::DELETE, "/networks/nope", None, StatusCode::NOT_FOUND, &["nope"]).await;
    let connect = r#"{"Container":"ghost"}"#;
    expect(&s, Method::POST, "/networks/nope/connect", Some(connect), StatusCode::NOT_FOUND, &["nope"]).await;
    expect(&s, Method::POST, "/networks/n1/connect", Some(connect), StatusCode::NOT_FOUND, &["sandbox ghost"]).await;
    expect(
        &s,
        Method::POST,
        "/networks/n1/connect",
        Some(r#"{"Container":"g","EndpointConfig":{"Links":["a"]}}"#),
        StatusCode::BAD_REQUEST,
        &["links"],
    )
    .await;
    expect(
        &s,
        Method::GET,
        "/networks?filters=%7B%22colour%22%3A%5B%22x%22%5D%7D",
        None,
        StatusCode::BAD_REQUEST,
        &["invalid filter 'colour'"],
    )
    .await;
    expect(
        &s,
        Method::POST,
        "/sandboxes",
        Some(r#"{"Name":"s","Dns":["not-an-ip"]}"#),
        StatusCode::BAD_REQUEST,
        &["not-an-ip"],
    )
    .await;
    expect(&s, Method::GET, "/sandboxes/ghost", None, StatusCode::NOT_FOUND, &["sandbox ghost not found"]).await;
    expect(&s, Method::GET, "/v1.99/networks", None, StatusCode::BAD_REQUEST, &["too new", "1.52"]).await;
    expect(&s, Method::GET, "/v1.12/networks", None, StatusCode::BAD_REQUEST, &["too old"]).await;
    expect(&s, Method::GET, "/nothing/here", None, StatusCode::NOT_FOUND, &["page not found"]).await;
    expect(&s, Method::PUT, "/networks", None, StatusCode::METHOD_NOT_ALLOWED, &["method not allowed"]).await;

    // Still serving: ping, list, and a good create.
    let ping = s.req(Method::GET, "/_ping", None).await;
    assert_eq!((ping.status, &ping.body[..]), (StatusCode::OK, &b"OK"[..]));
    assert_eq!(ping.headers["api-version"], cnmd::API_VERSION);
    let ok = s.req(Method::POST, "/networks/create", Some(r#"{"Name":"n2","Driver":"noop"}"#)).await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let list: Vec<serde_json::Value> = s.client.get("/networks").await.unwrap();
    assert_eq!(list.len(), 2);
    s.shutdown().await;
}

/// Docker's shapes: list filters, inspect by id prefix, prune, delete.
#[tokio::test]
async fn networks_follow_docker_shapes_and_filters() {
    let Some(s) = server("networks_follow_docker_shapes_and_filters").await else { return };
    let r: serde_json::Value = s
        .client
        .post(
            "/networks/create",
            &serde_json::json!({"Name": "a1", "Driver": "noop", "Labels": {"team": "x"},
            "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.254"}]}}),
        )
        .await
        .unwrap();
    let id = r["Id"].as_str().unwrap().to_string();
    let _: serde_json::Value =
        s.client.post("/networks/create", &serde_json::json!({"Name": "b1", "Driver": "noop"})).await.unwrap();
    let n: serde_json::Value = s.client.get(&format!("/networks/{}", &id[..5])).await.unwrap();
    assert_eq!(n["Name"], "a1");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.77.0.254");
    assert_eq!(n["Scope"], "local");
    assert!(n["Created"].as_str().unwrap().ends_with('Z'));
    let filtered: Vec<serde_json::Value> =
        s.client.get("/networks?filters=%7B%22label%22%3A%7B%22team%3Dx%22%3Atrue%7D%7D").await.unwrap();
    assert_eq!(filtered.iter().map(|n| n["Name"].as_str().unwrap()).collect::<Vec<_>>(), ["a1"]);
    let filtered: Vec<serde_json::Value> =
        s.client.get("/networks?filters=%7B%22name%22%3A%5B%22b%22%5D%7D").await.unwrap();
    assert_eq!(filtered.len(), 1);
    let pruned: serde_json::Value = s
        .client
        .post("/networks/prune?filters=%7B%22label!%22%3A%5B%22team%22%5D%7D", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(pruned["NetworksDeleted"], serde_json::json!(["b1"]));
    s.client.delete(&format!("/networks/{id}")).await.unwrap();
    let list: Vec<serde_json::Value> = s.client.get("/networks").await.unwrap();
    assert!(list.is_empty());
    s.shutdown().await;
}

/// Docker's echoes and filter rules: `Attachable` kept, `Created` with
/// nanoseconds, `name` filters as regular expressions, `id` filters as
/// prefixes, prune's `until` as RFC 3339 and as a Unix timestamp with a fraction.
#[tokio::test]
async fn docker_filter_rules_and_echoes() {
    let Some(s) = server("docker_filter_rules_and_echoes").await else { return };
    let mut ids = Vec::new();
    for (name, attachable) in [("web-1", true), ("web-2", false), ("db", false)] {
        let r: serde_json::Value = s
            .client
            .post("/networks/create", &serde_json::json!({"Name": name, "Driver": "noop", "Attachable": attachable}))
            .await
            .unwrap();
        ids.push(r["Id"].as_str().unwrap().to_string());
    }
    let n: serde_json::Value = s.client.get("/networks/web-1").await.unwrap();
    assert_eq!(n["Attachable"], true);
    let created = n["Created"].as_str().unwrap();
    assert!(created.contains('.') && created.ends_with('Z'), "RFC 3339 with nanoseconds: {created}");
    let names = |v: Vec<serde_json::Value>| -> Vec<String> {
        let mut n: Vec<String> = v.iter().map(|n| n["Name"].as_str().unwrap().to_string()).collect();
        n.sort();
        n
    };
    let q = |f: serde_json::Value| format!("/networks?filters={}", cnmd::client::encode(&f.to_string()));
    let by_regex: Vec<serde_json::Value> =
        s.client.get(&q(serde_json::json!({"name": {"^web-[0-9]$": true}}))).await.unwrap();
    assert_eq!(names(by_regex), ["web-1", "web-2"]);
    let by_id: Vec<serde_json::Value> = s.client.get(&q(serde_json::json!({"id": [&ids[2][..6]]}))).await.unwrap();
    assert_eq!(names(by_id), ["db"]);
    let not_prefix: Vec<serde_json::Value> =
        s.client.get(&q(serde_json::json!({"id": [&ids[2][3..9]]}))).await.unwrap();
    assert!(not_prefix.is_empty(), "ids match by prefix only");

    let prune = |until: &str| {
        format!("/networks/prune?filters={}", cnmd::client::encode(&serde_json::json!({"until": [until]}).to_string()))
    };
    let none: serde_json::Value = s.client.post(&prune("2001-01-01T00:00:00Z"), &serde_json::json!({})).await.unwrap();
    assert_eq!(none["NetworksDeleted"], serde_json::Value::Null, "nothing is that old (null, as dockerd): {none}");
    let future = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let all: serde_json::Value = s.client.post(&prune(&format!("{future}.5")), &serde_json::json!({})).await.unwrap();
    assert_eq!(all["NetworksDeleted"].as_array().map(|a| a.len()), Some(3), "{all}");
    let bad = s.client.raw(Method::POST, &prune("next tuesday"), Some(b"{}".to_vec())).await.unwrap();
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    s.shutdown().await;
}

fn documented() -> BTreeSet<(String, String)> {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json is valid JSON");
    let mut out = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "head", "patch"].contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// The OpenAPI document lists exactly the routes the router serves, and each
/// documented route is answered by a handler (not the router's 404 or 405),
/// with and without a version prefix.
#[tokio::test]
async fn openapi_document_matches_the_server() {
    let served: BTreeSet<(String, String)> =
        cnmd::server::routes().iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    let doc = documented();
    assert_eq!(
        served.difference(&doc).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    assert_eq!(
        doc.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not served"
    );

    let Some(s) = server("openapi_document_matches_the_server").await else { return };
    for (method, path) in &doc {
        for prefix in ["", "/v1.41"] {
            let mut p = format!("{prefix}{}", path.replace("{id}", "no-such-object"));
            if path == "/events" {
                // A stream: bounded by a time already past.
                p.push_str("?since=1&until=2");
            }
            let m: Method = method.parse().unwrap();
            let body = (m == Method::POST).then_some("{}");
            let a = s.req(m, &p, body).await;
            assert_ne!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {p}");
            if a.status == StatusCode::NOT_FOUND {
                assert_ne!(message(&a), "page not found", "{method} {p} is documented but not routed");
            }
        }
    }
    // `/info` of an API without a data root keeps its identity in memory,
    // not in a file of the working directory.
    assert!(!std::path::Path::new("engine-id").exists(), "engine-id written in {:?}", std::env::current_dir());
    s.shutdown().await;
}

/// The API on TCP without TLS is refused unless asked for by name
/// (`--insecure-tcp`), before the daemon touches anything.
#[test]
fn tcp_without_tls_needs_insecure_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnmd"))
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("run"))
        .args(["-H", "tcp://127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs TLS with client certificates") && err.contains("--insecure-tcp"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing touched");
}
