//! `cnm-cni`: the CNI plugin (spec 1.1) over cnmd; see `cnmd::cni`. The
//! runtime runs it with `CNI_COMMAND` and the rest in the environment and
//! the network config on standard input; it prints the result (or the
//! spec's error) on standard output and exits 0 (or 1).

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
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let mut input = Vec::new();
    let outcome = (|| {
        let call = cnmd::cni::Call::from_env(&env)?;
        std::io::stdin().read_to_end(&mut input).map_err(|e| cnmd::cni::CniError {
            code: 5,
            msg: "cannot read the network configuration".into(),
            details: e.to_string(),
        })?;
        // VERSION may come with a config or without one.
        let conf = if input.iter().all(u8::is_ascii_whitespace) && call.command == "VERSION" {
            cnmd::cni::NetConf::default()
        } else {
            cnmd::cni::NetConf::parse(&input)?
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
            cnmd::cni::CniError { code: 5, msg: "cannot start the runtime".into(), details: e.to_string() }
        })?;
        let out = rt.block_on(cnmd::cni::run(&call, &conf))?;
        Ok::<_, cnmd::cni::CniError>((conf.version().to_string(), out))
    })();
    match outcome {
        Ok((_, Some(out))) => println!("{out}"),
        Ok((_, None)) => {}
        Err(e) => {
            let version = serde_json::from_slice::<serde_json::Value>(&input)
                .ok()
                .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
                .unwrap_or_else(|| "1.1.0".into());
            println!("{}", e.to_json(&version));
            std::process::exit(1);
        }
    }
}
