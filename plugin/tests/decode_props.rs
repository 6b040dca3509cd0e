//! Property tests of what the client decodes from plugins: any JSON (with
//! the protocol's field names in any case, nested anywhere) and any bytes
//! decode to a value or an error — never a panic — for every answer type;
//! and a plugin spec file with any content is a spec or an error.

use cnm_driver_remote::decode;
use cnm_driverapi as d;
use cnm_ipamapi as i;
use proptest::prelude::*;
use serde_json::Value;

const FIELDS: &[&str] = &[
    "InterfaceName",
    "SrcName",
    "DstPrefix",
    "Gateway",
    "GatewayIPv6",
    "StaticRoutes",
    "Destination",
    "RouteType",
    "NextHop",
    "DisableGatewayService",
    "Interface",
    "MacAddress",
    "Address",
    "AddressIPv6",
    "Scope",
    "ConnectivityScope",
    "Value",
    "PoolID",
    "Pool",
    "Data",
    "Implements",
    "RequiresMACAddress",
    "LocalDefaultAddressSpace",
    "GlobalDefaultAddressSpace",
    "Err",
    "Error",
    "Options",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(FIELDS).prop_flat_map(|f| any::<bool>().prop_map(move |up| if up { f.to_ascii_uppercase() } else { f.to_ascii_lowercase() })),
        3 => proptest::sample::select(FIELDS).prop_map(str::to_string),
        1 => "[a-zA-Z]{1,6}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-zA-Z0-9:./ _-]{0,24}".prop_map(Value::String),
        Just(Value::String("10.0.0.1/24".into())),
        Just(Value::String("02:42:ac:11:00:02".into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Decodes `v` as every answer type; only the absence of a panic is checked.
fn decode_all(v: &Value) {
    let _ = decode::from_value::<d::JoinResponse>(v.clone());
    let _ = decode::from_value::<d::CreateEndpointResponse>(v.clone());
    let _ = decode::from_value::<d::Capability>(v.clone());
    let _ = decode::from_value::<d::EndpointOperInfoResponse>(v.clone());
    let _ = decode::from_value::<d::AllocateNetworkResponse>(v.clone());
    let _ = decode::from_value::<i::RequestPoolResponse>(v.clone());
    let _ = decode::from_value::<i::RequestAddressResponse>(v.clone());
    let _ = decode::from_value::<i::AddressSpaces>(v.clone());
    let _ = decode::from_value::<i::IpamCapability>(v.clone());
    let _ = decode::from_value::<cnm_driver_remote::Manifest>(v.clone());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_json_answer_decodes_or_errs(v in json()) {
        decode_all(&v);
    }

    #[test]
    fn any_bytes_decode_or_err(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode::from_slice::<d::JoinResponse>(&bytes);
        let _ = decode::from_slice::<i::RequestPoolResponse>(&bytes);
    }

    #[test]
    fn any_spec_file_is_a_spec_or_an_error(text in "[ -~\\n\\t]{0,80}", json_spec in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let file = if json_spec { "p.json" } else { "p.spec" };
        std::fs::write(dir.path().join(file), &text).unwrap();
        let discovery = cnm_driver_remote::Discovery::in_dir(dir.path());
        if let Ok(Some(spec)) = discovery.lookup("p") {
            // A spec that was accepted names a unix socket or a host:port.
            prop_assert!(!spec.address.to_string().is_empty());
        }
    }
}
