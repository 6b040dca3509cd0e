//! A child process for the crash tests: it runs a controller whose bridge
//! driver stops forever in the middle of a join (after the veth pair exists,
//! before the controller has placed and addressed it), prints `JOINING` and
//! waits to be killed with SIGKILL.
//!
//! Usage: `cnm-crash-child DATA_DIR EXEC_ROOT HOST_NETNS`.

use cnm::{Config, Controller, EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_driver_bridge::BridgeDriver;
use cnm_tests::FaultyDriver;
use std::io::Write;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 4, "usage: cnm-crash-child DATA_DIR EXEC_ROOT HOST_NETNS");
    let config = Config::new(&args[1]).exec_root(&args[2]).host_namespace(&args[3]);
    let ctrl = cnm_tests::with_defaults(Controller::builder(config))
        .driver_on_host(|host| FaultyDriver::new(BridgeDriver::new(host.clone()), true))
        .build()
        .await?;
    let net =
        ctrl.new_network("bridge", "crashnet", NetworkConfig::default().with_subnet("10.77.0.0/24".parse()?)).await?;
    let ep = net
        .create_endpoint("victim", EndpointConfig { ipv4: Some("10.77.0.50".parse()?), ..Default::default() })
        .await?;
    let sb = ctrl.new_sandbox("crash-container", SandboxConfig::default()).await?;
    println!("READY");
    std::io::stdout().flush()?;
    ep.join(&sb, JoinOptions::default()).await?;
    anyhow::bail!("the stalling join returned")
}
