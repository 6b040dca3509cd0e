//! The HTTP transport of the plugin client: one keep-alive connection pool
//! per plugin, Docker's request shape, a per-request timeout and Docker's
//! retry rule for transport failures.
//!
//! As in Docker, a plugin is activated once for the client's lifetime: a
//! dropped connection or a restarted plugin is met by sending the same call
//! again (at once on a new connection when a kept one turns out closed, then
//! on Docker's back-off), never by a new `Plugin.Activate`.
//!
//! Requests are `POST /Subsystem.Method` with exactly Docker's headers
//! (`Host` empty on unix sockets, `User-Agent: Go-http-client/1.1`,
//! `Content-Length`, `Accept: application/vnd.docker.plugins.v1.2+json`, no
//! `Content-Type`), a body of compact JSON plus `\n`, or an empty body for
//! calls without arguments.
//!
//! Differences from Docker, on purpose: every attempt has a timeout (Docker
//! has none); a retried request carries its body again (Docker's retry sends
//! an empty body because its buffer was consumed); `Accept-Encoding: gzip`
//! is never sent, so TCP plugins answer uncompressed.

use crate::decode;
use crate::discovery::PluginAddress;
use crate::encode;
use crate::error::{ERROR_KIND_HEADER, kind_for_status, kind_from_name};
use crate::{Error, Result};
use bytes::Bytes;
use cnm_driverapi::ErrorKind;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `Accept` header Docker 20.10 sends.
pub const ACCEPT: &str = "application/vnd.docker.plugins.v1.2+json";
/// The `User-Agent` Docker sends (Go's default); plugins have seen nothing else.
pub const USER_AGENT: &str = "Go-http-client/1.1";
/// The largest answer body read from a plugin.
pub const MAX_ANSWER: usize = 8 << 20;
/// Idle connections kept per plugin.
const MAX_IDLE: usize = 16;

/// When a failed step is tried again: Docker's exponential back-off.
///
/// After a failure the caller sleeps `first_delay`, then twice as long each
/// time, and gives up when the next sleep would end more than `limit` after
/// the first attempt. Docker: 1 s and 30 s, i.e. sleeps of 1, 2, 4 and 8 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first sleep; zero disables retries.
    pub first_delay: Duration,
    /// No sleep may end later than this after the first attempt.
    pub limit: Duration,
}

impl RetryPolicy {
    /// No retries: one attempt.
    pub const fn none() -> Self {
        RetryPolicy { first_delay: Duration::ZERO, limit: Duration::ZERO }
    }

    /// Docker's rule: 1, 2, 4, 8 s (≈15 s in all).
    pub const fn docker() -> Self {
        RetryPolicy { first_delay: Duration::from_secs(1), limit: Duration::from_secs(30) }
    }

    /// A back-off starting at `first_delay`, bounded by `limit`.
    pub const fn new(first_delay: Duration, limit: Duration) -> Self {
        RetryPolicy { first_delay, limit }
    }

    /// The next sleep after a failure, or `None` to give up. `delay` is the
    /// previous sleep (zero before the first), `start` the first attempt.
    pub(crate) fn next(&self, delay: Duration, start: Instant) -> Option<Duration> {
        if self.first_delay.is_zero() {
            return None;
        }
        let next = if delay.is_zero() { self.first_delay } else { delay.saturating_mul(2) };
        (start.elapsed() + next <= self.limit).then_some(next)
    }
}

/// How the client talks to plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long one attempt of a call (connect, send, read the answer) may
    /// take before it fails with a `Timeout` error. Docker has no timeout.
    pub timeout: Duration,
    /// Retries of calls that fail in transport (connection refused, socket
    /// missing, connection closed before an answer). Timeouts and HTTP
    /// error statuses are never retried.
    pub retry: RetryPolicy,
}

impl Default for ClientConfig {
    /// A 30 s timeout per attempt and Docker's retry rule.
    fn default() -> Self {
        ClientConfig { timeout: Duration::from_secs(30), retry: RetryPolicy::docker() }
    }
}

/// Which field of a 200 answer carries an application error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorField {
    /// `Err`: network driver answers (and `Plugin.Activate`).
    Err,
    /// `Error`: IPAM answers.
    Error,
}

