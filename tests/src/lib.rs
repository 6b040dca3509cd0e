//! Support for cnm's privileged end-to-end tests: each test gets a scratch
//! "host" network namespace and its own state directories, and a test that
//! needs root never passes silently in CI.

use cnm::osl::{Namespace, Netlink};
use cnm::{Config, Controller};
use cnm_driver_bridge::BridgeDriver;
use cnm_driver_host::HostDriver;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a probe waits for an answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a missing requirement fails the test (`CI=true` or
/// `CNM_TEST_REQUIRE_ROOT=1`) rather than skipping it.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true") || std::env::var("CNM_TEST_REQUIRE_ROOT").is_ok_and(|v| v == "1")
}

/// Skips `test` loudly with `why`, or panics with it where a skip is a failure.
pub fn skip(test: &str, why: &str) -> bool {
    assert!(!required(), "{test}: {why}, and CI requires it");
    // Straight to the process's stderr: libtest captures `eprintln!` of
    // passing tests, and a skip must be seen. One write of the whole line
    // (a pipe takes it whole), so that libtest's own lines, written to the
    // same pipe by other threads, never land inside it (`.ci/run` reads
    // the lines that start with SKIPPED).
    use std::io::Write as _;
    let line = format!("SKIPPED {test}: {why}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    false
}

/// The user namespace test binaries move into when not run as root: the
/// constructor below runs before `main` (before libtest starts its threads,
/// which the kernel requires), so every test, thread and child process
/// (cnmd, the crash child) runs inside it and may create namespaces,
/// bridges, veths and nf_tables tables there.
static ROOTLESS: std::sync::OnceLock<Result<cnm::rootless::UserNamespace, String>> = std::sync::OnceLock::new();

extern "C" fn enter_rootless_at_start() {
    if cnm::rootless::is_root() || std::env::var_os("CNM_TEST_NO_USERNS").is_some() {
        return;
    }
    let _ = ROOTLESS.set(cnm::rootless::enter().map_err(|e| e.to_string()));
}

#[used]
#[unsafe(link_section = ".init_array")]
static ENTER_ROOTLESS_AT_START: extern "C" fn() = enter_rootless_at_start;

/// Whether privileged tests may run: as root, or (not root) inside the
/// user namespace every test binary of this crate's users enters at start.
/// Otherwise, under `CI=true` or `CNM_TEST_REQUIRE_ROOT=1` this panics (a
/// skip is a failure there); elsewhere it prints a loud skip notice and
/// returns false.
pub fn privileged(test: &str) -> bool {
    if cnm::rootless::is_root() {
        return true;
    }
    match ROOTLESS.get() {
        Some(Err(e)) => skip(test, &format!("requires root or a user namespace ({e})")),
        _ => skip(test, "requires root"),
    }
}

/// Whether the test runs as real root (not in the rootless user namespace):
/// for tests that drive dockerd or runc, or the host's own firewall.
pub fn real_root(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    match cnm::rootless::entered() {
        Some(u) => skip(test, &format!("requires real root (running rootless as uid {})", u.outer_uid)),
        None => true,
    }
}

/// Whether every program in `programs` is on `PATH`; a missing one skips
/// the test loudly (or fails it under CI) naming the Debian package in `package`.
pub fn tools(test: &str, programs: &[&str], package: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> =
        programs.iter().copied().filter(|p| !std::env::split_paths(&path).any(|d| d.join(p).is_file())).collect();
    if missing.is_empty() {
        return true;
    }
    skip(test, &format!("needs {} (Debian package {package})", missing.join(", ")))
}

/// Logs to stderr when `CNM_LOG` is set (for example `CNM_LOG=debug`).
pub fn init_logging() {
    if std::env::var_os("CNM_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("CNM_LOG"))
            .with_test_writer()
            .try_init();
    }
}

/// Waits (at most `secs`, polling every 50 ms) until `f` holds; fails the
/// test naming `what` otherwise.
pub async fn eventually<F, Fut>(what: &str, secs: u64, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(std::time::Instant::now() < end, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Registers what every Docker host has on `builder`: the `null` driver and
/// the `default` (avoiding the host's networks) and `null` IPAMs.
pub fn with_defaults(builder: cnm::ControllerBuilder) -> cnm::ControllerBuilder {
    builder
        .driver(cnm_driver_null::NullDriver::new())
        .ipam_on_host(cnm_ipamapi::DEFAULT_IPAM, |host| cnm_ipams::DefaultIpam::default().with_host_networks(host))
        .ipam(cnm_ipamapi::NULL_IPAM, cnm_ipams::NullIpam::new())
}

/// A scratch host: its own network namespace and state directories, removed on drop.
pub struct TestHost {
    /// The scratch directory (data, exec root, the namespace file).
    pub dir: tempfile::TempDir,
    /// The scratch host namespace.
    pub ns: Namespace,
    /// Netlink in the scratch host namespace.
    pub nl: Netlink,
}

impl TestHost {
    /// A new scratch host, or `None` when the test must be skipped (see [`privileged`]).
    pub async fn new(test: &str) -> Option<TestHost> {
        if !privileged(test) {
            return None;
        }
        init_logging();
        let dir = tempfile::Builder::new().prefix("cnm-test-").tempdir().expect("create scratch directory");
        let ns = Namespace::create(dir.path().join("host.netns")).await.expect("create scratch host namespace");
        let nl = Netlink::connect(&ns, cnm::osl::DEFAULT_DEADLINE).await.expect("netlink in scratch host");
        let lo = nl.link_get("lo").await.expect("find lo").expect("lo exists");
        nl.link_set_up(lo.index).await.expect("bring lo up");
        // A new namespace inherits IPv4 forwarding from the machine's (on
        // for any host running Docker or routing): start from a fresh
        // kernel's value, so that what a test asserts does not depend on
        // the machine it runs on.
        for key in ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"] {
            ns.sysctl_set(key, "0").await.unwrap_or_else(|e| panic!("set {key} in the scratch host: {e}"));
        }
        std::fs::write(
            dir.path().join("resolv.conf"),
            "nameserver 127.0.0.53\nnameserver 10.255.0.53\nsearch example.test\n",
        )
        .expect("write scratch resolv.conf");
        Some(TestHost { dir, ns, nl })
    }

    /// The path of the scratch host namespace.
    pub fn ns_path(&self) -> PathBuf {
        self.dir.path().join("host.netns")
    }

    /// A controller configuration for this host.
    pub fn config(&self) -> Config {
        Config::new(self.dir.path().join("data"))
            .exec_root(self.dir.path().join("run"))
            .host_namespace(self.ns_path())
            .host_resolv_conf(self.dir.path().join("resolv.conf"))
    }

    /// A builder for this host with what every Docker host has: the `null`
    /// driver and the `default` and `null` IPAMs.
    pub fn builder(&self) -> cnm::ControllerBuilder {
        with_defaults(Controller::builder(self.config()))
    }

    /// A controller with the bridge and host drivers (and [`TestHost::builder`]'s).
    pub async fn controller(&self) -> Controller {
        self.builder()
            .driver_on_host(|host| BridgeDriver::new(host.clone()))
            .driver(HostDriver::new())
            .build()
            .await
            .expect("start controller")
    }

    /// Names of the links in the scratch host namespace.
    pub async fn links(&self) -> Vec<String> {
        let mut v: Vec<String> = self.nl.link_list().await.expect("list links").into_iter().map(|l| l.name).collect();
        v.sort();
        v
    }

    /// The links once background deletions have finished: polls until the
    /// list equals `expected` (deleted bridges go in the background, within
    /// tens of milliseconds), for at most five seconds.
    pub async fn settled_links(&self, expected: &[&str]) -> Vec<String> {
        let want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        let end = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let now = self.links().await;
            if now == want || std::time::Instant::now() > end {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Namespace files left under the exec root.
    pub fn netns_files(&self) -> Vec<PathBuf> {
        list_dir(&self.dir.path().join("run").join("netns"))
    }
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    v.sort();
    v
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Sandboxes' namespaces, and those of overlay networks a daemon on
        // this host made (kept by design when the daemon stops).
        let overlay = list_dir(&self.dir.path().join("run").join("overlay"));
        for f in self.netns_files().into_iter().chain(overlay) {
            let _ = Namespace::remove(&f);
        }
        let _ = Namespace::remove(self.ns_path());
    }
}

/// Names of the links inside a namespace.
pub async fn links_in(ns: &Namespace) -> Vec<String> {
    let nl = Netlink::connect(ns, cnm::osl::DEFAULT_DEADLINE).await.expect("netlink in namespace");
    let mut v: Vec<String> = nl.link_list().await.expect("list links").into_iter().map(|l| l.name).collect();
    v.sort();
    v
}

/// The links inside a namespace once background deletions have finished:
/// polls until the list equals `expected` (a removed interface is parked
/// down and deleted in the background, within a few seconds), for at most
/// five seconds.
pub async fn settled_links_in(ns: &Namespace, expected: &[&str]) -> Vec<String> {
    let want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    let end = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = links_in(ns).await;
        if now == want || std::time::Instant::now() > end {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pings `dst` from inside `ns`; panics with context when no answer comes.
pub async fn assert_ping(ns: &Namespace, dst: std::net::IpAddr) {
    if let Err(e) = cnm::osl::probe::ping(ns, dst, PROBE_TIMEOUT).await {
        panic!("ping {dst} from {:?} failed: {e}", ns.path());
    }
}

/// Asserts that `dst` does not answer from inside `ns` within a short time.
pub async fn assert_no_ping(ns: &Namespace, dst: std::net::IpAddr) {
    if cnm::osl::probe::ping(ns, dst, Duration::from_millis(600)).await.is_ok() {
        panic!("ping {dst} from {:?} unexpectedly succeeded", ns.path());
    }
}

/// A driver wrapper for fault tests: it can be switched "down" (every call
/// fails as an unreachable plugin would) and can stall forever in the middle
/// of a join (after the real join's kernel work).
pub struct FaultyDriver<D> {
    inner: D,
    /// When true, every call fails with an `Unavailable` error.
    pub down: std::sync::atomic::AtomicBool,
    /// When true, the next call programming external connectivity fails (once).
    pub fail_program: std::sync::atomic::AtomicBool,
    /// When true, the next leave fails (once).
    pub fail_leave: std::sync::atomic::AtomicBool,
    stall_join: bool,
}

impl<D: cnm_driverapi::Driver> FaultyDriver<D> {
    /// Wraps `inner`; `stall_join` makes joins never return (printing `JOINING` first).
    pub fn new(inner: D, stall_join: bool) -> Self {
        FaultyDriver {
            inner,
            down: std::sync::atomic::AtomicBool::new(false),
            fail_program: std::sync::atomic::AtomicBool::new(false),
            fail_leave: std::sync::atomic::AtomicBool::new(false),
            stall_join,
        }
    }

    fn check(&self) -> cnm_driverapi::Result<()> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(cnm_driverapi::Error::new(cnm_driverapi::ErrorKind::Unavailable, "the driver is down"));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl<D: cnm_driverapi::Driver> cnm_driverapi::Driver for FaultyDriver<D> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capability(&self) -> cnm_driverapi::Capability {
        self.inner.capability()
    }
    async fn create_network(&self, req: cnm_driverapi::CreateNetworkRequest) -> cnm_driverapi::Result<()> {
        self.check()?;
        self.inner.create_network(req).await
    }
    async fn delete_network(&self, req: cnm_driverapi::DeleteNetworkRequest) -> cnm_driverapi::Result<()> {
        self.check()?;
        self.inner.delete_network(req).await
    }
    async fn create_endpoint(
        &self,
        req: cnm_driverapi::CreateEndpointRequest,
    ) -> cnm_driverapi::Result<cnm_driverapi::CreateEndpointResponse> {
        self.check()?;
        self.inner.create_endpoint(req).await
    }
    async fn delete_endpoint(&self, req: cnm_driverapi::DeleteEndpointRequest) -> cnm_driverapi::Result<()> {
        self.check()?;
        self.inner.delete_endpoint(req).await
    }
    async fn join(&self, req: cnm_driverapi::JoinRequest) -> cnm_driverapi::Result<cnm_driverapi::JoinResponse> {
        self.check()?;
        let resp = self.inner.join(req).await?;
        if self.stall_join {
            use std::io::Write;
            println!("JOINING");
            let _ = std::io::stdout().flush();
            std::future::pending::<()>().await;
        }
        Ok(resp)
    }
    async fn leave(&self, req: cnm_driverapi::LeaveRequest) -> cnm_driverapi::Result<()> {
        self.check()?;
        if self.fail_leave.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(cnm_driverapi::Error::internal("leave failed"));
        }
        self.inner.leave(req).await
    }
    async fn program_external_connectivity(
        &self,
        req: cnm_driverapi::ProgramExternalConnectivityRequest,
    ) -> cnm_driverapi::Result<()> {
        self.check()?;
        if self.fail_program.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(cnm_driverapi::Error::new(cnm_driverapi::ErrorKind::Internal, "programming failed"));
        }
        self.inner.program_external_connectivity(req).await
    }
    async fn revoke_external_connectivity(
        &self,
        req: cnm_driverapi::RevokeExternalConnectivityRequest,
    ) -> cnm_driverapi::Result<()> {
        self.check()?;
        self.inner.revoke_external_connectivity(req).await
    }
    async fn endpoint_oper_info(
        &self,
        req: cnm_driverapi::EndpointOperInfoRequest,
    ) -> cnm_driverapi::Result<cnm_driverapi::EndpointOperInfoResponse> {
        self.check()?;
        self.inner.endpoint_oper_info(req).await
    }
}

/// An "outside host": a namespace linked to the scratch host by a veth pair,
/// `10.250.0.1/24` on the host side (`uplink`) and `10.250.0.2/24` outside,
/// with no route back to container subnets (so only masquerading or a route
/// added by the test lets replies come back).
pub struct OutsideHost {
    /// The outside namespace.
    pub ns: Namespace,
    /// Netlink in the outside namespace.
    pub nl: Netlink,
    path: PathBuf,
}

/// The scratch host's address on the link to the outside host.
pub const UPLINK_HOST: &str = "10.250.0.1";
/// The outside host's address.
pub const OUTSIDE: &str = "10.250.0.2";

impl TestHost {
    /// Creates the outside host and links it to this host.
    pub async fn outside(&self) -> OutsideHost {
        let path = self.dir.path().join("outside.netns");
        let (ns, nl) = Netlink::create_namespace(&path, cnm::osl::DEFAULT_DEADLINE).await.expect("outside namespace");
        let spec = cnm::osl::VethSpec {
            name: "uplink",
            peer_name: "eth0",
            peer_namespace: Some(&ns),
            up: true,
            ..Default::default()
        };
        self.nl.link_add_veth(&spec).await.expect("uplink veth");
        let up = self.nl.link_get("uplink").await.unwrap().unwrap();
        self.nl.addr_add(up.index, format!("{UPLINK_HOST}/24").parse().unwrap()).await.unwrap();
        nl.link_set_up(1).await.unwrap();
        let eth0 = nl.link_get("eth0").await.unwrap().unwrap();
        nl.link_set_up(eth0.index).await.unwrap();
        nl.addr_add(eth0.index, format!("{OUTSIDE}/24").parse().unwrap()).await.unwrap();
        OutsideHost { ns, nl, path }
    }
}

impl Drop for OutsideHost {
    fn drop(&mut self) {
        let _ = Namespace::remove(&self.path);
    }
}

/// A TCP server inside `ns` on `addr` that answers each connection with the
/// peer address it sees, then closes; it stops after `count` connections.
pub async fn peer_echo_server(ns: &Namespace, addr: std::net::SocketAddr, count: usize) -> std::thread::JoinHandle<()> {
    let listener = ns
        .run(move || std::net::TcpListener::bind(addr))
        .await
        .expect("enter namespace")
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    // Blocking accepts: the thread ends after `count` connections (a failed
    // test may leave it waiting; the test process ends it).
    std::thread::spawn(move || {
        use std::io::Write;
        for _ in 0..count {
            match listener.accept() {
                Ok((mut s, peer)) => {
                    let _ = s.write_all(peer.ip().to_string().as_bytes());
                }
                Err(_) => break,
            }
        }
    })
}

/// Connects from `ns` to `addr` and returns what the peer-echo server answered.
pub async fn seen_as(ns: &Namespace, addr: std::net::SocketAddr) -> Result<String, String> {
    cnm::osl::probe::tcp_exchange(ns, addr, Vec::new(), Duration::from_secs(3))
        .await
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .map_err(|e| e.to_string())
}

/// A scratch host for a benchmark: with `foreign`, one with a Docker host's
/// `FORWARD` chain ([`docker_like_forward_chain`]). Prints which.
pub async fn bench_host(name: &str, foreign: bool) -> Option<TestHost> {
    let h = TestHost::new(name).await?;
    if foreign {
        docker_like_forward_chain(&h.ns).await;
        println!("--- beside a Docker host's iptables FORWARD chain (policy DROP, dockerd's chains)");
    } else {
        println!("--- scratch host, no foreign firewall");
    }
    Some(h)
}

/// Runs `iptables-nft ARGS…` inside `ns` and returns its standard output.
pub async fn iptables(ns: &Namespace, args: &[&str]) -> String {
    output_in(ns, "iptables-nft", args).await
}

/// Runs `program ARGS…` inside `ns`; its standard output (it must succeed).
pub async fn output_in(ns: &Namespace, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    let program = program.as_ref().to_os_string();
    let shown = program.to_string_lossy().into_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = ns
        .run(move || std::process::Command::new(program).args(&args).output())
        .await
        .expect("enter namespace")
        .unwrap_or_else(|e| panic!("run {shown}: {e}"));
    assert!(out.status.success(), "{shown} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Gives `ns` the `FORWARD` chain a host with dockerd 20.10 has: policy
/// DROP, dockerd's chains and jumps (and br_netfilter on), with no Docker
/// bridge. For benchmarks and tests "on the host users have".
/// (Needs `iptables-nft`.)
pub async fn docker_like_forward_chain(ns: &Namespace) {
    for chain in ["DOCKER", "DOCKER-USER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2"] {
        iptables(ns, &["-N", chain]).await;
    }
    for rule in [
        "-P FORWARD DROP",
        "-A FORWARD -j DOCKER-USER",
        "-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
        "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -o docker0 -j DOCKER",
        "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
        "-A FORWARD -i docker0 -o docker0 -j ACCEPT",
        "-A DOCKER-USER -j RETURN",
        "-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2",
        "-A DOCKER-ISOLATION-STAGE-1 -j RETURN",
        "-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP",
        "-A DOCKER-ISOLATION-STAGE-2 -j RETURN",
    ] {
        iptables(ns, &rule.split(' ').collect::<Vec<_>>()).await;
    }
    // As on a Docker host: bridged frames pass the iptables hooks.
    let _ = ns.sysctl_set("net/bridge/bridge-nf-call-iptables", "1").await;
}

/// Runs `nft ARGS…` inside `ns` and returns its standard output.
pub async fn nft(ns: &Namespace, args: &[&str]) -> String {
    output_in(ns, "nft", args).await
}

/// A UDP server inside `ns` on `addr` answering each datagram with the
/// sender's address; it stops after `count` datagrams.
pub async fn udp_peer_echo_server(
    ns: &Namespace,
    addr: std::net::SocketAddr,
    count: usize,
) -> std::thread::JoinHandle<()> {
    udp_server(ns, addr, count, None).await
}

/// A UDP server inside `ns` on `addr` answering each datagram with `tag`
/// (`None`: with the sender's address); it stops after `count` datagrams.
pub async fn udp_server(
    ns: &Namespace,
    addr: std::net::SocketAddr,
    count: usize,
    tag: Option<&'static str>,
) -> std::thread::JoinHandle<()> {
    let sock = ns
        .run(move || std::net::UdpSocket::bind(addr))
        .await
        .expect("enter namespace")
        .unwrap_or_else(|e| panic!("bind udp {addr}: {e}"));
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        for _ in 0..count {
            let Ok((_, peer)) = sock.recv_from(&mut buf) else { break };
            let answer = tag.map_or_else(|| peer.ip().to_string(), str::to_string);
            let _ = sock.send_to(answer.as_bytes(), peer);
        }
    })
}

/// Sends a datagram from `ns` to `addr` and returns the answer (a few tries).
pub async fn udp_seen_as(ns: &Namespace, addr: std::net::SocketAddr) -> Result<String, String> {
    udp_ask_from(ns, 0, addr).await
}

/// Sends a datagram from `ns`, from local port `from_port` (0: any), to
/// `addr`, and returns the answer (a few tries).
pub async fn udp_ask_from(ns: &Namespace, from_port: u16, addr: std::net::SocketAddr) -> Result<String, String> {
    ns.run(move || {
        let any: std::net::IpAddr = if addr.is_ipv6() { [0u16; 8].into() } else { [0u8; 4].into() };
        let s = std::net::UdpSocket::bind((any, from_port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(400))).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        for _ in 0..4 {
            s.send_to(b"who", addr).map_err(|e| e.to_string())?;
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                return Ok(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        }
        Err(format!("no UDP answer from {addr}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whether a TCP socket can bind `addr` in `ns` (the port is free).
pub async fn can_bind_tcp(ns: &Namespace, addr: std::net::SocketAddr) -> bool {
    ns.run(move || std::net::TcpListener::bind(addr).is_ok()).await.unwrap_or(false)
}

pub mod attack;
pub mod dns;
pub mod dockerd;
pub mod etcd;
pub mod kernel;
pub mod tls;

pub mod traces;

/// The path of `lib<lib>.so`, the `cdylib` of workspace package `package`,
/// built (debug) by a nested `cargo build` in a target directory of its own
/// (`<target>/cdylibs`): `cargo test` builds libraries only as rlibs, and
/// holds its own target directory while tests run. A no-op when fresh.
/// Optimized when the caller is (benchmarks), debug otherwise.
pub fn cdylib(package: &str, lib: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let target = if target.is_relative() { root.join(target) } else { target }.join("cdylibs");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let release = !cfg!(debug_assertions);
    let mut args = vec!["build", "--quiet", "--locked", "-p", package];
    if release {
        args.push("--release");
    }
    let out = std::process::Command::new(cargo)
        .args(&args)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("run cargo to build {package}: {e}"));
    assert!(out.status.success(), "cargo build -p {package}: {}", String::from_utf8_lossy(&out.stderr));
    let path = target.join(if release { "release" } else { "debug" }).join(format!("lib{lib}.so"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Deletes every sandbox, endpoint and network of `ctrl` (test teardown).
pub async fn remove_all(ctrl: &Controller) {
    for sb in ctrl.sandboxes().await {
        sb.delete().await.expect("delete sandbox");
    }
    for net in ctrl.networks().await {
        for ep in net.endpoints().await {
            ep.delete().await.expect("delete endpoint");
        }
        net.delete().await.expect("delete network");
    }
}
pub mod crash;
pub mod recorder;
