//! Published ports: a port allocator per (protocol, host address), owned by
//! the driver instance (no global), host ports reserved with bound sockets
//! while published, and DNAT as firewall map elements.

use crate::Error;
use cnm_driverapi::{PortBinding, Protocol};
use cnm_osl::firewall::PortMapping;
use cnm_osl::reservation::{PortRequest, PortReservation, unspecified_like};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

/// Which host ports are taken, per protocol and host address.
#[derive(Debug)]
pub(crate) struct PortAllocator {
    used: Mutex<HashMap<(Protocol, IpAddr), BTreeSet<u16>>>,
    ephemeral: (u16, u16),
}

impl PortAllocator {
    /// An allocator choosing ephemeral ports in `ephemeral` (inclusive).
    pub fn new(ephemeral: (u16, u16)) -> Self {
        PortAllocator { used: Mutex::new(HashMap::new()), ephemeral }
    }

    /// Whether `port` is free for `ip`: a specific address clashes with the
    /// wildcard of its family and the wildcard with every address of it.
    fn is_free(used: &HashMap<(Protocol, IpAddr), BTreeSet<u16>>, proto: Protocol, ip: IpAddr, port: u16) -> bool {
        if ip.is_unspecified() {
            !used.iter().any(|((p, a), ports)| *p == proto && a.is_ipv6() == ip.is_ipv6() && ports.contains(&port))
        } else {
            let taken = |a: IpAddr| used.get(&(proto, a)).is_some_and(|s| s.contains(&port));
            !taken(ip) && !taken(unspecified_like(ip))
        }
    }

    /// Takes the first free port of `start..=end` (`start == 0`: the ephemeral
    /// range) for which `reserve` succeeds; returns it with its reservation.
    pub fn allocate<R>(
        &self,
        proto: Protocol,
        ip: IpAddr,
        start: u16,
        end: u16,
        mut reserve: impl FnMut(u16) -> std::io::Result<R>,
    ) -> Result<(u16, R), Error> {
        let (lo, hi) = if start == 0 { self.ephemeral } else { (start, end.max(start)) };
        let mut used = self.used();
        let mut last_err = None;
        for port in lo..=hi {
            if !Self::is_free(&used, proto, ip, port) {
                continue;
            }
            match reserve(port) {
                Ok(r) => {
                    used.entry((proto, ip)).or_default().insert(port);
                    return Ok((port, r));
                }
                Err(e) => last_err = Some(e),
            }
        }
        let range = if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") };
        Err(Error::PortUnavailable {
            proto: proto.name(),
            ip,
            range,
            reason: last_err
                .map_or_else(|| "already published".to_string(), |e| format!("in use by another program ({e})")),
        })
    }

    /// Gives a port back.
    pub fn release(&self, proto: Protocol, ip: IpAddr, port: u16) {
        if let Some(set) = self.used().get_mut(&(proto, ip)) {
            set.remove(&port);
        }
    }

