//! Test support shared by the integration tests: a recording driver and
//! IPAM (emulating the recorder plugin of the traces), a raw HTTP fake
//! plugin for fault tests, plugin servers on unix sockets, and the traces.

#![allow(dead_code)]

use async_trait::async_trait;
use cnm_driverapi as d;
use cnm_ipamapi as i;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One call a recording driver or IPAM received: `Subsystem.Method` and the typed request as JSON.
pub type Call = (String, Value);

/// The calls seen by the test plugins, in arrival order (shared by driver and IPAM).
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<Call>>>);

impl Log {
    pub fn push<T: Serialize>(&self, method: &str, req: &T) {
        let v = serde_json::to_value(req).expect("encode request");
        self.0.lock().unwrap().push((method.to_string(), v));
    }
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn methods(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|(m, _)| m.clone()).collect()
    }
}

/// How a recording plugin answers.
pub enum Answers {
    /// Answers popped in order (conformance replay): JSON of the typed response.
    Queue(Mutex<VecDeque<Value>>),
    /// Answers as the traces' recorder plugin did.
    Emulate,
}

/// A network driver that records every call and answers as the traces' recorder did.
pub struct RecordingDriver {
    pub name: String,
    pub log: Log,
    pub answers: Answers,
    /// Also answer an IPv6 gateway at join (`join_gateway6` in the recorder's configuration).
    pub gateway6: bool,
    nets: Mutex<HashMap<String, d::CreateNetworkRequest>>,
    eps: Mutex<HashMap<String, d::CreateEndpointRequest>>,
    /// Fail the next call of this method with this error.
    pub fail: Mutex<Option<(String, d::Error)>>,
    /// Never answer calls of this method.
    pub hang: Mutex<Option<String>>,
}

impl RecordingDriver {
    pub fn new(name: &str, log: Log, answers: Answers) -> Self {
        RecordingDriver {
            name: name.into(),
            log,
            answers,
            gateway6: false,
            nets: Mutex::default(),
            eps: Mutex::default(),
            fail: Mutex::default(),
            hang: Mutex::default(),
        }
    }

    fn next<T: serde::de::DeserializeOwned>(&self, method: &str) -> Option<T> {
        match &self.answers {
            Answers::Queue(q) => {
                let v = q.lock().unwrap().pop_front().unwrap_or_else(|| panic!("no queued answer for {method}"));
                Some(serde_json::from_value(v).unwrap_or_else(|e| panic!("queued answer for {method}: {e}")))
            }
            Answers::Emulate => None,
        }
    }

    fn check(&self, method: &str) -> d::Result<()> {
        let mut f = self.fail.lock().unwrap();
        if f.as_ref().is_some_and(|(m, _)| m == method) {
            return Err(f.take().unwrap().1);
        }
        Ok(())
    }

    async fn record<T: Serialize>(&self, method: &str, req: &T) -> d::Result<()> {
        self.log.push(&format!("NetworkDriver.{method}"), req);
        if self.hang.lock().unwrap().as_deref() == Some(method) {
            std::future::pending::<()>().await;
        }
        self.check(method)
    }
}

