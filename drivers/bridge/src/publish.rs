//! Published ports: host ports reserved (a socket each, so no other
//! program takes them), DNAT map elements in cnm's table, hairpin on the
//! endpoint's bridge port; taken back on revoke, endpoint and network
//! deletion, with the conntrack entries of unpublished UDP ports flushed.

use crate::Error;
use crate::driver::{BridgeDriver, endpoint_of};
use crate::endpoint::host_name;
use crate::network::BridgeNetwork;
use crate::ports::{self, PortAllocator, Published};
use cnm_driverapi::ProgramExternalConnectivityRequest;
use cnm_osl::firewall::{PortMapping, Protocol};
use cnm_osl::{BridgePortFlags, Netlink};
use std::sync::Arc;

impl BridgeDriver {
    /// The host port allocator, made once (it reads the ephemeral range).
    pub(crate) async fn allocator(&self) -> Result<Arc<PortAllocator>, Error> {
        self.ports
            .get_or_try_init(|| async {
                let range = cnm_osl::reservation::ephemeral_port_range(self.nl.namespace())
                    .await
                    .map_err(|e| Error::os("read the ephemeral port range", e))?;
                // One reservation socket per published port: size the fd table once.
                tokio::task::spawn_blocking(|| cnm_osl::reservation::grow_fd_table(32 * 1024))
                    .await
                    .map_err(|_| Error::PortsPoisoned)?;
                Ok::<_, Error>(Arc::new(PortAllocator::new(range)))
            })
            .await
            .cloned()
    }

    /// Publishes the sandbox's port bindings for this endpoint: host ports
    /// allocated and reserved, DNAT map elements added in one transaction.
    pub(crate) async fn publish(&self, req: &ProgramExternalConnectivityRequest) -> Result<(), Error> {
        let net = self.network(&req.network_id).await?;
        let ep = endpoint_of(&net, &req.endpoint_id)?;
        let already = net.published.contains(&req.endpoint_id);
        if net.internal || req.options.port_map.is_empty() || already {
            return Ok(());
        }
        let alloc = self.allocator().await?;
        let bindings = req.options.port_map.clone();
        let default_ip = net.config.host_binding_ipv4;
        let (v4, v6) = (ep.ipv4.map(|a| a.addr()), ep.ipv6.map(|a| a.addr()));
        let alloc2 = alloc.clone();
        let held = req.options.host_ports_held;
        let published: Vec<Published> = cnm_osl::reservation::with_port_binder(self.nl.namespace(), move |reserve| {
            // Ports the runtime holds open are mapped, not bound again.
            let elsewhere =
                |_: cnm_osl::reservation::PortRequest| Ok(cnm_osl::reservation::PortReservation::held_elsewhere());
            let bind: &dyn Fn(
                cnm_osl::reservation::PortRequest,
            ) -> std::io::Result<cnm_osl::reservation::PortReservation> = if held { &elsewhere } else { reserve };
            let mut out: Vec<Published> = Vec::new();
            for b in &bindings {
                let addrs = ports::host_addresses(b.host_ip, default_ip, v4.is_some(), v6.is_some());
                match ports::publish_one(&alloc2, b, &addrs, v4, v6, bind) {
                    Ok(p) => out.push(p),
                    Err(e) => {
                        for p in &out {
                            ports::release(&alloc2, p);
                        }
                        return Err(e);
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::os("reserve host ports", e))??;
        crate::kill::point("bridge.publish.reserved");
        if let Some(fw) = self.firewall().await? {
            let mappings: Vec<PortMapping> = published.iter().flat_map(|p| p.mappings.iter().cloned()).collect();
            // A `routed` family's ports are reached at the container's own
            // address too (Docker's routed gateway mode).
            let routed = net.routed_ports(&mappings);
            let added = match fw.add_ports(&mappings).await {
                Ok(()) if !routed.is_empty() => match fw.set_routed_ports(&routed, true).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        let undone = fw.remove_ports(&mappings).await;
                        if let Err(u) = undone {
                            tracing::warn!(error = %cnm_driverapi::Chain(&u), "cannot take back port mappings");
                        }
                        Err(e)
                    }
                },
                other => other,
            };
            if let Err(e) = added {
                for p in &published {
                    ports::release(&alloc, p);
                }
                return Err(Error::os("publish ports", e));
            }
        }
        crate::kill::point("bridge.publish.mapped");

        // With br_netfilter, a container reaching its own published port has
        // its frames sent back out of the port they came in by: hairpin mode.
        let host = host_name(&req.endpoint_id);
        let hairpin = async {
            let link = self.nl.link_get(&host).await?.ok_or_else(|| cnm_osl::Error::NotFound(host.clone()))?;
            self.nl
                .link_set_bridge_port(link.index, BridgePortFlags { hairpin: Some(true), ..Default::default() })
                .await
        };
        if let Err(e) = hairpin.await {
            tracing::warn!(port = %host, error = %cnm_driverapi::Chain(&e), "failed to set hairpin mode; the container cannot reach its own published ports");
        }
        net.published.insert(req.endpoint_id.clone(), published);
        Ok(())
    }

    /// Takes back every port published for an endpoint.
    pub(crate) async fn unpublish(&self, net: &BridgeNetwork, endpoint_id: &str) -> Result<(), Error> {
        let published = net.published.remove(endpoint_id).unwrap_or_default();
        if published.is_empty() {
            return Ok(());
        }
        let mappings: Vec<PortMapping> = published.iter().flat_map(|p| p.mappings.iter().cloned()).collect();
        let result = match self.firewall().await {
            Ok(Some(fw)) => {
                let routed = net.routed_ports(&mappings);
                let closed = if routed.is_empty() { Ok(()) } else { fw.set_routed_ports(&routed, false).await };
                fw.remove_ports(&mappings).await.and(closed).map_err(|e| Error::os("unpublish ports", e))
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        crate::kill::point("bridge.unpublish.unmapped");
        if let Ok(alloc) = self.allocator().await {
            for p in &published {
                ports::release(&alloc, p);
            }
        }
        let udp: Vec<cnm_osl::firewall::UdpFlow> = mappings
            .iter()
            .filter(|m| m.proto == Protocol::Udp)
            .flat_map(|m| {
                (m.host_port..=m.host_port_end.max(m.host_port))
                    .map(|host_port| cnm_osl::firewall::UdpFlow { host_port, container: m.container_ip })
            })
            .collect();
        if !udp.is_empty() {
            flush_udp_conntrack(&self.nl, udp).await;
        }
        result
    }
}

/// Removes the conntrack entries of unpublished UDP ports (over
/// ctnetlink, scoped to the container's address), so a stale flow does not
/// keep sending datagrams to the old container.
async fn flush_udp_conntrack(nl: &Netlink, flows: Vec<cnm_osl::firewall::UdpFlow>) {
    match cnm_osl::firewall::flush_udp_flows(nl.namespace(), flows, nl.deadline()).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(removed = n, "conntrack entries of unpublished UDP ports flushed"),
        Err(e) => tracing::warn!(error = %cnm_driverapi::Chain(&e), "failed to flush conntrack entries"),
    }
}
