//! A child process for the kill-point harness: runs the crash scenario
//! (`cnm_tests::crash`) on a controller over the given directories; with
//! `CNM_KILL_AT` set it stops at that kill point (printing
//! `CNM-KILL-POINT <name>`) and waits for its SIGKILL; it prints
//! `CNM-SCENARIO-DONE` if it got through.
//!
//! Usage: `cnm-kill-child DATA_DIR EXEC_ROOT HOST_NETNS`.

use std::io::Write;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 4, "usage: cnm-kill-child DATA_DIR EXEC_ROOT HOST_NETNS");
    let config = cnm::Config::new(&args[1]).exec_root(&args[2]).host_namespace(&args[3]);
    let ctrl = cnm_tests::crash::controller(config).await?;
    cnm_tests::crash::scenario(&ctrl).await?;
    println!("CNM-SCENARIO-DONE");
    std::io::stdout().flush()?;
    Ok(())
}
