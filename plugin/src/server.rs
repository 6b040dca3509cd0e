//! The plugin server: exposes any `Arc<dyn Driver>` and/or `Arc<dyn Ipam>`
//! as a Docker v1 plugin on a unix socket or a loopback TCP port.
//!
//! It answers `Plugin.Activate` with the roles it serves, decodes requests
//! as Docker sends them (no `Content-Type` needed, field names matched
//! ignoring case), refuses an empty body where arguments are expected (a
//! retried Docker request arrives without its body), and maps error kinds to
//! answers: status by kind (`NotImplemented` is 404, the protocol's "not
//! implemented"), the message in `Err` (and also in `Error` for IPAM calls),
//! the exact kind in the `cnm-error-kind` header for our own client.

use crate::activation::{ACTIVATE, IPAM_DRIVER, Manifest, NETWORK_DRIVER};
use crate::error::{ERROR_KIND_HEADER, kind_name, status_for_kind};
use crate::{Error, Result, decode, encode};
use bytes::Bytes;
use cnm_driverapi::{Driver, ErrorKind};
use cnm_ipamapi::Ipam;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;

/// The `Content-Type` of answers (what plugins conventionally send; Docker ignores it).
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1+json";
/// The largest request body accepted.
pub const MAX_REQUEST: usize = 1 << 20;

/// A listening socket the plugin server can accept connections from.
pub trait Listener: Send + 'static {
    /// The connection type.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Accepts the next connection.
    fn accept_conn(&mut self) -> impl Future<Output = io::Result<Self::Io>> + Send;

    /// Checks the listener may serve plugins (TCP: loopback addresses only).
    fn check(&self) -> io::Result<()> {
        Ok(())
    }
}

impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;

    async fn accept_conn(&mut self) -> io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;

    async fn accept_conn(&mut self) -> io::Result<Self::Io> {
        let (s, _) = self.accept().await?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    /// The protocol has no authentication: only loopback addresses may serve it.
    fn check(&self) -> io::Result<()> {
        let addr = self.local_addr()?;
        if addr.ip().is_loopback() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "refusing to serve a plugin on {addr}: the protocol has no authentication, use a loopback address"
                ),
            ))
        }
    }
}

/// An answer of the plugin server, before HTTP framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
    /// The error kind, for error answers.
    pub kind: Option<ErrorKind>,
}

impl Reply {
    fn ok<T: Serialize + ?Sized>(value: &T) -> Reply {
        match encode::to_body(value) {
            Ok(body) => Reply { status: 200, body, kind: None },
            Err(e) => Reply::error(ErrorKind::Internal, &format!("cannot encode answer: {e}"), false),
        }
    }

    fn empty() -> Reply {
        Reply { status: 200, body: Bytes::from_static(b"{}\n"), kind: None }
    }

    fn error(kind: ErrorKind, message: &str, ipam: bool) -> Reply {
        let body = if ipam {
            serde_json::json!({ "Err": message, "Error": message })
        } else {
            serde_json::json!({ "Err": message })
        };
        let body = encode::to_body(&body).unwrap_or_else(|_| Bytes::from_static(b"{\"Err\":\"error\"}\n"));
        Reply { status: status_for_kind(kind), body, kind: Some(kind) }
    }

    /// Go's `http.NotFound` answer, which Docker reads as "not implemented".
    fn not_found() -> Reply {
        Reply { status: 404, body: Bytes::from_static(b"404 page not found\n"), kind: None }
    }

    fn json(&self) -> bool {
        self.status != 404 || self.kind.is_some()
    }
}

/// Serves a driver and/or an IPAM as one plugin.
#[derive(Clone, Default)]
pub struct PluginServer {
    driver: Option<Arc<dyn Driver>>,
    ipam: Option<Arc<dyn Ipam>>,
}

impl std::fmt::Debug for PluginServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginServer").field("implements", &self.manifest().implements).finish()
    }
}

/// Serves `driver` as a network driver plugin on `listener` until the
/// listener fails; dropping the future stops it and closes every connection.
pub async fn serve<L: Listener>(listener: L, driver: Arc<dyn Driver>) -> Result<()> {
    PluginServer::new().with_driver(driver).serve(listener).await
}

