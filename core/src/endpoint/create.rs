//! `Network::create_endpoint`: allocate addresses, record the intent, ask the driver, confirm.

use super::{Endpoint, EndpointConfig};
use crate::model::{EndpointRecord, JoinRecord, NetworkRecord, Phase};
use crate::network::{Network, check_name};
use crate::store::Table;
use crate::{Error, Result};
use cnm_driverapi::{CreateEndpointRequest, DeleteEndpointRequest, EndpointInterface, EndpointOptions, MacAddress};
use cnm_ipamapi::{Ipam, ReleaseAddressRequest, RequestAddressRequest};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

impl Network {
    /// Creates an endpoint named `name` on this network.
    ///
    /// Addresses come from the network's IPAM: the static ones of `config`
    /// (refused with an address-in-use error when taken) or the next free
    /// ones. The MAC is the given one, the driver's, or `02:42` followed by
    /// the IPv4 address.
    pub async fn create_endpoint(&self, name: &str, config: EndpointConfig) -> Result<Endpoint> {
        check_request(name, &config)?;
        let ctrl = &self.ctrl;
        let _lock = ctrl.inner.locks.lock(&self.id).await;
        let rec = self.create_locked(name, config, None).await?;
        if let Err(e) = ctrl.inner.store.put(Table::Endpoints, &rec.id, &rec).await {
            ctrl.cluster_release_endpoint(&self.id, &rec.id).await;
            return Err(e);
        }
        let ep = Endpoint::handle(ctrl, &rec);
        ctrl.st().endpoints.insert(rec.id.clone(), rec);
        Ok(ep)
    }

    /// The work of an endpoint's creation, holding the network's lock: the
    /// record it returns is ready but not yet written (its intent is on
    /// disk, so a crash before the caller writes it rolls the endpoint back).
    /// With `join`, the intent is also that join's (see `Network::connect`).
    pub(crate) async fn create_locked(
        &self,
        name: &str,
        config: EndpointConfig,
        join: Option<JoinRecord>,
    ) -> Result<EndpointRecord> {
        // On a global network, the endpoint's claim comes before its
        // addresses: a removal of the network that wins the race refuses it.
        let id = crate::id::new_id();
        self.ctrl.cluster_claim_endpoint(&self.id, &id).await?;
        let made = self.create_claimed(id.clone(), name, config, join).await;
        if made.is_err() {
            self.ctrl.cluster_release_endpoint(&self.id, &id).await;
        }
        made
    }

