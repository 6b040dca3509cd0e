//! A network's IPAM pools: allocation (as Docker orders it: pool, gateway,
//! auxiliary addresses; IPv4 then IPv6), release, and replay after a restart.

use super::{IpamConfig, NetworkConfig};
use crate::model::PoolRecord;
use crate::{Error, Result};
use cnm_driverapi::IpamData;
use cnm_ipamapi::{
    HostNetworks, Ipam, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest, RequestPoolRequest, label,
};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

fn gateway_options() -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([(label::REQUEST_ADDRESS_TYPE.to_string(), label::GATEWAY.to_string())]))
}

/// Checks one IPAM request before anything is allocated.
pub(crate) fn validate(cfg: &IpamConfig, v6: bool) -> Result<()> {
    let family = if v6 { "IPv6" } else { "IPv4" };
    let same_family = |ip: IpAddr| ip.is_ipv6() == v6;
    if let Some(subnet) = cfg.subnet {
        if !same_family(subnet.addr()) {
            return Err(Error::InvalidParameter(format!("subnet {subnet} is not an {family} subnet")));
        }
        if subnet.addr() != subnet.network() {
            return Err(Error::InvalidParameter(format!(
                "invalid subnet {subnet}: it has host bits set; did you mean {}?",
                subnet.trunc()
            )));
        }
    }
    let inside = |what: &str, ip: IpAddr| -> Result<()> {
        match cfg.subnet {
            None => Err(Error::InvalidParameter(format!("{what} {ip} needs a subnet"))),
            Some(s) if !s.contains(&ip) => Err(Error::InvalidParameter(format!("{what} {ip} is not in subnet {s}"))),
            Some(_) => Ok(()),
        }
    };
    if let Some(range) = cfg.ip_range {
        match cfg.subnet {
            Some(s) if s.contains(&range) && range.addr() == range.network() => {}
            Some(s) => {
                return Err(Error::InvalidParameter(format!("ip range {range} is not a subnet of {s}")));
            }
            None => return Err(Error::InvalidParameter(format!("ip range {range} needs a subnet"))),
        }
    }
    if let Some(gw) = cfg.gateway {
        inside("gateway", gw)?;
    }
    for (name, ip) in &cfg.aux_addresses {
        inside(&format!("auxiliary address {name}"), *ip)?;
    }
    Ok(())
}

/// How many pools that overlap the host's routes are set aside before giving up.
const MAX_COLLIDING_POOLS: usize = 64;

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Requests a pool for `cfg`. Without an explicit subnet, a pool the IPAM
/// offers that overlaps a route or address of the host is set aside and
/// another requested, as libnetwork does; the set-aside pools are released
/// afterwards (also on failure). `host` is `None` for IPAMs that hand out
/// no addresses (the null IPAM's pool is everything).
async fn request_pool(
    ipam: &dyn Ipam,
    host: Option<&dyn HostNetworks>,
    req: RequestPoolRequest,
) -> Result<cnm_ipamapi::RequestPoolResponse> {
    // The IPAM chooses (no pool, or a size alone): its choice is checked
    // against the host's routes.
    let chooses = req.pool.is_none_or(|p| p.addr().is_unspecified());
    let host_nets = if let (true, Some(host)) = (chooses, host) {
        match host.networks().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %crate::Chain(&e), "cannot read the host's routes: pools are not checked against them");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let mut colliding = Vec::new();
    let result = loop {
        match ipam.request_pool(req.clone()).await {
            Ok(r) if host_nets.iter().any(|h| overlaps(h, &r.pool)) => {
                tracing::info!(pool = %r.pool, "the IPAM offered a pool that overlaps a route of the host: asking for another");
                colliding.push(r);
                if colliding.len() >= MAX_COLLIDING_POOLS {
                    break Err(Error::ipam(
                        format!(
                            "request a pool that overlaps no route of the host (refused {})",
                            pool_list(&colliding)
                        ),
                        cnm_ipamapi::Error::NoAvailablePool,
                    ));
                }
            }
            Ok(r) => break Ok(r),
            Err(e) if !colliding.is_empty() => {
                break Err(Error::ipam(
                    format!(
                        "request a pool that overlaps no route of the host (every pool offered did: {})",
                        pool_list(&colliding)
                    ),
                    e,
                ));
            }
            Err(e) => break Err(Error::ipam("request pool", e)),
        }
    };
    for r in colliding {
        if let Err(e) = ipam.release_pool(ReleasePoolRequest { pool_id: r.pool_id.clone() }).await {
            tracing::warn!(pool = %r.pool, error = %crate::Chain(&e), "failed to release a pool set aside");
        }
    }
    result
}

fn pool_list(pools: &[cnm_ipamapi::RequestPoolResponse]) -> String {
    pools.iter().map(|p| p.pool.to_string()).collect::<Vec<_>>().join(", ")
}

/// The address family whose pools [`allocate`] allocates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Family {
    /// IPv6, else IPv4.
    pub(crate) v6: bool,
    /// The driver needs no gateway address in this family (its
    /// `gateway_allocation` answer): none is reserved unless the user or
    /// the IPAM gives one.
    pub(crate) skip_gateway: bool,
}