    /// The ports taken; each change to the map is whole, so a holder that
    /// panicked leaves it consistent, and it is used as is.
    fn used(&self) -> std::sync::MutexGuard<'_, HashMap<(Protocol, IpAddr), BTreeSet<u16>>> {
        self.used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One published binding of an endpoint.
#[derive(Debug)]
pub(crate) struct Published {
    /// What was asked, with the port actually chosen.
    pub binding: PortBinding,
    /// The DNAT mappings (IPv4, and IPv6 when both families apply).
    pub mappings: Vec<PortMapping>,
    /// The allocations to give back: (protocol, host address, port).
    pub allocations: Vec<(Protocol, IpAddr, u16)>,
    /// The reserved sockets.
    pub reservations: Vec<PortReservation>,
}

/// The host addresses a binding covers, given the endpoint's families: a
/// specific address, or both wildcards when the container has both families.
pub(crate) fn host_addresses(host_ip: Option<IpAddr>, default_ip: IpAddr, has_v4: bool, has_v6: bool) -> Vec<IpAddr> {
    let any4 = IpAddr::from([0, 0, 0, 0]);
    let any6 = IpAddr::from([0u16; 8]);
    match host_ip {
        // No address given: the network's default binding address; when that
        // is "every address", both wildcards the container can serve.
        None if default_ip.is_unspecified() => {
            [(has_v4, any4), (has_v6, any6)].into_iter().filter(|(ok, _)| *ok).map(|(_, ip)| ip).collect()
        }
        None => vec![default_ip],
        // An explicit wildcard covers its own family only.
        Some(ip) if ip.is_unspecified() => vec![ip],
        Some(ip) => vec![ip],
    }
}

/// Allocates and reserves the host port of one binding for every host address
/// in `addrs` (the same port for all), using `bind` to reserve.
pub(crate) fn publish_one(
    alloc: &PortAllocator,
    b: &PortBinding,
    addrs: &[IpAddr],
    container_v4: Option<IpAddr>,
    container_v6: Option<IpAddr>,
    bind: &dyn Fn(PortRequest) -> std::io::Result<PortReservation>,
) -> Result<Published, Error> {
    let p = b.proto;
    let first = *addrs.first().ok_or(Error::NoAddressForBinding(b.port))?;
    let end = if b.host_port_end > b.host_port { b.host_port_end } else { b.host_port };
    // Choose the port on the first address, then take the same on the others.
    let (port, first_res) =
        alloc.allocate(p, first, b.host_port, end, |port| bind(PortRequest { proto: p, ip: first, port }))?;
    let mut published = Published {
        binding: PortBinding { host_port: port, host_port_end: port, ..b.clone() },
        mappings: Vec::new(),
        allocations: vec![(p, first, port)],
        reservations: vec![first_res],
    };
    for ip in &addrs[1..] {
        match alloc.allocate(p, *ip, port, port, |port| bind(PortRequest { proto: p, ip: *ip, port })) {
            Ok((_, r)) => {
                published.allocations.push((p, *ip, port));
                published.reservations.push(r);
            }
            Err(e) => {
                release(alloc, &published);
                return Err(e);
            }
        }
    }
    for (_, ip, _) in &published.allocations {
        let container_ip = if ip.is_ipv6() { container_v6 } else { container_v4 };
        let Some(container_ip) = container_ip else { continue };
        published.mappings.push(PortMapping {
            proto: p,
            host_ip: (!ip.is_unspecified()).then_some(*ip),
            host_port: port,
            host_port_end: port,
            container_ip,
            container_port: b.port,
        });
    }
    if published.mappings.is_empty() {
        release(alloc, &published);
        return Err(Error::NoAddressForBinding(b.port));
    }
    Ok(published)
}

/// Gives back a binding's allocations (its reservations close when dropped).
pub(crate) fn release(alloc: &PortAllocator, p: &Published) {
    for (proto, ip, port) in &p.allocations {
        alloc.release(*proto, *ip, *port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: u16) -> std::io::Result<()> {
        Ok(())
    }

    #[test]
    fn fixed_ports_conflict_across_wildcard_and_specific_addresses() {
        let a = PortAllocator::new((40000, 40010));
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(a.allocate(Protocol::Tcp, any, 8080, 8080, ok).unwrap().0, 8080);
        let e = a.allocate(Protocol::Tcp, lo, 8080, 8080, ok).unwrap_err();
        assert!(e.to_string().contains("8080"), "{e}");
        // Another protocol, or another family, is free.
        assert!(a.allocate(Protocol::Udp, lo, 8080, 8080, ok).is_ok());
        assert!(a.allocate(Protocol::Tcp, "::".parse().unwrap(), 8080, 8080, ok).is_ok());
        a.release(Protocol::Tcp, any, 8080);
        assert!(a.allocate(Protocol::Tcp, lo, 8080, 8080, ok).is_ok());
        assert!(
            a.allocate(Protocol::Tcp, any, 8080, 8080, ok).is_err(),
            "the specific address now blocks the wildcard"
        );
    }

    #[test]
    fn ranges_take_the_first_free_port_and_skip_ports_other_programs_hold() {
        let a = PortAllocator::new((40000, 40002));
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(a.allocate(Protocol::Tcp, any, 9000, 9005, ok).unwrap().0, 9000);
        assert_eq!(a.allocate(Protocol::Tcp, any, 9000, 9005, ok).unwrap().0, 9001);
        let busy = |p: u16| if p == 9002 { Err(std::io::Error::from_raw_os_error(libc_eaddrinuse())) } else { Ok(()) };
        assert_eq!(a.allocate(Protocol::Tcp, any, 9000, 9005, busy).unwrap().0, 9003);
        // Ephemeral: the configured range, then exhaustion.
        for want in 40000..=40002 {
            assert_eq!(a.allocate(Protocol::Udp, any, 0, 0, ok).unwrap().0, want);
        }
        let e = a.allocate(Protocol::Udp, any, 0, 0, ok).unwrap_err();
        assert!(e.to_string().contains("40000-40002"), "{e}");
    }

    fn libc_eaddrinuse() -> i32 {
        98
    }

    #[test]
    fn host_addresses_follow_the_container_families() {
        let any4: IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(host_addresses(None, any4, true, false), vec![any4]);
        assert_eq!(host_addresses(None, any4, true, true), vec![any4, "::".parse().unwrap()]);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(host_addresses(Some(lo), any4, true, true), vec![lo]);
        assert_eq!(host_addresses(Some(any4), any4, true, true), vec![any4], "an explicit 0.0.0.0 is IPv4 only");
    }
}
