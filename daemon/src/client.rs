//! A small HTTP client of the API over a unix socket or TCP (one connection
//! per request), used by `cnmctl`, the tests and the benchmark.

use crate::listen::ListenAddr;
use crate::wire::ErrorBody;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon cannot be reached.
    #[error("cannot connect to the cnm daemon at {addr} (is cnmd running?)")]
    Connect {
        /// The address tried.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("request to the daemon failed: {0}")]
    Http(String),
    /// The daemon answered with an error.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The daemon's message.
        message: String,
    },
    /// The answer does not decode.
    #[error("cannot decode the daemon's answer: {0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A raw answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: hyper::HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// A client of one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    addr: ListenAddr,
    /// TLS for a TCP address (`--tlsverify`).
    tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl Client {
    /// A client of the daemon at `addr`.
    pub fn new(addr: ListenAddr) -> Self {
        Client { addr, tls: None }
    }

    /// A client of the daemon at `addr` (TCP) over TLS with `config`.
    pub fn with_tls(addr: ListenAddr, config: std::sync::Arc<tokio_rustls::rustls::ClientConfig>) -> Self {
        Client { addr, tls: Some(config) }
    }

    /// The daemon's process id, as the kernel reports the peer of its unix
    /// socket (`None` over TCP, or when it cannot be reached).
    pub fn daemon_pid(&self) -> Option<i32> {
        let ListenAddr::Unix(p) = &self.addr else { return None };
        let s = std::os::unix::net::UnixStream::connect(p).ok()?;
        let cred = nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials).ok()?;
        Some(cred.pid())
    }

    /// Sends one request with a raw body and returns the raw answer.
    pub async fn raw(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Answer, ClientError> {
        let connect_err = |source| ClientError::Connect { addr: self.addr.to_string(), source };
        let http = |e: hyper::Error| ClientError::Http(cnm::chain(&e));
        let mut req = Request::builder().method(method).uri(path).header("host", "cnmd");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req =
            req.body(Full::new(Bytes::from(body.unwrap_or_default()))).map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = match &self.addr {
            ListenAddr::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p).await.map_err(connect_err)?;
                send(TokioIo::new(s), req).await.map_err(http)?
            }
            ListenAddr::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a).await.map_err(connect_err)?;
                match &self.tls {
                    Some(config) => {
                        let host = a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h).trim_matches(['[', ']']);
                        let name = rustls_pki_types::ServerName::try_from(host.to_string())
                            .map_err(|e| ClientError::Http(format!("TLS server name {host:?}: {e}")))?;
                        let tls = tokio_rustls::TlsConnector::from(config.clone())
                            .connect(name, s)
                            .await
                            .map_err(|e| ClientError::Http(format!("TLS handshake with {a}: {e}")))?;
                        send(TokioIo::new(tls), req).await.map_err(http)?
                    }
                    None => send(TokioIo::new(s), req).await.map_err(http)?,
                }
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.map_err(http)?.to_bytes();
        Ok(Answer { status, headers, body })
    }

    /// Sends `body` as JSON; an error status becomes [`ClientError::Api`].
    pub async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Answer, ClientError> {
        let body = body.map(serde_json::to_vec).transpose().map_err(|e| ClientError::Decode(e.to_string()))?;
        let a = self.raw(method, path, body).await?;
        if a.status.is_client_error() || a.status.is_server_error() {
            let message = serde_json::from_slice::<ErrorBody>(&a.body)
                .map(|e| e.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&a.body).trim().to_string());
            return Err(ClientError::Api { status: a.status, message });
        }
        Ok(a)
    }

    /// `GET path`, decoded.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        decode(&self.send::<()>(Method::GET, path, None).await?)
    }

    /// `POST path` with a JSON body, decoded.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        decode(&self.send(Method::POST, path, Some(body)).await?)
    }

    /// `POST path` with a JSON body, answer ignored.
    pub async fn post_unit<B: Serialize>(&self, path: &str, body: &B) -> Result<(), ClientError> {
        self.send(Method::POST, path, Some(body)).await.map(|_| ())
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send::<()>(Method::DELETE, path, None).await.map(|_| ())
    }
}

async fn send<T>(
    io: TokioIo<T>,
    req: Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await
}

fn decode<T: DeserializeOwned>(a: &Answer) -> Result<T, ClientError> {
    serde_json::from_slice(&a.body).map_err(|e| ClientError::Decode(e.to_string()))
}

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
