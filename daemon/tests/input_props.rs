//! Property tests of the API's inputs: query filters, `until` values and
//! request bodies of any shape are answered with a value or a clear error
//! (a 400), never a panic; an accepted sandbox request never carries a
//! control character into the sandbox's files.

use cnmd::api::filters::{Filters, parse_until};
use cnmd::wire::network::{NetworkConnectRequest, NetworkCreateRequest};
use cnmd::wire::sandbox::SandboxCreateRequest;
use proptest::prelude::*;
use serde_json::Value;

const KEYS: &[&str] = &[
    "Name",
    "Driver",
    "Internal",
    "Attachable",
    "EnableIPv6",
    "IPAM",
    "Config",
    "Subnet",
    "IPRange",
    "Gateway",
    "AuxiliaryAddresses",
    "Options",
    "Labels",
    "ConfigOnly",
    "ConfigFrom",
    "Network",
    "Container",
    "EndpointConfig",
    "IPAMConfig",
    "IPv4Address",
    "IPv6Address",
    "LinkLocalIPs",
    "Aliases",
    "MacAddress",
    "Hostname",
    "Domainname",
    "Dns",
    "DnsSearch",
    "DnsOptions",
    "ExtraHosts",
    "ExposedPorts",
    "PortBindings",
    "HostIp",
    "HostPort",
    "80/tcp",
    "53/udp",
    "HostNamespace",
    "Netns",
    "GwPriority",
    "DriverOpts",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[ -~\\n\\r\\x00]{0,20}".prop_map(Value::String),
        proptest::sample::select(&["10.1.0.0/16", "10.1.2.3", "fd00::/64", "::1", "8080", "0", "a:b", "tcp", ""][..])
            .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(proptest::sample::select(KEYS).prop_map(str::to_string), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn filters_and_until_never_panic(raw in "[ -~]{0,60}", until in "[0-9hms.:TZ+-]{0,30}") {
        let _ = Filters::parse(Some(&raw), &["name", "id", "label", "driver", "type", "scope"]);
        let _ = parse_until(&until, 1_700_000_000);
    }

    #[test]
    fn request_bodies_of_any_shape_are_values_or_errors(v in json()) {
        if let Ok(req) = serde_json::from_value::<NetworkCreateRequest>(v.clone()) {
            let _ = cnmd::api::network_config::network_config(&req);
        }
        if let Ok(req) = serde_json::from_value::<NetworkConnectRequest>(v.clone()) {
            let _ = cnmd::api::network_config::endpoint_config(req.endpoint_config.as_ref());
        }
        if let Ok(req) = serde_json::from_value::<SandboxCreateRequest>(v)
            && let Ok(cfg) = cnmd::api::sandbox_config::sandbox_config(&req)
            && cfg.validate().is_ok()
        {
            let values = [cfg.hostname.as_str(), cfg.domainname.as_str()]
                .into_iter()
                .chain(cfg.dns_search.iter().map(String::as_str))
                .chain(cfg.dns_options.iter().map(String::as_str))
                .chain(cfg.extra_hosts.iter().map(|h| h.name.as_str()));
            for v in values {
                prop_assert!(!v.chars().any(char::is_control), "{:?} accepted", v);
            }
        }
    }
}
