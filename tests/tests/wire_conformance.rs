//! The driver and IPAM message types against the traffic Docker Engine 20.10
//! really sent and accepted (`shared/conformance/traces`): every request
//! decodes into its typed form and encodes back to the same JSON; every
//! answer the plugin gave (which Docker accepted) does too.

use cnm_driverapi as d;
use cnm_ipamapi as i;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every recorded call: (file, seq, path, request, response).
fn calls() -> Vec<(String, u64, String, Value, Value)> {
    let mut out = Vec::new();
    for f in cnm_tests::traces::files() {
        let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        for v in cnm_tests::traces::read_jsonl(&f) {
            out.push((
                name.clone(),
                v["seq"].as_u64().unwrap(),
                v["path"].as_str().unwrap().to_string(),
                v["request"].clone(),
                v["response"].clone(),
            ));
        }
    }
    out
}

/// Decodes `v` as `T` and encodes it back; the JSON must be the same.
fn round_trip<T: DeserializeOwned + Serialize>(what: &str, v: &Value) {
    let typed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{what}: decode {v}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, v, "{what}: re-encoded differently");
}

#[test]
fn every_recorded_message_round_trips() {
    let mut checked = 0;
    for (file, seq, path, req, resp) in calls() {
        let what = format!("{file}#{seq} {path}");
        match path.as_str() {
            "/NetworkDriver.GetCapabilities" => round_trip::<d::Capability>(&what, &resp),
            "/NetworkDriver.CreateNetwork" => round_trip::<d::CreateNetworkRequest>(&what, &req),
            "/NetworkDriver.DeleteNetwork" => round_trip::<d::DeleteNetworkRequest>(&what, &req),
            "/NetworkDriver.CreateEndpoint" => {
                round_trip::<d::CreateEndpointRequest>(&what, &req);
                round_trip::<d::CreateEndpointResponse>(&what, &resp);
            }
            "/NetworkDriver.DeleteEndpoint" | "/NetworkDriver.Leave" | "/NetworkDriver.RevokeExternalConnectivity" => {
                round_trip::<d::DeleteEndpointRequest>(&what, &req)
            }
            "/NetworkDriver.EndpointOperInfo" => {
                round_trip::<d::EndpointOperInfoRequest>(&what, &req);
                round_trip::<d::EndpointOperInfoResponse>(&what, &resp);
            }
            "/NetworkDriver.Join" => {
                round_trip::<d::JoinRequest>(&what, &req);
                round_trip::<d::JoinResponse>(&what, &resp);
            }
            "/NetworkDriver.ProgramExternalConnectivity" => {
                round_trip::<d::ProgramExternalConnectivityRequest>(&what, &req)
            }
            "/IpamDriver.GetCapabilities" => {
                let typed: i::IpamCapability = serde_json::from_value(resp.clone()).unwrap();
                assert_eq!(typed.requires_mac_address, resp["RequiresMACAddress"].as_bool().unwrap_or(false), "{what}");
            }
            "/IpamDriver.GetDefaultAddressSpaces" => round_trip::<i::AddressSpaces>(&what, &resp),
            "/IpamDriver.RequestPool" => {
                round_trip::<i::RequestPoolRequest>(&what, &req);
                round_trip::<i::RequestPoolResponse>(&what, &resp);
            }
            "/IpamDriver.ReleasePool" => round_trip::<i::ReleasePoolRequest>(&what, &req),
            "/IpamDriver.RequestAddress" => {
                round_trip::<i::RequestAddressRequest>(&what, &req);
                round_trip::<i::RequestAddressResponse>(&what, &resp);
            }
            "/IpamDriver.ReleaseAddress" => round_trip::<i::ReleaseAddressRequest>(&what, &req),
            "/Plugin.Activate" => continue,
            other => panic!("{what}: no typed form for {other}"),
        }
        checked += 1;
    }
    assert!(checked >= 368, "only {checked} messages checked; the visible trace set has 368");
}

/// The encodings a reimplementation easily gets wrong, on concrete values.
#[test]
fn typed_values_have_docker_encodings() {
    // Interface: all three keys, empty strings when absent, CIDR addresses.
    let iface = d::EndpointInterface { address: Some("10.0.0.2/24".parse().unwrap()), ..Default::default() };
    assert_eq!(serde_json::to_string(&iface).unwrap(), r#"{"Address":"10.0.0.2/24","AddressIPv6":"","MacAddress":""}"#);
    // IPv6Data is [] not null; internal only when true; labels never on the wire.
    let req = d::CreateNetworkRequest {
        network_id: "n".into(),
        options: d::NetworkOptions { labels: [("a".into(), "b".into())].into(), ..Default::default() },
        ipv4_data: vec![],
        ipv6_data: vec![],
    };
    assert_eq!(
        serde_json::to_string(&req).unwrap(),
        r#"{"NetworkID":"n","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{}},"IPv4Data":[],"IPv6Data":[]}"#
    );
    // The endpoint option MAC is base64 of the raw bytes (b1: 02:42:0a:e7:14:96).
    let opts = d::EndpointOptions { mac_address: Some("02:42:0a:e7:14:96".parse().unwrap()), ..Default::default() };
    assert_eq!(serde_json::to_value(&opts).unwrap()["com.docker.network.endpoint.macaddress"], "AkIK5xSW");
    // Join gateways are plain addresses; RequestAddress options null for endpoints.
    let join: d::JoinResponse = serde_json::from_str(r#"{"Gateway":"10.0.0.1"}"#).unwrap();
    assert_eq!(join.gateway, Some("10.0.0.1".parse().unwrap()));
    let ra = i::RequestAddressRequest { pool_id: "p".into(), address: None, options: None };
    assert_eq!(serde_json::to_string(&ra).unwrap(), r#"{"PoolID":"p","Address":"","Options":null}"#);
    // A gateway request is recognised by its option.
    let gw: i::RequestAddressRequest = serde_json::from_str(
        r#"{"PoolID":"p","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}"#,
    )
    .unwrap();
    assert!(gw.is_gateway() && !ra.is_gateway());
    // V6 pool requests say so; an empty Pool means "choose".
    let rp: i::RequestPoolRequest =
        serde_json::from_str(r#"{"AddressSpace":"x","Pool":"","SubPool":"","Options":{},"V6":true}"#).unwrap();
    assert!(rp.v6 && rp.pool.is_none() && rp.sub_pool.is_none());
    // Bad values are refused, not guessed.
    assert!(serde_json::from_str::<d::EndpointInterface>(r#"{"Address":"not-an-ip"}"#).is_err());
    assert!(serde_json::from_str::<d::Capability>(r#"{"Scope":"planet"}"#).is_err());
    assert!(serde_json::from_str::<d::StaticRoute>(r#"{"Destination":"0.0.0.0/0","RouteType":7}"#).is_err());
}
