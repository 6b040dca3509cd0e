//! `cnm-cni`: the CNI plugin (spec 1.1) over cnmd; see `cnmd::cni`. The
//! runtime runs it with `CNI_COMMAND` and the rest in the environment and
//! the network config on standard input; it prints the result (or the
//! spec's error) on standard output and exits 0 (or 1).

use cnmd::cni::{Call, CniError, NetConf, SUPPORTED_VERSIONS};
use std::io::Read;

fn main() {
    // Logs go to standard error: standard output is the runtime's.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CNM_CNI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    // The config first: its version is the version of any error.
    let mut input = Vec::new();
    let read = std::io::stdin().read_to_end(&mut input);
    let version = serde_json::from_slice::<serde_json::Value>(&input)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.1.0".into());
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let outcome = (|| {
        read.map_err(|e| CniError {
            code: 5,
            msg: "cannot read the network configuration".into(),
            details: e.to_string(),
        })?;
        let call = Call::from_env(&env)?;
        // VERSION answers whatever the config says (or without one).
        if call.command == "VERSION" {
            return Ok(Some(serde_json::json!({ "cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS })));
        }
        let conf = NetConf::parse(&input)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| CniError {
            code: 5,
            msg: "cannot start the runtime".into(),
            details: e.to_string(),
        })?;
        rt.block_on(cnmd::cni::run(&call, &conf))
    })();
    match outcome {
        Ok(Some(out)) => println!("{out}"),
        Ok(None) => {}
        Err(e) => {
            println!("{}", e.to_json(&version));
            std::process::exit(1);
        }
    }
}
