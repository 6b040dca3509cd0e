//! Docker's request types turned into the controller's: a network create
//! request into a [`NetworkConfig`], connect settings into an [`EndpointConfig`].
//! Every refusal is a 400 that names the field and value.

use crate::errors::ApiError;
use crate::wire::network::{EndpointSettings, NetworkCreateRequest};
use cnm::{EndpointConfig, IpamConfig, NetworkConfig};
use ipnet::IpNet;
use std::net::IpAddr;

/// The endpoint option (`docker network connect --driver-opt`) that names
/// the interface in the sandbox, as Docker 28's.
pub const IFNAME_OPTION: &str = "com.docker.network.endpoint.ifname";
/// The endpoint option setting the interface's sysctls (Docker 27+):
/// `net.X.Y.IFNAME.Z=V[,…]`.
pub const SYSCTLS_OPTION: &str = "com.docker.network.endpoint.sysctls";

/// The driver used when a request names none.
pub const DEFAULT_DRIVER: &str = "bridge";

/// The network option that turns the embedded resolver off on a network
/// (`-o cnm.network.enable_dns=false`); the daemon takes it, the driver never sees it.
pub const DNS_OPTION: &str = "cnm.network.enable_dns";

/// dockerd's answer (403) to a swarm network on a node outside any swarm.
pub const NOT_A_SWARM_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

/// The driver and the controller's configuration of a create request.
pub fn network_config(req: &NetworkCreateRequest) -> Result<(String, NetworkConfig), ApiError> {
    // A swarm network, as dockerd answers on a node outside any swarm.
    if req.scope == "swarm" || req.ingress {
        return Err(ApiError::forbidden(NOT_A_SWARM_MANAGER));
    }
    if !matches!(req.scope.as_str(), "" | "local") {
        return Err(ApiError::bad_request(format!("invalid scope {:?}: only local networks are supported", req.scope)));
    }
    let config_from = req.config_from.as_ref().map(|c| c.network.clone()).filter(|n| !n.is_empty());
    // dockerd's statuses and messages (403 both).
    if req.config_only && (req.internal || req.attachable || !req.scope.is_empty()) {
        return Err(ApiError::forbidden(
            "configuration network can only contain network specific fields. Network operator fields like [ ingress | internal | attachable | scope ] are not supported.",
        ));
    }
    if req.config_only && config_from.is_some() {
        return Err(ApiError::forbidden("a configuration network cannot depend on another configuration network"));
    }
    // Docker's rule: a configuration-only network has the null driver.
    let driver = if req.config_only {
        if !matches!(req.driver.as_str(), "" | "null" | DEFAULT_DRIVER) {
            return Err(ApiError::bad_request(format!(
                "a configuration-only network has no driver (got {:?})",
                req.driver
            )));
        }
        "null".to_string()
    } else if req.driver.is_empty() {
        DEFAULT_DRIVER.to_string()
    } else {
        req.driver.clone()
    };
    let mut driver_options = req.options.clone().unwrap_or_default();
    // Without the fields, the families follow the options of the same
    // names (as Docker 27+'s), taken out of the driver's options.
    let mut family = |field: Option<bool>, key: &str, default: bool| -> Result<bool, ApiError> {
        let option = driver_options.remove(key);
        match (field, option) {
            (Some(v), _) => Ok(v),
            (None, Some(v)) => {
                v.parse::<bool>().map_err(|_| ApiError::bad_request(format!("driver-opt {key:?} is not a valid bool")))
            }
            (None, None) => Ok(default),
        }
    };
    let enable_ipv4 = family(req.enable_ipv4, "com.docker.network.enable_ipv4", true)?;
    let enable_ipv6 = family(req.enable_ipv6, "com.docker.network.enable_ipv6", false)?;
    let ipv6_given = req.enable_ipv6.is_some() || enable_ipv6;
    let disable_dns = match driver_options.remove(DNS_OPTION).as_deref() {
        None => false,
        Some(v) => !v
            .parse::<bool>()
            .map_err(|_| ApiError::bad_request(format!("invalid option {DNS_OPTION}={v:?}: expected true or false")))?,
    };
    let mut cfg = NetworkConfig {
        enable_ipv4,
        enable_ipv6,
        internal: req.internal,
        labels: req.labels.clone().unwrap_or_default(),
        driver_options,
        disable_dns,
        config_only: req.config_only,
        config_from,
        attachable: req.attachable,
        ..NetworkConfig::default()
    };
    if let Some(ipam) = &req.ipam {
        if !ipam.driver.is_empty() {
            cfg.ipam_driver = ipam.driver.clone();
        }
        cfg.ipam_options = ipam.options.clone();
        for c in &ipam.config {
            let subnet = opt_net("Subnet", &c.subnet)?;
            let ip_range = opt_net("IPRange", &c.ip_range)?;
            let gateway = opt_ip("Gateway", &c.gateway)?;
            let mut aux = std::collections::BTreeMap::new();
            for (name, ip) in &c.auxiliary_addresses {
                let ip = opt_ip(&format!("AuxiliaryAddresses[{name}]"), ip)?
                    .ok_or_else(|| ApiError::bad_request(format!("auxiliary address {name} is empty")))?;
                aux.insert(name.clone(), ip);
            }
            let v6 = match (subnet, ip_range, gateway) {
                (Some(n), _, _) | (None, Some(n), _) => n.addr().is_ipv6(),
                (None, None, Some(g)) => g.is_ipv6(),
                (None, None, None) => false,
            };
            let entry = IpamConfig { subnet, ip_range, gateway, aux_addresses: aux };
            if v6 { cfg.ipv6.push(entry) } else { cfg.ipv4.push(entry) }
        }
    }
    if !cfg.ipv6.is_empty() && !ipv6_given {
        // Docker 28 enables IPv6 when an IPv6 subnet is given without EnableIPv6.
        cfg.enable_ipv6 = true;
    }
    Ok((driver, cfg))
}

