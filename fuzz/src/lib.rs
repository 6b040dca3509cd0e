//! Fuzz targets of cnm's inputs: each takes any bytes and must answer with
//! a value or an error — a panic, an overflow (debug assertions are on in
//! fuzz builds) or a broken invariant is a finding. The same functions run
//! under AFL++ (`fuzz/run`, binary `cnm-fuzz` built with feature `afl`) and
//! in the test suite, which replays every input of `fuzz/corpus/`.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

/// A fuzz target: its name (the corpus directory) and its function.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The name, as `cnm-fuzz NAME` and `fuzz/corpus/NAME` know it.
    pub name: &'static str,
    /// What it feeds the input to.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target { name: "api_body", run: api_body },
    Target { name: "api_query", run: api_query },
    Target { name: "plugin_answer", run: plugin_answer },
    Target { name: "plugin_spec", run: plugin_spec },
    Target { name: "driver_options", run: driver_options },
    Target { name: "ipam_pool", run: ipam_pool },
    Target { name: "sandbox_files", run: sandbox_files },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}

/// API request bodies (JSON) as the daemon reads them: network create,
/// connect and sandbox create, turned into the controller's configurations.
/// The files of an accepted sandbox configuration hold only the lines cnm
/// writes (see [`sandbox_files`]).
pub fn api_body(data: &[u8]) {
    use cnmd::wire::network::{NetworkConnectRequest, NetworkCreateRequest};
    use cnmd::wire::sandbox::SandboxCreateRequest;
    if let Ok(req) = serde_json::from_slice::<NetworkCreateRequest>(data) {
        let _ = cnmd::api::network_config::network_config(&req);
    }
    if let Ok(req) = serde_json::from_slice::<NetworkConnectRequest>(data) {
        let _ = cnmd::api::network_config::endpoint_config(req.endpoint_config.as_ref());
    }
    if let Ok(req) = serde_json::from_slice::<SandboxCreateRequest>(data)
        && let Ok(cfg) = cnmd::api::sandbox_config::sandbox_config(&req)
        && cfg.validate().is_ok()
    {
        check_files("nameserver 10.0.0.53\n", &cfg);
    }
}

/// Query strings: `filters=` (the first line) and `until=` (the second).
pub fn api_query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(2, '\n');
    let filters = lines.next().unwrap_or_default();
    let until = lines.next().unwrap_or_default();
    let _ = cnmd::api::filters::Filters::parse(Some(filters), &["name", "id", "label", "driver", "type", "scope"]);
    let _ = cnmd::api::filters::parse_until(until, 1_700_000_000);
}

/// A plugin's answer body, decoded as every answer type the client reads.
pub fn plugin_answer(data: &[u8]) {
    use cnm_driver_remote::decode::from_slice;
    use cnm_driverapi as d;
    use cnm_ipamapi as i;
    let _ = from_slice::<d::JoinResponse>(data);
    let _ = from_slice::<d::CreateEndpointResponse>(data);
    let _ = from_slice::<d::Capability>(data);
    let _ = from_slice::<d::EndpointOperInfoResponse>(data);
    let _ = from_slice::<d::AllocateNetworkResponse>(data);
    let _ = from_slice::<i::RequestPoolResponse>(data);
    let _ = from_slice::<i::RequestAddressResponse>(data);
    let _ = from_slice::<i::AddressSpaces>(data);
    let _ = from_slice::<i::IpamCapability>(data);
    let _ = from_slice::<cnm_driver_remote::Manifest>(data);
}

/// A plugin spec file: the first byte says `.json` (odd) or `.spec`
/// (even), the rest is the file. An accepted spec names an address.
pub fn plugin_spec(data: &[u8]) {
    let Some((kind, rest)) = data.split_first() else { return };
    let path = if kind % 2 == 1 { "/run/docker/plugins/p.json" } else { "/etc/docker/plugins/p.spec" };
    let text = String::from_utf8_lossy(rest);
    if let Ok(spec) = cnm_driver_remote::PluginSpec::parse("p", std::path::Path::new(path), &text) {
        assert!(!spec.address.to_string().is_empty(), "an accepted spec without an address");
    }
}

