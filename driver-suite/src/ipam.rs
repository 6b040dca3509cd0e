//! The IPAM cases: address spaces, explicit and chosen pools, addresses
//! handed out once, releases, and the kinds of errors for unknown pools.

use crate::declared::{Outcome, Report};
use cnm_driverapi::ErrorKind;
use ipnet::IpNet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

type CaseResult = Result<Outcome, String>;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn failed(what: &str, e: impl std::error::Error) -> String {
    format!("{what}: {}", cnm_ipamapi::Chain(&e))
}

/// Runs the IPAM part of the suite against `ipam`: address spaces; an
/// explicit pool with any address, a chosen address and the same one twice
/// (refused); releases; an unknown pool (not an internal error); a pool the
/// IPAM chooses.
pub async fn check_ipam(name: &str, ipam: Arc<dyn cnm_ipamapi::Ipam>) -> Report {
    let i = &*ipam;
    let mut report = Report { driver: name.to_string(), cases: Vec::new() };
    let cases: [(&'static str, CaseResult); 3] = [
        ("explicit pool and addresses", ipam_pool(i).await),
        ("unknown pool", ipam_unknown_pool(i).await),
        ("pool chosen by the IPAM", ipam_chosen_pool(i).await),
    ];
    for (name, r) in cases {
        report.cases.push((name, r.unwrap_or_else(Outcome::Failed)));
    }
    report
}

fn address_req(pool_id: &str, address: Option<std::net::IpAddr>) -> cnm_ipamapi::RequestAddressRequest {
    cnm_ipamapi::RequestAddressRequest { pool_id: pool_id.to_string(), address, options: None }
}

async fn ipam_pool(i: &dyn cnm_ipamapi::Ipam) -> CaseResult {
    let spaces = i.default_address_spaces().await.map_err(|e| failed("default address spaces", e))?;
    let subnet: IpNet = format!("10.237.{}.0/24", NEXT.fetch_add(1, Ordering::Relaxed) % 250).parse().expect("literal");
    let req = cnm_ipamapi::RequestPoolRequest {
        address_space: spaces.local.clone(),
        pool: Some(subnet),
        sub_pool: None,
        options: Default::default(),
        v6: false,
    };
    let pool = i.request_pool(req).await.map_err(|e| failed("request an explicit pool", e))?;
    if pool.pool != subnet {
        return Err(format!("asked for pool {subnet}, got {}", pool.pool));
    }
    let r = async {
        let any = i.request_address(address_req(&pool.pool_id, None)).await.map_err(|e| failed("any address", e))?;
        if !subnet.contains(&any.address.addr()) {
            return Err(format!("address {} is outside pool {subnet}", any.address));
        }
        let IpNet::V4(s) = subnet else { unreachable!("an IPv4 subnet") };
        let o = s.network().octets();
        let chosen = std::net::IpAddr::from([o[0], o[1], o[2], 77]);
        let got = i
            .request_address(address_req(&pool.pool_id, Some(chosen)))
            .await
            .map_err(|e| failed("a chosen address", e))?;
        if got.address.addr() != chosen {
            return Err(format!("asked for {chosen}, got {}", got.address));
        }
        match i.request_address(address_req(&pool.pool_id, Some(chosen))).await {
            Ok(_) => return Err(format!("{chosen} was handed out twice")),
            Err(e) if e.kind() == ErrorKind::Internal => {
                return Err(failed("the same address twice (an internal error)", e));
            }
            Err(_) => {}
        }
        for a in [any.address.addr(), chosen] {
            let rel = cnm_ipamapi::ReleaseAddressRequest { pool_id: pool.pool_id.clone(), address: a };
            i.release_address(rel).await.map_err(|e| failed("release an address", e))?;
        }
        Ok(Outcome::Passed)
    }
    .await;
    let rel = cnm_ipamapi::ReleasePoolRequest { pool_id: pool.pool_id.clone() };
    let released = i.release_pool(rel).await.map_err(|e| failed("release the pool", e));
    r.and_then(|o| released.map(|()| o))
}

async fn ipam_unknown_pool(i: &dyn cnm_ipamapi::Ipam) -> CaseResult {
    match i.request_address(address_req("no-such-pool", None)).await {
        Err(e) if e.kind() == ErrorKind::Internal => {
            Err(failed("an address of an unknown pool (an internal error)", e))
        }
        Err(_) => Ok(Outcome::Passed),
        Ok(a) => Err(format!("an address of an unknown pool was handed out: {}", a.address)),
    }
}

async fn ipam_chosen_pool(i: &dyn cnm_ipamapi::Ipam) -> CaseResult {
    let spaces = i.default_address_spaces().await.map_err(|e| failed("default address spaces", e))?;
    let req = cnm_ipamapi::RequestPoolRequest {
        address_space: spaces.local,
        pool: None,
        sub_pool: None,
        options: Default::default(),
        v6: false,
    };
    let pool = i.request_pool(req).await.map_err(|e| failed("a pool chosen by the IPAM", e))?;
    let rel = cnm_ipamapi::ReleasePoolRequest { pool_id: pool.pool_id };
    i.release_pool(rel).await.map_err(|e| failed("release it", e))?;
    Ok(Outcome::Passed)
}
