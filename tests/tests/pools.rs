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
    /// Declares `RequiresMACAddress`.
    requires_mac: bool,
    /// The MAC option of each address request that had one.
    macs: Mutex<Vec<String>>,
}

#[cnm::driverapi::async_trait]
impl Ipam for ScriptedIpam {
    fn capability(&self) -> cnm::ipamapi::IpamCapability {
        cnm::ipamapi::IpamCapability { requires_mac_address: self.requires_mac, ..Default::default() }
    }
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
        if let Some(mac) = req.options.as_ref().and_then(|o| o.get(cnm::ipamapi::label::MAC_ADDRESS)) {
            self.macs.lock().unwrap().push(mac.clone());
        }
        let pool: IpNet = req.pool_id.parse().unwrap();
        let IpNet::V4(p) = pool else { unreachable!() };
        let n = 1 + self.macs.lock().unwrap().len() as u32;
        let ip = req.address.unwrap_or_else(|| std::net::Ipv4Addr::from(u32::from(p.network()) + n).into());
        Ok(RequestAddressResponse { address: IpNet::new(ip, pool.prefix_len()).unwrap(), data: Default::default() })
    }
    async fn release_address(&self, _: ReleaseAddressRequest) -> Result<()> {
        Ok(())
    }
}

/// A controller with the bridge driver and `ipam` registered as `name`.
async fn with_ipam(h: &TestHost, name: &str, ipam: Arc<ScriptedIpam>) -> Controller {
    h.builder()
        .driver_on_host(|host| cnm_driver_bridge::BridgeDriver::new(host.clone()))
        .ipam_arc(name, ipam)
        .build()
        .await
        .expect("start controller")
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
    let ctrl = with_ipam(&h, "scripted", ipam.clone()).await;
    let cfg = NetworkConfig { ipam_driver: "scripted".into(), ..Default::default() };
    let net = ctrl.new_network("bridge", "clear", cfg.clone()).await.unwrap();
    let info = net.info().await.unwrap();
    assert_eq!(info.ipv4[0].subnet, "10.98.0.0/24".parse::<IpNet>().unwrap(), "the first pool clear of the host");
    assert_eq!(*ipam.released.lock().unwrap(), ["10.250.0.0/24", "10.99.3.0/24"], "the colliding ones released");

    // Only colliding pools left: a clear error, and nothing kept.
    ipam.released.lock().unwrap().clear();
    *ipam.offers.lock().unwrap() = vec!["10.250.0.0/25".parse().unwrap()];
    let e = ctrl.new_network("bridge", "stuck", cfg).await.unwrap_err();
    assert!(
        cnm::chain(&e).contains("overlaps no route of the host") && cnm::chain(&e).contains("10.250.0.0/25"),
        "{e}"
    );
    assert_eq!(*ipam.released.lock().unwrap(), ["10.250.0.0/25"]);
    assert!(ctrl.network_by_name("stuck").await.is_err());
    net.delete().await.unwrap();
}

/// An IPAM that requires the MAC gets it with every address request: the
/// one the user gave, or one generated for the endpoint; the sandbox's
/// interface has that MAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipam_that_requires_the_mac_gets_the_endpoints_mac() {
    let Some(h) = TestHost::new("an_ipam_that_requires_the_mac_gets_the_endpoints_mac").await else { return };
    let ipam = Arc::new(ScriptedIpam { requires_mac: true, ..Default::default() });
    let ctrl = with_ipam(&h, "mac-ipam", ipam.clone()).await;
    let cfg = NetworkConfig { ipam_driver: "mac-ipam".into(), ..Default::default() }
        .with_subnet("10.97.0.0/24".parse().unwrap());
    let net = ctrl.new_network("bridge", "macs", cfg).await.unwrap();
    let given: cnm::driverapi::MacAddress = "02:11:22:33:44:55".parse().unwrap();
    let mut sandboxes = Vec::new();
    for (name, mac) in [("generated", None), ("given", Some(given))] {
        let ep = net.create_endpoint(name, cnm::EndpointConfig { mac, ..Default::default() }).await.unwrap();
        let sb = ctrl.new_sandbox(name, cnm::SandboxConfig::default()).await.unwrap();
        ep.join(&sb, cnm::JoinOptions::default()).await.unwrap();
        let info = ep.info().await.unwrap();
        let mac_sent = ipam.macs.lock().unwrap().last().cloned().expect("the IPAM got a MAC");
        assert_eq!(Some(mac_sent.clone()), info.mac.map(|m| m.to_string()), "{name}");
        if let Some(m) = mac {
            assert_eq!(mac_sent, m.to_string());
        }
        let nl = cnm::osl::Netlink::connect(&sb.namespace().unwrap(), cnm::osl::DEFAULT_DEADLINE).await.unwrap();
        let eth0 = nl.link_get("eth0").await.unwrap().unwrap();
        assert_eq!(
            eth0.mac.map(|b| cnm::driverapi::MacAddress(b).to_string()),
            Some(mac_sent),
            "{name}: the interface"
        );
        sandboxes.push(sb);
    }
    for sb in sandboxes {
        sb.delete().await.unwrap();
    }
    for ep in net.endpoints().await {
        ep.delete().await.unwrap();
    }
    net.delete().await.unwrap();
}