/// Driver options (`-o key=value`, one per line) as the bridge, macvlan
/// and ipvlan drivers read them.
pub fn driver_options(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let options: BTreeMap<String, String> = text
        .lines()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect();
    let _ = cnm_driver_bridge::BridgeConfig::from_options(&options);
    for internal in [false, true] {
        let _ = cnm_driver_macvlan::MacvlanConfig::from_options(&options, internal);
        let _ = cnm_driver_ipvlan::IpvlanConfig::from_options(&options, internal);
    }
    if let Some(parent) = options.get(cnm_parent_link::PARENT) {
        let _ = cnm_parent_link::vlan(parent);
    }
}

/// The IPAM's address pool against a model: the first two bytes choose
/// the pool (family, prefix length, sub-pool), each next one an operation.
/// The next free address is one of the sub-pool (or pool); the lowest free
/// one is the model's lowest free address of the sub-pool, the first free
/// one the model's lowest of the whole pool; a preferred address is given
/// unless held or unusable; "none left" only when the model has none; no
/// address is handed out twice; the network and broadcast addresses never
/// are (see below); the pool's count matches the model's.
pub fn ipam_pool(data: &[u8]) {
    use cnm_ipamapi::Error;
    let [family, shape, ops @ ..] = data else { return };
    let v6 = family % 2 == 1;
    let prefix = 24 + shape % 9; // /24 … /32 (IPv6: /120 … /128)
    let net: ipnet::IpNet = if v6 {
        ipnet::IpNet::new("fd00::".parse().expect("an address"), prefix + 96).expect("a prefix")
    } else {
        ipnet::IpNet::new("10.1.2.0".parse().expect("an address"), prefix).expect("a prefix")
    };
    let net = net.trunc();
    let sub = match (shape / 9) % 3 {
        half @ (1 | 2) if net.prefix_len() < net.max_prefix_len() => {
            net.subnets(net.prefix_len() + 1).ok().and_then(|mut s| s.nth(usize::from(half - 1)))
        }
        _ => None,
    };
    let Ok(mut pool) = cnm_ipams::AddressPool::new(net, sub) else { return };
    let range = sub.unwrap_or(net);
    let mut held: Vec<IpAddr> = Vec::new();
    let mut seen: HashSet<IpAddr> = HashSet::new();
    let base = u128_of(net.network());
    let size = 1u128 << (net.max_prefix_len() - net.prefix_len());
    // IPv6's subnet-router anycast address; IPv4's network and broadcast
    // addresses, but on /31 and /32 (RFC 3021) every address is a host's.
    let excluded = |ip: IpAddr| {
        if v6 { ip == net.network() } else { prefix <= 30 && (ip == net.network() || ip == net.broadcast()) }
    };
    // The model's lowest free usable address of `within` (at most 256 to look at).
    let lowest_free = |seen: &HashSet<IpAddr>, within: ipnet::IpNet| {
        (0..size).map(|o| ip_of(base + o, v6)).find(|ip| within.contains(ip) && !excluded(*ip) && !seen.contains(ip))
    };
    let mut bytes = ops.iter();
    while let Some(op) = bytes.next() {
        let (got, expected) = match op % 5 {
            0 => (pool.allocate_next(), None),
            1 => (pool.allocate_lowest(), Some(lowest_free(&seen, range))),
            2 => (pool.allocate_first(), Some(lowest_free(&seen, net))),
            3 => {
                let ip = ip_of(base + u128::from(*bytes.next().unwrap_or(&0)) % size, v6);
                let got = pool.allocate(ip);
                match &got {
                    Ok(a) => assert_eq!(*a, ip, "asked for {ip}"),
                    Err(Error::AddressInUse(a)) => assert!(seen.contains(&ip), "{a} refused as in use"),
                    Err(Error::AddressOutOfRange(a)) => assert!(excluded(ip), "{a} refused as out of range"),
                    Err(e) => panic!("{ip}: unexpected error {e}"),
                }
                (got, None)
            }
            _ => {
                if !held.is_empty() {
                    let i = usize::from(*bytes.next().unwrap_or(&0)) % held.len();
                    let ip = held.swap_remove(i);
                    assert_eq!(pool.release(ip).ok(), Some(true), "{ip} was held");
                    seen.remove(&ip);
                }
                continue;
            }
        };
        match (got, expected) {
            (Ok(ip), expected) => {
                assert!(seen.insert(ip), "{ip} handed out twice");
                assert!(net.contains(&ip) && !excluded(ip), "{ip} is not a usable address of {net}");
                if op % 5 < 2 {
                    assert!(range.contains(&ip), "{ip} outside {range}");
                }
                if let Some(expected) = expected {
                    assert_eq!(Some(ip), expected, "not the lowest free address (operation {})", op % 5);
                }
                held.push(ip);
            }
            (Err(Error::NoAvailableIps), _) => {
                let within = if op % 5 == 2 { net } else { range };
                assert_eq!(lowest_free(&seen, within), None, "'none left' with addresses free in {within}");
            }
            (Err(_), _) if op % 5 == 3 => {}
            (Err(e), _) => panic!("unexpected error {e}"),
        }
        assert_eq!(pool.allocated(), held.len() as u128, "the pool's count and the model's");
    }
}

