//! A child process for the cluster kill-point harness: runs the cluster
//! crash scenario (`cnm_tests::crash::cluster`) on a member controller
//! over the given directories and etcd; with `CNM_KILL_AT` set it stops
//! at that kill point (printing `CNM-KILL-POINT <name>`) and waits for its
//! SIGKILL; it prints `CNM-SCENARIO-DONE` if it got through.
//!
//! Usage: `cnm-cluster-kill-child DATA_DIR EXEC_ROOT HOST_NETNS ETCD CERTS_DIR PREFIX`.

use std::io::Write;
use std::path::Path;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 7,
        "usage: cnm-cluster-kill-child DATA_DIR EXEC_ROOT HOST_NETNS ETCD CERTS_DIR PREFIX"
    );
    let config = cnm::Config::new(&args[1]).exec_root(&args[2]).host_namespace(&args[3]);
    let member = cnm_tests::etcd::member(&args[4], Path::new(&args[5]), &args[6], cnm_tests::crash::cluster::ADVERTISE);
    let ctrl = cnm_tests::crash::cluster::controller(config, Path::new(&args[2]), member).await?;
    cnm_tests::crash::cluster::scenario(&ctrl).await?;
    println!("CNM-SCENARIO-DONE");
    std::io::stdout().flush()?;
    Ok(())
}
