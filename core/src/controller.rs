//! The `Controller`: the entry point that owns the drivers, the IPAMs, the
//! store, the host's netlink handle and every network, endpoint and sandbox.

use crate::locks::ObjectLocks;
use crate::state::{DnsState, State};
use crate::store::Store;
use crate::{Config, Error, Result};
use cnm_driverapi::{Driver, DriverProvider};
use cnm_ipamapi::{HostNetworks, Ipam, IpamProvider};
use cnm_osl::{Namespace, Netlink};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// The entry point of cnm: create networks and sandboxes through it.
///
/// Cheap to clone; every clone is the same controller.
#[derive(Clone)]
pub struct Controller {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: Config,
    pub host: Netlink,
    /// Drivers registered up front, and those providers supplied since.
    pub drivers: RwLock<BTreeMap<String, Arc<dyn Driver>>>,
    pub ipams: RwLock<BTreeMap<String, Arc<dyn Ipam>>>,
    pub driver_providers: Vec<Arc<dyn DriverProvider>>,
    pub ipam_providers: Vec<Arc<dyn IpamProvider>>,
    pub store: Store,
    /// The in-memory state: held only for map look-ups and updates, never
    /// across I/O (see [`crate::locks`]).
    pub state: Mutex<State>,
    /// Per-network and per-sandbox operation locks.
    pub locks: ObjectLocks,
    /// Names of networks being created.
    pub creating_networks: Arc<Mutex<HashSet<String>>>,
    /// Container ids of sandboxes being created.
    pub creating_sandboxes: Arc<Mutex<HashSet<String>>>,
    /// The embedded resolver, when [`Config::embedded_dns`] is on.
    pub dns: Option<DnsState>,
    /// Interfaces drivers report removed behind our back (drift repair).
    pub lost: crate::endpoint::LostInterfaces,
    /// Rollback steps that failed (each also logged).
    pub rollback_failures: std::sync::atomic::AtomicU64,
    /// This host's membership of a cluster (see [`ControllerBuilder::cluster`]).
    #[cfg(feature = "cluster")]
    pub membership: Option<crate::cluster::Membership>,
}

/// Makes a driver once the host's netlink handle is open (for drivers that ask for it).
type DriverFactory = Box<dyn FnOnce(&Netlink) -> Arc<dyn Driver> + Send>;
/// Makes an IPAM once the host's networks can be read (for IPAMs that ask for them).
type IpamFactory = Box<dyn FnOnce(Arc<dyn HostNetworks>) -> Arc<dyn Ipam> + Send>;

/// Builds a [`Controller`]: registers drivers and IPAMs, then restores the store.
///
/// No driver or IPAM is built in: register each one you want (the daemon
/// registers `null`, the default IPAM and the null IPAM, plus one driver per
/// Cargo feature). A driver or IPAM that needs the host's netlink handle or
/// its networks asks for them with the `_on_host` forms. Two registrations
/// under one name make [`ControllerBuilder::build`] fail.
pub struct ControllerBuilder {
    config: Config,
    drivers: Vec<DriverFactory>,
    ipams: Vec<(String, IpamFactory)>,
    driver_providers: Vec<Arc<dyn DriverProvider>>,
    ipam_providers: Vec<Arc<dyn IpamProvider>>,
    #[cfg(feature = "cluster")]
    cluster: Option<cnm_cluster::Cluster>,
}

impl ControllerBuilder {
    /// Makes the host a member of `cluster` (feature `cluster`): networks of
    /// global-scope drivers may be created ([`Config::cluster`] is set), a
    /// global network made here is published in the cluster store and
    /// withdrawn when removed (refused while any host has endpoints on
    /// it), the store's networks are adopted and forgotten as other hosts
    /// create and remove them, and the names of endpoints on global
    /// networks are shared between the hosts' resolvers. A sandbox joined
    /// to a global network with no default route also joins the local
    /// `docker_gwbridge` network (with the `bridge` driver), as Docker's.
    /// The drivers and IPAMs that keep cluster-wide state (the overlay
    /// driver, the global IPAM) are registered as usual, with the same
    /// cluster.
    #[cfg(feature = "cluster")]
    pub fn cluster(mut self, cluster: cnm_cluster::Cluster) -> Self {
        self.config.cluster = true;
        self.cluster = Some(cluster);
        self
    }