fn u128_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn ip_of(n: u128, v6: bool) -> IpAddr {
    if v6 { IpAddr::V6(n.into()) } else { IpAddr::V4(u32::try_from(n).unwrap_or(u32::MAX).into()) }
}

/// A sandbox's `/etc/hosts` and `resolv.conf`: fields separated by 0xFF
/// bytes — the host's resolv.conf, host name, domain, then search domains,
/// options and extra host names (their kind from their first byte). When
/// the configuration is accepted the files hold only the lines cnm writes.
pub fn sandbox_files(data: &[u8]) {
    let mut fields = data.split(|b| *b == 0xFF).map(|f| String::from_utf8_lossy(f).into_owned());
    let host = fields.next().unwrap_or_default();
    let mut cfg = cnm::SandboxConfig {
        hostname: fields.next().unwrap_or_default(),
        domainname: fields.next().unwrap_or_default(),
        ..Default::default()
    };
    for f in fields {
        let mut chars = f.chars();
        let kind = chars.next();
        let value: String = chars.collect();
        match kind {
            Some('s') => cfg.dns_search.push(value),
            Some('o') => cfg.dns_options.push(value),
            Some('h') => cfg.extra_hosts.push(cnm::ExtraHost { name: value, ip: IpAddr::from([10, 0, 0, 1]) }),
            Some('n') => cfg.dns.extend(value.parse::<IpAddr>().ok()),
            _ => {}
        }
    }
    if cfg.validate().is_ok() {
        check_files(&host, &cfg);
    }
}

/// The sandbox's files for `cfg`, on a host whose resolv.conf is `host`:
/// `/etc/hosts` has the standard lines and one per extra host, each with a
/// name and no control character; `resolv.conf` only nameserver, search,
/// options and comment lines, with one options line.
fn check_files(host: &str, cfg: &cnm::SandboxConfig) {
    let hosts = cnm::hosts_content(cfg, &[]);
    assert_eq!(hosts.lines().count(), 6 + cfg.extra_hosts.len(), "{hosts:?}");
    for line in hosts.lines() {
        assert!(line.split_whitespace().count() >= 2, "a hosts line without a name: {line:?}");
        assert!(!line.chars().any(|c| c.is_control() && c != '\t'), "a control character: {line:?}");
    }
    for (ipv6, embedded) in [(false, false), (true, true)] {
        let rc = cnm::resolv_conf_content(host, cfg, ipv6, embedded);
        for line in rc.lines() {
            let first = line.split_whitespace().next().unwrap_or_default();
            assert!(["nameserver", "search", "options", "#"].contains(&first), "a line cnm does not write: {line:?}");
        }
        assert_eq!(rc.lines().filter(|l| l.starts_with("options")).count(), 1, "{rc:?}");
    }
}
