//! Ports as Docker writes them: `"80/tcp"` keys, `{"HostIp", "HostPort"}`
//! bindings (a host port may be a range `"8000-8010"`), and the `-p` and
//! `--expose` flag syntaxes of `docker run`.

use cnm::driverapi::{PortBinding, Protocol, TransportPort};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One host binding of a container port (Docker's `PortBinding`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostBinding {
    /// The host address; empty means every address.
    #[serde(rename = "HostIp", default)]
    pub host_ip: String,
    /// The host port or range; empty means an ephemeral port.
    #[serde(rename = "HostPort", default)]
    pub host_port: String,
}

/// Docker's port map: `"80/tcp"` to its host bindings.
pub type PortMap = BTreeMap<String, Vec<HostBinding>>;

/// Parses `"80/tcp"` (the protocol defaults to tcp).
pub fn parse_port_key(key: &str) -> Result<TransportPort, String> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto: Protocol = proto.parse().map_err(|e| format!("invalid port {key:?}: {e}"))?;
    let port: u16 = port.parse().map_err(|_| format!("invalid port {key:?}: {port:?} is not a port number"))?;
    if port == 0 {
        return Err(format!("invalid port {key:?}: port 0 cannot be published or exposed"));
    }
    Ok(TransportPort { proto, port })
}

/// Writes `"80/tcp"`.
pub fn port_key(p: &TransportPort) -> String {
    format!("{}/{}", p.port, p.proto)
}

/// Parses a host port or range: `""` (any), `"8080"`, `"8000-8010"`.
fn parse_host_ports(s: &str) -> Result<(u16, u16), String> {
    if s.is_empty() {
        return Ok((0, 0));
    }
    let num = |p: &str| p.parse::<u16>().map_err(|_| format!("invalid host port {s:?}"));
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if a == 0 || b < a {
                return Err(format!("invalid host port range {s:?}"));
            }
            Ok((a, b))
        }
        // dockerd sends a single host port as HostPort = HostPortEnd.
        None => num(s).map(|p| (p, p)),
    }
}

/// Docker's port map as the controller's bindings.
pub fn bindings_from_map(map: &PortMap) -> Result<Vec<PortBinding>, String> {
    let mut out = Vec::new();
    for (key, hosts) in map {
        let tp = parse_port_key(key)?;
        let hosts = if hosts.is_empty() { vec![HostBinding::default()] } else { hosts.clone() };
        for h in hosts {
            let host_ip = if h.host_ip.is_empty() {
                None
            } else {
                Some(h.host_ip.parse::<IpAddr>().map_err(|_| format!("invalid host address {:?}", h.host_ip))?)
            };
            let (host_port, host_port_end) = parse_host_ports(&h.host_port)?;
            out.push(PortBinding { proto: tp.proto, ip: None, port: tp.port, host_ip, host_port, host_port_end });
        }
    }
    Ok(out)
}

/// The controller's bindings as Docker's port map.
pub fn map_from_bindings(bindings: &[PortBinding]) -> PortMap {
    let mut map = PortMap::new();
    for b in bindings {
        let host_port = match (b.host_port, b.host_port_end) {
            (0, _) => String::new(),
            (p, e) if e == 0 || e == p => p.to_string(),
            (p, e) => format!("{p}-{e}"),
        };
        let host_ip = b.host_ip.map(|ip| ip.to_string()).unwrap_or_default();
        map.entry(port_key(&TransportPort { proto: b.proto, port: b.port }))
            .or_default()
            .push(HostBinding { host_ip, host_port });
    }
    map
}

/// Parses `-p [IP:][HOSTPORT[-END]:]PORT[/PROTO]` into a port key and its binding.
pub fn parse_publish(spec: &str) -> Result<(String, HostBinding), String> {
    let (addr_ports, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    // An IPv6 host address is written in brackets: [::1]:8080:80.
    let (host_ip, rest) = match addr_ports.strip_prefix('[') {
        Some(r) => {
            let (ip, rest) = r.split_once("]:").ok_or_else(|| format!("invalid publish spec {spec:?}"))?;
            (ip.to_string(), rest.to_string())
        }
        None => {
            let parts: Vec<&str> = addr_ports.split(':').collect();
            match parts.as_slice() {
                [_] | [_, _] => (String::new(), addr_ports.to_string()),
                [ip, h, c] => (ip.to_string(), format!("{h}:{c}")),
                _ => return Err(format!("invalid publish spec {spec:?}: expected [IP:][HOSTPORT:]PORT[/PROTO]")),
            }
        }
    };
    let (host_port, port) = match rest.split_once(':') {
        Some((h, c)) => (h.to_string(), c.to_string()),
        None => (String::new(), rest),
    };
    if !host_ip.is_empty() {
        host_ip.parse::<IpAddr>().map_err(|_| format!("invalid publish spec {spec:?}: bad address {host_ip:?}"))?;
    }
    parse_host_ports(&host_port).map_err(|e| format!("invalid publish spec {spec:?}: {e}"))?;
    let key = format!("{port}/{proto}");
    parse_port_key(&key).map_err(|e| format!("invalid publish spec {spec:?}: {e}"))?;
    Ok((key, HostBinding { host_ip, host_port }))
}

/// Parses `--expose PORT[-END][/PROTO]` into port keys.
pub fn parse_expose(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    let (a, b) = match ports.split_once('-') {
        Some((a, b)) => (a, b),
        None => (ports, ports),
    };
    let bad = || format!("invalid expose spec {spec:?}: expected PORT[-END][/PROTO]");
    let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a == 0 || b < a {
        return Err(bad());
    }
    (a..=b)
        .map(|p| {
            let key = format!("{p}/{proto}");
            parse_port_key(&key).map(|_| key)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs_parse_like_docker() {
        let hb = |ip: &str, port: &str| HostBinding { host_ip: ip.into(), host_port: port.into() };
        assert_eq!(parse_publish("80").unwrap(), ("80/tcp".into(), hb("", "")));
        assert_eq!(parse_publish("8080:80").unwrap(), ("80/tcp".into(), hb("", "8080")));
        assert_eq!(
            parse_publish("127.0.0.1:8080-8090:80/udp").unwrap(),
            ("80/udp".into(), hb("127.0.0.1", "8080-8090"))
        );
        assert_eq!(parse_publish("[::1]:53:53/udp").unwrap(), ("53/udp".into(), hb("::1", "53")));
        assert_eq!(parse_publish("127.0.0.1::80").unwrap(), ("80/tcp".into(), hb("127.0.0.1", "")));
        for bad in ["x:80", "8080:0", "1.2.3:80:80", "8090-8080:80", "80/icmp", "a:b:c:d"] {
            assert!(parse_publish(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn expose_specs_expand_ranges() {
        assert_eq!(parse_expose("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_expose("53-54/udp").unwrap(), vec!["53/udp", "54/udp"]);
        assert!(parse_expose("0").is_err());
        assert!(parse_expose("x/tcp").is_err());
    }

    #[test]
    fn port_maps_round_trip() {
        let mut map = PortMap::new();
        map.insert("80/tcp".into(), vec![HostBinding { host_ip: "127.0.0.1".into(), host_port: "8000-8010".into() }]);
        map.insert("53/udp".into(), vec![HostBinding { host_ip: String::new(), host_port: "5353".into() }]);
        let b = bindings_from_map(&map).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(map_from_bindings(&b), map);
        map.insert("x/tcp".into(), vec![]);
        assert!(bindings_from_map(&map).is_err());
    }
}