    /// The work of [`Network::create_locked`] once the endpoint's id is claimed.
    async fn create_claimed(
        &self,
        id: String,
        name: &str,
        config: EndpointConfig,
        join: Option<JoinRecord>,
    ) -> Result<EndpointRecord> {
        let ctrl = &self.ctrl;
        ctrl.ensure_restored(&self.id).await?;
        let net = {
            let st = ctrl.st();
            let net = st.networks.get(&self.id).ok_or_else(|| Error::NetworkNotFound(self.id.clone()))?.clone();
            if st.endpoints.values().any(|e| e.network_id == self.id && e.name == name) {
                return Err(Error::EndpointNameExists { name: name.to_string(), network: net.name.clone() });
            }
            if net.config.config_only {
                return Err(Error::Forbidden(format!(
                    "network {} is a configuration-only network: it cannot be connected",
                    net.name
                )));
            }
            net
        };
        let drv = ctrl.driver(&net.driver).await?;
        let ipam = ctrl.ipam(&net.config.ipam_driver).await?;
        let allocates = net.config.ipam_driver != cnm_ipamapi::NULL_IPAM;

        let mut rec = EndpointRecord {
            id,
            name: name.to_string(),
            network_id: self.id.clone(),
            config,
            ipv4: None,
            ipv6: None,
            mac: None,
            join,
            phase: Phase::Creating,
        };
        rec.mac = rec.config.mac;
        let mac_opt = allocates && ipam.capability().requires_mac_address;
        if mac_opt && rec.mac.is_none() {
            // The IPAM wants the endpoint's MAC before any address exists:
            // one is generated as Docker does, and the endpoint keeps it.
            rec.mac = Some(MacAddress::local_unicast(rand::random()));
        }
        // An IPAM whose state is not rebuilt from the store (a remote one)
        // keeps what it handed out: the intent is written before each
        // address is asked for, and each address as soon as it is given, so
        // that a crash at any point leaves a record that restore rolls back
        // (releasing what was given).
        let mut durable = false;
        if allocates {
            for p in net.ipv4.iter().chain(net.ipv6.iter()) {
                durable |= !ctrl.pool_replays(&net.config.ipam_driver, &p.pool_id).await;
            }
        }
        if durable {
            ctrl.inner.store.put(Table::Endpoints, &rec.id, &rec).await?;
        }
        let forget_intent = async |rec: &EndpointRecord| {
            if durable {
                let forgotten = ctrl.inner.store.delete(Table::Endpoints, &rec.id).await;
                ctrl.rollback("remove the intent of a failed endpoint", &rec.name, forgotten);
            }
        };
        if allocates && rec.config.ipv4.is_some() && net.ipv4.is_empty() {
            forget_intent(&rec).await;
            return Err(Error::InvalidParameter(format!(
                "network {} has no IPv4: no IPv4 address can be given",
                net.name
            )));
        }
        if allocates && !net.ipv4.is_empty() {
            let preferred4 = rec.config.ipv4.map(IpAddr::V4);
            rec.ipv4 = match request_address(&*ipam, &net, false, preferred4, rec.mac, mac_opt).await {
                Ok(a) => Some(a),
                Err(e) => {
                    forget_intent(&rec).await;
                    return Err(e);
                }
            };
        }
        if allocates && net.config.enable_ipv6 && !net.ipv6.is_empty() {
            if durable && let Err(e) = ctrl.inner.store.put(Table::Endpoints, &rec.id, &rec).await {
                release_addresses(&*ipam, &net, &rec).await;
                forget_intent(&rec).await;
                return Err(e);
            }
            let preferred6 = rec.config.ipv6.map(IpAddr::V6);
            match request_address(&*ipam, &net, true, preferred6, rec.mac, mac_opt).await {
                Ok(a) => rec.ipv6 = Some(a),
                Err(e) => {
                    release_addresses(&*ipam, &net, &rec).await;
                    forget_intent(&rec).await;
                    return Err(e);
                }
            }
        }
        crate::kill::point("endpoint.create.addresses");
        if let Err(e) = ctrl.inner.store.put(Table::Endpoints, &rec.id, &rec).await {
            release_addresses(&*ipam, &net, &rec).await;
            forget_intent(&rec).await;
            return Err(e);
        }
        crate::kill::point("endpoint.create.intent");

        let req = CreateEndpointRequest {
            network_id: net.id.clone(),
            endpoint_id: rec.id.clone(),
            interface: EndpointInterface { address: rec.ipv4, address_ipv6: rec.ipv6, mac_address: rec.mac },
            options: endpoint_options(&net, &rec.config),
        };
        let given = req.interface.clone();
        let outcome = match drv.create_endpoint(req).await {
            Ok(resp) => merge_interface(&given, resp.interface).map_err(|msg| {
                (
                    true,
                    Error::Driver {
                        driver: net.driver.clone(),
                        op: "create endpoint",
                        source: cnm_driverapi::Error::invalid(msg),
                    },
                )
            }),
            Err(source) => Err((false, Error::Driver { driver: net.driver.clone(), op: "create endpoint", source })),
        };
        let iface = match outcome {
            Ok(iface) => iface,
            Err((delete_in_driver, e)) => {
                if delete_in_driver {
                    let del = DeleteEndpointRequest { network_id: net.id.clone(), endpoint_id: rec.id.clone() };
                    ctrl.rollback(
                        "the driver's delete of a failed endpoint",
                        &rec.name,
                        drv.delete_endpoint(del).await,
                    );
                }
                release_addresses(&*ipam, &net, &rec).await;
                ctrl.inner.store.delete(Table::Endpoints, &rec.id).await?;
                return Err(e);
            }
        };
        crate::kill::point("endpoint.create.driver");
        rec.ipv4 = iface.address;
        rec.ipv6 = iface.address_ipv6;
        rec.mac = iface.mac_address.or_else(|| match rec.ipv4.map(|a| a.addr()) {
            Some(IpAddr::V4(v4)) => Some(MacAddress::from_ipv4(v4)),
            _ => None,
        });
        rec.phase = Phase::Ready;
        Ok(rec)
    }
}

/// Refuses a name, alias or link-local address no endpoint may have.
pub(crate) fn check_request(name: &str, config: &EndpointConfig) -> Result<()> {
    check_name("endpoint", name)?;
    for a in &config.aliases {
        crate::sandbox::check_file_value("alias", a, false)?;
    }
    if let Some(ip) = config.link_local_ips.iter().find(|ip| !is_link_local(ip)) {
        return Err(Error::InvalidParameter(format!("{ip} is not a link-local address (169.254.0.0/16 or fe80::/10)")));
    }
    for (key, value) in &config.sysctls {
        interface_sysctl_path(key, "IFNAME")?;
        if value.is_empty() || value.chars().any(|c| c.is_control()) {
            return Err(Error::InvalidParameter(format!("invalid value {value:?} of interface sysctl {key}")));
        }
    }
    if let Some(n) = &config.ifname {
        let bad = n.is_empty()
            || n.len() > cnm_osl::MAX_IFNAME_LEN
            || n.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
            || n == "."
            || n == "..";
        if bad {
            return Err(Error::InvalidParameter(format!(
                "invalid interface name {n:?}: 1 to {} characters, no '/', ':', spaces or control characters",
                cnm_osl::MAX_IFNAME_LEN
            )));
        }
    }
    Ok(())
}

