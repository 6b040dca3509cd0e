//! A child process for the crash tests: it runs a controller whose bridge
//! driver stops forever in the middle of a join (after the veth pair exists,
//! before the controller has placed and addressed it), prints `JOINING
//! <address>` and waits to be killed with SIGKILL.
//!
//! Usage: `cnm-crash-child DATA_DIR EXEC_ROOT HOST_NETNS`.

use async_trait::async_trait;
use cnm::{Config, Controller, EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_driver_bridge::BridgeDriver;
use cnm_driverapi::*;
use std::io::Write;

/// The real bridge driver, stopping forever after the real join's work.
struct StallingBridge(BridgeDriver);

#[async_trait]
impl Driver for StallingBridge {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn capability(&self) -> Capability {
        self.0.capability()
    }
    async fn create_network(&self, req: CreateNetworkRequest) -> Result<()> {
        self.0.create_network(req).await
    }
    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<()> {
        self.0.delete_network(req).await
    }
    async fn create_endpoint(&self, req: CreateEndpointRequest) -> Result<CreateEndpointResponse> {
        self.0.create_endpoint(req).await
    }
    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<()> {
        self.0.delete_endpoint(req).await
    }
    async fn join(&self, req: JoinRequest) -> Result<JoinResponse> {
        let _ = self.0.join(req).await?;
        println!("JOINING");
        let _ = std::io::stdout().flush();
        std::future::pending().await
    }
    async fn leave(&self, req: LeaveRequest) -> Result<()> {
        self.0.leave(req).await
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 4, "usage: cnm-crash-child DATA_DIR EXEC_ROOT HOST_NETNS");
    let config = Config::new(&args[1]).exec_root(&args[2]).host_namespace(&args[3]);
    let ctrl =
        Controller::builder(config).driver(|host| StallingBridge(BridgeDriver::new(host.clone()))).build().await?;
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