impl ErrorField {
    fn name(self) -> &'static str {
        match self {
            ErrorField::Err => "Err",
            ErrorField::Error => "Error",
        }
    }
}

/// A raw answer: status, body and our server's error-kind header.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
    /// The error kind our plugin server states, if the answer has the header.
    pub kind: Option<ErrorKind>,
}

enum Failure {
    Transport(String),
    Timeout,
    /// A kept connection was closed by the plugin (it may have restarted):
    /// the request did not reach it.
    Stale,
}

/// A plugin reached without HTTP: a call goes straight to `exchange`
/// (a driver library loaded in the process), with the protocol's methods,
/// bodies, statuses and error kinds unchanged.
pub trait InProcess: Send + Sync + 'static {
    /// Answers one call: `method` is `Subsystem.Method`, `body` its JSON.
    fn exchange(
        &self,
        method: &str,
        body: Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<Answer, String>> + Send>>;
}

/// A client of one plugin: connection pool, timeouts and retries.
pub struct PluginClient {
    /// Set for a plugin in this process: no connection, no HTTP.
    in_process: Option<Arc<dyn InProcess>>,
    name: String,
    address: PluginAddress,
    config: ClientConfig,
    host: HeaderValue,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl std::fmt::Debug for PluginClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginClient").field("name", &self.name).field("address", &self.address).finish()
    }
}

impl PluginClient {
    /// A client for plugin `name` at `address`; nothing is sent until the first call.
    pub fn new(name: impl Into<String>, address: PluginAddress, config: ClientConfig) -> Self {
        let host = HeaderValue::from_str(address.host_header()).unwrap_or_else(|_| HeaderValue::from_static(""));
        PluginClient { in_process: None, name: name.into(), address, config, host, idle: Mutex::new(Vec::new()) }
    }

    /// A client of plugin `name` living in this process: calls go to
    /// `exchange` (timeouts and the answer's interpretation as for any plugin).
    /// `address` names it in messages.
    pub fn in_process(
        name: impl Into<String>,
        address: PluginAddress,
        exchange: Arc<dyn InProcess>,
        config: ClientConfig,
    ) -> Self {
        PluginClient { in_process: Some(exchange), ..PluginClient::new(name, address, config) }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's address.
    pub fn address(&self) -> &PluginAddress {
        &self.address
    }

    /// The client's configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sends one call and returns the raw answer, with retries for transport
    /// failures (the same call again, never a new handshake).
    pub async fn call(&self, method: &str, body: Bytes) -> Result<Answer> {
        self.call_with_retry(method, body, self.config.retry).await
    }

    /// [`PluginClient::call`] with another retry policy for this call.
    pub async fn call_with_retry(&self, method: &str, body: Bytes, retry: RetryPolicy) -> Result<Answer> {
        let start = Instant::now();
        let mut delay = Duration::ZERO;
        // After a kept connection failed, the next attempt uses a new one.
        let mut fresh = false;
        loop {
            match self.attempt(method, body.clone(), fresh).await {
                Ok(a) => return Ok(a),
                // The request never reached the plugin: send it again at once on a new connection.
                Err(Failure::Stale) => fresh = true,
                Err(Failure::Timeout) => {
                    // The plugin may be wedged: don't reuse connections to it.
                    self.drop_idle();
                    return Err(Error::Timeout {
                        method: method.to_string(),
                        address: self.address.to_string(),
                        timeout: self.config.timeout,
                    });
                }
                Err(Failure::Transport(reason)) => match retry.next(delay, start) {
                    Some(d) => {
                        tracing::warn!(plugin = %self.name, method, error = %reason, retry_in = ?d, "plugin call failed in transport; retrying");
                        tokio::time::sleep(d).await;
                        delay = d;
                    }
                    None => {
                        return Err(Error::Transport {
                            method: method.to_string(),
                            address: self.address.to_string(),
                            reason,
                        });
                    }
                },
            }
        }
    }

    /// Sends one call with a JSON body (or an empty one) and interprets the
    /// answer as Docker does: only 200 is success, the error field wins over
    /// everything else, an empty body is an error. Returns the answer's JSON.
    pub async fn call_json<T: Serialize + ?Sized>(
        &self,
        method: &str,
        request: Option<&T>,
        field: ErrorField,
    ) -> Result<Value> {
        let body = match request {
            Some(r) => {
                encode::to_body(r).map_err(|e| Error::Encode { method: method.to_string(), reason: e.to_string() })?
            }
            None => Bytes::new(),
        };
        let answer = self.call(method, body).await?;
        interpret(method, answer, field)
    }

    /// One attempt: a kept connection if there is one (unless `fresh`), else a new one; bounded by the timeout.
    async fn attempt(&self, method: &str, body: Bytes, fresh: bool) -> std::result::Result<Answer, Failure> {
        match tokio::time::timeout(self.config.timeout, self.exchange(method, body, fresh)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout),
        }
    }

