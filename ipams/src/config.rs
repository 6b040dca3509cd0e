//! Configuration of the default IPAM: the predefined pools it chooses from.

use crate::span::has_host_bits;
use cnm_ipamapi::{Error, Result};
use ipnet::{IpNet, Ipv4Net};
use std::net::Ipv4Addr;

/// A range of predefined pools: `base` split into networks of prefix length `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolSpec {
    /// The network the pools are carved from.
    pub base: IpNet,
    /// The prefix length of each pool.
    pub size: u8,
}

impl PoolSpec {
    /// A validated spec: `base` is a network address and `size` lies between its prefix and the family's width.
    pub fn new(base: IpNet, size: u8) -> Result<PoolSpec> {
        if has_host_bits(&base) {
            return Err(Error::InvalidPool(format!(
                "{base}: host bits are set, the base must be a network address such as {}",
                base.trunc()
            )));
        }
        if size < base.prefix_len() || size > base.max_prefix_len() {
            return Err(Error::InvalidPool(format!(
                "pool size /{size} must lie between /{} and /{} for base {base}",
                base.prefix_len(),
                base.max_prefix_len()
            )));
        }
        Ok(PoolSpec { base, size })
    }

    /// Whether the spec is usable (fields may have been set directly).
    pub(crate) fn is_valid(&self) -> bool {
        !has_host_bits(&self.base) && self.size >= self.base.prefix_len() && self.size <= self.base.max_prefix_len()
    }

    /// A spec from constant parts, checked at compile time.
    const fn v4(a: u8, b: u8, prefix: u8, size: u8) -> PoolSpec {
        PoolSpec { base: IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, 0, 0), prefix)), size }
    }
}

/// The predefined pools of each address space and family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultIpamConfig {
    /// IPv4 pools of the local address space.
    pub local_pools: Vec<PoolSpec>,
    /// IPv4 pools of the global address space.
    pub global_pools: Vec<PoolSpec>,
    /// IPv6 pools of the local address space.
    pub local_pools_v6: Vec<PoolSpec>,
    /// IPv6 pools of the global address space.
    pub global_pools_v6: Vec<PoolSpec>,
}

impl Default for DefaultIpamConfig {
    /// Docker's defaults: 172.17-31.0.0/16 then 192.168.0.0/16 in /20s locally, 10.0.0.0/8 in /24s globally.
    fn default() -> Self {
        let mut local_pools: Vec<PoolSpec> = (17..=31).map(|b| PoolSpec::v4(172, b, 16, 16)).collect();
        local_pools.push(PoolSpec::v4(192, 168, 16, 20));
        DefaultIpamConfig {
            local_pools,
            global_pools: vec![PoolSpec::v4(10, 0, 8, 24)],
            local_pools_v6: Vec::new(),
            global_pools_v6: Vec::new(),
        }
    }
}

impl DefaultIpamConfig {
    /// The predefined pools of one space (`global`) and family (`v6`).
    pub(crate) fn pools(&self, global: bool, v6: bool) -> &[PoolSpec] {
        match (global, v6) {
            (false, false) => &self.local_pools,
            (true, false) => &self.global_pools,
            (false, true) => &self.local_pools_v6,
            (true, true) => &self.global_pools_v6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test network")
    }

    #[test]
    fn spec_validation() {
        assert!(PoolSpec::new(net("10.0.0.0/8"), 24).is_ok());
        assert!(PoolSpec::new(net("10.0.0.0/8"), 8).is_ok());
        assert!(matches!(PoolSpec::new(net("10.0.0.0/8"), 7), Err(Error::InvalidPool(_))));
        assert!(matches!(PoolSpec::new(net("10.0.0.0/8"), 33), Err(Error::InvalidPool(_))));
        assert!(matches!(PoolSpec::new(net("10.0.0.1/8"), 24), Err(Error::InvalidPool(_))));
        assert!(PoolSpec::new(net("fd00::/8"), 64).is_ok());
        assert!(!PoolSpec { base: net("fd00::/8"), size: 4 }.is_valid());
    }

    #[test]
    fn docker_defaults() {
        let c = DefaultIpamConfig::default();
        assert_eq!(c.local_pools.len(), 16);
        assert_eq!(c.local_pools[0].base, net("172.17.0.0/16"));
        assert_eq!(c.local_pools[14].base, net("172.31.0.0/16"));
        assert_eq!(c.local_pools[15], PoolSpec::new(net("192.168.0.0/16"), 20).expect("ok"));
        assert_eq!(c.global_pools, vec![PoolSpec::new(net("10.0.0.0/8"), 24).expect("ok")]);
        assert!(c.local_pools.iter().all(PoolSpec::is_valid));
        assert!(c.pools(false, true).is_empty() && c.pools(true, true).is_empty());
    }
}
