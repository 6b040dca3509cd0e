//! The crash harness's shared parts: the controller a crash child runs
//! (bridge driver with the real firewall, default IPAM, a default network
//! made at start), and the scenario
//! that walks every kill point once (see `cnm::kill`).

use cnm::driverapi::{PortBinding, Protocol, TransportPort};
use cnm::{Controller, EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};

/// The published host port of the scenario.
pub const HOST_PORT: u16 = 18080;

/// The subnet of the default network the crash controllers create at start.
pub const DEFAULT_SUBNET: &str = "10.231.92.0/26";

/// A controller on `config` as the crash child and the restarted one use,
/// with a default network (`kdefault`, made at start if missing).
pub async fn controller(config: cnm::Config) -> cnm::Result<Controller> {
    let default = NetworkConfig::default().with_subnet(DEFAULT_SUBNET.parse().expect("a subnet"));
    let config = config.default_network(cnm::DefaultNetwork::new("kdefault", "bridge", default));
    crate::with_defaults(Controller::builder(config))
        .driver_on_host(|host| cnm_driver_bridge::BridgeDriver::new(host.clone()))
        .build()
        .await
}

/// Every kill point the controller with the bridge driver reaches: the
/// controller's and the driver's (each crate lists its own), the steps of
/// a network's creation once more under the `default.` scope (the default
/// network made at start).
pub fn all_points() -> Vec<String> {
    let named = || cnm::kill::POINTS.iter().chain(cnm_driver_bridge::kill::POINTS);
    let default = named()
        .filter(|p| p.starts_with("network.create.") || p.starts_with("bridge.create."))
        .map(|p| format!("default.{p}"));
    default.chain(named().map(|p| p.to_string())).collect()
}

/// Two networks, a sandbox publishing a port joined to both (connected to
/// one in a step, as the API does; the gateway role moving between them),
/// one disconnected (left and deleted in a step), an endpoint that never
/// joined deleted, the sandbox removed, the networks removed: every kill
/// point of [`all_points`] is reached.
pub async fn scenario(ctrl: &Controller) -> cnm::Result<()> {
    let subnet = |s: &str| NetworkConfig::default().with_subnet(s.parse().expect("a subnet"));
    let a = ctrl.new_network("bridge", "ka", subnet("10.231.90.0/26")).await?;
    let b = ctrl.new_network("bridge", "kb", subnet("10.231.91.0/26")).await?;
    let binding = PortBinding {
        proto: Protocol::Tcp,
        ip: None,
        port: 80,
        host_ip: None,
        host_port: HOST_PORT,
        host_port_end: HOST_PORT,
    };
    let config = SandboxConfig {
        exposed_ports: vec![TransportPort { proto: Protocol::Tcp, port: 80 }],
        port_bindings: vec![binding],
        ..Default::default()
    };
    let sb = ctrl.new_sandbox("k1", config).await?;
    let ea = a.connect("k1", EndpointConfig::default(), &sb, JoinOptions::default()).await?;
    let eb = b.create_endpoint("k1", EndpointConfig::default()).await?;
    eb.join(&sb, JoinOptions::default()).await?;
    ea.leave_and_delete(&sb).await?;
    let spare = a.create_endpoint("k2", EndpointConfig::default()).await?;
    spare.delete().await?;
    sb.delete().await?;
    a.delete().await?;
    b.delete().await?;
    Ok(())
}
