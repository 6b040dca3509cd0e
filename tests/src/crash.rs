//! The crash harness's shared parts: the controller a crash child runs
//! (bridge driver with the real firewall, default IPAM, a default network
//! made at start), and the scenario
//! that walks every kill point once (see `cnm::kill`).

use cnm::driverapi::{PortBinding, Protocol, TransportPort};
use cnm::{Controller, EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};

/// Runs `child` (a crash child) with `CNM_KILL_AT=point` until it stops
/// at that point, then kills it with SIGKILL. Panics if it finishes
/// without reaching the point, or neither in 30 s.
pub fn kill_at(mut child: std::process::Command, point: &str) {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let mut child = child
        .env("CNM_KILL_AT", point)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start the kill child");
    let out = child.stdout.take().expect("the child's output");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let Ok(line) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{point}: the child neither reached the point nor finished");
        };
        if line == format!("CNM-KILL-POINT {point}") {
            break;
        }
        assert_ne!(line, "CNM-SCENARIO-DONE", "{point}: the scenario never reaches this kill point");
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap the child");
}

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

/// The crash scenario of a cluster member: a controller with the overlay
/// driver and the cluster's global IPAM, on a real etcd, and a global
/// network's whole life (see `tests/tests/cluster_kill_points.rs`).
pub mod cluster {
    use cnm::{Controller, EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
    use std::net::Ipv4Addr;
    use std::path::Path;
    use std::sync::Arc;

    /// The scratch host's underlay address (the VXLAN devices' source).
    pub const ADVERTISE: Ipv4Addr = Ipv4Addr::new(192, 168, 234, 1);

    /// The global network's subnet: a /28 (13 addresses besides the gateway's).
    pub const SUBNET: &str = "10.231.88.0/28";

    /// A single host's underlay: a veth pair on scratch host `h`, one end
    /// holding `addr`/24 (the VXLAN devices' source), both up.
    pub async fn underlay(h: &crate::TestHost, addr: Ipv4Addr) {
        let spec = cnm::osl::VethSpec { name: "ul0", peer_name: "ul1", up: true, ..Default::default() };
        h.nl.link_add_veth(&spec).await.expect("the underlay veth");
        let ul0 = h.nl.link_get("ul0").await.expect("list links").expect("ul0");
        h.nl.addr_add(ul0.index, format!("{addr}/24").parse().expect("an address"))
            .await
            .expect("the underlay address");
        let ul1 = h.nl.link_get("ul1").await.expect("list links").expect("ul1");
        h.nl.link_set_up(ul1.index).await.expect("ul1 up");
    }

    /// A member controller on `config` (exec root `exec_root`) through
    /// `cluster`: bridge, null and overlay drivers (the overlay filtering
    /// VXLAN by peer in the host's firewall), the default IPAM keeping the
    /// global address space in the cluster.
    pub async fn controller(
        config: cnm::Config,
        exec_root: &Path,
        cluster: cnm_cluster::ClusterConfig,
    ) -> anyhow::Result<Controller> {
        let cluster = cnm_cluster::Cluster::connect(cluster).await?;
        let overlay = cnm_driver_overlay::OverlayConfig { netns_dir: exec_root.join("overlay"), ..Default::default() };
        let (for_ipam, for_driver) = (cluster.clone(), cluster.clone());
        let ctrl = Controller::builder(config)
            .cluster(cluster)
            .driver(cnm_driver_null::NullDriver::new())
            .ipam_on_host(cnm::ipamapi::DEFAULT_IPAM, move |host| {
                let local = Arc::new(cnm_ipams::DefaultIpam::default().with_host_networks(host));
                cnm_cluster::GlobalIpam::new(for_ipam, local)
            })
            .ipam(cnm::ipamapi::NULL_IPAM, cnm_ipams::NullIpam::new())
            .driver_on_host(|host| cnm_driver_bridge::BridgeDriver::new(host.clone()))
            .driver_on_host(move |host| cnm_driver_overlay::OverlayDriver::new(host.clone(), for_driver, overlay))
            .build()
            .await?;
        Ok(ctrl)
    }

    /// Every kill point of a global network's life: the controller's (its
    /// cluster steps too) and the overlay driver's.
    pub fn all_points() -> Vec<String> {
        cnm::kill::POINTS
            .iter()
            .chain(cnm::kill::CLUSTER_POINTS)
            .chain(cnm_driver_overlay::kill::POINTS)
            .map(|p| p.to_string())
            .collect()
    }

    /// An overlay network (published, its pool, addresses and VNI in the
    /// cluster); a sandbox joined to an endpoint of it (a claim, addresses, the peer
    /// and names published, the gateway bridge attached); a second
    /// endpoint created and deleted; the sandbox's endpoint left and
    /// deleted; the sandbox removed; the network removed (withdrawn).
    pub async fn scenario(ctrl: &Controller) -> cnm::Result<()> {
        let config = NetworkConfig::default().with_subnet(SUBNET.parse().expect("a subnet"));
        let ov = ctrl.new_network("overlay", "kov", config).await?;
        let sb = ctrl.new_sandbox("c1", SandboxConfig::default()).await?;
        let ep = ov.create_endpoint("c1", EndpointConfig::default()).await?;
        ep.join(&sb, JoinOptions::default()).await?;
        let spare = ov.create_endpoint("c2", EndpointConfig::default()).await?;
        spare.delete().await?;
        ep.leave_and_delete(&sb).await?;
        sb.delete().await?;
        ov.delete().await?;
        Ok(())
    }
}
