//! Kernel features, probed rather than assumed: a throwaway link of the
//! kind in a scratch network namespace of the probe's own (the kernel loads
//! the module on demand, and the namespace and link are gone with the
//! probe), or the module files of the running kernel. A feature is
//! reported missing only when the probe saw the kernel refuse it.

use crate::{Error, Netlink, Result};
use rtnetlink::packet_route::link::IpVlanMode;
use rtnetlink::{LinkIpVlan, LinkWireguard};
use std::path::Path;
use std::time::Duration;

/// A kind of link a network may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkFeature {
    /// Dummy links (module `dummy`).
    Dummy,
    /// 802.1q VLAN links (module `8021q`).
    Vlan,
    /// ipvlan links (module `ipvlan`).
    Ipvlan,
    /// WireGuard links (module `wireguard`).
    Wireguard,
}

impl LinkFeature {
    /// The kernel module that provides the feature.
    pub fn module(self) -> &'static str {
        match self {
            LinkFeature::Dummy => "dummy",
            LinkFeature::Vlan => "8021q",
            LinkFeature::Ipvlan => "ipvlan",
            LinkFeature::Wireguard => "wireguard",
        }
    }
}

/// Whether the running kernel can make links of `feature`: one is made in
/// a scratch namespace (its parent, where it needs one, a dummy or a veth
/// end made there too). `Ok(false)` only when the kernel answered that it
/// does not support the link type.
pub async fn has_link(feature: LinkFeature) -> Result<bool> {
    let nl = Netlink::scratch(Duration::from_secs(5)).await?;
    let made = match feature {
        LinkFeature::Dummy => nl.link_add_dummy("probe0").await,
        LinkFeature::Wireguard => {
            let req = nl.handle.link().add(LinkWireguard::new("probe0").build()).execute();
            nl.call(|| "ip link add probe0 type wireguard".into(), req).await
        }
        LinkFeature::Vlan | LinkFeature::Ipvlan => {
            // A parent that every kernel running cnm has: a veth end, up (a
            // VLAN link cannot come up on a parent that is down).
            let spec = crate::VethSpec { name: "probe1", peer_name: "probe2", up: true, ..Default::default() };
            nl.link_add_veth(&spec).await?;
            let parent = nl.link_get("probe1").await?.ok_or_else(|| Error::Invalid("probe parent vanished".into()))?;
            if feature == LinkFeature::Vlan {
                nl.link_add_vlan("probe0", parent.index, 10).await
            } else {
                let req =
                    nl.handle.link().add(LinkIpVlan::new("probe0", parent.index, IpVlanMode::L2).build()).execute();
                nl.call(|| "ip link add probe0 link probe1 type ipvlan".into(), req).await
            }
        }
    };
    match made {
        Ok(()) => Ok(true),
        Err(Error::Unsupported(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether module `name` is loaded, built in, or installed for the running
/// kernel (what `modprobe -n` would find): `/sys/module/NAME`, then the
/// kernel's `modules.builtin` and `modules.dep`. Dashes and underscores are
/// the same in module names.
pub fn module_available(name: &str) -> bool {
    let name = name.replace('-', "_");
    if Path::new("/sys/module").join(&name).exists() {
        return true;
    }
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else { return false };
    let dir = Path::new("/lib/modules").join(release.trim());
    let listed = |file: &str| {
        std::fs::read_to_string(dir.join(file)).is_ok_and(|text| {
            text.lines().any(|line| {
                let path = line.split(':').next().unwrap_or_default();
                let base = path.rsplit('/').next().unwrap_or_default();
                base.split(".ko").next().is_some_and(|m| m.replace('-', "_") == name)
            })
        })
    };
    listed("modules.builtin") || listed("modules.dep")
}

#[cfg(test)]
mod tests {
    use super::module_available;

    #[test]
    fn a_module_that_no_kernel_has_is_not_available() {
        assert!(!module_available("cnm_no_such_module"));
    }
}
