//! The DNS server of one sandbox: a UDP socket and a TCP listener at
//! 127.0.0.11:53 inside the sandbox's namespace, opened there by a
//! short-lived thread and then served by tasks of the caller's tokio
//! runtime (no process and no thread per sandbox). Dropping the
//! [`SandboxServer`] stops its tasks and closes its sockets.

use crate::answer::{Outcome, answer, error_reply};
use crate::cache::AnswerCache;
use crate::forward::{Upstream, forward, rcode, read_framed, write_framed};
use crate::{Error, Resolver, Result};
use arc_swap::ArcSwap;
use cnm_osl::Namespace;
use hickory_proto::op::ResponseCode;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

/// Where the server listens inside the sandbox (Docker's address).
pub const RESOLVER_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11)), 53);
/// Forwarded queries in flight per sandbox at most (Docker's bound).
pub const MAX_IN_FLIGHT: usize = 100;
/// How long one upstream has to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Tasks receiving on the UDP socket: two, so that a burst of queries uses
/// both of a small host's cores.
const UDP_LOOPS: usize = 2;
/// An idle TCP connection is closed after this (and a query must arrive
/// whole within it).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP connections one sandbox may hold open at once: a container that
/// opens thousands holds this many of the daemon's descriptors, and the
/// rest are closed as soon as they are accepted.
pub const MAX_TCP_CONNECTIONS: usize = 16;
/// The largest query taken over TCP (queries are small; a larger announced
/// length closes the connection before anything is allocated for it).
const MAX_TCP_QUERY: usize = 4096;

/// The state the tasks of one sandbox's server share.
struct Ctx {
    resolver: Arc<Resolver>,
    sandbox: String,
    sandbox_ns: Namespace,
    host_ns: Namespace,
    upstreams: ArcSwap<Vec<Upstream>>,
    in_flight: Arc<Semaphore>,
    cache: AnswerCache,
    /// When the in-flight bound was last logged (Unix seconds), to log it once a second.
    bound_logged: AtomicU64,
    /// The sandbox's open TCP connections.
    tcp_connections: Arc<Semaphore>,
    /// When the connection bound was last logged (Unix seconds).
    tcp_bound_logged: AtomicU64,
    /// Whether names that are not internal go upstream at all: off for a
    /// sandbox whose networks are all internal (answered REFUSED, never
    /// forwarded, from any namespace: CVE-2024-29018).
    forwarding: AtomicBool,
}

/// The running DNS server of one sandbox.
pub struct SandboxServer {
    ctx: Arc<Ctx>,
    tasks: Vec<AbortHandle>,
}

impl SandboxServer {
    /// Starts the server of sandbox `sandbox` (its id in the [`Resolver`]'s
    /// records) inside `sandbox_ns`; other names go to `upstreams`, reached
    /// from `host_ns` when they are loopback addresses. Must be called
    /// within a tokio runtime; the sandbox's loopback must be up.
    pub async fn start(
        resolver: Arc<Resolver>,
        sandbox: &str,
        sandbox_ns: &Namespace,
        host_ns: &Namespace,
        upstreams: &[IpAddr],
    ) -> Result<Self> {
        let (udp, tcp) = sandbox_ns
            .run(|| -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
                let udp = std::net::UdpSocket::bind(RESOLVER_ADDR)?;
                udp.set_nonblocking(true)?;
                let tcp = std::net::TcpListener::bind(RESOLVER_ADDR)?;
                tcp.set_nonblocking(true)?;
                Ok((udp, tcp))
            })
            .await?
            .map_err(|e| Error::io("listen on 127.0.0.11:53 in the sandbox", e))?;
        let udp = Arc::new(UdpSocket::from_std(udp).map_err(|e| Error::io("register DNS socket", e))?);
        let tcp = TcpListener::from_std(tcp).map_err(|e| Error::io("register DNS listener", e))?;
        let ctx = Arc::new(Ctx {
            resolver,
            sandbox: sandbox.to_string(),
            sandbox_ns: sandbox_ns.clone(),
            host_ns: host_ns.clone(),
            upstreams: ArcSwap::from_pointee(Vec::new()),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            cache: AnswerCache::default(),
            bound_logged: AtomicU64::new(0),
            tcp_connections: Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS)),
            tcp_bound_logged: AtomicU64::new(0),
            forwarding: AtomicBool::new(true),
        });
        ctx.set_upstreams(upstreams);
        let mut tasks = vec![tokio::spawn(serve_tcp(ctx.clone(), tcp)).abort_handle()];
        for _ in 0..UDP_LOOPS {
            tasks.push(tokio::spawn(serve_udp(ctx.clone(), udp.clone())).abort_handle());
        }
        Ok(SandboxServer { ctx, tasks })
    }

    /// Replaces the upstream servers (the first three are used).
    pub fn set_upstreams(&self, ips: &[IpAddr]) {
        self.ctx.set_upstreams(ips);
    }

    /// Turns forwarding of names that are not internal on or off (off:
    /// they are answered REFUSED, nothing leaves the sandbox's resolver).
    pub fn set_forwarding(&self, on: bool) {
        self.ctx.forwarding.store(on, Ordering::Relaxed);
    }

    /// Whether names that are not internal are forwarded.
    pub fn forwarding(&self) -> bool {
        self.ctx.forwarding.load(Ordering::Relaxed)
    }

    /// The upstream servers in use.
    pub fn upstreams(&self) -> Vec<IpAddr> {
        self.ctx.upstreams.load().iter().map(|u| u.addr.ip()).collect()
    }
}

