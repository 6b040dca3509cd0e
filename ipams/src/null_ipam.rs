//! The null IPAM: one all-covering pool per family, and no addresses.

use async_trait::async_trait;
use cnm_ipamapi::{
    AddressSpaces, Error, Ipam, NULL_IPAM, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest,
    RequestAddressResponse, RequestPoolRequest, RequestPoolResponse, Result,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The IPv4 pool of the null IPAM.
const POOL_V4: IpNet = IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::UNSPECIFIED, 0));
/// The IPv6 pool of the null IPAM.
const POOL_V6: IpNet = IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 0));
/// The id of the IPv4 pool.
const POOL_ID_V4: &str = "null/0.0.0.0/0";
/// The id of the IPv6 pool.
const POOL_ID_V6: &str = "null/::/0";

/// The IPAM of networks that need no addresses (address space "null").
#[derive(Debug, Clone, Copy, Default)]
pub struct NullIpam;

impl NullIpam {
    /// The null IPAM.
    pub fn new() -> Self {
        NullIpam
    }
}

#[async_trait]
impl Ipam for NullIpam {
    async fn default_address_spaces(&self) -> Result<AddressSpaces> {
        Ok(AddressSpaces { local: NULL_IPAM.to_string(), global: NULL_IPAM.to_string() })
    }

    async fn request_pool(&self, req: RequestPoolRequest) -> Result<RequestPoolResponse> {
        if req.address_space != NULL_IPAM {
            return Err(Error::InvalidAddressSpace(req.address_space));
        }
        let (pool, pool_id) = if req.v6 { (POOL_V6, POOL_ID_V6) } else { (POOL_V4, POOL_ID_V4) };
        if let Some(requested) = req.pool.filter(|p| *p != pool) {
            return Err(Error::InvalidPool(format!("{requested}: the null IPAM only provides pool {pool}")));
        }
        if let Some(sub) = req.sub_pool {
            return Err(Error::InvalidSubPool(format!("{sub}: the null IPAM does not handle sub-pools")));
        }
        Ok(RequestPoolResponse { pool_id: pool_id.to_string(), pool, data: BTreeMap::new() })
    }

    async fn release_pool(&self, req: ReleasePoolRequest) -> Result<()> {
        if req.pool_id == POOL_ID_V4 || req.pool_id == POOL_ID_V6 {
            Ok(())
        } else {
            Err(Error::PoolNotFound(req.pool_id))
        }
    }

    async fn request_address(&self, _req: RequestAddressRequest) -> Result<RequestAddressResponse> {
        Err(Error::InvalidRequest("the null IPAM allocates no addresses".to_string()))
    }

    async fn release_address(&self, _req: ReleaseAddressRequest) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(space: &str, pool: Option<&str>, v6: bool) -> RequestPoolRequest {
        RequestPoolRequest {
            address_space: space.to_string(),
            pool: pool.map(|p| p.parse().expect("test network")),
            sub_pool: None,
            options: BTreeMap::new(),
            v6,
        }
    }

    #[tokio::test]
    async fn pools() {
        let ipam = NullIpam::new();
        let spaces = ipam.default_address_spaces().await.expect("spaces");
        assert_eq!((spaces.local.as_str(), spaces.global.as_str()), ("null", "null"));
        let v4 = ipam.request_pool(req("null", None, false)).await.expect("v4");
        assert_eq!((v4.pool_id.as_str(), v4.pool), (POOL_ID_V4, POOL_V4));
        let v6 = ipam.request_pool(req("null", Some("::/0"), true)).await.expect("v6");
        assert_eq!((v6.pool_id.as_str(), v6.pool), ("null/::/0", POOL_V6));
        let bad = ipam.request_pool(req("null", Some("10.0.0.0/8"), false)).await;
        assert!(matches!(bad, Err(Error::InvalidPool(_))));
        let bad = ipam.request_pool(req("null", Some("0.0.0.0/0"), true)).await;
        assert!(matches!(bad, Err(Error::InvalidPool(_))));
        let bad = ipam.request_pool(req("LocalDefault", None, false)).await;
        assert!(matches!(bad, Err(Error::InvalidAddressSpace(_))));
        for id in [POOL_ID_V4, POOL_ID_V6] {
            let r = ipam.release_pool(ReleasePoolRequest { pool_id: id.to_string() }).await;
            assert!(r.is_ok());
        }
        let r = ipam.release_pool(ReleasePoolRequest { pool_id: "x".to_string() }).await;
        assert!(matches!(r, Err(Error::PoolNotFound(_))));
    }

    #[tokio::test]
    async fn addresses() {
        let ipam = NullIpam;
        let r = ipam
            .request_address(RequestAddressRequest { pool_id: POOL_ID_V4.to_string(), address: None, options: None })
            .await;
        assert!(matches!(r, Err(Error::InvalidRequest(m)) if m == "the null IPAM allocates no addresses"));
        let r = ipam
            .release_address(ReleaseAddressRequest {
                pool_id: POOL_ID_V4.to_string(),
                address: "10.0.0.1".parse().expect("ip"),
            })
            .await;
        assert!(r.is_ok());
    }
}
