//! The driver cases: the contract of `cnm_driverapi::Driver`, proved by
//! packets between namespaces where the driver declares connectivity, and
//! by the documented error kinds where it declares none.

use crate::declared::{Declared, Outcome, Report};
use crate::host::{CLIENT_ADDRESS, HOST_ADDRESS, Sandbox, ScratchHost};
use crate::plumb::{self, ANSWER, Service};
use cnm_driverapi::{
    AllocateNetworkRequest, Chain, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest,
    DeleteEndpointRequest, DeleteNetworkRequest, Driver, EndpointInterface, ErrorKind, FreeNetworkRequest, IpamData,
    JoinRequest, JoinResponse, PortBinding, ProgramExternalConnectivityRequest, Protocol, SandboxOptions,
};
use ipnet::{IpNet, Ipv4Net};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How long a probe that must be answered waits.
const ANSWERED: Duration = Duration::from_secs(5);
/// How long a probe that must not be answered waits.
const UNANSWERED: Duration = Duration::from_millis(800);
/// The port the sandbox's service listens on.
const SERVICE_PORT: u16 = 8080;

/// Makes the driver again, as a restarted process would (a new instance
/// over the same host and state directory).
pub type Restart = Box<dyn Fn() -> Arc<dyn Driver> + Send + Sync>;

/// One host of a suite: its driver (replaced by a restart) and its scratch host.
struct Member<'h> {
    driver: std::sync::Mutex<Arc<dyn Driver>>,
    host: &'h ScratchHost,
}

impl<'h> Member<'h> {
    fn new(driver: Arc<dyn Driver>, host: &'h ScratchHost) -> Self {
        Member { driver: std::sync::Mutex::new(driver), host }
    }

    fn driver(&self) -> Arc<dyn Driver> {
        self.driver.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `new` in place of the driver and returns the old one.
    fn replace(&self, new: Arc<dyn Driver>) -> Arc<dyn Driver> {
        std::mem::replace(&mut *self.driver.lock().unwrap_or_else(|p| p.into_inner()), new)
    }
}

/// A member's driver and host, for one call.
struct At<'h> {
    driver: Arc<dyn Driver>,
    host: &'h ScratchHost,
}

/// The behaviour suite for one driver: built with [`Suite::new`], told
/// what the driver declares, run with [`Suite::run`].
pub struct Suite<'h> {
    members: Vec<Member<'h>>,
    declared: Declared,
    restart: Option<Restart>,
    subnet: Ipv4Net,
}

type CaseResult = Result<Outcome, String>;

static NEXT: AtomicU32 = AtomicU32::new(0);

impl<'h> Suite<'h> {
    /// The suite for `driver` working in `host`, declaring nothing yet.
    pub fn new(driver: Arc<dyn Driver>, host: &'h ScratchHost) -> Self {
        Suite {
            members: vec![Member::new(driver, host)],
            declared: Declared::default(),
            restart: None,
            subnet: Ipv4Net::new(Ipv4Addr::new(10, 236, 0, 0), 24).unwrap_or_default(),
        }
    }

    /// What the driver declares: the cases follow from it.
    pub fn declare(mut self, declared: Declared) -> Self {
        self.declared = declared;
        self
    }

    /// Adds the restart case: `restart` makes the driver again; the suite
    /// replays networks, endpoints and published ports to the new instance
    /// (as the controller does at start) and proves the sandboxes still
    /// reach each other and the ports still answer.
    pub fn restart_with(mut self, restart: impl Fn() -> Arc<dyn Driver> + Send + Sync + 'static) -> Self {
        self.restart = Some(Box::new(restart));
        self
    }

    /// A second host for a driver whose networks span hosts: every network
    /// is created on both, and the second sandbox of a case is joined there.
    pub fn second_host(mut self, driver: Arc<dyn Driver>, host: &'h ScratchHost) -> Self {
        self.members.push(Member::new(driver, host));
        self
    }