    /// Registers a network driver under its own name.
    pub fn driver(self, driver: impl Driver) -> Self {
        self.driver_arc(Arc::new(driver))
    }

    /// Registers a shared network driver under its own name.
    pub fn driver_arc(mut self, driver: Arc<dyn Driver>) -> Self {
        self.drivers.push(Box::new(move |_| driver));
        self
    }

    /// Registers a network driver that works on the host's namespace:
    /// `make` receives the host's netlink handle when the controller is built.
    pub fn driver_on_host<D, F>(mut self, make: F) -> Self
    where
        D: Driver,
        F: FnOnce(&Netlink) -> D + Send + 'static,
    {
        self.drivers.push(Box::new(move |nl| Arc::new(make(nl)) as Arc<dyn Driver>));
        self
    }

    /// Registers a shared network driver that works on the host's namespace:
    /// `make` receives the host's netlink handle when the controller is built.
    pub fn driver_arc_on_host<F>(mut self, make: F) -> Self
    where
        F: FnOnce(&Netlink) -> Arc<dyn Driver> + Send + 'static,
    {
        self.drivers.push(Box::new(make));
        self
    }

    /// Registers an IPAM driver under `name`.
    pub fn ipam(self, name: impl Into<String>, ipam: impl Ipam) -> Self {
        self.ipam_arc(name, Arc::new(ipam))
    }

    /// Registers a shared IPAM driver under `name`.
    pub fn ipam_arc(mut self, name: impl Into<String>, ipam: Arc<dyn Ipam>) -> Self {
        self.ipams.push((name.into(), Box::new(move |_| ipam)));
        self
    }

    /// Registers an IPAM driver that avoids the host's networks: `make`
    /// receives a reader of the host namespace's routes and addresses.
    pub fn ipam_on_host<I, F>(mut self, name: impl Into<String>, make: F) -> Self
    where
        I: Ipam,
        F: FnOnce(Arc<dyn HostNetworks>) -> I + Send + 'static,
    {
        self.ipams.push((name.into(), Box::new(move |host| Arc::new(make(host)) as Arc<dyn Ipam>)));
        self
    }

    /// Adds a source of network drivers found by name on first use (remote plugins).
    pub fn driver_provider(mut self, provider: Arc<dyn DriverProvider>) -> Self {
        self.driver_providers.push(provider);
        self
    }

    /// Adds a source of IPAM drivers found by name on first use (remote plugins).
    pub fn ipam_provider(mut self, provider: Arc<dyn IpamProvider>) -> Self {
        self.ipam_providers.push(provider);
        self
    }

