//! A firewall that records calls instead of touching the kernel, for driver
//! unit tests that run without root.

use super::{Firewall, NetworkRules, PortMapping, VxlanNetwork};
use crate::{Error, Result};
use async_trait::async_trait;
use std::sync::Mutex;

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallCall {
    /// `ensure_base`.
    EnsureBase,
    /// `add_network`.
    AddNetwork(NetworkRules),
    /// `remove_network`.
    RemoveNetwork(NetworkRules),
    /// `add_ports`.
    AddPorts(Vec<PortMapping>),
    /// `remove_ports`.
    RemovePorts(Vec<PortMapping>),
    /// `remove_ports_into`.
    RemovePortsInto(Vec<ipnet::IpNet>),
    /// `retain`.
    Retain(Vec<String>, Vec<ipnet::IpNet>),
    /// `add_vxlan`.
    AddVxlan(VxlanNetwork),
    /// `set_vxlan_peers`.
    SetVxlanPeers(VxlanNetwork, Vec<std::net::Ipv4Addr>),
    /// `remove_vxlan`.
    RemoveVxlan(VxlanNetwork),
    /// `retain_vxlan`.
    RetainVxlan(Vec<VxlanNetwork>),
    /// `remove_all`.
    RemoveAll,
}

/// Records every call; can be told to fail the next one.
#[derive(Debug, Default)]
pub struct RecordingFirewall {
    calls: Mutex<Vec<FirewallCall>>,
    fail_next: Mutex<Option<String>>,
}

impl RecordingFirewall {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<FirewallCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Makes the next call fail with `message`.
    pub fn fail_next(&self, message: &str) {
        if let Ok(mut f) = self.fail_next.lock() {
            *f = Some(message.to_string());
        }
    }

    fn record(&self, call: FirewallCall) -> Result<()> {
        if let Some(msg) = self.fail_next.lock().ok().and_then(|mut f| f.take()) {
            return Err(Error::Netlink { op: "firewall".into(), errno: None, message: msg });
        }
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
        Ok(())
    }
}

#[async_trait]
impl Firewall for RecordingFirewall {
    async fn ensure_base(&self) -> Result<()> {
        self.record(FirewallCall::EnsureBase)
    }
    async fn add_network(&self, net: &NetworkRules) -> Result<()> {
        self.record(FirewallCall::AddNetwork(net.clone()))
    }
    async fn remove_network(&self, net: &NetworkRules) -> Result<()> {
        self.record(FirewallCall::RemoveNetwork(net.clone()))
    }
    async fn add_ports(&self, ports: &[PortMapping]) -> Result<()> {
        self.record(FirewallCall::AddPorts(ports.to_vec()))
    }
    async fn remove_ports(&self, ports: &[PortMapping]) -> Result<()> {
        self.record(FirewallCall::RemovePorts(ports.to_vec()))
    }
    async fn retain(&self, bridges: &[String], subnets: &[ipnet::IpNet]) -> Result<usize> {
        self.record(FirewallCall::Retain(bridges.to_vec(), subnets.to_vec())).map(|()| 0)
    }
    async fn remove_ports_into(&self, subnets: &[ipnet::IpNet]) -> Result<usize> {
        self.record(FirewallCall::RemovePortsInto(subnets.to_vec())).map(|()| 0)
    }
    async fn add_vxlan(&self, net: VxlanNetwork) -> Result<()> {
        self.record(FirewallCall::AddVxlan(net))
    }
    async fn set_vxlan_peers(&self, net: VxlanNetwork, peers: &[std::net::Ipv4Addr]) -> Result<()> {
        self.record(FirewallCall::SetVxlanPeers(net, peers.to_vec()))
    }
    async fn remove_vxlan(&self, net: VxlanNetwork) -> Result<()> {
        self.record(FirewallCall::RemoveVxlan(net))
    }
    async fn retain_vxlan(&self, keep: &[VxlanNetwork]) -> Result<usize> {
        self.record(FirewallCall::RetainVxlan(keep.to_vec())).map(|()| 0)
    }
    async fn remove_all(&self) -> Result<()> {
        self.record(FirewallCall::RemoveAll)
    }
}
