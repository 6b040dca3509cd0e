//! An ipvlan network's configuration, read from its driver options.

use crate::Error;
use cnm_osl::{IpvlanFlag, IpvlanMode};
use std::collections::BTreeMap;

pub use cnm_parent_link::PARENT;
/// The `ipvlan_mode` option.
pub const MODE: &str = "ipvlan_mode";
/// The `ipvlan_flag` option.
pub const FLAG: &str = "ipvlan_flag";
/// The prefix of the ipvlan driver's own option keys (besides `parent`).
const OWN_PREFIX: &str = "ipvlan_";

/// What an ipvlan network is built on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpvlanConfig {
    /// The host interface; `None` for a host-only network on a dummy link.
    pub parent: Option<String>,
    /// How the links reach the segment.
    pub mode: IpvlanMode,
    /// How the links reach each other.
    pub flag: IpvlanFlag,
    /// No default route in sandboxes (`--internal`, or no parent).
    pub internal: bool,
}

impl IpvlanConfig {
    /// Reads the driver options; an unknown `ipvlan_` key (a typo) is
    /// refused, other keys are kept (logged), as Docker keeps them.
    pub fn from_options(options: &BTreeMap<String, String>, internal: bool) -> Result<Self, Error> {
        let mut cfg = IpvlanConfig { internal, ..Default::default() };
        for (k, v) in options {
            match k.as_str() {
                PARENT if !v.is_empty() => cfg.parent = Some(v.clone()),
                PARENT => {}
                MODE => {
                    cfg.mode = match v.as_str() {
                        "" | "l2" => IpvlanMode::L2,
                        "l3" => IpvlanMode::L3,
                        "l3s" => IpvlanMode::L3s,
                        other => {
                            return Err(Error::InvalidOption(format!("{MODE} {other:?}: expected l2, l3 or l3s")));
                        }
                    }
                }
                FLAG => {
                    cfg.flag = match v.as_str() {
                        "" | "bridge" => IpvlanFlag::Bridge,
                        "private" => IpvlanFlag::Private,
                        "vepa" => IpvlanFlag::Vepa,
                        other => {
                            return Err(Error::InvalidOption(format!(
                                "{FLAG} {other:?}: expected bridge, private or vepa"
                            )));
                        }
                    }
                }
                other if other.starts_with(OWN_PREFIX) => {
                    return Err(Error::InvalidOption(format!("unknown ipvlan option {other:?}")));
                }
                other => tracing::warn!(option = %other, "option kept, not used by the ipvlan driver"),
            }
        }
        // Docker's rule: a network without a parent (on a dummy link of
        // its own) is internal — no way out, so no default route.
        if cfg.parent.is_none() {
            cfg.internal = true;
        }
        Ok(cfg)
    }

    /// Whether sandboxes route through the host (`l3`, `l3s`) rather than a gateway.
    pub fn routed(&self) -> bool {
        self.mode != IpvlanMode::L2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn options_are_read_as_docker_names_them() {
        let given = opts(&[("parent", "eth0.10"), ("ipvlan_mode", "l3s"), ("ipvlan_flag", "private")]);
        let c = IpvlanConfig::from_options(&given, true).unwrap();
        assert_eq!(c.parent.as_deref(), Some("eth0.10"));
        assert_eq!((c.mode, c.flag), (IpvlanMode::L3s, IpvlanFlag::Private));
        assert!(c.internal && c.routed());
        let c = IpvlanConfig::from_options(&opts(&[]), false).unwrap();
        assert_eq!((c.parent.clone(), c.mode, c.flag), (None, IpvlanMode::L2, IpvlanFlag::Bridge));
        assert!(!c.routed());
        assert!(IpvlanConfig::from_options(&opts(&[("ipvlan_mode", "passthru")]), false).is_err());
        assert!(IpvlanConfig::from_options(&opts(&[("ipvlan_flag", "l3")]), false).is_err());
        let typo = IpvlanConfig::from_options(&opts(&[("ipvlan_mdoe", "l3")]), false).unwrap_err();
        assert!(typo.to_string().contains("ipvlan_mdoe"), "{typo}");
        // Not the ipvlan driver's: kept, as Docker keeps it.
        assert!(IpvlanConfig::from_options(&opts(&[("mtu", "1400")]), false).is_ok());
    }
}
