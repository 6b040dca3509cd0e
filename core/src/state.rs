//! What the controller holds in memory beside its store: the records of
//! every network, endpoint and sandbox, and their runtime parts (a
//! sandbox's netlink handle, the resolver's servers). Below the controller
//! and the operations that change it (the locks module says how).

use crate::model::{EndpointRecord, NetworkRecord, RemoteName, SandboxRecord};
use cnm_osl::Netlink;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// The embedded resolver: the shared records and one server per sandbox.
pub(crate) struct DnsState {
    pub resolver: Arc<cnm_dns::Resolver>,
    /// Running servers by sandbox id; only held for map updates.
    pub servers: Mutex<HashMap<String, cnm_dns::SandboxServer>>,
}

/// A sandbox's runtime state beside its record.
pub(crate) struct SandboxState {
    pub rec: SandboxRecord,
    /// Netlink inside the sandbox's namespace, opened on first use.
    pub netlink: Option<Netlink>,
    /// Indexes of the interfaces the controller placed, by name (saves look-ups).
    pub ifindex: HashMap<String, u32>,
    /// What could not be restored at the last start (shown in its info).
    pub errors: Vec<String>,
}

/// Everything the controller knows. Operations change it in short steps,
/// holding the locks of the objects they work on.
#[derive(Default)]
pub(crate) struct State {
    pub networks: HashMap<String, NetworkRecord>,
    pub endpoints: HashMap<String, EndpointRecord>,
    pub sandboxes: HashMap<String, SandboxState>,
    /// Networks whose driver could not be told about them at start (its
    /// plugin was down, say); they are replayed to the driver on next use.
    pub unrestored: HashSet<String>,
    /// Names of endpoints of global networks served by other hosts, by key.
    pub remote_names: std::collections::BTreeMap<String, RemoteName>,
}

impl State {
    /// The endpoints of network `network_id`, as (name, id), sorted.
    pub fn endpoints_of(&self, network_id: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .endpoints
            .values()
            .filter(|e| e.network_id == network_id)
            .map(|e| (e.name.clone(), e.id.clone()))
            .collect();
        v.sort();
        v
    }
}
