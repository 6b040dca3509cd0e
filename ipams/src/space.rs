//! The pools allocated in one address space, and the choice of a free
//! predefined pool that overlaps none of them nor the host's networks.

use crate::config::PoolSpec;
use crate::span::{host_mask, span};
use ipnet::IpNet;
use std::collections::BTreeMap;

/// The allocated pools of one address space, kept sorted per family.
#[derive(Debug, Default)]
pub(crate) struct Space {
    /// IPv4 pools by first address; they never overlap.
    v4: BTreeMap<u128, IpNet>,
    /// IPv6 pools by first address; they never overlap.
    v6: BTreeMap<u128, IpNet>,
}

impl Space {
    /// The pools of the family of `net`.
    fn family(&self, v6: bool) -> &BTreeMap<u128, IpNet> {
        if v6 { &self.v6 } else { &self.v4 }
    }

    /// An allocated pool of the family overlapping `first..=last`, if any.
    fn conflict_span(&self, v6: bool, first: u128, last: u128) -> Option<IpNet> {
        // Pools are disjoint: only the last one starting at or before `last` can overlap.
        let (_, net) = self.family(v6).range(..=last).next_back()?;
        (span(net).1 >= first).then_some(*net)
    }

    /// An allocated pool overlapping `net`, if any.
    pub(crate) fn conflict(&self, net: &IpNet) -> Option<IpNet> {
        let (first, last) = span(net);
        self.conflict_span(matches!(net, IpNet::V6(_)), first, last)
    }

    /// Records an allocated pool (which must not overlap another).
    pub(crate) fn insert(&mut self, net: IpNet) {
        let key = span(&net).0;
        match net {
            IpNet::V4(_) => self.v4.insert(key, net),
            IpNet::V6(_) => self.v6.insert(key, net),
        };
    }

    /// Forgets an allocated pool.
    pub(crate) fn remove(&mut self, net: &IpNet) {
        let key = span(net).0;
        match net {
            IpNet::V4(_) => self.v4.remove(&key),
            IpNet::V6(_) => self.v6.remove(&key),
        };
    }

    /// The last address of whatever overlaps `first..=last`: an allocated pool or a host network.
    fn blocker_end(&self, v6: bool, first: u128, last: u128, host: &[IpNet]) -> Option<u128> {
        if let Some(net) = self.conflict_span(v6, first, last) {
            return Some(span(&net).1);
        }
        host.iter()
            .filter(|h| matches!(h, IpNet::V6(_)) == v6)
            .map(span)
            .filter(|&(h0, h1)| h0 <= last && first <= h1)
            .map(|(_, h1)| h1)
            .max()
    }

    /// The first pool of `specs` (of family `v6`) overlapping no allocated pool nor `host` network.
    ///
    /// Candidates are enumerated arithmetically; a blocked candidate makes the
    /// search jump past the network that blocks it.
    pub(crate) fn choose(&self, specs: &[PoolSpec], v6: bool, host: &[IpNet]) -> Option<IpNet> {
        specs
            .iter()
            .filter(|s| s.is_valid() && matches!(s.base, IpNet::V6(_)) == v6)
            .find_map(|s| self.choose_in(s, v6, host))
    }

    /// The first free pool of one spec.
    fn choose_in(&self, spec: &PoolSpec, v6: bool, host: &[IpNet]) -> Option<IpNet> {
        let (base_first, base_last) = span(&spec.base);
        let mask = host_mask(spec.base.max_prefix_len(), spec.size);
        let mut cur = base_first;
        loop {
            let last = cur | mask;
            if last > base_last {
                return None;
            }
            match self.blocker_end(v6, cur, last, host) {
                None => {
                    let addr = crate::span::u128_to_addr(cur, v6);
                    return IpNet::new(addr, spec.size).ok();
                }
                Some(end) => {
                    // Next aligned candidate after both this one and the blocker.
                    let next = end.max(last).checked_add(1)?;
                    cur = next.checked_add(mask)? & !mask;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DefaultIpamConfig;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test network")
    }

    #[test]
    fn conflicts_are_found() {
        let mut s = Space::default();
        s.insert(net("10.0.0.0/24"));
        s.insert(net("10.0.2.0/24"));
        assert_eq!(s.conflict(&net("10.0.0.0/16")), Some(net("10.0.2.0/24")));
        assert_eq!(s.conflict(&net("10.0.0.128/25")), Some(net("10.0.0.0/24")));
        assert_eq!(s.conflict(&net("10.0.1.0/24")), None);
        assert_eq!(s.conflict(&net("::/0")), None);
        s.remove(&net("10.0.2.0/24"));
        assert_eq!(s.conflict(&net("10.0.0.0/16")), Some(net("10.0.0.0/24")));
    }

    #[test]
    fn choice_skips_allocated_and_host_networks() {
        let c = DefaultIpamConfig::default();
        let mut s = Space::default();
        assert_eq!(s.choose(&c.local_pools, false, &[]), Some(net("172.17.0.0/16")));
        let host = [net("172.17.0.0/16"), net("fd00::/8")];
        assert_eq!(s.choose(&c.local_pools, false, &host), Some(net("172.18.0.0/16")));
        s.insert(net("172.18.0.0/16"));
        assert_eq!(s.choose(&c.local_pools, false, &host), Some(net("172.19.0.0/16")));
        // A host route covering all of 172.16/12 moves the choice to 192.168.
        let wide = [net("172.16.0.0/12")];
        assert_eq!(s.choose(&c.local_pools, false, &wide), Some(net("192.168.0.0/20")));
        assert_eq!(s.choose(&c.local_pools, true, &[]), None);
    }

    #[test]
    fn choice_jumps_over_blockers() {
        let specs = [PoolSpec::new(net("10.0.0.0/8"), 24).expect("ok")];
        let mut s = Space::default();
        s.insert(net("10.0.0.0/9"));
        assert_eq!(s.choose(&specs, false, &[]), Some(net("10.128.0.0/24")));
        s.insert(net("10.128.0.0/9"));
        assert_eq!(s.choose(&specs, false, &[]), None);
        // A blocker smaller than a candidate skips the whole candidate.
        let specs = [PoolSpec::new(net("10.0.0.0/8"), 16).expect("ok")];
        let s = Space::default();
        assert_eq!(s.choose(&specs, false, &[net("10.0.3.0/24")]), Some(net("10.1.0.0/16")));
    }

    #[test]
    fn choice_at_the_top_of_the_v6_range() {
        let specs = [PoolSpec::new(net("::/0"), 1).expect("ok")];
        let mut s = Space::default();
        s.insert(net("::/1"));
        assert_eq!(s.choose(&specs, true, &[]), Some(net("8000::/1")));
        s.insert(net("8000::/1"));
        assert_eq!(s.choose(&specs, true, &[]), None);
        let whole = [PoolSpec::new(net("::/0"), 0).expect("ok")];
        assert_eq!(Space::default().choose(&whole, true, &[]), Some(net("::/0")));
    }
}
