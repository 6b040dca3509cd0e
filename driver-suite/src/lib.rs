//! One behaviour suite for every driver (OpenDAL's habit): give it any
//! `Arc<dyn Driver>` and a [`ScratchHost`], and it runs the driver contract
//! against it, choosing cases by the driver's capability. The in-tree
//! drivers, the remote driver, driver libraries and the example driver all
//! pass it in CI; a driver author runs it against theirs with one call:
//!
//! ```ignore
//! let host = cnm_driver_suite::ScratchHost::new().await?;   // root, or a user namespace
//! let driver = Arc::new(MyDriver::new(host.netlink().clone()));
//! cnm_driver_suite::check_driver(driver, &host).await.assert_passed();
//! ```
//!
//! What it checks, without a controller (so it reads the driver's answers,
//! not cnm's bookkeeping):
//! * a network is created and deleted, and created again after a delete
//!   (what a restart replays);
//! * an endpoint is created with an address and deleted; without an
//!   address it is created or refused as an invalid parameter;
//! * the error kinds: an unknown network or endpoint is not-found or
//!   invalid (never an internal error), an unknown option is refused as
//!   invalid or ignored;
//! * join and leave: the interface a join names exists (on the host or
//!   already in the sandbox), and is gone after leave;
//! * external connectivity is programmed and revoked (or not implemented).

use cnm_driverapi::{
    CreateEndpointRequest, CreateNetworkRequest, DeleteEndpointRequest, DeleteNetworkRequest, Driver,
    EndpointInterface, ErrorKind, IpamData, JoinRequest, ProgramExternalConnectivityRequest,
};
use cnm_osl::{Namespace, Netlink};
use ipnet::IpNet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A scratch "host": a network namespace of its own (and a directory for
/// sandbox namespaces), removed when dropped. Needs root or a user
/// namespace of the process's own.
pub struct ScratchHost {
    dir: tempfile::TempDir,
    ns: Namespace,
    nl: Netlink,
    sandboxes: AtomicU32,
}

impl ScratchHost {
    /// Creates the scratch host, its loopback up.
    pub async fn new() -> Result<ScratchHost, String> {
        let dir = tempfile::Builder::new().prefix("cnm-suite-").tempdir().map_err(|e| e.to_string())?;
        let (ns, nl) = Netlink::create_namespace(dir.path().join("host.netns"), cnm_osl::DEFAULT_DEADLINE)
            .await
            .map_err(|e| format!("create a scratch host namespace: {e}"))?;
        nl.link_set_up(1).await.map_err(|e| e.to_string())?;
        Ok(ScratchHost { dir, ns, nl, sandboxes: AtomicU32::new(0) })
    }

    /// Netlink in the scratch host: what a driver working on the host takes.
    pub fn netlink(&self) -> &Netlink {
        &self.nl
    }

    /// The scratch host's namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// The path of the scratch host's namespace (for a plugin or library
    /// that opens it: `Context::host_namespace`).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("host.netns")
    }

    /// A new sandbox namespace (loopback up); its path is the join's sandbox key.
    pub async fn sandbox(&self) -> Result<(PathBuf, Netlink), String> {
        let n = self.sandboxes.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("sandbox{n}"));
        let (_, nl) = Netlink::create_namespace(&path, cnm_osl::DEFAULT_DEADLINE).await.map_err(|e| e.to_string())?;
        nl.link_set_up(1).await.map_err(|e| e.to_string())?;
        Ok((path, nl))
    }
}

impl Drop for ScratchHost {
    fn drop(&mut self) {
        for n in 0..self.sandboxes.load(Ordering::Relaxed) {
            let _ = Namespace::remove(self.dir.path().join(format!("sandbox{n}")));
        }
        let _ = Namespace::remove(self.dir.path().join("host.netns"));
    }
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The driver behaved as the contract says.
    Passed,
    /// The case does not apply to this driver (why).
    Skipped(String),
    /// It did not (what happened).
    Failed(String),
}

