//! Property tests of the API's inputs, beside the fuzzing: JSON bodies of
//! any shape made of the API's own keys, query filters and `until` values,
//! through the fuzz targets (`cnm_fuzz::api_body`, `api_query`): a value or
//! a clear error (a 400), never a panic; an accepted sandbox request never
//! carries a control character into the sandbox's files.

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
        cnm_fuzz::api_query(format!("{raw}\n{until}").as_bytes());
    }

    #[test]
    fn request_bodies_of_any_shape_are_values_or_errors(v in json()) {
        cnm_fuzz::api_body(&serde_json::to_vec(&v).expect("JSON"));
    }
}