    /// Opens the host namespace and the store, registers the drivers, and
    /// restores every object the store holds (see [`Controller::new`]).
    pub async fn build(self) -> Result<Controller> {
        let config = self.config;
        if config.rootless && !crate::rootless::is_root() {
            crate::rootless::enter().map_err(|e| Error::os("enter a user namespace (rootless)", e))?;
        }
        let host_ns = match &config.host_namespace {
            Some(p) => Namespace::open(p),
            None => Namespace::current(),
        }
        .map_err(|e| Error::os("open host namespace", e))?;
        let host =
            Netlink::connect(&host_ns, config.netlink_deadline).await.map_err(|e| Error::os("open host netlink", e))?;

        let lost = crate::endpoint::LostInterfaces::default();
        let mut drivers: BTreeMap<String, Arc<dyn Driver>> = BTreeMap::new();
        for make in self.drivers {
            let d = make(&host);
            d.watch_interfaces(lost.listener());
            let name = d.name().to_string();
            if drivers.insert(name.clone(), d).is_some() {
                return Err(Error::DuplicateDriver(name));
            }
        }
        let mut ipams: BTreeMap<String, Arc<dyn Ipam>> = BTreeMap::new();
        let host_networks: Arc<dyn HostNetworks> = Arc::new(crate::host_networks::HostRoutes::new(host.clone()));
        for (name, make) in self.ipams {
            if ipams.insert(name.clone(), make(host_networks.clone())).is_some() {
                return Err(Error::DuplicateIpamDriver(name));
            }
        }

        let store = Store::open(&config.store_path())?;
        let dns = config
            .embedded_dns
            .then(|| DnsState { resolver: cnm_dns::Resolver::new(), servers: Mutex::new(HashMap::new()) });
        let ctrl = Controller {
            inner: Arc::new(Inner {
                config,
                host,
                drivers: RwLock::new(drivers),
                ipams: RwLock::new(ipams),
                driver_providers: self.driver_providers,
                ipam_providers: self.ipam_providers,
                store,
                state: Mutex::new(State::default()),
                locks: ObjectLocks::default(),
                creating_networks: Arc::default(),
                creating_sandboxes: Arc::default(),
                dns,
                lost,
                rollback_failures: std::sync::atomic::AtomicU64::new(0),
                #[cfg(feature = "cluster")]
                membership: self.cluster.map(crate::cluster::Membership::new),
            }),
        };
        ctrl.restore().await?;
        let drivers: Vec<(String, Arc<dyn Driver>)> = ctrl
            .inner
            .drivers
            .read()
            .map(|d| d.iter().map(|(n, d)| (n.clone(), d.clone())).collect())
            .unwrap_or_default();
        for (name, drv) in drivers {
            if let Err(e) = drv.restored().await {
                tracing::warn!(driver = %name, error = %crate::Chain(&e), "driver failed to clean up after the restore");
            }
        }
        ctrl.ipams_restored().await;
        if let Some(default) = ctrl.inner.config.default_network.clone()
            && ctrl.network_by_name(&default.name).await.is_err()
        {
            let _scope = crate::kill::scope("default.");
            ctrl.new_network(&default.driver, &default.name, default.config).await?;
        }
        ctrl.follow_lost_interfaces();
        ctrl.cluster_follow();
        Ok(ctrl)
    }
}

impl Controller {
    /// What the drivers put back after someone else removed it (drift
    /// repair): (driver, what, how many times).
    pub fn repairs(&self) -> Vec<(String, String, u64)> {
        let drivers = self.inner.drivers.read().map(|d| d.clone()).unwrap_or_default();
        let mut out: Vec<(String, String, u64)> = drivers
            .into_iter()
            .flat_map(|(name, d)| d.repairs().into_iter().map(move |(what, n)| (name.clone(), what, n)))
            .collect();
        let interfaces = self.inner.lost.repaired.lock().map(|c| c.clone()).unwrap_or_default();
        out.extend(interfaces.into_iter().map(|(driver, n)| (driver, "container interface".to_string(), n)));
        out
    }

