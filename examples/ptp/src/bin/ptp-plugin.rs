//! The ptp driver as a remote plugin (Docker's protocol) on a unix socket:
//! `ptp-plugin /run/docker/plugins/ptp.sock [HOST-NETNS-PATH]`.

use std::path::PathBuf;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let socket = PathBuf::from(args.next().ok_or("usage: ptp-plugin SOCKET [HOST-NETNS]")?);
    let ctx = cnm_driver_sdk::Context { host_namespace: args.next().map(PathBuf::from) };
    let plugin = cnm_example_ptp::plugin(ctx).await?;
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)?;
    plugin.plugin_server().serve(listener).await?;
    Ok(())
}