/// The path under `/proc/sys` of interface sysctl `key` (`net.X.Y.IFNAME.Z`,
/// X `ipv4`, `ipv6` or `mpls`) for interface `ifname`; anything else is
/// refused with dockerd's message.
pub(crate) fn interface_sysctl_path(key: &str, ifname: &str) -> Result<String> {
    let parts: Vec<&str> = key.split('.').collect();
    let fine = |p: &str| !p.is_empty() && !p.contains('/') && p != ".." && !p.chars().any(char::is_whitespace);
    match parts.as_slice() {
        ["net", x @ ("ipv4" | "ipv6" | "mpls"), y, "IFNAME" | "ifname", z] if fine(y) && fine(z) => {
            Ok(format!("net/{x}/{y}/{ifname}/{z}"))
        }
        _ => Err(Error::InvalidParameter(format!(
            "unrecognised network interface sysctl '{key}'; represent 'net.X.Y.ethN.Z=V' as 'net.X.Y.IFNAME.Z=V', 'X' must be 'ipv4', 'ipv6' or 'mpls'"
        ))),
    }
}

/// The endpoint options Docker sends: port keys only on non-internal networks.
pub(crate) fn endpoint_options(net: &NetworkRecord, cfg: &EndpointConfig) -> EndpointOptions {
    let internal = net.config.internal;
    EndpointOptions {
        dns_servers: (!cfg.dns_servers.is_empty()).then(|| cfg.dns_servers.clone()),
        exposed_ports: (!internal).then(|| cfg.exposed_ports.clone()),
        mac_address: cfg.mac,
        port_map: (!internal).then(|| cfg.port_bindings.clone()),
        generic: cfg.driver_options.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect(),
    }
}

/// Applies the driver's answer: it may fill empty fields only.
fn merge_interface(
    given: &EndpointInterface,
    answer: Option<EndpointInterface>,
) -> std::result::Result<EndpointInterface, String> {
    let Some(a) = answer else { return Ok(given.clone()) };
    fn pick<T: PartialEq + Copy + std::fmt::Display>(
        what: &str,
        given: Option<T>,
        answer: Option<T>,
    ) -> std::result::Result<Option<T>, String> {
        match (given, answer) {
            (Some(g), Some(a)) if g != a => Err(format!("driver modified interface {what}: {g} to {a}")),
            (Some(g), _) => Ok(Some(g)),
            (None, a) => Ok(a),
        }
    }
    Ok(EndpointInterface {
        address: pick("address", given.address, a.address)?,
        address_ipv6: pick("IPv6 address", given.address_ipv6, a.address_ipv6)?,
        mac_address: pick("MAC address", given.mac_address, a.mac_address)?,
    })
}

/// Requests one address: from the pool holding `preferred`, or from the
/// first pool with room (moving on when a pool is full).
async fn request_address(
    ipam: &dyn Ipam,
    net: &NetworkRecord,
    v6: bool,
    preferred: Option<IpAddr>,
    mac: Option<MacAddress>,
    send_mac: bool,
) -> Result<IpNet> {
    let pools = if v6 { &net.ipv6 } else { &net.ipv4 };
    let options = match (send_mac, mac) {
        (true, Some(m)) => Some(BTreeMap::from([(cnm_ipamapi::label::MAC_ADDRESS.to_string(), m.to_string())])),
        _ => None,
    };
    if let Some(ip) = preferred {
        let pool = pools.iter().find(|p| p.pool.contains(&ip)).ok_or_else(|| {
            Error::InvalidParameter(format!("address {ip} is not in any subnet of network {}", net.name))
        })?;
        return ipam
            .request_address(RequestAddressRequest { pool_id: pool.pool_id.clone(), address: Some(ip), options })
            .await
            .map(|r| r.address)
            .map_err(|e| Error::ipam(format!("allocate address {ip} on network {}", net.name), e));
    }
    let mut last = None;
    for pool in pools {
        let req = RequestAddressRequest { pool_id: pool.pool_id.clone(), address: None, options: options.clone() };
        match ipam.request_address(req).await {
            Ok(r) => return Ok(r.address),
            Err(e @ cnm_ipamapi::Error::NoAvailableIps) => last = Some(e),
            Err(e) => return Err(Error::ipam(format!("allocate address on network {}", net.name), e)),
        }
    }
    Err(Error::ipam(
        format!("allocate address on network {}", net.name),
        last.unwrap_or(cnm_ipamapi::Error::NoAvailableIps),
    ))
}

/// Releases an endpoint's addresses (IPv4 then IPv6); failures are logged.
pub(crate) async fn release_addresses(ipam: &dyn Ipam, net: &NetworkRecord, rec: &EndpointRecord) {
    for a in rec.ipv4.iter().chain(rec.ipv6.iter()) {
        let Some(pool) = net.pool_of(a.addr()) else { continue };
        let req = ReleaseAddressRequest { pool_id: pool.pool_id.clone(), address: a.addr() };
        if let Err(e) = ipam.release_address(req).await {
            tracing::warn!(address = %a, error = %crate::Chain(&e), "failed to release address");
        }
    }
}

/// Whether `ip` is a link-local unicast address.
fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}