impl Drop for SandboxServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl std::fmt::Debug for SandboxServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxServer").field("sandbox", &self.ctx.sandbox).finish()
    }
}

impl Ctx {
    fn set_upstreams(&self, ips: &[IpAddr]) {
        let ups = ips
            .iter()
            .take(crate::forward::MAX_UPSTREAMS)
            .map(|ip| Upstream::new(*ip, &self.sandbox_ns, &self.host_ns))
            .collect();
        self.upstreams.store(Arc::new(ups));
    }

    /// Answers from the records, or says the query must go upstream.
    fn local(&self, query: &[u8], udp: bool) -> Outcome {
        let records = self.resolver.records.load();
        if let Some(reply) = crate::fast::answer(&records, &self.sandbox, query, udp) {
            return Outcome::Reply(reply);
        }
        answer(&records, &self.sandbox, query, udp)
    }

    /// Answers a forwarded query: from the cache, else from the upstreams
    /// (SERVFAIL when none answers).
    async fn upstream(&self, fq: &crate::answer::ForwardQuery, query: &[u8], tcp: bool) -> Vec<u8> {
        if let Some(hit) = self.cache.get(&fq.key, fq.id) {
            return hit;
        }
        let upstreams = self.upstreams.load_full();
        match forward(&upstreams, query, tcp, UPSTREAM_TIMEOUT).await {
            Some(resp) => {
                if matches!(rcode(&resp), 0 | 3) {
                    self.cache.put(fq.key.clone(), &resp);
                }
                resp
            }
            None => error_reply(&fq.message, ResponseCode::ServFail),
        }
    }

    /// A permit for one more forwarded query, or `None` at the bound (logged once a second).
    fn permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let p = self.in_flight.clone().try_acquire_owned().ok();
        if p.is_none() && first_this_second(&self.bound_logged) {
            tracing::warn!(
                sandbox = %self.sandbox,
                bound = MAX_IN_FLIGHT,
                "DNS: too many forwarded queries in flight; answering SERVFAIL until some complete"
            );
        }
        p
    }
}

/// Whether this is the first call this second for `stamp` (Unix seconds of
/// the last one): a bound that is hit is logged once a second, not once a query.
fn first_this_second(stamp: &AtomicU64) -> bool {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    stamp.swap(now, Ordering::Relaxed) != now
}

/// The largest query taken over UDP (queries are small; a longer one is cut and refused).
const MAX_UDP_QUERY: usize = 4096;

async fn serve_udp(ctx: Arc<Ctx>, sock: Arc<UdpSocket>) {
    let mut buf = vec![0u8; MAX_UDP_QUERY];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %cnm_osl::Chain(&e), "DNS: receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let query = &buf[..n];
        match ctx.local(query, true) {
            Outcome::Reply(resp) => {
                let _ = sock.send_to(&resp, peer).await;
            }
            Outcome::Drop => {}
            Outcome::Forward(fq) if !ctx.forwarding.load(Ordering::Relaxed) => {
                let _ = sock.send_to(&error_reply(&fq.message, ResponseCode::Refused), peer).await;
            }
            Outcome::Forward(fq) => {
                if let Some(hit) = ctx.cache.get(&fq.key, fq.id) {
                    let _ = sock.send_to(&hit, peer).await;
                    continue;
                }
                let Some(permit) = ctx.permit() else {
                    let _ = sock.send_to(&error_reply(&fq.message, ResponseCode::ServFail), peer).await;
                    continue;
                };
                let (ctx, sock, query) = (ctx.clone(), sock.clone(), query.to_vec());
                tokio::spawn(async move {
                    let resp = ctx.upstream(&fq, &query, false).await;
                    let _ = sock.send_to(&resp, peer).await;
                    drop(permit);
                });
            }
        }
    }
}

async fn serve_tcp(ctx: Arc<Ctx>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => match ctx.tcp_connections.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(serve_tcp_connection(ctx.clone(), stream, permit));
                }
                Err(_) => {
                    drop(stream);
                    if first_this_second(&ctx.tcp_bound_logged) {
                        tracing::warn!(
                            sandbox = %ctx.sandbox,
                            bound = MAX_TCP_CONNECTIONS,
                            "DNS: too many TCP connections from the sandbox; closing new ones"
                        );
                    }
                }
            },
            Err(e) => {
                tracing::debug!(error = %cnm_osl::Chain(&e), "DNS: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves one TCP connection, holding `_permit` (one of the sandbox's
/// connections) until it closes.
async fn serve_tcp_connection(ctx: Arc<Ctx>, mut stream: TcpStream, _permit: tokio::sync::OwnedSemaphorePermit) {
    loop {
        let query = match tokio::time::timeout(TCP_IDLE, read_framed(&mut stream, MAX_TCP_QUERY)).await {
            Ok(Ok(Some(q))) => q,
            _ => return,
        };
        let resp = match ctx.local(&query, false) {
            Outcome::Reply(resp) => resp,
            Outcome::Drop => return,
            Outcome::Forward(fq) if !ctx.forwarding.load(Ordering::Relaxed) => {
                error_reply(&fq.message, ResponseCode::Refused)
            }
            Outcome::Forward(fq) => match ctx.permit() {
                Some(_permit) => ctx.upstream(&fq, &query, true).await,
                None => error_reply(&fq.message, ResponseCode::ServFail),
            },
        };
        if write_framed(&mut stream, &resp).await.is_err() {
            return;
        }
    }
}
