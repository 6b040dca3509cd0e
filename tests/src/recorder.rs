//! A plugin that records every HTTP call it receives as it arrived (path,
//! headers, JSON body) and answers as the recorder plugin of the visible
//! conformance traces did (configured by the `plugins` entry of a trace's
//! steps file). Hand-written HTTP/1.1 with keep-alive: what is recorded is
//! exactly what the host sent.
//!
//! Its answers are the recorder's, except that `Join` names no interface
//! (the recorder created a veth; here the sandbox simply gets none).

use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// One call as received: plugin name, path (`/Subsystem.Method`), headers
/// in wire order, and the body decoded as JSON (`null` when empty).
#[derive(Debug, Clone)]
pub struct Call {
    /// The plugin the call was addressed to.
    pub plugin: String,
    /// `/Subsystem.Method`.
    pub path: String,
    /// Header lines as (name, value).
    pub headers: Vec<(String, String)>,
    /// The body as JSON; `Value::Null` for an empty body.
    pub body: Value,
}

/// The calls every recorder of one test received, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    /// Takes the calls recorded so far.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A running recorder plugin on a unix socket.
pub struct RecorderPlugin {
    /// The socket.
    pub path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

/// The recorder's memory: networks and endpoints as created, IPAM pools.
#[derive(Default)]
struct Memory {
    networks: HashMap<String, Value>,
    endpoints: HashMap<String, Value>,
    /// Pool id → (pool, sub-pool, addresses given out).
    pools: HashMap<String, (ipnet::IpNet, Option<ipnet::IpNet>, BTreeSet<IpAddr>)>,
}

impl RecorderPlugin {
    /// Serves plugin `name`, configured as `conf` (the steps file's entry:
    /// `implements`, `scope`, `connectivity_scope`, `join_gateway6`,
    /// `ipam_caps`, `ipam_address_spaces`; and, beyond the traces, `fail`:
    /// method → the error every call of it is answered), at `path`; calls
    /// go to `calls`.
    pub fn start(path: &Path, name: &str, conf: &Value, calls: Calls) -> RecorderPlugin {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).expect("bind the recorder's socket");
        let conf = Arc::new(conf.clone());
        let name = name.to_string();
        let memory = Arc::new(Mutex::new(Memory::default()));
        let task = tokio::spawn(async move {
            // Connections end with the plugin (dropping the set aborts them).
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (conf, name, memory, calls) = (conf.clone(), name.clone(), memory.clone(), calls.clone());
                connections.spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut r = BufReader::new(r);
                    while let Some((path, headers, body)) = read_request(&mut r).await {
                        let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
                            Value::Null
                        } else {
                            serde_json::from_slice(&body).unwrap_or_else(|e| {
                                Value::String(format!("undecodable body ({e}): {}", String::from_utf8_lossy(&body)))
                            })
                        };
                        let answer = answer(&conf, &mut memory.lock().unwrap(), &path, &body);
                        calls.0.lock().unwrap().push(Call { plugin: name.clone(), path, headers, body });
                        let text = answer.to_string();
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\nContent-Length: {}\r\n\r\n",
                            text.len()
                        );
                        if w.write_all(head.as_bytes()).await.is_err() || w.write_all(text.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        RecorderPlugin { path: path.to_path_buf(), task }
    }

    /// Stops serving, as a dying process would: the socket goes, open connections close.
    pub fn stop(self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one request: path, headers and body (by `Content-Length`); `None` at end of stream.
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> Option<(String, Vec<(String, String)>, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        if k.eq_ignore_ascii_case("content-length") {
            length = v.parse().ok()?;
        }
        headers.push((k, v));
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).await.ok()?;
    Some((path, headers, body))
}

/// The `n`-th address of `net`.
fn nth(net: ipnet::IpNet, n: u128) -> IpAddr {
    match net {
        ipnet::IpNet::V4(v) => IpAddr::V4((u32::from(v.network()).wrapping_add(n as u32)).into()),
        ipnet::IpNet::V6(v) => IpAddr::V6((u128::from(v.network()).wrapping_add(n)).into()),
    }
}

/// The address of a CIDR string (`"10.0.0.2/24"` → 10.0.0.2).
fn cidr_addr(v: &Value) -> Option<ipnet::IpNet> {
    v.as_str().filter(|s| !s.is_empty())?.parse().ok()
}

/// What the traces' recorder answered to `path` with `body`.
fn answer(conf: &Value, m: &mut Memory, path: &str, body: &Value) -> Value {
    // `fail` in the configuration: methods answered with an error, as a
    // misbehaving plugin does (`{"Err": …}`).
    if let Some(err) = conf.get("fail").and_then(|f| f.get(path.trim_start_matches('/'))).and_then(Value::as_str) {
        return json!({ "Err": err });
    }
    match path.trim_start_matches('/') {
        "Plugin.Activate" => json!({ "Implements": conf["implements"] }),
        "NetworkDriver.GetCapabilities" => {
            let mut caps = json!({ "Scope": conf["scope"], "ConnectivityScope": conf["connectivity_scope"] });
            // `gw_alloc_check` in the configuration: Docker 28's GwAllocChecker, answered with it.
            if conf.get("gw_alloc_check").is_some() {
                caps["GwAllocChecker"] = json!(true);
            }
            caps
        }
        "NetworkDriver.GwAllocCheck" => conf.get("gw_alloc_check").cloned().unwrap_or(json!({})),
        "NetworkDriver.CreateNetwork" => {
            m.networks.insert(body["NetworkID"].as_str().unwrap_or_default().to_string(), body.clone());
            json!({})
        }
        "NetworkDriver.CreateEndpoint" => {
            let id = body["EndpointID"].as_str().unwrap_or_default().to_string();
            m.endpoints.insert(id.clone(), body.clone());
            if body["Interface"]["MacAddress"].as_str().is_some_and(|s| !s.is_empty()) {
                return json!({});
            }
            let b = id.as_bytes();
            let hex = |i: usize| std::str::from_utf8(&b[i..i + 2]).unwrap_or("00").to_string();
            json!({ "Interface": { "MacAddress": format!("02:52:{}:{}:{}:{}", hex(0), hex(2), hex(4), hex(6)) } })
        }
        "NetworkDriver.Join" => {
            // The gateway of the pool holding the endpoint's address.
            let ep = m.endpoints.get(body["EndpointID"].as_str().unwrap_or_default());
            let net = m.networks.get(body["NetworkID"].as_str().unwrap_or_default());
            let (Some(ep), Some(net)) = (ep, net) else { return json!({}) };
            let gateway = |addr: &Value, pools: &Value| -> Option<String> {
                let a = cidr_addr(addr)?.addr();
                pools.as_array()?.iter().find_map(|p| {
                    let pool: ipnet::IpNet = p["Pool"].as_str()?.parse().ok()?;
                    pool.contains(&a).then(|| cidr_addr(&p["Gateway"]).map(|g| g.addr().to_string()))?
                })
            };
            let mut out = json!({});
            if let Some(g) = gateway(&ep["Interface"]["Address"], &net["IPv4Data"]) {
                out["Gateway"] = json!(g);
            }
            if conf.get("join_gateway6").is_some()
                && let Some(g) = gateway(&ep["Interface"]["AddressIPv6"], &net["IPv6Data"])
            {
                out["GatewayIPv6"] = json!(g);
            }
            out
        }
        // The recorder's answer; `oper_info` in the configuration answers more.
        "NetworkDriver.EndpointOperInfo" => json!({ "Value": conf.get("oper_info").cloned().unwrap_or(json!({})) }),
        "IpamDriver.GetCapabilities" => conf["ipam_caps"].clone(),
        "IpamDriver.GetDefaultAddressSpaces" => conf["ipam_address_spaces"].clone(),
        "IpamDriver.RequestPool" => {
            let v6 = body["V6"].as_bool().unwrap_or(false);
            let pool = cidr_addr(&body["Pool"]).unwrap_or_else(|| {
                if v6 { "fd00:231:100::/64".parse().unwrap() } else { "10.231.100.0/24".parse().unwrap() }
            });
            let sub = cidr_addr(&body["SubPool"]);
            let mut id = format!("{}/{}", body["AddressSpace"].as_str().unwrap_or_default(), pool);
            if let Some(s) = sub {
                id = format!("{id}/{s}");
            }
            m.pools.insert(id.clone(), (pool, sub, BTreeSet::new()));
            json!({ "PoolID": id, "Pool": pool.to_string(), "Data": {} })
        }
        "IpamDriver.RequestAddress" => {
            let Some((pool, sub, used)) = m.pools.get_mut(body["PoolID"].as_str().unwrap_or_default()) else {
                return json!({ "Error": "no such pool" });
            };
            let gateway = body["Options"]["RequestAddressType"] == "com.docker.network.gateway";
            let addr = match body["Address"].as_str().and_then(|a| a.parse::<IpAddr>().ok()) {
                Some(a) => a,
                None if gateway => nth(*pool, 1),
                None => {
                    let range = sub.unwrap_or(*pool);
                    match (1..1 << 16).map(|n| nth(range, n)).find(|a| !used.contains(a) && range.contains(a)) {
                        Some(a) => a,
                        None => return json!({ "Error": "no address left" }),
                    }
                }
            };
            used.insert(addr);
            json!({ "Address": format!("{addr}/{}", pool.prefix_len()), "Data": {} })
        }
        "IpamDriver.ReleaseAddress" => {
            if let (Some((_, _, used)), Ok(a)) = (
                m.pools.get_mut(body["PoolID"].as_str().unwrap_or_default()),
                body["Address"].as_str().unwrap_or_default().parse::<IpAddr>(),
            ) {
                used.remove(&a);
            }
            json!({})
        }
        "IpamDriver.ReleasePool" => {
            m.pools.remove(body["PoolID"].as_str().unwrap_or_default());
            json!({})
        }
        _ => json!({}),
    }
}
