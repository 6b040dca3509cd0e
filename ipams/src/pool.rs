//! One allocated pool and the addresses handed out in it.

use crate::addresses::AddressSet;
use crate::span::{addr_to_u128, has_host_bits, span, u128_to_addr};
use cnm_ipamapi::{Error, Result};
use ipnet::IpNet;
use std::net::IpAddr;

/// The address allocator of one pool (and its optional sub-pool).
///
/// Addresses are tracked as offsets from the pool's network address. IPv4
/// network and broadcast addresses (for prefixes up to /30) and the IPv6
/// all-zero host address are never handed out.
#[derive(Debug, Clone)]
pub struct AddressPool {
    /// The pool.
    net: IpNet,
    /// The sub-pool serial allocation draws from, if any.
    sub: Option<IpNet>,
    /// The pool's network address as an integer.
    base: u128,
    /// The pool's largest offset.
    max_offset: u128,
    /// Whether the pool is IPv6.
    v6: bool,
    /// First usable offset of the pool.
    lo: u128,
    /// Last usable offset of the pool (below `lo` when none is usable).
    hi: u128,
    /// First offset of serial allocation (sub-pool and usable range).
    range_lo: u128,
    /// Last offset of serial allocation.
    range_hi: u128,
    /// Where the next serial search starts.
    cursor: u128,
    /// Every offset of the range below this one is allocated (where the
    /// lowest-free search starts).
    low_hint: u128,
    /// Allocated offsets.
    set: AddressSet,
    /// Number of allocated addresses.
    allocated: u128,
}

impl AddressPool {
    /// An empty allocator; the pool must be a network address, the sub-pool a network inside it.
    pub fn new(pool: IpNet, sub_pool: Option<IpNet>) -> Result<Self> {
        if has_host_bits(&pool) {
            return Err(Error::InvalidPool(format!(
                "{pool}: host bits are set, the pool must be a network address such as {}",
                pool.trunc()
            )));
        }
        let (base, last) = span(&pool);
        let max_offset = last - base;
        let v6 = matches!(pool, IpNet::V6(_));
        let (lo, hi) = match pool {
            IpNet::V4(n) if n.prefix_len() <= 30 => (1, max_offset - 1),
            IpNet::V4(_) => (0, max_offset),
            IpNet::V6(_) => (1, max_offset),
        };
        let (range_lo, range_hi) = match sub_pool {
            None => (lo, hi),
            Some(sub) => {
                if has_host_bits(&sub) {
                    return Err(Error::InvalidSubPool(format!(
                        "{sub}: host bits are set, the sub-pool must be a network address such as {}",
                        sub.trunc()
                    )));
                }
                if sub.max_prefix_len() != pool.max_prefix_len() || !pool.contains(&sub) {
                    return Err(Error::InvalidSubPool(format!("{sub} is not inside pool {pool}")));
                }
                let (s0, s1) = span(&sub);
                ((s0 - base).max(lo), (s1 - base).min(hi))
            }
        };
        Ok(AddressPool {
            net: pool,
            sub: sub_pool,
            base,
            max_offset,
            v6,
            lo,
            hi,
            range_lo,
            range_hi,
            cursor: range_lo,
            low_hint: range_lo,
            set: AddressSet::new(max_offset),
            allocated: 0,
        })
    }

    /// The pool.
    pub fn network(&self) -> IpNet {
        self.net
    }

    /// The sub-pool, if any.
    pub fn sub_pool(&self) -> Option<IpNet> {
        self.sub
    }

    /// The number of allocated addresses.
    pub fn allocated(&self) -> u128 {
        self.allocated
    }

    /// The offset of `ip` in the pool, if it is inside.
    fn offset(&self, ip: IpAddr) -> Option<u128> {
        if ip.is_ipv6() != self.v6 {
            return None;
        }
        addr_to_u128(ip).checked_sub(self.base).filter(|&off| off <= self.max_offset)
    }

    /// The address at offset `off`.
    fn addr(&self, off: u128) -> IpAddr {
        u128_to_addr(self.base.wrapping_add(off), self.v6)
    }

    /// Whether `ip` is allocated.
    pub fn is_allocated(&self, ip: IpAddr) -> bool {
        self.offset(ip).is_some_and(|off| self.set.contains(off))
    }

    /// Marks a free offset allocated and returns its address.
    fn take(&mut self, off: u128) -> IpAddr {
        if self.set.insert(off) {
            self.allocated += 1;
        }
        self.addr(off)
    }

    /// The next free address of the sub-pool (or pool), continuing after the last one handed out.
    pub fn allocate_next(&mut self) -> Result<IpAddr> {
        if self.range_lo > self.range_hi {
            return Err(Error::NoAvailableIps);
        }
        let start = self.cursor.clamp(self.range_lo, self.range_hi);
        let found = self
            .set
            .find_free(start, self.range_hi)
            .or_else(|| start.checked_sub(1).and_then(|end| self.set.find_free(self.range_lo, end)));
        let off = found.ok_or(Error::NoAvailableIps)?;
        self.cursor = if off >= self.range_hi { self.range_lo } else { off + 1 };
        Ok(self.take(off))
    }

    /// The lowest free address of the sub-pool (or pool): Docker 20.10's
    /// default, so a container that reconnects gets its address back.
    pub fn allocate_lowest(&mut self) -> Result<IpAddr> {
        if self.range_lo > self.range_hi {
            return Err(Error::NoAvailableIps);
        }
        let start = self.low_hint.clamp(self.range_lo, self.range_hi);
        let off = self.set.find_free(start, self.range_hi).ok_or(Error::NoAvailableIps)?;
        self.low_hint = off.saturating_add(1);
        // A serial request later continues after the highest address handed out.
        if off >= self.cursor {
            self.cursor = if off >= self.range_hi { self.range_lo } else { off + 1 };
        }
        Ok(self.take(off))
    }

    /// The first free address of the whole pool (used for gateways).
    pub fn allocate_first(&mut self) -> Result<IpAddr> {
        let off = self.set.find_free(self.lo, self.hi).ok_or(Error::NoAvailableIps)?;
        Ok(self.take(off))
    }

    /// Allocates `ip`, which must be a usable address of the pool (not necessarily of the sub-pool).
    pub fn allocate(&mut self, ip: IpAddr) -> Result<IpAddr> {
        let off = self
            .offset(ip)
            .filter(|&off| off >= self.lo && off <= self.hi)
            .ok_or_else(|| Error::AddressOutOfRange(ip.to_string()))?;
        if self.set.contains(off) {
            return Err(Error::AddressInUse(ip.to_string()));
        }
        Ok(self.take(off))
    }

    /// Frees `ip`; `Ok(false)` when it was not allocated.
    pub fn release(&mut self, ip: IpAddr) -> Result<bool> {
        let off = self.offset(ip).ok_or_else(|| Error::AddressOutOfRange(ip.to_string()))?;
        let freed = self.set.remove(off);
        if freed {
            self.allocated -= 1;
            self.low_hint = self.low_hint.min(off);
        }
        Ok(freed)
    }

    /// The number of addresses serial allocation may hand out (saturating).
    pub fn capacity(&self) -> u128 {
        if self.range_lo > self.range_hi { 0 } else { (self.range_hi - self.range_lo).saturating_add(1) }
    }

    /// Bytes used by this allocator, its address set included.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.set.memory_bytes()
    }
}

#[cfg(test)]
mod tests;