/// Serves `ipam` as an IPAM plugin on `listener` (see [`serve`]).
pub async fn serve_ipam<L: Listener>(listener: L, ipam: Arc<dyn Ipam>) -> Result<()> {
    PluginServer::new().with_ipam(ipam).serve(listener).await
}

/// Serves `driver` and `ipam` as one plugin implementing both roles (see [`serve`]).
pub async fn serve_plugin<L: Listener>(listener: L, driver: Arc<dyn Driver>, ipam: Arc<dyn Ipam>) -> Result<()> {
    PluginServer::new().with_driver(driver).with_ipam(ipam).serve(listener).await
}

impl PluginServer {
    /// A server with no role yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `driver` as the plugin's `NetworkDriver`.
    pub fn with_driver(mut self, driver: Arc<dyn Driver>) -> Self {
        self.driver = Some(driver);
        self
    }

    /// Serves `ipam` as the plugin's `IpamDriver`.
    pub fn with_ipam(mut self, ipam: Arc<dyn Ipam>) -> Self {
        self.ipam = Some(ipam);
        self
    }

    /// The `Plugin.Activate` answer: the roles served.
    pub fn manifest(&self) -> Manifest {
        let mut implements = Vec::new();
        if self.driver.is_some() {
            implements.push(NETWORK_DRIVER.to_string());
        }
        if self.ipam.is_some() {
            implements.push(IPAM_DRIVER.to_string());
        }
        Manifest { implements }
    }

    /// Accepts connections on `listener` and answers plugin calls until the
    /// listener fails. Dropping the future stops the server and closes every
    /// connection (as a plugin process that exits would).
    pub async fn serve<L: Listener>(self, mut listener: L) -> Result<()> {
        listener.check().map_err(Error::Server)?;
        let server = Arc::new(self);
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept_conn() => match accepted {
                    Ok(io) => {
                        let server = server.clone();
                        conns.spawn(async move {
                            let svc = service_fn(move |req| {
                                let server = server.clone();
                                async move { Ok::<_, Infallible>(server.respond(req).await) }
                            });
                            if let Err(e) =
                                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc).await
                            {
                                tracing::debug!(error = %cnm_driverapi::Chain(&e), "plugin connection ended with an error");
                            }
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: pause instead of spinning.
                        tracing::warn!(error = %cnm_driverapi::Chain(&e), "plugin server failed to accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    }

    async fn respond(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let reply = if req.method() != Method::POST {
            Reply { status: 405, body: Bytes::from_static(b"{\"Err\":\"only POST is allowed\"}\n"), kind: None }
        } else {
            let path = req.uri().path().trim_start_matches('/').to_string();
            match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
                Ok(b) => self.handle(&path, &b.to_bytes()).await,
                Err(e) => Reply::error(
                    ErrorKind::InvalidParameter,
                    &format!("cannot read request: {}", cnm_driverapi::Chain(&*e)),
                    false,
                ),
            }
        };
        let mut resp = Response::new(Full::new(reply.body.clone()));
        *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let ct = if reply.json() { CONTENT_TYPE } else { "text/plain; charset=utf-8" };
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        if let Some(kind) = reply.kind
            && let Ok(v) = HeaderValue::from_str(&kind_name(kind))
        {
            resp.headers_mut().insert(ERROR_KIND_HEADER, v);
        }
        resp
    }

    /// Answers one call: `method` is `Subsystem.Method`, `body` the request body.
    pub async fn handle(&self, method: &str, body: &[u8]) -> Reply {
        if method == ACTIVATE {
            return Reply::ok(&self.manifest());
        }
        if let Some(m) = method.strip_prefix("NetworkDriver.")
            && let Some(d) = &self.driver
        {
            return network_call(&**d, method, m, body).await.unwrap_or_else(|r| r);
        }
        if let Some(m) = method.strip_prefix("IpamDriver.")
            && let Some(i) = &self.ipam
        {
            return ipam_call(&**i, method, m, body).await.unwrap_or_else(|r| r);
        }
        Reply::not_found()
    }
}

/// Decodes a request's arguments; an empty body is refused.
fn arg<T: DeserializeOwned>(method: &str, body: &[u8], ipam: bool) -> std::result::Result<T, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Reply::error(ErrorKind::InvalidParameter, &format!("{method}: empty request body"), ipam));
    }
    decode::from_slice(body)
        .map_err(|e| Reply::error(ErrorKind::InvalidParameter, &format!("{method}: invalid request: {e}"), ipam))
}

fn driver_err(e: cnm_driverapi::Error) -> Reply {
    Reply::error(e.kind(), &e.message(), false)
}

fn ipam_err(e: cnm_ipamapi::Error) -> Reply {
    Reply::error(e.kind(), &cnm_ipamapi::chain(&e), true)
}

/// Checks the ids of a request before any driver sees them: every
/// `NetworkID` and `EndpointID` (in any letter case, as Go decodes them) at
/// the body's top level must be a valid id ([`cnm_driverapi::id::check`]):
/// drivers make interface and file names of them.
fn check_ids(method: &str, body: &[u8]) -> std::result::Result<(), Reply> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(()); // not an object: `arg` says what is wrong with it
    };
    for (key, value) in &fields {
        if !(key.eq_ignore_ascii_case("NetworkID") || key.eq_ignore_ascii_case("EndpointID")) {
            continue;
        }
        let why = match value.as_str() {
            Some(id) => cnm_driverapi::id::check(id).err(),
            None => Some("not a string".to_string()),
        };
        if let Some(why) = why {
            return Err(Reply::error(ErrorKind::InvalidParameter, &format!("{method}: invalid {key}: {why}"), false));
        }
    }
    Ok(())
}

