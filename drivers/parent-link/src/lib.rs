//! The host link a macvlan or ipvlan network hangs off, shared by both
//! drivers: the interface `-o parent` names, as it is; its 802.1q
//! sub-interface (`eth0.10`: VLAN 10 of `eth0`), made when missing; or,
//! without a parent, a dummy link of the network's own (a host-only
//! network, as Docker's). A link the driver made carries the driver's mark
//! (its alias), so that it goes with the last network using it, also after
//! a restart; an unmarked link is the user's and stays.

use cnm_driverapi::ErrorKind;
use cnm_osl::Netlink;

/// The `parent` option.
pub const PARENT: &str = "parent";

/// Why a network's link cannot be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `parent` option is malformed.
    #[error("{0}")]
    InvalidOption(String),
    /// The parent interface does not exist.
    #[error("-o parent interface was not found on the host: {0}")]
    NotFound(String),
    /// The link a network hangs off went away after the network was made
    /// (a VLAN or dummy link removed by hand, the parent unplugged).
    #[error("the network's link {0} is gone from the host")]
    Gone(String),
    /// The kernel lacks the link type the network needs.
    #[error("{what} needs {feature}, which this kernel lacks")]
    MissingKernelFeature {
        /// What was being made.
        what: String,
        /// The kernel feature (and its module).
        feature: &'static str,
        /// The kernel's answer.
        #[source]
        source: cnm_osl::Error,
    },
    /// A kernel operation failed: the step, and the OS layer's error.
    #[error(transparent)]
    Os(#[from] cnm_osl::Failed),
}

impl Error {
    /// The class of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidOption(_) | Error::NotFound(_) => ErrorKind::InvalidParameter,
            Error::Gone(_) => ErrorKind::NotFound,
            Error::MissingKernelFeature { .. } => ErrorKind::NotImplemented,
            Error::Os(failed) => failed.kind(),
        }
    }

    fn os(op: impl Into<String>, source: cnm_osl::Error) -> Self {
        Error::Os(source.during(op))
    }
}

/// The 802.1q sub-interface `parent` names (`eth0.10` → `eth0`, 10), if it
/// names one; a name with a dot and a bad VLAN id is refused.
pub fn vlan(parent: &str) -> Result<Option<(&str, u16)>, Error> {
    let Some((base, id)) = parent.rsplit_once('.') else { return Ok(None) };
    let id: u16 = id
        .parse()
        .ok()
        .filter(|id| (1..4095).contains(id))
        .ok_or_else(|| Error::InvalidOption(format!("{PARENT} {parent:?}: the VLAN id must be 1 to 4094")))?;
    if base.is_empty() {
        return Err(Error::InvalidOption(format!("{PARENT} {parent:?}: no interface before the VLAN id")));
    }
    Ok(Some((base, id)))
}

/// What a network hangs off, once it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentLink {
    /// The link's name.
    pub name: String,
    /// Whether the driver made it (and removes it with the last network using it).
    pub made: bool,
}

/// How one driver names and marks the links it makes.
#[derive(Debug, Clone, Copy)]
pub struct Maker {
    /// The driver's name, in errors (`macvlan`).
    pub driver: &'static str,
    /// The alias marking the 802.1q links it made (`cnm:macvlan`).
    pub mark: &'static str,
    /// The prefix of its dummy links, followed by the network id's first 12 characters (`dm-`).
    pub dummy_prefix: &'static str,
}

impl Maker {
    /// The dummy link of host-only network `nid`.
    pub fn dummy_name(&self, nid: &str) -> String {
        format!("{}{}", self.dummy_prefix, cnm_driverapi::id::short(nid, 12))
    }

    /// Makes sure network `nid`'s link exists: `parent` as it is, its VLAN
    /// sub-interface (made and marked if missing), or (no parent) a dummy
    /// of its own. A kernel without 802.1q or dummy links gets an error
    /// naming the module.
    pub async fn ensure(&self, host: &Netlink, nid: &str, parent: Option<&str>) -> Result<ParentLink, Error> {
        let look_up = |name: String| async move {
            host.link_get(&name).await.map_err(|e| Error::os(format!("look up {name}"), e))
        };
        let Some(parent) = parent else {
            let name = self.dummy_name(nid);
            if look_up(name.clone()).await?.is_some() {
                return Ok(ParentLink { name, made: true });
            }
            return match host.link_add_dummy(&name).await {
                Ok(()) => Ok(ParentLink { name, made: true }),
                Err(e @ cnm_osl::Error::Unsupported(_)) => Err(Error::MissingKernelFeature {
                    what: format!("a {} network without -o parent (its parent is a dummy link {name})", self.driver),
                    feature: "dummy links (kernel module dummy)",
                    source: e,
                }),
                Err(e) => Err(Error::os(format!("create dummy link {name}"), e)),
            };
        };
        if parent == "lo" {
            return Err(Error::InvalidOption(format!("loopback interface is not a valid {} parent link", self.driver)));
        }
        if let Some(link) = look_up(parent.to_string()).await? {
            // A VLAN link this driver made (before a restart, say) is still its own.
            return Ok(ParentLink { name: parent.to_string(), made: link.alias.as_deref() == Some(self.mark) });
        }
        let Some((base, id)) = vlan(parent)? else { return Err(Error::NotFound(parent.to_string())) };
        let Some(base_link) = look_up(base.to_string()).await? else { return Err(Error::NotFound(base.to_string())) };
        match host.link_add_vlan_marked(parent, base_link.index, id, self.mark).await {
            Ok(()) => Ok(ParentLink { name: parent.to_string(), made: true }),
            Err(e @ cnm_osl::Error::Unsupported(_)) => Err(Error::MissingKernelFeature {
                what: format!("-o parent={parent} (an 802.1q sub-interface of {base})"),
                feature: "802.1q VLAN links (kernel module 8021q)",
                source: e,
            }),
            Err(e) => Err(Error::os(format!("create VLAN link {parent}"), e)),
        }
    }

    /// Removes a link the driver made, once no network uses it (logged if it cannot).
    pub async fn remove(&self, host: &Netlink, name: &str) {
        if let Err(e) = host.link_del_by_name(name).await {
            tracing::warn!(link = name, driver = self.driver, error = %cnm_driverapi::Chain(&e), "cannot remove a network's parent link");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_parents_are_read_as_docker_names_them() {
        assert_eq!(vlan("eth0.10").unwrap(), Some(("eth0", 10)));
        assert_eq!(vlan("br.lan.4094").unwrap(), Some(("br.lan", 4094)));
        assert_eq!(vlan("eth0").unwrap(), None);
        for bad in ["eth0.0", "eth0.4095", "eth0.5000", "eth0.x", ".7", "eth0."] {
            let e = vlan(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidParameter, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[tokio::test]
    async fn loopback_is_no_parent() {
        // Refused before any kernel call: a socket of no namespace in particular is enough.
        let Ok(host) = Netlink::connect(&cnm_osl::Namespace::current().unwrap(), cnm_osl::DEFAULT_DEADLINE).await
        else {
            return;
        };
        let m = Maker { driver: "ipvlan", mark: "cnm:ipvlan", dummy_prefix: "di-" };
        let e = m.ensure(&host, "n", Some("lo")).await.unwrap_err();
        assert!(e.to_string().contains("loopback interface is not a valid ipvlan parent link"), "{e}");
    }

    #[test]
    fn dummy_links_are_named_after_the_network() {
        let m = Maker { driver: "macvlan", mark: "cnm:macvlan", dummy_prefix: "dm-" };
        assert_eq!(m.dummy_name(&"ab".repeat(32)), "dm-abababababab");
    }
}