/// What the suite found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The driver's name.
    pub driver: String,
    /// Each case and its outcome.
    pub cases: Vec<(&'static str, Outcome)>,
}

impl Report {
    /// Whether no case failed.
    pub fn passed(&self) -> bool {
        !self.cases.iter().any(|(_, o)| matches!(o, Outcome::Failed(_)))
    }

    /// Panics with every failed case, if any (for tests).
    pub fn assert_passed(&self) {
        let failed: Vec<String> = self
            .cases
            .iter()
            .filter_map(|(n, o)| match o {
                Outcome::Failed(why) => Some(format!("  {n}: {why}")),
                _ => None,
            })
            .collect();
        assert!(failed.is_empty(), "driver {} failed the behaviour suite:\n{}", self.driver, failed.join("\n"));
    }
}

type CaseResult = Result<Outcome, String>;

/// Ids and addresses of one case: fresh ids, a /24 of its own.
struct Ids {
    network: String,
    subnet: IpNet,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Ids {
    fn new() -> Ids {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        Ids {
            network: format!("{:0>56x}{:08x}", pid, n),
            subnet: format!("10.236.{}.0/24", n % 250).parse().expect("literal subnet"),
        }
    }

    fn endpoint(&self, i: u8) -> String {
        format!("{}{:02x}", &self.network[..62], i)
    }

    fn address(&self, host: u8) -> IpNet {
        let IpNet::V4(s) = self.subnet else { unreachable!("an IPv4 subnet") };
        let o = s.network().octets();
        IpNet::new(std::net::Ipv4Addr::new(o[0], o[1], o[2], host).into(), 24).expect("valid prefix")
    }

    fn create_network(&self) -> CreateNetworkRequest {
        CreateNetworkRequest {
            network_id: self.network.clone(),
            ipv4_data: vec![IpamData {
                address_space: "LocalDefault".into(),
                pool: self.subnet,
                gateway: Some(self.address(1)),
                aux_addresses: Default::default(),
            }],
            ..Default::default()
        }
    }

    fn create_endpoint(&self, i: u8, with_address: bool) -> CreateEndpointRequest {
        CreateEndpointRequest {
            network_id: self.network.clone(),
            endpoint_id: self.endpoint(i),
            interface: EndpointInterface { address: with_address.then(|| self.address(i + 2)), ..Default::default() },
            ..Default::default()
        }
    }

    fn endpoint_req(&self, i: u8) -> DeleteEndpointRequest {
        DeleteEndpointRequest { network_id: self.network.clone(), endpoint_id: self.endpoint(i) }
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// An error of an allowed kind, or success.
fn ok_or_kinds<T>(what: &str, r: cnm_driverapi::Result<T>, kinds: &[ErrorKind]) -> Result<(), String> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if kinds.contains(&e.kind()) => Ok(()),
        Err(e) => Err(format!("{what}: expected success or {kinds:?}, got {:?}: {e}", e.kind())),
    }
}

/// Runs the whole suite against `driver` in `host`.
pub async fn check_driver(driver: Arc<dyn Driver>, host: &ScratchHost) -> Report {
    let d = &*driver;
    let mut report = Report { driver: d.name().to_string(), cases: Vec::new() };
    let cases: [(&'static str, CaseResult); 7] = [
        ("network lifecycle and re-creation", network_lifecycle(d).await),
        ("endpoint with and without an address", endpoints(d).await),
        ("unknown network and endpoint", unknown_objects(d).await),
        ("unknown option", unknown_option(d).await),
        ("join and leave", join_and_leave(d, host).await),
        ("external connectivity", external_connectivity(d, host).await),
        ("capability", capability(d)),
    ];
    for (name, r) in cases {
        report.cases.push((name, r.unwrap_or_else(Outcome::Failed)));
    }
    report
}

async fn network_lifecycle(d: &dyn Driver) -> CaseResult {
    let ids = Ids::new();
    d.create_network(ids.create_network()).await.map_err(|e| failed("create", e))?;
    let del = || DeleteNetworkRequest { network_id: ids.network.clone() };
    d.delete_network(del()).await.map_err(|e| failed("delete", e))?;
    d.create_network(ids.create_network()).await.map_err(|e| failed("create again after a delete", e))?;
    d.delete_network(del()).await.map_err(|e| failed("delete again", e))?;
    Ok(Outcome::Passed)
}

async fn endpoints(d: &dyn Driver) -> CaseResult {
    let ids = Ids::new();
    d.create_network(ids.create_network()).await.map_err(|e| failed("create network", e))?;
    let r = async {
        d.create_endpoint(ids.create_endpoint(0, true)).await.map_err(|e| failed("create with an address", e))?;
        d.delete_endpoint(ids.endpoint_req(0)).await.map_err(|e| failed("delete", e))?;
        let bare = d.create_endpoint(ids.create_endpoint(1, false)).await;
        let created = bare.is_ok();
        ok_or_kinds("create without an address", bare, &[ErrorKind::InvalidParameter])?;
        if created {
            d.delete_endpoint(ids.endpoint_req(1)).await.map_err(|e| failed("delete the bare endpoint", e))?;
        }
        Ok(Outcome::Passed)
    }
    .await;
    let _ = d.delete_network(DeleteNetworkRequest { network_id: ids.network.clone() }).await;
    r
}

async fn unknown_objects(d: &dyn Driver) -> CaseResult {
    let ids = Ids::new();
    let kinds = [ErrorKind::NotFound, ErrorKind::InvalidParameter];
    ok_or_kinds(
        "create an endpoint on an unknown network",
        d.create_endpoint(ids.create_endpoint(0, true)).await,
        &kinds,
    )?;
    ok_or_kinds("delete an unknown endpoint", d.delete_endpoint(ids.endpoint_req(5)).await, &kinds)?;
    ok_or_kinds("leave an unknown endpoint", d.leave(ids.endpoint_req(6)).await, &kinds)?;
    let del = DeleteNetworkRequest { network_id: ids.network.clone() };
    ok_or_kinds("delete an unknown network", d.delete_network(del).await, &kinds)?;
    // Whatever it accepted above is cleaned up.
    let _ = d.delete_endpoint(ids.endpoint_req(0)).await;
    Ok(Outcome::Passed)
}

async fn unknown_option(d: &dyn Driver) -> CaseResult {
    let ids = Ids::new();
    let mut req = ids.create_network();
    req.options.generic.insert("com.example.suite.no-such-option".into(), "1".into());
    let r = d.create_network(req).await;
    let created = r.is_ok();
    ok_or_kinds("create with an unknown option", r, &[ErrorKind::InvalidParameter])?;
    if created {
        d.delete_network(DeleteNetworkRequest { network_id: ids.network }).await.map_err(|e| failed("delete", e))?;
    }
    Ok(Outcome::Passed)
}

/// Whether link `name` exists in `nl`'s namespace.
async fn has_link(nl: &Netlink, name: &str) -> bool {
    nl.link_get(name).await.ok().flatten().is_some()
}

/// Where a join of `d` goes: the scratch host itself for a driver sharing
/// the host's namespace, else a new sandbox.
async fn sandbox_for(d: &dyn Driver, host: &ScratchHost) -> Result<(PathBuf, Netlink), String> {
    if d.capability().host_namespace { Ok((host.path(), host.netlink().clone())) } else { host.sandbox().await }
}

/// Creates endpoint 0 (with an address) on the case's network and joins it to `key`.
async fn create_and_join(
    d: &dyn Driver,
    ids: &Ids,
    key: &std::path::Path,
) -> Result<cnm_driverapi::JoinResponse, String> {
    d.create_endpoint(ids.create_endpoint(0, true)).await.map_err(|e| failed("create endpoint", e))?;
    let join = JoinRequest {
        network_id: ids.network.clone(),
        endpoint_id: ids.endpoint(0),
        sandbox_key: key.display().to_string(),
        ..Default::default()
    };
    d.join(join).await.map_err(|e| failed("join", e))
}

async fn join_and_leave(d: &dyn Driver, host: &ScratchHost) -> CaseResult {
    let ids = Ids::new();
    let (key, sandbox) = sandbox_for(d, host).await?;
    d.create_network(ids.create_network()).await.map_err(|e| failed("create network", e))?;
    let r = async {
        let resp = create_and_join(d, &ids, &key).await?;
        let src = resp.interface_name.map(|i| i.src_name);
        if let Some(src) = &src
            && !has_link(host.netlink(), src).await
            && !has_link(&sandbox, src).await
        {
            return Err(format!("join named interface {src}, which exists neither on the host nor in the sandbox"));
        }
        d.leave(ids.endpoint_req(0)).await.map_err(|e| failed("leave", e))?;
        if let Some(src) = &src {
            // Drivers may finish deleting in the background: wait, bounded.
            let end = Instant::now() + Duration::from_secs(5);
            while has_link(host.netlink(), src).await || has_link(&sandbox, src).await {
                if Instant::now() > end {
                    return Err(format!("interface {src} is still there 5 s after leave"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        d.delete_endpoint(ids.endpoint_req(0)).await.map_err(|e| failed("delete endpoint", e))?;
        Ok(Outcome::Passed)
    }
    .await;
    let _ = d.delete_network(DeleteNetworkRequest { network_id: ids.network.clone() }).await;
    r
}

async fn external_connectivity(d: &dyn Driver, host: &ScratchHost) -> CaseResult {
    let ids = Ids::new();
    let (key, _sandbox) = sandbox_for(d, host).await?;
    d.create_network(ids.create_network()).await.map_err(|e| failed("create network", e))?;
    let r = async {
        create_and_join(d, &ids, &key).await?;
        let program = ProgramExternalConnectivityRequest {
            network_id: ids.network.clone(),
            endpoint_id: ids.endpoint(0),
            options: Default::default(),
        };
        let not_impl = [ErrorKind::NotImplemented];
        ok_or_kinds("program", d.program_external_connectivity(program).await, &not_impl)?;
        ok_or_kinds("revoke", d.revoke_external_connectivity(ids.endpoint_req(0)).await, &not_impl)?;
        d.leave(ids.endpoint_req(0)).await.map_err(|e| failed("leave", e))?;
        d.delete_endpoint(ids.endpoint_req(0)).await.map_err(|e| failed("delete endpoint", e))?;
        Ok(Outcome::Passed)
    }
    .await;
    let _ = d.delete_network(DeleteNetworkRequest { network_id: ids.network.clone() }).await;
    r
}

fn capability(d: &dyn Driver) -> CaseResult {
    if d.name().is_empty() {
        return Err("the driver has no name".into());
    }
    let c = d.capability();
    if c.host_namespace && c.data_scope == cnm_driverapi::Scope::Global {
        return Err("a driver sharing the host's namespace cannot be of global scope".into());
    }
    Ok(Outcome::Passed)
}

/// Runs the IPAM part of the suite against `ipam`: address spaces; an
/// explicit pool with any address, a chosen address and the same one twice
/// (refused); releases; an unknown pool (not an internal error); a pool the
/// IPAM chooses.
pub async fn check_ipam(name: &str, ipam: Arc<dyn cnm_ipamapi::Ipam>) -> Report {
    let i = &*ipam;
    let mut report = Report { driver: name.to_string(), cases: Vec::new() };
    let cases: [(&'static str, CaseResult); 3] = [
        ("explicit pool and addresses", ipam_pool(i).await),
        ("unknown pool", ipam_unknown_pool(i).await),
        ("pool chosen by the IPAM", ipam_chosen_pool(i).await),
    ];
    for (name, r) in cases {
        report.cases.push((name, r.unwrap_or_else(Outcome::Failed)));
    }
    report
}

fn address_req(pool_id: &str, address: Option<std::net::IpAddr>) -> cnm_ipamapi::RequestAddressRequest {
    cnm_ipamapi::RequestAddressRequest { pool_id: pool_id.to_string(), address, options: None }
}

async fn ipam_pool(i: &dyn cnm_ipamapi::Ipam) -> CaseResult {
    let spaces = i.default_address_spaces().await.map_err(|e| failed("default address spaces", e))?;
    let subnet: IpNet = format!("10.237.{}.0/24", NEXT.fetch_add(1, Ordering::Relaxed) % 250).parse().expect("literal");
    let req = cnm_ipamapi::RequestPoolRequest {
        address_space: spaces.local.clone(),
        pool: Some(subnet),
        sub_pool: None,
        options: Default::default(),
        v6: false,
    };
    let pool = i.request_pool(req).await.map_err(|e| failed("request an explicit pool", e))?;
    if pool.pool != subnet {
        return Err(format!("asked for pool {subnet}, got {}", pool.pool));
    }
    let r = async {
        let any = i.request_address(address_req(&pool.pool_id, None)).await.map_err(|e| failed("any address", e))?;
        if !subnet.contains(&any.address.addr()) {
            return Err(format!("address {} is outside pool {subnet}", any.address));
        }
        let IpNet::V4(s) = subnet else { unreachable!("an IPv4 subnet") };
        let o = s.network().octets();
        let chosen = std::net::IpAddr::from([o[0], o[1], o[2], 77]);
        let got = i
            .request_address(address_req(&pool.pool_id, Some(chosen)))
            .await
            .map_err(|e| failed("a chosen address", e))?;
        if got.address.addr() != chosen {
            return Err(format!("asked for {chosen}, got {}", got.address));
        }
        match i.request_address(address_req(&pool.pool_id, Some(chosen))).await {
            Ok(_) => return Err(format!("{chosen} was handed out twice")),
            Err(e) if e.kind() == ErrorKind::Internal => {
                return Err(failed("the same address twice (an internal error)", e));
            }
            Err(_) => {}
        }
        for a in [any.address.addr(), chosen] {
            let rel = cnm_ipamapi::ReleaseAddressRequest { pool_id: pool.pool_id.clone(), address: a };
            i.release_address(rel).await.map_err(|e| failed("release an address", e))?;
        }
        Ok(Outcome::Passed)
    }
    .await;
    let rel = cnm_ipamapi::ReleasePoolRequest { pool_id: pool.pool_id.clone() };
    let released = i.release_pool(rel).await.map_err(|e| failed("release the pool", e));
    r.and_then(|o| released.map(|()| o))
}

async fn ipam_unknown_pool(i: &dyn cnm_ipamapi::Ipam) -> CaseResult {
    match i.request_address(address_req("no-such-pool", None)).await {
        Err(e) if e.kind() == ErrorKind::Internal => {
            Err(failed("an address of an unknown pool (an internal error)", e))
        }
        _ => Ok(Outcome::Passed),
    }
}

async fn ipam_chosen_pool(i: &dyn cnm_ipamapi::Ipam) -> CaseResult {
    let spaces = i.default_address_spaces().await.map_err(|e| failed("default address spaces", e))?;
    let req = cnm_ipamapi::RequestPoolRequest {
        address_space: spaces.local,
        pool: None,
        sub_pool: None,
        options: Default::default(),
        v6: false,
    };
    let pool = i.request_pool(req).await.map_err(|e| failed("a pool chosen by the IPAM", e))?;
    let rel = cnm_ipamapi::ReleasePoolRequest { pool_id: pool.pool_id };
    i.release_pool(rel).await.map_err(|e| failed("release it", e))?;
    Ok(Outcome::Passed)
}