async fn network_call(d: &dyn Driver, method: &str, m: &str, body: &[u8]) -> std::result::Result<Reply, Reply> {
    let unit = |r: cnm_driverapi::Result<()>| r.map(|()| Reply::empty()).map_err(driver_err);
    if m != "GetCapabilities" {
        check_ids(method, body)?;
    }
    Ok(match m {
        "GetCapabilities" => Reply::ok(&d.capability()),
        "CreateNetwork" => unit(d.create_network(arg(method, body, false)?).await)?,
        "DeleteNetwork" => unit(d.delete_network(arg(method, body, false)?).await)?,
        "CreateEndpoint" => Reply::ok(&d.create_endpoint(arg(method, body, false)?).await.map_err(driver_err)?),
        "DeleteEndpoint" => unit(d.delete_endpoint(arg(method, body, false)?).await)?,
        "EndpointOperInfo" => Reply::ok(&d.endpoint_oper_info(arg(method, body, false)?).await.map_err(driver_err)?),
        "Join" => Reply::ok(&d.join(arg(method, body, false)?).await.map_err(driver_err)?),
        "Leave" => unit(d.leave(arg(method, body, false)?).await)?,
        "ProgramExternalConnectivity" => unit(d.program_external_connectivity(arg(method, body, false)?).await)?,
        "RevokeExternalConnectivity" => unit(d.revoke_external_connectivity(arg(method, body, false)?).await)?,
        "DiscoverNew" => unit(d.discover_new(arg(method, body, false)?).await)?,
        "DiscoverDelete" => unit(d.discover_delete(arg(method, body, false)?).await)?,
        "AllocateNetwork" => Reply::ok(&d.network_allocate(arg(method, body, false)?).await.map_err(driver_err)?),
        "FreeNetwork" => unit(d.network_free(arg(method, body, false)?).await)?,
        "GwAllocCheck" => Reply::ok(&d.gateway_allocation(arg(method, body, false)?).await.map_err(driver_err)?),
        _ => Reply::not_found(),
    })
}

async fn ipam_call(i: &dyn Ipam, method: &str, m: &str, body: &[u8]) -> std::result::Result<Reply, Reply> {
    let unit = |r: cnm_ipamapi::Result<()>| r.map(|()| Reply::empty()).map_err(ipam_err);
    Ok(match m {
        "GetCapabilities" => Reply::ok(&i.capability()),
        "GetDefaultAddressSpaces" => Reply::ok(&i.default_address_spaces().await.map_err(ipam_err)?),
        "RequestPool" => Reply::ok(&i.request_pool(arg(method, body, true)?).await.map_err(ipam_err)?),
        "ReleasePool" => unit(i.release_pool(arg(method, body, true)?).await)?,
        "RequestAddress" => Reply::ok(&i.request_address(arg(method, body, true)?).await.map_err(ipam_err)?),
        "ReleaseAddress" => unit(i.release_address(arg(method, body, true)?).await)?,
        _ => Reply::not_found(),
    })
}