fn opt_net(field: &str, s: &str) -> Result<Option<IpNet>, ApiError> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<IpNet>().map(Some).map_err(|_| {
        ApiError::bad_request(format!("invalid {field} {s:?}: expected an address in CIDR form such as 10.1.0.0/24"))
    })
}

fn opt_ip(field: &str, s: &str) -> Result<Option<IpAddr>, ApiError> {
    if s.is_empty() {
        return Ok(None);
    }
    // Docker accepts a gateway with a prefix length (`10.1.0.1/24`) too.
    let addr = s.split_once('/').map_or(s, |(a, _)| a);
    addr.parse::<IpAddr>()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("invalid {field} {s:?}: not an IP address")))
}

/// The endpoint configuration and gateway priority of connect settings.
pub fn endpoint_config(settings: Option<&EndpointSettings>) -> Result<(EndpointConfig, i32), ApiError> {
    let Some(s) = settings else { return Ok((EndpointConfig::default(), 0)) };
    if !s.links.is_empty() {
        return Err(ApiError::bad_request("links are not supported: use aliases"));
    }
    let mut cfg = EndpointConfig { aliases: s.aliases.clone(), ..EndpointConfig::default() };
    for (key, value) in &s.driver_opts {
        match key.as_str() {
            IFNAME_OPTION => cfg.ifname = Some(value.clone()),
            SYSCTLS_OPTION => {
                for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    let (k, v) = item.split_once('=').ok_or_else(|| {
                        ApiError::bad_request(format!("invalid interface sysctl {item:?}: expected net.X.Y.IFNAME.Z=V"))
                    })?;
                    cfg.sysctls.push((k.to_string(), v.to_string()));
                }
            }
            _ => {
                cfg.driver_options.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(ipam) = &s.ipam_config {
        for ip in &ipam.link_local_ips {
            cfg.link_local_ips
                .push(ip.parse().map_err(|_| ApiError::bad_request(format!("invalid LinkLocalIPs entry {ip:?}")))?);
        }
        if !ipam.ipv4_address.is_empty() {
            cfg.ipv4 = Some(ipam.ipv4_address.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid IPv4Address {:?}: not an IPv4 address", ipam.ipv4_address))
            })?);
        }
        if !ipam.ipv6_address.is_empty() {
            cfg.ipv6 = Some(ipam.ipv6_address.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid IPv6Address {:?}: not an IPv6 address", ipam.ipv6_address))
            })?);
        }
    }
    if !s.mac_address.is_empty() {
        cfg.mac = Some(
            s.mac_address
                .parse()
                .map_err(|e| ApiError::bad_request(format!("invalid MacAddress {:?}: {e}", s.mac_address)))?,
        );
    }
    Ok((cfg, s.gw_priority))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::network::{EndpointIpamConfig, Ipam, IpamConfig as WireIpam};

    fn req(json: &str) -> NetworkCreateRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn docker_cli_request_converts() {
        // What docker 28 sends for `network create --subnet 10.9.0.0/24 --gateway 10.9.0.254 -o a=b --label l=v n1`
        // after negotiating API 1.41.
        let r = req(r#"{"Name":"n1","CheckDuplicate":true,"Driver":"bridge","Scope":"","EnableIPv6":null,
            "IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.9.0.0/24","Gateway":"10.9.0.254",
            "AuxiliaryAddresses":{"r":"10.9.0.5"}}]},"Internal":false,"Attachable":false,"Ingress":false,
            "ConfigOnly":false,"ConfigFrom":null,"Options":{"a":"b"},"Labels":{"l":"v"}}"#);
        let (driver, cfg) = network_config(&r).unwrap();
        assert_eq!(driver, "bridge");
        assert_eq!(cfg.ipv4.len(), 1);
        assert_eq!(cfg.ipv4[0].subnet, Some("10.9.0.0/24".parse().unwrap()));
        assert_eq!(cfg.ipv4[0].gateway, Some("10.9.0.254".parse().unwrap()));
        assert_eq!(cfg.ipv4[0].aux_addresses["r"], "10.9.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(cfg.driver_options["a"], "b");
        assert_eq!(cfg.labels["l"], "v");
    }

    #[test]
    fn the_ifname_endpoint_option_names_the_interface_and_others_go_to_the_driver() {
        let s: EndpointSettings =
            serde_json::from_str(r#"{"DriverOpts":{"com.docker.network.endpoint.ifname":"data0"}}"#).unwrap();
        let (cfg, _) = endpoint_config(Some(&s)).unwrap();
        assert_eq!(cfg.ifname.as_deref(), Some("data0"));
        assert!(cfg.driver_options.is_empty(), "the interface's name is cnm's, not the driver's");
        let s: EndpointSettings = serde_json::from_str(r#"{"DriverOpts":{"com.example.x":"1"}}"#).unwrap();
        let (cfg, _) = endpoint_config(Some(&s)).unwrap();
        assert_eq!(cfg.driver_options.get("com.example.x").map(String::as_str), Some("1"));
    }

    #[test]
    fn ipv6_subnets_go_to_ipv6_and_enable_it() {
        let mut r = NetworkCreateRequest { name: "n".into(), ..Default::default() };
        r.ipam = Some(Ipam {
            config: vec![WireIpam { subnet: "fd00:1::/64".into(), ..Default::default() }],
            ..Default::default()
        });
        let (_, cfg) = network_config(&r).unwrap();
        assert!(cfg.enable_ipv6);
        assert_eq!(cfg.ipv6.len(), 1);
        assert!(cfg.ipv4.is_empty());
    }

    #[test]
    fn invalid_values_name_the_field() {
        let e = network_config(&req(r#"{"Name":"n","IPAM":{"Config":[{"Subnet":"10.0.0/24"}]}}"#)).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.message.contains("Subnet") && e.message.contains("10.0.0/24"), "{}", e.message);
        for swarm in [r#"{"Name":"n","Scope":"swarm"}"#, r#"{"Name":"n","Ingress":true}"#] {
            let e = network_config(&req(swarm)).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN, "as dockerd outside a swarm: {}", e.message);
        }
        assert!(network_config(&req(r#"{"Name":"n","Scope":"global"}"#)).is_err());
        // As dockerd: an unknown field is ignored, a null is a zero value.
        let lenient: NetworkCreateRequest =
            serde_json::from_str(r#"{"Name":"n","Colour":"red","Driver":null,"Internal":null}"#).unwrap();
        assert_eq!((lenient.driver.as_str(), lenient.internal), ("", false));
    }

    #[test]
    fn connect_settings_convert() {
        let s = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig { ipv4_address: "10.9.0.7".into(), ..Default::default() }),
            aliases: vec!["web".into()],
            mac_address: "02:42:0a:09:00:07".into(),
            gw_priority: 5,
            ..Default::default()
        };
        let (cfg, prio) = endpoint_config(Some(&s)).unwrap();
        assert_eq!(cfg.ipv4, Some("10.9.0.7".parse().unwrap()));
        assert_eq!(cfg.aliases, vec!["web"]);
        assert!(cfg.mac.is_some());
        assert_eq!(prio, 5);
        let bad = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig { ipv4_address: "fd00::1".into(), ..Default::default() }),
            ..Default::default()
        };
        assert!(endpoint_config(Some(&bad)).is_err());
    }
}
