//! A sandbox create request turned into the controller's [`SandboxConfig`].

use crate::errors::ApiError;
use crate::wire::ports::{bindings_from_map, parse_port_key};
use crate::wire::sandbox::SandboxCreateRequest;
use cnm::driverapi::TransportPort;
use cnm::{ExtraHost, SandboxConfig};
use std::net::IpAddr;

/// Checks a sandbox name with core's rule for names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
pub fn check_name(name: &str) -> Result<(), ApiError> {
    cnm::check_name("sandbox", name).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The controller's configuration of a create request.
pub fn sandbox_config(req: &SandboxCreateRequest) -> Result<SandboxConfig, ApiError> {
    check_name(&req.name)?;
    let dns = req
        .dns
        .iter()
        .map(|s| {
            s.parse::<IpAddr>().map_err(|_| ApiError::bad_request(format!("invalid Dns {s:?}: not an IP address")))
        })
        .collect::<Result<_, _>>()?;
    let extra_hosts = req
        .extra_hosts
        .iter()
        .map(|h| {
            // NAME:IP, where IP may be IPv6 (split at the first colon, as Docker does).
            let (name, ip) = h
                .split_once(':')
                .ok_or_else(|| ApiError::bad_request(format!("invalid ExtraHosts {h:?}: expected NAME:IP")))?;
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            let ip = ip
                .parse::<IpAddr>()
                .map_err(|_| ApiError::bad_request(format!("invalid ExtraHosts {h:?}: {ip:?} is not an IP address")))?;
            if name.is_empty() {
                return Err(ApiError::bad_request(format!("invalid ExtraHosts {h:?}: the name is empty")));
            }
            Ok(ExtraHost { name: name.to_string(), ip })
        })
        .collect::<Result<_, ApiError>>()?;
    let mut port_bindings = bindings_from_map(&req.port_bindings)
        .map_err(|e| ApiError::bad_request(format!("invalid PortBindings: {e}")))?;
    // dockerd's order (its `nat.SortPortMap`): explicit host ports first,
    // highest first, then by port and protocol; exposed ports with bindings
    // in that order, then the others.
    port_bindings.sort_by(|a, b| {
        b.host_port.cmp(&a.host_port).then(a.port.cmp(&b.port)).then(a.proto.to_string().cmp(&b.proto.to_string()))
    });
    let mut exposed_ports: Vec<TransportPort> = Vec::new();
    let bound = port_bindings.iter().map(|b| TransportPort { proto: b.proto, port: b.port });
    let listed = req
        .exposed_ports
        .keys()
        .chain(req.port_bindings.keys())
        .map(|key| parse_port_key(key).map_err(|e| ApiError::bad_request(format!("invalid ExposedPorts: {e}"))));
    for p in bound.map(Ok).chain(listed) {
        let p = p?;
        if !exposed_ports.contains(&p) {
            exposed_ports.push(p);
        }
    }
    let netns = match req.netns.as_str() {
        "" => None,
        p if p.starts_with('/') => Some(std::path::PathBuf::from(p)),
        p => return Err(ApiError::bad_request(format!("invalid Netns {p:?}: expected an absolute path"))),
    };
    Ok(SandboxConfig {
        hostname: req.hostname.clone(),
        domainname: req.domainname.clone(),
        dns,
        dns_search: req.dns_search.clone(),
        dns_options: req.dns_options.clone(),
        extra_hosts,
        use_host_namespace: req.host_namespace,
        exposed_ports,
        port_bindings,
        netns,
        host_ports_held: req.host_ports_held,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_request_converts() {
        let req: SandboxCreateRequest = serde_json::from_str(
            r#"{"Name":"web-1","Hostname":"web","Dns":["10.0.0.53"],"ExtraHosts":["db:10.0.0.9","v6:[fd00::9]"],
                "ExposedPorts":{"9000/udp":{}},"PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]}}"#,
        )
        .unwrap();
        let cfg = sandbox_config(&req).unwrap();
        assert_eq!(cfg.hostname, "web");
        assert_eq!(cfg.extra_hosts.len(), 2);
        assert_eq!(cfg.exposed_ports.len(), 2);
        assert_eq!(cfg.port_bindings[0].host_port, 8080);
    }

    #[test]
    fn bad_values_are_refused() {
        for json in [
            r#"{"Name":"-x"}"#,
            r#"{"Name":"a","Dns":["x"]}"#,
            r#"{"Name":"a","ExtraHosts":["nocolon"]}"#,
            r#"{"Name":"a","PortBindings":{"80/icmp":[]}}"#,
        ] {
            let req: SandboxCreateRequest = serde_json::from_str(json).unwrap();
            assert!(sandbox_config(&req).is_err(), "{json}");
        }
    }
}