/// Allocates the pools of one family into `out` (what is in `out` on error
/// was allocated and must be released).
pub(crate) async fn allocate(
    ipam: &dyn Ipam,
    host: &dyn HostNetworks,
    allocates_addresses: bool,
    address_space: &str,
    config: &NetworkConfig,
    family: Family,
    out: &mut Vec<PoolRecord>,
) -> Result<()> {
    let v6 = family.v6;
    let requested = if v6 { &config.ipv6 } else { &config.ipv4 };
    let default = [IpamConfig::default()];
    let requests: &[IpamConfig] = if requested.is_empty() { &default } else { requested };
    for cfg in requests {
        let req = RequestPoolRequest {
            address_space: address_space.to_string(),
            pool: cfg.subnet,
            sub_pool: cfg.ip_range,
            options: config.ipam_options.clone(),
            v6,
        };
        let resp = request_pool(ipam, allocates_addresses.then_some(host), req).await?;
        out.push(PoolRecord {
            address_space: address_space.to_string(),
            pool_id: resp.pool_id.clone(),
            pool: resp.pool,
            sub_pool: cfg.ip_range,
            gateway: None,
            aux: BTreeMap::new(),
        });
        if !allocates_addresses {
            continue;
        }
        let ipam_gateway = resp.data.get(label::GATEWAY);
        let gateway = match (cfg.gateway, ipam_gateway) {
            (None, Some(gw)) => Some(
                gw.parse::<IpNet>()
                    .map_err(|e| Error::InvalidParameter(format!("ipam returned an invalid gateway {gw:?}: {e}")))?,
            ),
            // As dockerd: a driver that needs none gets none, unless the user gave one.
            (None, None) if family.skip_gateway => None,
            (preferred, _) => Some(
                ipam.request_address(RequestAddressRequest {
                    pool_id: resp.pool_id.clone(),
                    address: preferred,
                    options: gateway_options(),
                })
                .await
                .map_err(|e| Error::ipam(format!("allocate gateway in {}", resp.pool), e))?
                .address,
            ),
        };
        if let Some(last) = out.last_mut() {
            last.gateway = gateway;
        }
        for (name, ip) in &cfg.aux_addresses {
            let a = ipam
                .request_address(RequestAddressRequest {
                    pool_id: resp.pool_id.clone(),
                    address: Some(*ip),
                    options: None,
                })
                .await
                .map_err(|e| Error::ipam(format!("reserve auxiliary address {name}"), e))?;
            if let Some(last) = out.last_mut() {
                last.aux.insert(name.clone(), a.address);
            }
        }
    }
    Ok(())
}

/// Releases pools in Docker's order (per pool: gateway, auxiliary addresses, pool).
/// Failures are logged: a release never blocks a deletion.
pub(crate) async fn release(ipam: &dyn Ipam, pools: &[PoolRecord]) {
    for p in pools {
        let addrs = p.gateway.iter().chain(p.aux.values());
        for a in addrs {
            let req = ReleaseAddressRequest { pool_id: p.pool_id.clone(), address: a.addr() };
            if let Err(e) = ipam.release_address(req).await {
                tracing::warn!(pool = %p.pool, address = %a.addr(), error = %crate::Chain(&e), "failed to release address");
            }
        }
        if let Err(e) = ipam.release_pool(ReleasePoolRequest { pool_id: p.pool_id.clone() }).await {
            tracing::warn!(pool = %p.pool, error = %crate::Chain(&e), "failed to release pool");
        }
    }
}

/// Claims the recorded pools and addresses again (IPAMs that keep no state).
pub(crate) async fn replay(
    ipam: &dyn Ipam,
    allocates_addresses: bool,
    ipam_options: &BTreeMap<String, String>,
    pools: &mut [PoolRecord],
) -> Result<()> {
    for p in pools.iter_mut() {
        let resp = ipam
            .request_pool(RequestPoolRequest {
                address_space: p.address_space.clone(),
                pool: Some(p.pool),
                sub_pool: p.sub_pool,
                options: ipam_options.clone(),
                v6: p.pool.addr().is_ipv6(),
            })
            .await
            .map_err(|e| Error::ipam(format!("replay pool {}", p.pool), e))?;
        p.pool_id = resp.pool_id;
        if !allocates_addresses {
            continue;
        }
        if let Some(gw) = p.gateway {
            ipam.request_address(RequestAddressRequest {
                pool_id: p.pool_id.clone(),
                address: Some(gw.addr()),
                options: gateway_options(),
            })
            .await
            .map_err(|e| Error::ipam(format!("replay gateway {gw}"), e))?;
        }
        for a in p.aux.values() {
            ipam.request_address(RequestAddressRequest {
                pool_id: p.pool_id.clone(),
                address: Some(a.addr()),
                options: None,
            })
            .await
            .map_err(|e| Error::ipam(format!("replay auxiliary address {a}"), e))?;
        }
    }
    Ok(())
}

/// The pools as the driver sees them.
pub(crate) fn ipam_data(pools: &[PoolRecord]) -> Vec<IpamData> {
    pools
        .iter()
        .map(|p| IpamData {
            address_space: p.address_space.clone(),
            aux_addresses: p.aux.clone(),
            gateway: p.gateway,
            pool: p.pool,
        })
        .collect()
}