    /// The IPv4 subnet of the suite's networks (default 10.236.0.0/24):
    /// `.1` is the gateway, sandboxes get `.2` upwards.
    pub fn subnet(mut self, subnet: Ipv4Net) -> Self {
        self.subnet = subnet;
        self
    }

    /// Runs every case that applies, one after another.
    pub async fn run(self) -> Report {
        let name = self.members[0].driver().name().to_string();
        let mut report = Report { driver: name, cases: Vec::new() };
        let mut push = |name, r: CaseResult| report.cases.push((name, r.unwrap_or_else(Outcome::Failed)));
        push("capability", self.capability());
        push("network lifecycle and re-creation", self.network_lifecycle().await);
        push("endpoint with and without an address", self.endpoints().await);
        push("unknown network and endpoint", self.unknown_objects().await);
        push("options: foreign kept, unknown own refused by name", self.options().await);
        push("join proved by packets, and leave", self.join_and_leave().await);
        push("external connectivity observed", self.external_connectivity().await);
        push("restart and replay", self.restart().await);
        report
    }

    fn capability(&self) -> CaseResult {
        let first = self.members[0].driver();
        let d = &*first;
        if d.name().is_empty() {
            return Err("the driver has no name".into());
        }
        let c = d.capability();
        if c.host_namespace && c.data_scope == cnm_driverapi::Scope::Global {
            return Err("a driver sharing the host's namespace cannot be of global scope".into());
        }
        if self.members.len() > 1 && c.connectivity() != cnm_driverapi::Scope::Global {
            return Err("the suite was given a second host, but the driver's connectivity is local".into());
        }
        Ok(Outcome::Passed)
    }

    async fn network_lifecycle(&self) -> CaseResult {
        let net = Net::new(self);
        net.create().await?;
        net.delete().await?;
        net.create().await.map_err(|e| format!("again after a delete: {e}"))?;
        net.delete().await.map_err(|e| format!("again: {e}"))?;
        Ok(Outcome::Passed)
    }

    async fn endpoints(&self) -> CaseResult {
        let net = Net::new(self);
        net.create().await?;
        let r = async {
            let first = self.members[0].driver();
            let d = &*first;
            d.create_endpoint(net.endpoint_req(0, true)).await.map_err(|e| failed("create with an address", e))?;
            d.create_endpoint(net.endpoint_req(0, true)).await.map_err(|e| failed("create it again (a replay)", e))?;
            d.delete_endpoint(net.endpoint(0)).await.map_err(|e| failed("delete", e))?;
            let bare = d.create_endpoint(net.endpoint_req(1, false)).await;
            let created = bare.is_ok();
            ok_or_kinds("create without an address", bare, &[ErrorKind::InvalidParameter])?;
            if created {
                d.delete_endpoint(net.endpoint(1)).await.map_err(|e| failed("delete the bare endpoint", e))?;
            }
            Ok(Outcome::Passed)
        }
        .await;
        net.delete_after(r).await
    }