#[async_trait]
impl d::Driver for RecordingDriver {
    fn name(&self) -> &str {
        &self.name
    }
    fn capability(&self) -> d::Capability {
        d::Capability::local()
    }
    async fn create_network(&self, req: d::CreateNetworkRequest) -> d::Result<()> {
        self.record("CreateNetwork", &req).await?;
        self.next::<Value>("CreateNetwork");
        self.nets.lock().unwrap().insert(req.network_id.clone(), req);
        Ok(())
    }
    async fn delete_network(&self, req: d::DeleteNetworkRequest) -> d::Result<()> {
        self.record("DeleteNetwork", &req).await?;
        self.next::<Value>("DeleteNetwork");
        Ok(())
    }
    async fn create_endpoint(&self, req: d::CreateEndpointRequest) -> d::Result<d::CreateEndpointResponse> {
        self.record("CreateEndpoint", &req).await?;
        self.eps.lock().unwrap().insert(req.endpoint_id.clone(), req.clone());
        if let Some(r) = self.next("CreateEndpoint") {
            return Ok(r);
        }
        if req.interface.mac_address.is_some() {
            return Ok(d::CreateEndpointResponse::default());
        }
        let b = req.endpoint_id.as_bytes();
        let mac = d::MacAddress([0x02, 0x52, b[0], b[1], b[2], b[3]]);
        Ok(d::CreateEndpointResponse {
            interface: Some(d::EndpointInterface { mac_address: Some(mac), ..Default::default() }),
        })
    }
    async fn delete_endpoint(&self, req: d::DeleteEndpointRequest) -> d::Result<()> {
        self.record("DeleteEndpoint", &req).await?;
        self.next::<Value>("DeleteEndpoint");
        Ok(())
    }
    async fn endpoint_oper_info(&self, req: d::EndpointOperInfoRequest) -> d::Result<d::EndpointOperInfoResponse> {
        self.record("EndpointOperInfo", &req).await?;
        Ok(self.next("EndpointOperInfo").unwrap_or_default())
    }
    async fn join(&self, req: d::JoinRequest) -> d::Result<d::JoinResponse> {
        self.record("Join", &req).await?;
        if let Some(r) = self.next("Join") {
            return Ok(r);
        }
        // The recorder's rule: the gateway of the pool holding the endpoint's address.
        let ep = self.eps.lock().unwrap().get(&req.endpoint_id).cloned();
        let net = self.nets.lock().unwrap().get(&req.network_id).cloned();
        let (Some(ep), Some(net)) = (ep, net) else { return Ok(d::JoinResponse::default()) };
        let gw = |addr: Option<ipnet::IpNet>, pools: &[d::IpamData]| {
            addr.and_then(|a| pools.iter().find(|p| p.pool.contains(&a.addr())).and_then(|p| p.gateway))
                .map(|g| g.addr())
        };
        let mut resp = d::JoinResponse::default();
        if let Some(IpAddr::V4(v4)) = gw(ep.interface.address, &net.ipv4_data) {
            resp.gateway = Some(v4);
        }
        if self.gateway6
            && let Some(IpAddr::V6(v6)) = gw(ep.interface.address_ipv6, &net.ipv6_data)
        {
            resp.gateway_ipv6 = Some(v6);
        }
        Ok(resp)
    }
    async fn leave(&self, req: d::LeaveRequest) -> d::Result<()> {
        self.record("Leave", &req).await?;
        self.next::<Value>("Leave");
        Ok(())
    }
    async fn program_external_connectivity(&self, req: d::ProgramExternalConnectivityRequest) -> d::Result<()> {
        self.record("ProgramExternalConnectivity", &req).await?;
        self.next::<Value>("ProgramExternalConnectivity");
        Ok(())
    }
    async fn revoke_external_connectivity(&self, req: d::RevokeExternalConnectivityRequest) -> d::Result<()> {
        self.record("RevokeExternalConnectivity", &req).await?;
        self.next::<Value>("RevokeExternalConnectivity");
        Ok(())
    }
}

/// A pool of the recording IPAM: the pool, its sub-pool, the addresses given out.
type PoolState = (ipnet::IpNet, Option<ipnet::IpNet>, BTreeSet<IpAddr>);

/// An IPAM that records every call and answers as the traces' recorder did:
/// address spaces `RecLocal`/`RecGlobal`, pool ids `<space>/<pool>[/<subpool>]`,
/// self-chosen pools 10.231.100.0/24 and fd00:231:100::/64, gateways the
/// first address, endpoints the lowest free address of the (sub-)pool.
pub struct RecordingIpam {
    pub log: Log,
    pub answers: Answers,
    pools: Mutex<HashMap<String, PoolState>>,
}

impl RecordingIpam {
    pub fn new(log: Log, answers: Answers) -> Self {
        RecordingIpam { log, answers, pools: Mutex::default() }
    }

    fn next<T: serde::de::DeserializeOwned>(&self, method: &str) -> Option<T> {
        match &self.answers {
            Answers::Queue(q) => {
                let v = q.lock().unwrap().pop_front().unwrap_or_else(|| panic!("no queued answer for {method}"));
                Some(serde_json::from_value(v).unwrap_or_else(|e| panic!("queued answer for {method}: {e}")))
            }
            Answers::Emulate => None,
        }
    }
}

fn nth(net: ipnet::IpNet, n: u128) -> IpAddr {
    match net {
        ipnet::IpNet::V4(v) => IpAddr::V4((u32::from(v.network()) + n as u32).into()),
        ipnet::IpNet::V6(v) => IpAddr::V6((u128::from(v.network()) + n).into()),
    }
}

