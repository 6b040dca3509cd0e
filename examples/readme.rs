//! The README example: a controller, a bridge network `network1`, an
//! endpoint `Endpoint1` joined to the sandbox of `container1`, and a ping
//! from inside the sandbox to the network's gateway. Everything it creates
//! is removed at the end, also when a step fails.
//!
//! The controller's "host" is a network namespace the example creates for
//! itself, so that running it never changes your machine's own settings
//! (IP forwarding, the firewall); the bridge, veth pair, sandbox namespace
//! and firewall table are real kernel objects inside it.
//!
//! Run it as root or as an ordinary user: `cargo run -p cnm-examples
//! --example readme`. Not root, it first moves into a user namespace of its
//! own (rootless: the same kernel objects, owned by that namespace).

use anyhow::Context;
use cnm::ipamapi::DEFAULT_IPAM;
use cnm::osl::Netlink;
use cnm::{Config, Controller, EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_driver_bridge::BridgeDriver;
use cnm_ipams::DefaultIpam;
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("CNM_LOG"))
        .with_writer(std::io::stderr)
        .init();
    // Rootless: the kernel lets only a single-threaded process change its
    // user namespace, so this comes before the runtime starts.
    let rootless = !cnm::rootless::is_root();
    if rootless {
        let userns = cnm::rootless::enter().context("enter a user namespace (not root)")?;
        println!("Not root: running in a user namespace of its own (uid {} outside)", userns.outer_uid);
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(example(rootless))
}

async fn example(rootless: bool) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("cnm-readme-{}", std::process::id()));
    let host = dir.join("host.netns");
    let (_, host_nl) = Netlink::create_namespace(&host, cnm::osl::DEFAULT_DEADLINE)
        .await
        .context("create the example's host namespace")?;
    host_nl.link_set_up(1).await.context("bring up the host's loopback")?;
    let config = Config::new(dir.join("data"))
        .exec_root(dir.join("run"))
        .host_namespace(&host)
        .rootless(rootless)
        .embedded_dns(true);
    // The bridge driver works on the host's namespace; the default IPAM
    // avoids the host's networks when it picks a subnet.
    let started = Controller::builder(config)
        .driver_on_host(|host| BridgeDriver::new(host.clone()))
        .ipam_on_host(DEFAULT_IPAM, |host| DefaultIpam::default().with_host_networks(host))
        .build()
        .await;
    let result = match started {
        Ok(controller) => {
            let result = run(&controller).await;
            let cleanup = cleanup(&controller).await;
            drop(controller);
            result.and(cleanup)
        }
        Err(e) => Err(anyhow::Error::new(e).context("start the controller")),
    };
    drop(host_nl);
    // Removing the host namespace takes its firewall table and sysctls with it.
    cnm::osl::Namespace::remove(&host)?;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(controller: &Controller) -> anyhow::Result<()> {
    let network = controller.new_network("bridge", "network1", NetworkConfig::default()).await?;
    let endpoint = network.create_endpoint("Endpoint1", EndpointConfig::default()).await?;
    let sandbox = controller
        .new_sandbox(
            "container1",
            SandboxConfig { hostname: "test".into(), domainname: "docker.io".into(), ..Default::default() },
        )
        .await?;
    endpoint.join(&sandbox, JoinOptions::default()).await?;

    let mac = endpoint.info().await?.mac.context("the endpoint has no MAC address")?;
    println!(
        "Joined endpoint {} ({}) to sandbox {} ({})",
        endpoint.name(),
        mac,
        sandbox.container_id(),
        sandbox.key().display()
    );

    let gateway = network.info().await?.ipv4.first().and_then(|p| p.gateway).context("network1 has no gateway")?;
    let rtt = cnm::osl::probe::ping(&sandbox.namespace()?, gateway.addr(), Duration::from_secs(5))
        .await
        .with_context(|| format!("ping {} from inside the sandbox", gateway.addr()))?;
    println!("Pinged the gateway {} from inside the sandbox: {:.3} ms", gateway.addr(), rtt.as_secs_f64() * 1e3);

    // A second container on the network: the first finds it by name through
    // the embedded resolver at 127.0.0.11.
    let endpoint2 = network.create_endpoint("Endpoint2", EndpointConfig::default()).await?;
    let sandbox2 = controller.new_sandbox("container2", SandboxConfig::default()).await?;
    endpoint2.join(&sandbox2, JoinOptions::default()).await?;
    let found = cnm::dns::lookup_ipv4(&sandbox.namespace()?, "container2", Duration::from_secs(5))
        .await
        .context("resolve container2 from inside container1")?;
    let found: Vec<String> = found.iter().map(|ip| ip.to_string()).collect();
    println!("Resolved container2 to {} from inside container1 (127.0.0.11)", found.join(", "));
    Ok(())
}

/// Leaves, then deletes the endpoint, the sandbox and the network, whatever exists of them.
async fn cleanup(controller: &Controller) -> anyhow::Result<()> {
    for sandbox in controller.sandboxes().await {
        for ep in sandbox.endpoints().await {
            ep.leave(&sandbox).await?;
            ep.delete().await?;
        }
        sandbox.delete().await?;
    }
    if let Ok(network) = controller.network_by_name("network1").await {
        for ep in network.endpoints().await {
            ep.delete().await?;
        }
        network.delete().await?;
    }
    Ok(())
}