    async fn unknown_objects(&self) -> CaseResult {
        let net = Net::new(self);
        let first = self.members[0].driver();
        let d = &*first;
        let gone = [ErrorKind::NotFound];
        let on_unknown = d.create_endpoint(net.endpoint_req(0, true)).await;
        if self.declared.stateless {
            // Whatever it accepted is cleaned up.
            if on_unknown.is_ok() {
                let _ = d.delete_endpoint(net.endpoint(0)).await;
            }
        } else {
            match on_unknown {
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(format!(
                        "an endpoint on an unknown network: not-found expected, got {:?}: {}",
                        e.kind(),
                        e.message()
                    ));
                }
                Ok(_) => return Err("an endpoint on an unknown network was created".into()),
            }
        }
        ok_or_kinds("delete an unknown endpoint", d.delete_endpoint(net.endpoint(5)).await, &gone)?;
        ok_or_kinds("leave an unknown endpoint", d.leave(net.endpoint(6)).await, &gone)?;
        ok_or_kinds("delete an unknown network", d.delete_network(net.delete_req()).await, &gone)?;
        Ok(Outcome::Passed)
    }

    async fn options(&self) -> CaseResult {
        let net = Net::new(self);
        let foreign = "com.example.cnm-suite.label";
        net.create_with(&[(foreign, "kept")])
            .await
            .map_err(|e| format!("a foreign option ({foreign}) was refused: {e}"))?;
        net.delete().await?;
        let Some(prefix) = &self.declared.option_prefix else {
            return Ok(Outcome::Passed);
        };
        let key = format!("{prefix}cnm-suite-no-such-option");
        match net.create_with(&[(&key, "1")]).await {
            Ok(()) => {
                net.delete().await?;
                Err(format!("an unknown option of the driver's own ({key}) was accepted"))
            }
            Err(NetError { kind: ErrorKind::InvalidParameter, message }) if message.contains(&key) => {
                // Nothing of the refused network is left: the same id is free.
                net.create().await.map_err(|e| format!("create after the refused one: {e}"))?;
                net.delete().await?;
                Ok(Outcome::Passed)
            }
            Err(e) => Err(format!("an unknown own option ({key}): invalid-parameter naming it expected, got {e}")),
        }
    }

    async fn join_and_leave(&self) -> CaseResult {
        let net = Net::new(self);
        net.create().await?;
        let r = async {
            let before = net.host_links().await?;
            let a = net.join(0).await?;
            let b = net.join(1).await?;
            let mut proved = Vec::new();
            if self.declared.interface {
                if a.resp.interface_name.is_none() {
                    return Err("the driver declares an interface, and its join names none".into());
                }
            } else if a.resp.interface_name.is_some() {
                return Err("the driver declares no interface, and its join names one".into());
            }
            if self.declared.gateway {
                net.reach(&a, net.gateway().into()).await?;
                proved.push("gateway");
            }
            if self.declared.connects_sandboxes {
                net.reach(&a, net.address(1)).await?;
                net.reach(&b, net.address(0)).await?;
                proved.push("between sandboxes");
            }
            net.leave(&b).await?;
            if self.declared.connects_sandboxes {
                // Control of the probe: with the link gone, no answer; so
                // the answers above came through the driver's link.
                net.unreachable(&a, net.address(1)).await?;
            }
            net.leave(&a).await?;
            // What the joins made on the hosts, the leaves removed.
            net.host_links_back(&before).await?;
            Ok(Outcome::Passed)
        }
        .await;
        net.delete_after(r).await
    }

    async fn external_connectivity(&self) -> CaseResult {
        let net = Net::new(self);
        net.create().await?;
        let r = async {
            let a = net.join(0).await?;
            let host_port = 20000 + (NEXT.fetch_add(1, Ordering::Relaxed) % 10000) as u16;
            let program = net.program_req(0, host_port);
            let d = net.member(0).driver;
            let r = if self.declared.publishes_ports {
                let service = Service::start(&a.sandbox, SocketAddr::new(net.address(0), SERVICE_PORT)).await?;
                d.program_external_connectivity(program).await.map_err(|e| failed("program", e))?;
                net.port_answers(host_port).await?;
                d.revoke_external_connectivity(net.endpoint(0)).await.map_err(|e| failed("revoke", e))?;
                net.port_silent(host_port).await.map_err(|e| format!("after revoke: {e}"))?;
                drop(service);
                Ok(Outcome::Passed)
            } else {
                let none = [ErrorKind::NotImplemented];
                ok_or_kinds("program", d.program_external_connectivity(program).await, &none)?;
                ok_or_kinds("revoke", d.revoke_external_connectivity(net.endpoint(0)).await, &none)?;
                Ok(Outcome::Passed)
            };
            net.leave(&a).await?;
            r
        }
        .await;
        net.delete_after(r).await
    }

    async fn restart(&self) -> CaseResult {
        let Some(restart) = &self.restart else {
            return Ok(Outcome::Skipped("no way to restart the driver was given".into()));
        };
        let net = Net::new(self);
        net.create().await?;
        let host_port = 20000 + (NEXT.fetch_add(1, Ordering::Relaxed) % 10000) as u16;
        let r = async {
            let a = net.join(0).await?;
            let b = net.join(1).await?;
            let service = if self.declared.publishes_ports {
                let service = Service::start(&a.sandbox, SocketAddr::new(net.address(0), SERVICE_PORT)).await?;
                let old = net.member(0).driver;
                old.program_external_connectivity(net.program_req(0, host_port))
                    .await
                    .map_err(|e| failed("program", e))?;
                Some(service)
            } else {
                None
            };
            // The restart: a new instance, told again what the controller
            // restores (networks, endpoints, ports), then that it is done.
            let new = restart();
            drop(self.members[0].replace(new.clone()));
            let replay = async {
                new.create_network(net.create_req(&[])).await.map_err(|e| failed("replay the network", e))?;
                for i in net.on_member(0) {
                    new.create_endpoint(net.endpoint_req(i, true))
                        .await
                        .map_err(|e| failed("replay an endpoint", e))?;
                }
                if self.declared.publishes_ports {
                    new.program_external_connectivity(net.program_req(0, host_port))
                        .await
                        .map_err(|e| failed("replay the published ports", e))?;
                }
                new.restored().await.map_err(|e| failed("restored", e))
            };
            replay.await?;
            if self.declared.gateway {
                net.reach(&a, net.gateway().into()).await.map_err(|e| format!("after the restart: {e}"))?;
            }
            if self.declared.connects_sandboxes {
                net.reach(&a, net.address(1)).await.map_err(|e| format!("after the restart: {e}"))?;
            }
            if self.declared.publishes_ports {
                net.port_answers(host_port).await.map_err(|e| format!("after the restart: {e}"))?;
                let d = net.member(0).driver;
                d.revoke_external_connectivity(net.endpoint(0)).await.map_err(|e| failed("revoke", e))?;
                // The new instance knew the port: its revoke closed it.
                net.port_silent(host_port).await.map_err(|e| format!("after the restart's revoke: {e}"))?;
            }
            drop(service);
            net.leave(&b).await?;
            net.leave(&a).await?;
            net.delete().await?;
            Ok(Outcome::Passed)
        }
        .await;
        if r.is_err() {
            net.clean_up().await;
            let _ = net.delete().await;
        }
        r
    }
}

