//! A macvlan network's configuration, read from its driver options.

use crate::Error;
use cnm_osl::MacvlanMode;
use std::collections::BTreeMap;

pub use cnm_parent_link::PARENT;
/// The `macvlan_mode` option.
pub const MODE: &str = "macvlan_mode";
/// The prefix of the macvlan driver's own option keys (besides `parent`).
const OWN_PREFIX: &str = "macvlan_";

/// What a macvlan network is built on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MacvlanConfig {
    /// The host interface; `None` for a host-only network on a dummy link.
    pub parent: Option<String>,
    /// How the links share the parent.
    pub mode: MacvlanMode,
    /// No default route in sandboxes (`--internal`, or no parent).
    pub internal: bool,
}

impl MacvlanConfig {
    /// Reads the driver options; an unknown `macvlan_` key (a typo) is
    /// refused, other keys are kept (logged), as Docker keeps them.
    pub fn from_options(options: &BTreeMap<String, String>, internal: bool) -> Result<Self, Error> {
        let mut cfg = MacvlanConfig { internal, ..Default::default() };
        for (k, v) in options {
            match k.as_str() {
                PARENT if !v.is_empty() => cfg.parent = Some(v.clone()),
                PARENT => {}
                MODE => {
                    cfg.mode = match v.as_str() {
                        "" | "bridge" => MacvlanMode::Bridge,
                        "private" => MacvlanMode::Private,
                        "vepa" => MacvlanMode::Vepa,
                        "passthru" => MacvlanMode::Passthru,
                        other => {
                            return Err(Error::InvalidOption(format!(
                                "{MODE} {other:?}: expected bridge, private, vepa or passthru"
                            )));
                        }
                    }
                }
                other if other.starts_with(OWN_PREFIX) => {
                    return Err(Error::InvalidOption(format!("unknown macvlan option {other:?}")));
                }
                other => tracing::warn!(option = %other, "option kept, not used by the macvlan driver"),
            }
        }
        // Docker's rule: a network without a parent (on a dummy link of
        // its own) is internal — no way out, so no default route.
        if cfg.parent.is_none() {
            cfg.internal = true;
        }
        Ok(cfg)
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
        let c = MacvlanConfig::from_options(&opts(&[("parent", "eth0.10"), ("macvlan_mode", "vepa")]), true).unwrap();
        assert_eq!(c.parent.as_deref(), Some("eth0.10"));
        assert_eq!(c.mode, MacvlanMode::Vepa);
        assert!(c.internal);
        let c = MacvlanConfig::from_options(&opts(&[]), false).unwrap();
        assert_eq!((c.parent, c.mode), (None, MacvlanMode::Bridge));
        assert!(MacvlanConfig::from_options(&opts(&[("macvlan_mode", "l3")]), false).is_err());
        let typo = MacvlanConfig::from_options(&opts(&[("macvlan_mdoe", "vepa")]), false).unwrap_err();
        assert!(typo.to_string().contains("macvlan_mdoe"), "{typo}");
        // Not the macvlan driver's: kept, as Docker keeps it.
        assert!(MacvlanConfig::from_options(&opts(&[("mtu", "1400")]), false).is_ok());
    }
}