    async fn exchange(&self, method: &str, body: Bytes, fresh: bool) -> std::result::Result<Answer, Failure> {
        if let Some(p) = &self.in_process {
            return p.exchange(method, body).await.map_err(Failure::Transport);
        }
        if !fresh && let Some(mut sender) = self.take_idle() {
            if sender.ready().await.is_err() {
                // Every kept connection predates the close: drop them all.
                self.drop_idle();
                return Err(Failure::Stale);
            }
            return match self.send(&mut sender, method, body).await {
                Ok(a) => {
                    self.put_idle(sender);
                    Ok(a)
                }
                // A kept connection that broke under the request: the caller
                // activates again if needed and uses a new connection.
                Err(reason) => {
                    tracing::debug!(plugin = %self.name, method, error = %reason, "kept connection failed");
                    // Every kept connection predates the failure: drop them all.
                    self.drop_idle();
                    Err(Failure::Stale)
                }
            };
        }
        let mut sender = self.connect().await.map_err(Failure::Transport)?;
        let a = self.send(&mut sender, method, body).await.map_err(Failure::Transport)?;
        self.put_idle(sender);
        Ok(a)
    }

    /// The idle connections (a holder that panicked leaves the list whole).
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<SendRequest<Full<Bytes>>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn drop_idle(&self) {
        self.idle().clear();
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        self.idle().pop()
    }

    fn put_idle(&self, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    async fn connect(&self) -> std::result::Result<SendRequest<Full<Bytes>>, String> {
        match &self.address {
            PluginAddress::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path).await.map_err(|e| cnm_driverapi::chain(&e))?;
                handshake(s).await
            }
            PluginAddress::Tcp(hostport) => {
                let s =
                    tokio::net::TcpStream::connect(hostport.as_str()).await.map_err(|e| cnm_driverapi::chain(&e))?;
                let _ = s.set_nodelay(true);
                handshake(s).await
            }
        }
    }

    async fn send(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        method: &str,
        body: Bytes,
    ) -> std::result::Result<Answer, String> {
        let req = Request::post(format!("/{method}"))
            .header(header::HOST, self.host.clone())
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::CONTENT_LENGTH, body.len())
            .header(header::ACCEPT, ACCEPT)
            .body(Full::new(body))
            .map_err(|e| cnm_driverapi::chain(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| cnm_driverapi::chain(&e))?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_ANSWER).collect().await.map_err(|e| cnm_driverapi::chain(&*e))?.to_bytes();
        let kind = parts.headers.get(ERROR_KIND_HEADER).and_then(|v| v.to_str().ok()).and_then(kind_from_name);
        Ok(Answer { status: parts.status, body, kind })
    }
}

async fn handshake<S>(stream: S) -> std::result::Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Header names as Go writes them (`User-Agent`, not `user-agent`).
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| cnm_driverapi::chain(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %cnm_driverapi::Chain(&e), "plugin connection closed");
        }
    });
    Ok(sender)
}

