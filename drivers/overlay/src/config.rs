//! The driver's configuration: how it works on this host
//! ([`OverlayConfig`]) and a network's options, read once from Docker's
//! option names ([`NetworkOptions`]); an unknown key of the overlay's own
//! (`com.docker.network.driver.overlay.`) is refused by name, others are
//! kept (logged), as Docker keeps them.

use crate::Error;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Docker's option naming a network's VNI.
pub const VXLANID_LIST: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// Docker's option asking for encryption.
pub const ENCRYPTED: &str = "encrypted";
/// Docker's option setting a network's MTU.
pub const MTU: &str = cnm_driverapi::label::MTU;
/// The VXLAN header overhead subtracted from the underlay's MTU.
pub const VXLAN_OVERHEAD: u32 = 50;
/// The prefix of the overlay driver's own option keys.
const OWN_PREFIX: &str = "com.docker.network.driver.overlay.";
/// The largest VNI (24 bits).
pub(crate) const LAST_VNI: u32 = (1 << 24) - 1;

/// How the driver works on this host.
#[derive(Debug, Clone)]
pub struct OverlayConfig {
    /// Where the networks' namespaces are mounted (`<exec-root>/overlay`).
    pub netns_dir: PathBuf,
    /// The VXLAN UDP port (4789, or `--data-path-port`).
    pub port: u16,
    /// The underlay's MTU (the overlay's is 50 bytes less).
    pub underlay_mtu: u32,
}

impl Default for OverlayConfig {
    fn default() -> Self {
        OverlayConfig { netns_dir: PathBuf::from("/run/cnm/overlay"), port: 4789, underlay_mtu: 1500 }
    }
}

/// A network's options (`-o`), as Docker names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkOptions {
    /// The VNI asked for (the first of `vxlanid_list`), or given out at allocation.
    pub vni: Option<u32>,
    /// Whether encryption is asked for (`-o encrypted`).
    pub encrypted: bool,
    /// The network's MTU (`com.docker.network.driver.mtu`): at most the
    /// underlay's less the VXLAN overhead, which is the default.
    pub mtu: Option<u32>,
}

impl NetworkOptions {
    /// Reads the options; a key the driver does not know is refused, named.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self, Error> {
        let mut o = NetworkOptions::default();
        for (key, value) in options {
            match key.as_str() {
                VXLANID_LIST => {
                    let first = value.split(',').next().unwrap_or_default().trim();
                    let vni: u32 = first
                        .parse()
                        .map_err(|_| Error::InvalidOption(format!("{VXLANID_LIST} {value:?}: not a number")))?;
                    if !(1..=LAST_VNI).contains(&vni) {
                        return Err(Error::InvalidOption(format!(
                            "{VXLANID_LIST} {vni}: a VXLAN id is 1 to {LAST_VNI}"
                        )));
                    }
                    o.vni = Some(vni);
                }
                ENCRYPTED => o.encrypted = true,
                MTU => {
                    let mtu: u32 =
                        value.parse().map_err(|_| Error::InvalidOption(format!("{MTU} {value:?}: not a number")))?;
                    if !(68..=65535).contains(&mtu) {
                        return Err(Error::InvalidOption(format!("{MTU} {mtu}: the MTU must be between 68 and 65535")));
                    }
                    o.mtu = Some(mtu);
                }
                _ if key.starts_with(OWN_PREFIX) => return Err(Error::UnknownOption(key.clone())),
                _ => tracing::warn!(option = %key, "option kept, not used by the overlay driver"),
            }
        }
        Ok(o)
    }

    /// The network's MTU on an underlay of `underlay_mtu`: the one asked
    /// for, refused if VXLAN could not carry it.
    pub fn mtu_on(&self, underlay_mtu: u32) -> Result<u32, Error> {
        let most = underlay_mtu.saturating_sub(VXLAN_OVERHEAD);
        match self.mtu {
            None => Ok(most),
            Some(mtu) if mtu <= most => Ok(mtu),
            Some(mtu) => Err(Error::InvalidOption(format!(
                "{MTU} {mtu}: at most {most} on this host (the underlay's {underlay_mtu} less {VXLAN_OVERHEAD} bytes of VXLAN)"
            ))),
        }
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
        let o = NetworkOptions::from_options(&opts(&[(VXLANID_LIST, "5000,5001"), (MTU, "1400")])).unwrap();
        assert_eq!(o, NetworkOptions { vni: Some(5000), encrypted: false, mtu: Some(1400) });
        assert!(NetworkOptions::from_options(&opts(&[(ENCRYPTED, "")])).unwrap().encrypted);
        assert_eq!(o.mtu_on(1500).unwrap(), 1400);
        assert_eq!(NetworkOptions::default().mtu_on(1500).unwrap(), 1450);
    }

    #[test]
    fn unknown_and_bad_options_are_refused_by_name() {
        let e = NetworkOptions::from_options(&opts(&[("com.docker.network.driver.overlay.vxlanid", "5")])).unwrap_err();
        assert!(e.to_string().contains("com.docker.network.driver.overlay.vxlanid"), "{e}");
        assert_eq!(e.kind(), cnm_driverapi::ErrorKind::InvalidParameter);
        for bad in [(VXLANID_LIST, "x"), (VXLANID_LIST, "0"), (VXLANID_LIST, "16777216"), (MTU, "40"), (MTU, "big")] {
            let e = NetworkOptions::from_options(&opts(&[bad])).unwrap_err();
            assert!(e.to_string().contains(bad.0), "{bad:?}: {e}");
        }
        // Not the overlay's: kept, as Docker keeps it.
        assert_eq!(NetworkOptions::from_options(&opts(&[("colour", "blue")])).unwrap(), NetworkOptions::default());
        let big = NetworkOptions::from_options(&opts(&[(MTU, "1460")])).unwrap();
        assert!(big.mtu_on(1500).unwrap_err().to_string().contains("at most 1450"));
    }
}
