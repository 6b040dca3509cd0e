//! The controller's configuration.

use cnm_ipams::DefaultIpamConfig;
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
    /// Predefined pools of the default IPAM.
    pub default_pools: DefaultIpamConfig,
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
            default_pools: DefaultIpamConfig::default(),
        }
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

    /// The directory of sandbox namespaces.
    pub fn netns_dir(&self) -> PathBuf {
        self.exec_root.join("netns")
    }

    /// The store file.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("cnm.db")
    }
}
