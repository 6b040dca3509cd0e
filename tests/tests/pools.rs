//! Pools that collide with the host: a network created without a subnet
//! never gets a pool that overlaps a route or address of the host, whatever
//! the IPAM offers (a remote IPAM need not know the host); the pools set
//! aside are released, and when nothing else is offered the error says so.

use cnm::ipamapi::{
    AddressSpaces, Ipam, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest, RequestAddressResponse,
    RequestPoolRequest, RequestPoolResponse, Result,
};
use cnm::{Controller, NetworkConfig};
use cnm_tests::TestHost;
use ipnet::IpNet;
use std::sync::{Arc, Mutex};

/// An IPAM that offers pools from a list, in order, and logs releases.
#[derive(Debug, Default)]
struct ScriptedIpam {
    offers: Mutex<Vec<IpNet>>,
    released: Mutex<Vec<String>>,
}

#[cnm::driverapi::async_trait]
impl Ipam for ScriptedIpam {
    async fn default_address_spaces(&self) -> Result<AddressSpaces> {
        Ok(AddressSpaces { local: "local".into(), global: "global".into() })
    }
    async fn request_pool(&self, req: RequestPoolRequest) -> Result<RequestPoolResponse> {
        let pool = match req.pool {
            Some(p) => p,
            None => {
                let mut offers = self.offers.lock().unwrap();
                if offers.is_empty() {
                    return Err(cnm::ipamapi::Error::NoAvailablePool);
                }
                offers.remove(0)
            }
        };
        Ok(RequestPoolResponse { pool_id: pool.to_string(), pool, data: Default::default() })
    }
    async fn release_pool(&self, req: ReleasePoolRequest) -> Result<()> {
        self.released.lock().unwrap().push(req.pool_id);
        Ok(())
    }
    async fn request_address(&self, req: RequestAddressRequest) -> Result<RequestAddressResponse> {
        let pool: IpNet = req.pool_id.parse().unwrap();
        let IpNet::V4(p) = pool else { unreachable!() };
        let ip = req.address.unwrap_or_else(|| std::net::Ipv4Addr::from(u32::from(p.network()) + 1).into());
        Ok(RequestAddressResponse { address: IpNet::new(ip, pool.prefix_len()).unwrap(), data: Default::default() })
    }
    async fn release_address(&self, _: ReleaseAddressRequest) -> Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_overlapping_the_host_are_set_aside() {
    let Some(h) = TestHost::new("pools_overlapping_the_host_are_set_aside").await else { return };
    // The host's uplink has 10.250.0.1/24; a route to 10.99.0.0/16 goes through it.
    let _out = h.outside().await;
    let uplink = h.nl.link_get("uplink").await.unwrap().unwrap();
    let route = cnm::osl::Route::connected("10.99.0.0/16".parse().unwrap(), uplink.index);
    h.nl.route_add(&route).await.unwrap();
    let ipam = Arc::new(ScriptedIpam::default());
    *ipam.offers.lock().unwrap() =
        ["10.250.0.0/24", "10.99.3.0/24", "10.98.0.0/24"].iter().map(|s| s.parse().unwrap()).collect();
    let ctrl: Controller = h
        .builder()
        .driver_on_host(|host| cnm_driver_bridge::BridgeDriver::new(host.clone()))
        .ipam_arc("scripted", ipam.clone())
        .build()
        .await
        .unwrap();
    let cfg = NetworkConfig { ipam_driver: "scripted".into(), ..Default::default() };
    let net = ctrl.new_network("bridge", "clear", cfg.clone()).await.unwrap();
    let info = net.info().await.unwrap();
    assert_eq!(info.ipv4[0].subnet, "10.98.0.0/24".parse::<IpNet>().unwrap(), "the first pool clear of the host");
    assert_eq!(*ipam.released.lock().unwrap(), ["10.250.0.0/24", "10.99.3.0/24"], "the colliding ones released");

    // Only colliding pools left: a clear error, and nothing kept.
    ipam.released.lock().unwrap().clear();
    *ipam.offers.lock().unwrap() = vec!["10.250.0.0/25".parse().unwrap()];
    let e = ctrl.new_network("bridge", "stuck", cfg).await.unwrap_err();
    assert!(e.to_string().contains("overlaps no route of the host") && e.to_string().contains("10.250.0.0/25"), "{e}");
    assert_eq!(*ipam.released.lock().unwrap(), ["10.250.0.0/25"]);
    assert!(ctrl.network_by_name("stuck").await.is_err());
    net.delete().await.unwrap();
}