/// Interprets an answer as Docker's plugin client does.
pub(crate) fn interpret(method: &str, answer: Answer, field: ErrorField) -> Result<Value> {
    if answer.status != StatusCode::OK {
        let message = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| {
                v.as_object().and_then(|o| decode::get_field(o, "Err")).and_then(Value::as_str).map(str::to_string)
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).trim_end().to_string());
        let status = answer.status.as_u16();
        return Err(Error::Status {
            method: method.to_string(),
            status,
            message,
            kind: answer.kind.unwrap_or_else(|| kind_for_status(status)),
        });
    }
    let invalid = |reason: String| Error::InvalidResponse { method: method.to_string(), reason };
    if answer.body.iter().all(u8::is_ascii_whitespace) {
        // Go's decoder says "EOF" here.
        return Err(invalid("EOF".to_string()));
    }
    let value: Value = serde_json::from_slice(&answer.body).map_err(|e| invalid(e.to_string()))?;
    if let Value::Object(o) = &value
        && let Some(v) = decode::get_field(o, field.name())
    {
        match v {
            Value::String(s) if !s.is_empty() => {
                return Err(Error::Remote {
                    method: method.to_string(),
                    message: s.clone(),
                    kind: answer.kind.unwrap_or(ErrorKind::Internal),
                });
            }
            Value::String(_) | Value::Null => {}
            other => return Err(invalid(format!("{} is not a string: {other}", field.name()))),
        }
    }
    Ok(value)
}

/// Decodes an interpreted answer into `T` with Go's field matching.
pub(crate) fn decode_answer<T: serde::de::DeserializeOwned>(method: &str, value: Value) -> Result<T> {
    decode::from_value(value).map_err(|e| Error::InvalidResponse { method: method.to_string(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer { status: StatusCode::from_u16(status).unwrap(), body: Bytes::from(body.to_string()), kind: None }
    }

    #[test]
    fn answers_are_read_as_docker_reads_them() {
        let m = "NetworkDriver.CreateNetwork";
        let e = interpret(m, answer(500, r#"{"Err":"refused"}"#), ErrorField::Err).unwrap_err();
        assert_eq!(e.to_string(), "NetworkDriver.CreateNetwork: refused");
        let e = interpret(m, answer(500, "plain text failure\n"), ErrorField::Err).unwrap_err();
        assert_eq!(e.to_string(), "NetworkDriver.CreateNetwork: plain text failure");
        let e = interpret(m, answer(201, "{}"), ErrorField::Err).unwrap_err();
        assert_eq!(e.status(), Some(201));
        let e = interpret(m, answer(200, ""), ErrorField::Err).unwrap_err();
        assert!(e.to_string().ends_with("EOF"), "{e}");
        let e = interpret(m, answer(200, r#"{"err":"boom","Scope":"local"}"#), ErrorField::Err).unwrap_err();
        assert_eq!(e.to_string(), "remote: boom");
        // IPAM: the 200-level error field is `Error`; `Err` is not an error there.
        let m = "IpamDriver.RequestPool";
        assert!(interpret(m, answer(200, r#"{"Err":"x"}"#), ErrorField::Error).is_ok());
        let e = interpret(m, answer(200, r#"{"Error":"no pool"}"#), ErrorField::Error).unwrap_err();
        assert_eq!(e.to_string(), "remote: no pool");
        // Non-200: only `Err` is read; otherwise the raw body is the message.
        let e = interpret(m, answer(500, r#"{"Error": "x"}"#), ErrorField::Error).unwrap_err();
        assert_eq!(e.to_string(), r#"IpamDriver.RequestPool: {"Error": "x"}"#);
        let e = interpret(m, answer(200, "{nope"), ErrorField::Error).unwrap_err();
        assert!(e.to_string().contains("key must be a string"), "{e}");
    }

    #[test]
    fn retry_policy_follows_docker_schedule() {
        let p = RetryPolicy::docker();
        let mut delay = Duration::ZERO;
        let mut slept = Duration::ZERO;
        let mut sleeps = Vec::new();
        // The first attempt "started" `slept` ago: as if every sleep had happened.
        while let Some(d) = p.next(delay, Instant::now() - slept) {
            sleeps.push(d.as_secs());
            slept += d;
            delay = d;
        }
        assert_eq!(sleeps, vec![1, 2, 4, 8]);
        assert_eq!(RetryPolicy::none().next(Duration::ZERO, Instant::now()), None);
    }
}
