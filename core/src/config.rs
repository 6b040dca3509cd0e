//! The controller's configuration.

use crate::NetworkConfig;
use std::path::PathBuf;
use std::time::Duration;

/// How a controller is set up: where it keeps its state and which host it works on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Persistent state: the store (`cnm.db`) and per-sandbox files (`hosts`, `resolv.conf`).
    pub data_dir: PathBuf,
    /// Runtime state: sandbox namespaces are mounted under `exec_root/netns`.
    pub exec_root: PathBuf,
    /// The "host" namespace the controller and its drivers work in; `None`
    /// means the namespace of the thread that builds the controller.
    pub host_namespace: Option<PathBuf>,
    /// The host's `resolv.conf`, the base of every sandbox's `resolv.conf`.
    pub host_resolv_conf: PathBuf,
    /// Deadline of each netlink request.
    pub netlink_deadline: Duration,
    /// A network created at start if missing (docker0's role), used when no network is named.
    pub default_network: Option<DefaultNetwork>,
    /// Not root: run inside a user namespace of the process's own (see [`crate::rootless`]).
    pub rootless: bool,
    /// Run the embedded DNS resolver (127.0.0.11 in every sandbox on a
    /// network with DNS on; see [`Config::embedded_dns`]).
    pub embedded_dns: bool,
    /// The host is a member of a cluster: networks of global-scope drivers
    /// may be created. Set by [`crate::ControllerBuilder::cluster`], which
    /// also shares them with the other hosts; set alone, their sharing is
    /// the caller's ([`crate::GlobalNetwork`]).
    pub cluster: bool,
}

/// The default network: created when the controller starts, unless it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultNetwork {
    /// The network's name (Docker's is `bridge`).
    pub name: String,
    /// The driver.
    pub driver: String,
    /// How to create it.
    pub config: NetworkConfig,
}

impl DefaultNetwork {
    /// A default network named `name` of `driver`, created with `config`
    /// (the driver's options, such as its interface name, go in `config.options`).
    pub fn new(name: impl Into<String>, driver: impl Into<String>, config: NetworkConfig) -> Self {
        DefaultNetwork { name: name.into(), driver: driver.into(), config }
    }
}

impl Config {
    /// A configuration with state in `data_dir` and the usual defaults
    /// (`/run/cnm` as exec root, the caller's namespace as host).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            exec_root: PathBuf::from("/run/cnm"),
            host_namespace: None,
            host_resolv_conf: PathBuf::from("/etc/resolv.conf"),
            netlink_deadline: cnm_osl::DEFAULT_DEADLINE,
            default_network: None,
            rootless: false,
            embedded_dns: false,
            cluster: false,
        }
    }

    /// When the process is not root, runs the controller inside a user
    /// namespace of its own, with its own network and mount namespaces
    /// ([`crate::rootless::enter`]; as root this changes nothing). The
    /// namespaces, bridges, veths and firewall table are real but private:
    /// the host's own network is out of reach. The process must still be
    /// single-threaded when the controller is built, unless `main` called
    /// [`crate::rootless::enter`] before starting its runtime.
    pub fn rootless(mut self, on: bool) -> Self {
        self.rootless = on;
        self
    }

    /// Turns the embedded DNS resolver on or off (off by default).
    ///
    /// On, every sandbox joined to a network with DNS on (any network but
    /// the default one, unless [`crate::NetworkConfig::disable_dns`] is set)
    /// gets a resolver at 127.0.0.11:53, UDP and TCP, served by the
    /// controller's tokio runtime: the names of the sandboxes it shares a
    /// network with (container id, host name, endpoint name, aliases) resolve
    /// there, other names go to the sandbox's DNS servers (`dns`, or the
    /// host's), and its `resolv.conf` names 127.0.0.11.
    pub fn embedded_dns(mut self, on: bool) -> Self {
        self.embedded_dns = on;
        self
    }

    /// Declares the host a cluster member: global-scope networks are allowed.
    pub fn cluster(mut self, on: bool) -> Self {
        self.cluster = on;
        self
    }

    /// Sets the exec root (namespaces go under `exec_root/netns`).
    pub fn exec_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.exec_root = dir.into();
        self
    }

    /// Sets the host namespace by path.
    pub fn host_namespace(mut self, path: impl Into<PathBuf>) -> Self {
        self.host_namespace = Some(path.into());
        self
    }

    /// Sets the host `resolv.conf` that sandboxes start from.
    pub fn host_resolv_conf(mut self, path: impl Into<PathBuf>) -> Self {
        self.host_resolv_conf = path.into();
        self
    }

    /// Sets the default network, created at start if missing.
    pub fn default_network(mut self, network: DefaultNetwork) -> Self {
        self.default_network = Some(network);
        self
    }

    /// The directory of sandbox namespaces.
    pub fn netns_dir(&self) -> PathBuf {
        self.exec_root.join("netns")
    }

    /// The store file.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("cnm.db")
    }
}