#[async_trait]
impl i::Ipam for RecordingIpam {
    fn capability(&self) -> i::IpamCapability {
        i::IpamCapability::default()
    }
    async fn default_address_spaces(&self) -> i::Result<i::AddressSpaces> {
        self.log.push("IpamDriver.GetDefaultAddressSpaces", &Value::Null);
        Ok(i::AddressSpaces { local: "RecLocal".into(), global: "RecGlobal".into() })
    }
    async fn request_pool(&self, req: i::RequestPoolRequest) -> i::Result<i::RequestPoolResponse> {
        self.log.push("IpamDriver.RequestPool", &req);
        if let Some(r) = self.next("RequestPool") {
            return Ok(r);
        }
        let pool = req.pool.unwrap_or_else(|| {
            if req.v6 { "fd00:231:100::/64".parse().unwrap() } else { "10.231.100.0/24".parse().unwrap() }
        });
        let mut id = format!("{}/{}", req.address_space, pool);
        if let Some(s) = req.sub_pool {
            id = format!("{id}/{s}");
        }
        self.pools.lock().unwrap().insert(id.clone(), (pool, req.sub_pool, BTreeSet::new()));
        Ok(i::RequestPoolResponse { pool_id: id, pool, data: BTreeMap::new() })
    }
    async fn release_pool(&self, req: i::ReleasePoolRequest) -> i::Result<()> {
        self.log.push("IpamDriver.ReleasePool", &req);
        self.next::<Value>("ReleasePool");
        self.pools.lock().unwrap().remove(&req.pool_id);
        Ok(())
    }
    async fn request_address(&self, req: i::RequestAddressRequest) -> i::Result<i::RequestAddressResponse> {
        self.log.push("IpamDriver.RequestAddress", &req);
        if let Some(r) = self.next("RequestAddress") {
            return Ok(r);
        }
        let mut pools = self.pools.lock().unwrap();
        let (pool, sub, used) =
            pools.get_mut(&req.pool_id).ok_or_else(|| i::Error::PoolNotFound(req.pool_id.clone()))?;
        let addr = match req.address {
            Some(a) => a,
            None if req.is_gateway() => nth(*pool, 1),
            None => {
                let range = sub.unwrap_or(*pool);
                (1..1 << 16).map(|n| nth(range, n)).find(|a| !used.contains(a) && range.contains(a)).unwrap()
            }
        };
        used.insert(addr);
        let address = ipnet::IpNet::new(addr, pool.prefix_len()).unwrap();
        Ok(i::RequestAddressResponse { address, data: BTreeMap::new() })
    }
    async fn release_address(&self, req: i::ReleaseAddressRequest) -> i::Result<()> {
        self.log.push("IpamDriver.ReleaseAddress", &req);
        self.next::<Value>("ReleaseAddress");
        if let Some((_, _, used)) = self.pools.lock().unwrap().get_mut(&req.pool_id) {
            used.remove(&req.address);
        }
        Ok(())
    }
}

/// A plugin server task on a unix socket; `stop` ends it as a dying process would.
pub struct RunningPlugin {
    pub path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl RunningPlugin {
    /// Serves `server` at `path` (the directory must exist).
    pub fn start(path: &Path, server: cnm_driver_remote::PluginServer) -> RunningPlugin {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).expect("bind plugin socket");
        let task = tokio::spawn(async move {
            if let Err(e) = server.serve(listener).await {
                panic!("plugin server failed: {e}");
            }
        });
        RunningPlugin { path: path.to_path_buf(), task }
    }

    /// Stops the server (every connection is closed) and removes its socket.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A request as a raw fake plugin received it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub path: String,
    /// Header lines in wire order, as (name, value).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a raw fake plugin does with a request.
pub enum Action {
    /// Writes these bytes (a whole HTTP answer) and keeps the connection.
    Reply(Vec<u8>),
    /// Closes the connection without answering.
    Close,
    /// Never answers (keeps the connection open).
    Hang,
}

/// An HTTP answer with `status` and `body`.
pub fn http(status: u16, body: &str) -> Action {
    Action::Reply(
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// A fake plugin speaking raw HTTP/1.1, for bad answers and faults.
pub struct FakePlugin {
    pub path: PathBuf,
    pub requests: Arc<Mutex<Vec<RawRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

type Responder = Arc<dyn Fn(&RawRequest) -> Action + Send + Sync>;

impl FakePlugin {
    pub fn start(path: &Path, respond: impl Fn(&RawRequest) -> Action + Send + Sync + 'static) -> FakePlugin {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).expect("bind fake plugin");
        let requests: Arc<Mutex<Vec<RawRequest>>> = Arc::default();
        let respond: Responder = Arc::new(respond);
        let reqs = requests.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    Ok((s, _)) = listener.accept() => {
                        conns.spawn(serve_raw(s, reqs.clone(), respond.clone()));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        FakePlugin { path: path.to_path_buf(), requests, task }
    }

    pub fn paths(&self) -> Vec<String> {
        self.requests.lock().unwrap().iter().map(|r| r.path.clone()).collect()
    }

    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve_raw(mut s: tokio::net::UnixStream, reqs: Arc<Mutex<Vec<RawRequest>>>, respond: Responder) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let path = lines.next().unwrap_or("").split(' ').nth(1).unwrap_or("").to_string();
        let headers: Vec<(String, String)> =
            lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.to_string(), v.trim().to_string()))).collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        buf.drain(..head_end + 4);
        while buf.len() < len {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..len).collect();
        let req = RawRequest { path, headers, body };
        let action = respond(&req);
        reqs.lock().unwrap().push(req);
        match action {
            Action::Reply(bytes) => {
                if s.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Action::Close => return,
            Action::Hang => std::future::pending::<()>().await,
        }
    }
}

/// A client configuration for tests: short timeout, quick retries.
pub fn quick_config() -> cnm_driver_remote::ClientConfig {
    cnm_driver_remote::ClientConfig {
        timeout: Duration::from_secs(2),
        retry: cnm_driver_remote::RetryPolicy::new(Duration::from_millis(20), Duration::from_millis(200)),
    }
}