/// A driver error with its kind and text.
#[derive(Debug)]
struct NetError {
    kind: ErrorKind,
    message: String,
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// A joined endpoint: where, and what the join answered.
struct Joined {
    index: u8,
    sandbox: Sandbox,
    resp: JoinResponse,
}

/// One case's network: a fresh id on the suite's subnet, on every member.
struct Net<'s, 'h> {
    suite: &'s Suite<'h>,
    id: String,
    /// What a global driver's `network_allocate` answered: options every
    /// host's `create_network` gets (the controller's part).
    allocated: std::sync::Mutex<BTreeMap<String, String>>,
}

impl<'s, 'h> Net<'s, 'h> {
    fn new(suite: &'s Suite<'h>) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Net { suite, id: random_id(u64::from(std::process::id()) << 32 | u64::from(n)), allocated: Default::default() }
    }

    /// The member endpoint `i` lives on (the second sandbox on the second host).
    fn member(&self, i: u8) -> At<'h> {
        let m = &self.suite.members[usize::from(i) % self.suite.members.len()];
        At { driver: m.driver(), host: m.host }
    }

    /// The endpoints of the case (0 and 1) that live on member `m`.
    fn on_member(&self, m: usize) -> Vec<u8> {
        (0u8..2).filter(|i| usize::from(*i) % self.suite.members.len() == m).collect()
    }

    fn drivers(&self) -> Vec<Arc<dyn Driver>> {
        self.suite.members.iter().map(Member::driver).collect()
    }

    fn gateway(&self) -> Ipv4Addr {
        let o = self.suite.subnet.network().octets();
        Ipv4Addr::new(o[0], o[1], o[2], o[3] + 1)
    }

    /// Endpoint `i`'s address.
    fn address(&self, i: u8) -> IpAddr {
        let o = self.suite.subnet.network().octets();
        Ipv4Addr::new(o[0], o[1], o[2], o[3] + 2 + i).into()
    }

    fn address_net(&self, i: u8) -> IpNet {
        IpNet::new(self.address(i), self.suite.subnet.prefix_len()).unwrap_or_default()
    }

    fn create_req(&self, extra: &[(&str, &str)]) -> CreateNetworkRequest {
        let mut req = CreateNetworkRequest {
            network_id: self.id.clone(),
            ipv4_data: vec![IpamData {
                address_space: "LocalDefault".into(),
                pool: self.suite.subnet.into(),
                gateway: IpNet::new(self.gateway().into(), self.suite.subnet.prefix_len()).ok(),
                aux_addresses: Default::default(),
            }],
            ..Default::default()
        };
        req.options.generic = self.options(extra);
        req.options.generic.extend(self.allocated.lock().unwrap_or_else(|p| p.into_inner()).clone());
        req
    }

    /// The declared network options and `extra`.
    fn options(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut options = self.suite.declared.network_options.clone();
        for (k, v) in extra {
            options.insert(k.to_string(), v.to_string());
        }
        options
    }

    /// Whether the driver's networks are global: allocated once, then
    /// created on every host.
    fn global(&self) -> bool {
        self.suite.members[0].driver().capability().data_scope == cnm_driverapi::Scope::Global
    }

    fn delete_req(&self) -> DeleteNetworkRequest {
        DeleteNetworkRequest { network_id: self.id.clone() }
    }

    /// Endpoint `i`'s id: as random-looking as Docker's, so that names
    /// drivers derive from an id's first characters differ.
    fn endpoint_id(&self, i: u8) -> String {
        let seed = u64::from_str_radix(&self.id[..16], 16).unwrap_or_default();
        random_id(seed ^ (u64::from(i) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn endpoint(&self, i: u8) -> DeleteEndpointRequest {
        DeleteEndpointRequest { network_id: self.id.clone(), endpoint_id: self.endpoint_id(i) }
    }

    fn endpoint_req(&self, i: u8, with_address: bool) -> CreateEndpointRequest {
        CreateEndpointRequest {
            network_id: self.id.clone(),
            endpoint_id: self.endpoint_id(i),
            interface: EndpointInterface { address: with_address.then(|| self.address_net(i)), ..Default::default() },
            ..Default::default()
        }
    }

    fn program_req(&self, i: u8, host_port: u16) -> ProgramExternalConnectivityRequest {
        ProgramExternalConnectivityRequest {
            network_id: self.id.clone(),
            endpoint_id: self.endpoint_id(i),
            options: SandboxOptions {
                exposed_ports: Vec::new(),
                port_map: vec![PortBinding {
                    proto: Protocol::Tcp,
                    ip: Some(self.address(i)),
                    port: SERVICE_PORT,
                    host_ip: None,
                    host_port,
                    host_port_end: host_port,
                }],
                host_ports_held: false,
            },
        }
    }

    async fn create_with(&self, extra: &[(&str, &str)]) -> Result<(), NetError> {
        let error = |e: cnm_driverapi::Error| NetError { kind: e.kind(), message: e.message() };
        if self.global() {
            let req = AllocateNetworkRequest {
                network_id: self.id.clone(),
                options: self.options(extra),
                ipv4_data: self.create_req(&[]).ipv4_data,
                ipv6_data: Vec::new(),
            };
            let resp = self.suite.members[0].driver().network_allocate(req).await.map_err(error)?;
            *self.allocated.lock().unwrap_or_else(|p| p.into_inner()) = resp.options;
        }
        let drivers = self.drivers();
        for (n, d) in drivers.iter().enumerate() {
            if let Err(e) = d.create_network(self.create_req(extra)).await {
                // Undone as the controller would: the hosts that made it, then the allocation.
                for made in &drivers[..n] {
                    let _ = made.delete_network(self.delete_req()).await;
                }
                if self.global() {
                    let _ = drivers[0].network_free(FreeNetworkRequest { network_id: self.id.clone() }).await;
                }
                return Err(error(e));
            }
        }
        Ok(())
    }

    async fn create(&self) -> Result<(), String> {
        self.create_with(&[]).await.map_err(|e| format!("create the network: {e}"))
    }

    async fn delete(&self) -> Result<(), String> {
        for d in self.drivers() {
            d.delete_network(self.delete_req()).await.map_err(|e| failed("delete the network", e))?;
        }
        if self.global() {
            let free = FreeNetworkRequest { network_id: self.id.clone() };
            let d = self.suite.members[0].driver();
            d.network_free(free).await.map_err(|e| failed("free the network", e))?;
            self.allocated.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        Ok(())
    }

    /// Deletes the network after a case (its endpoints first, if the
    /// case failed), keeping the case's failure first.
    async fn delete_after(&self, r: CaseResult) -> CaseResult {
        if r.is_err() {
            self.clean_up().await;
        }
        let deleted = self.delete().await;
        let o = r?;
        deleted?;
        Ok(o)
    }

    /// Creates endpoint `i` on its member, joins it to a new sandbox there
    /// (the host itself for a driver of the host's stack), and places its
    /// interface as the controller would.
    async fn join(&self, i: u8) -> Result<Joined, String> {
        let m = self.member(i);
        let d = &*m.driver;
        let sandbox = if d.capability().host_namespace { m.host.as_sandbox() } else { m.host.sandbox().await? };
        let created: CreateEndpointResponse =
            d.create_endpoint(self.endpoint_req(i, true)).await.map_err(|e| failed("create an endpoint", e))?;
        let join = JoinRequest {
            network_id: self.id.clone(),
            endpoint_id: self.endpoint_id(i),
            sandbox_key: sandbox.key.display().to_string(),
            ..Default::default()
        };
        let resp = d.join(join).await.map_err(|e| failed("join", e))?;
        let mac = created.interface.as_ref().and_then(|c| c.mac_address);
        if let Err(e) = plumb::place(m.host.netlink(), &sandbox, &resp, Some(self.address_net(i)), mac).await {
            let _ = d.leave(self.endpoint(i)).await;
            let _ = d.delete_endpoint(self.endpoint(i)).await;
            return Err(e);
        }
        Ok(Joined { index: i, sandbox, resp })
    }

    /// Leaves and deletes endpoint `j`, removing what is left of its link
    /// in the sandbox as the controller does (the driver's leave may
    /// already have: a veth goes with its host end).
    async fn leave(&self, j: &Joined) -> Result<(), String> {
        let m = self.member(j.index);
        let d = &*m.driver;
        d.leave(self.endpoint(j.index)).await.map_err(|e| failed("leave", e))?;
        if let Some(iface) = &j.resp.interface_name {
            let placed = plumb::sandbox_name(&iface.dst_prefix);
            if let Ok(Some(l)) = j.sandbox.netlink.link_get(&placed).await {
                let _ = j.sandbox.netlink.link_del(l.index).await;
            }
        }
        d.delete_endpoint(self.endpoint(j.index)).await.map_err(|e| failed("delete the endpoint", e))
    }

    /// `dst` answers a ping from `j`'s sandbox.
    async fn reach(&self, j: &Joined, dst: IpAddr) -> Result<(), String> {
        cnm_osl::probe::ping(j.sandbox.namespace(), dst, ANSWERED)
            .await
            .map(|_| ())
            .map_err(|e| format!("sandbox {} pinged {dst} and got no answer: {}", self.address(j.index), Chain(&e)))
    }

    /// `dst` does not answer a ping from `j`'s sandbox (no reply, or no
    /// route; a probe that could not run is a failure, not silence).
    async fn unreachable(&self, j: &Joined, dst: IpAddr) -> Result<(), String> {
        match cnm_osl::probe::ping(j.sandbox.namespace(), dst, UNANSWERED).await {
            Ok(_) => Err(format!("sandbox {} still reaches {dst} after its leave", self.address(j.index))),
            Err(e) if plumb::is_silence(&e) => Ok(()),
            Err(e) => Err(format!("the ping from sandbox {} could not run: {}", self.address(j.index), Chain(&e))),
        }
    }

    /// The links in every member's host namespace.
    async fn host_links(&self) -> Result<Vec<Vec<cnm_osl::Link>>, String> {
        let mut all = Vec::new();
        for m in &self.suite.members {
            all.push(m.host.netlink().link_list().await.map_err(|e| failed("list the host's links", e))?);
        }
        Ok(all)
    }

    /// Waits (at most 5 s: drivers may delete in the background) until
    /// no member's host has a link it did not have in `before`.
    async fn host_links_back(&self, before: &[Vec<cnm_osl::Link>]) -> Result<(), String> {
        let end = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let now = self.host_links().await?;
            let left: Vec<String> = now
                .into_iter()
                .zip(before)
                .flat_map(|(links, had)| links.into_iter().filter(|l| !had.iter().any(|h| h.index == l.index)))
                .map(|l| l.name)
                .collect();
            if left.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() > end {
                return Err(format!(
                    "links the joins made are still on the host 5 s after the leaves: {}",
                    left.join(", ")
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// After a failed case: every endpoint of the case revoked, left and
    /// deleted wherever it may be, failures ignored (the case already
    /// failed), so that the next case starts clean.
    async fn clean_up(&self) {
        for i in 0u8..2 {
            let d = self.member(i).driver;
            let _ = d.revoke_external_connectivity(self.endpoint(i)).await;
            let _ = d.leave(self.endpoint(i)).await;
            let _ = d.delete_endpoint(self.endpoint(i)).await;
        }
    }

    /// A connection from the client outside member 0 to the host's
    /// `host_port` reaches the sandbox's service.
    async fn port_answers(&self, host_port: u16) -> Result<(), String> {
        let client = self.member(0).host.client().await?;
        let to = SocketAddr::new(HOST_ADDRESS.into(), host_port);
        match cnm_osl::probe::tcp_exchange(client, to, Vec::new(), ANSWERED).await {
            Ok(got) if got == ANSWER => Ok(()),
            Ok(got) => {
                Err(format!("{CLIENT_ADDRESS} → {to}: answered {:?}, not the service", String::from_utf8_lossy(&got)))
            }
            Err(e) => Err(format!("{CLIENT_ADDRESS} → {to}: the published port did not answer: {}", Chain(&e))),
        }
    }

    /// The host's `host_port` no longer leads to the service (refused,
    /// unanswered or unroutable; a probe that could not run is a failure).
    async fn port_silent(&self, host_port: u16) -> Result<(), String> {
        let client = self.member(0).host.client().await?;
        let to = SocketAddr::new(HOST_ADDRESS.into(), host_port);
        match cnm_osl::probe::tcp_exchange(client, to, Vec::new(), UNANSWERED).await {
            Ok(got) if got == ANSWER => Err(format!("{CLIENT_ADDRESS} → {to} still reaches the service")),
            Ok(_) => Ok(()),
            Err(e) if plumb::is_silence(&e) => Ok(()),
            Err(e) => Err(format!("{CLIENT_ADDRESS} → {to}: the probe could not run: {}", Chain(&e))),
        }
    }
}

/// A 64-hex-digit id drawn from `seed` (splitmix64), unique per seed.
fn random_id(seed: u64) -> String {
    let mut x = seed;
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..4).map(|_| format!("{:016x}", next())).collect()
}

fn failed(what: &str, e: impl std::error::Error) -> String {
    format!("{what}: {}", cnm_driverapi::Chain(&e))
}

/// Success, or an error of one of `kinds`.
fn ok_or_kinds<T>(what: &str, r: cnm_driverapi::Result<T>, kinds: &[ErrorKind]) -> Result<(), String> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if kinds.contains(&e.kind()) => Ok(()),
        Err(e) => Err(format!("{what}: success or {kinds:?} expected, got {:?}: {}", e.kind(), e.message())),
    }
}