    /// How many rollback steps failed since the controller started: steps
    /// undoing a failed operation (a failed join, endpoint or network
    /// creation) or an interrupted one at restore — a driver's leave,
    /// endpoint delete or network free, an interface, directory or record
    /// removed. The rest of the rollback still runs. Each is also logged
    /// with the step, its object and the cause, so an operator can see
    /// what may be left.
    pub fn rollback_failures(&self) -> u64 {
        self.inner.rollback_failures.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Logs a rollback step that failed, with its object and cause, and counts it.
    pub(crate) fn rollback_failed(&self, step: &str, object: &str, cause: &dyn std::error::Error) {
        self.inner.rollback_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(step, object, error = %crate::Chain(cause), "a rollback step failed");
    }

    /// Runs the outcome of a rollback step through [`Controller::rollback_failed`] when it failed.
    pub(crate) fn rollback<T, E: std::error::Error>(
        &self,
        step: &str,
        object: &str,
        outcome: std::result::Result<T, E>,
    ) {
        if let Err(e) = outcome {
            self.rollback_failed(step, object, &e);
        }
    }

    /// A builder with no driver and no IPAM yet.
    pub fn builder(config: Config) -> ControllerBuilder {
        ControllerBuilder {
            config,
            drivers: Vec::new(),
            ipams: Vec::new(),
            driver_providers: Vec::new(),
            ipam_providers: Vec::new(),
            #[cfg(feature = "cluster")]
            cluster: None,
        }
    }

    /// A controller with no driver and no IPAM (its store restored as far
    /// as it goes without them); use [`Controller::builder`] to register some.
    ///
    /// Over an existing data directory it restores networks, endpoints and
    /// sandboxes: confirmed objects get their kernel state re-created where it
    /// is missing, interrupted operations are rolled back.
    pub async fn new(config: Config) -> Result<Self> {
        Self::builder(config).build().await
    }

    /// The in-memory state, for a few look-ups or updates: never hold the
    /// guard across an `.await`. A panic elsewhere cannot corrupt it between
    /// two steps, so a poisoned lock is taken over.
    pub(crate) fn st(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The default network (see [`Config::default_network`]), if configured.
    pub async fn default_network(&self) -> Option<crate::Network> {
        let name = self.inner.config.default_network.as_ref()?.name.clone();
        self.network_by_name(&name).await.ok()
    }

    /// The host namespace the controller works in.
    pub fn host_namespace(&self) -> &Namespace {
        self.inner.host.namespace()
    }

    /// The host's netlink handle.
    pub fn host_netlink(&self) -> &Netlink {
        &self.inner.host
    }

    /// The names of the network drivers known so far (registered, or found by a provider).
    pub fn drivers(&self) -> Vec<String> {
        self.inner.drivers.read().map(|d| d.keys().cloned().collect()).unwrap_or_default()
    }

    /// The names of the IPAM drivers known so far.
    pub fn ipam_drivers(&self) -> Vec<String> {
        self.inner.ipams.read().map(|d| d.keys().cloned().collect()).unwrap_or_default()
    }

    /// Every driver name usable now: the known ones and what the providers offer.
    pub async fn available_drivers(&self) -> Vec<String> {
        let mut names = self.drivers();
        for p in &self.inner.driver_providers {
            names.extend(p.available().await);
        }
        names.sort();
        names.dedup();
        names
    }

    /// Every IPAM driver name usable now.
    pub async fn available_ipam_drivers(&self) -> Vec<String> {
        let mut names = self.ipam_drivers();
        for p in &self.inner.ipam_providers {
            names.extend(p.available().await);
        }
        names.sort();
        names.dedup();
        names
    }

    /// The network driver named `name`: a registered one, or one a provider supplies.
    pub(crate) async fn driver(&self, name: &str) -> Result<Arc<dyn Driver>> {
        if let Some(d) = self.inner.drivers.read().ok().and_then(|d| d.get(name).cloned()) {
            return Ok(d);
        }
        for p in &self.inner.driver_providers {
            let found = p.network_driver(name).await.map_err(|source| Error::Driver {
                driver: name.to_string(),
                op: "load driver",
                source,
            })?;
            if let Some(d) = found {
                d.watch_interfaces(self.inner.lost.listener());
                if let Ok(mut map) = self.inner.drivers.write() {
                    map.insert(name.to_string(), d.clone());
                }
                return Ok(d);
            }
        }
        Err(Error::InvalidDriver { name: name.to_string(), available: self.available_drivers().await })
    }

    /// The IPAM driver named `name`: a registered one, or one a provider supplies.
    pub(crate) async fn ipam(&self, name: &str) -> Result<Arc<dyn Ipam>> {
        if let Some(i) = self.inner.ipams.read().ok().and_then(|d| d.get(name).cloned()) {
            return Ok(i);
        }
        for p in &self.inner.ipam_providers {
            let found = p.ipam_driver(name).await.map_err(|e| Error::ipam(format!("load ipam driver {name}"), e))?;
            if let Some(i) = found {
                if let Ok(mut map) = self.inner.ipams.write() {
                    map.insert(name.to_string(), i.clone());
                }
                return Ok(i);
            }
        }
        Err(Error::InvalidIpamDriver { name: name.to_string(), available: self.available_ipam_drivers().await })
    }
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("data_dir", &self.inner.config.data_dir)
            .field("drivers", &self.drivers())
            .finish()
    }
}
