//! `cnmctl oci-hook`: gives a container that a runtime (runc, crun) starts
//! the networks named in its annotations, as libnetwork's `libnetwork-setkey`
//! hook does for Docker. The runtime owns the namespace; cnm only moves
//! interfaces in and out of it.
//!
//! Put it in the bundle's `config.json` twice:
//!
//! ```json
//! "hooks": {
//!   "createRuntime": [{"path": "/usr/bin/cnmctl", "args": ["cnmctl", "oci-hook"]}],
//!   "poststop":      [{"path": "/usr/bin/cnmctl", "args": ["cnmctl", "oci-hook"]}]
//! },
//! "annotations": {"cnm.networks": "front,back", "cnm.hostname": "web"}
//! ```
//!
//! The runtime writes the container's state (the OCI runtime spec's
//! `State`) on standard input. While the container is being created (it has
//! a pid), the hook creates a sandbox named after the container on
//! `/proc/<pid>/ns/net` and connects it to each network; a failure undoes
//! what was done and fails the hook, so the runtime does not start the
//! container. Once it has stopped, the hook removes the sandbox (its
//! endpoints leave and go).

use super::CliError;
use crate::client::{Client, ClientError, encode};
use crate::wire::network::NetworkConnectRequest;
use crate::wire::sandbox::{SandboxCreateRequest, SandboxCreateResponse};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;

/// The annotation naming the networks, comma-separated.
pub const NETWORKS_ANNOTATION: &str = "cnm.networks";
/// The annotation giving the container's host name.
pub const HOSTNAME_ANNOTATION: &str = "cnm.hostname";

/// `cnmctl oci-hook` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct HookArgs {
    /// A network to connect the container to, besides the annotation's (repeatable)
    #[arg(long)]
    pub network: Vec<String>,
}

/// The runtime's state of the container (OCI runtime spec, "State").
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    /// The container's id.
    pub id: String,
    /// `creating`, `created`, `running` or `stopped`.
    pub status: String,
    /// The container's process (0 or absent once stopped).
    #[serde(default)]
    pub pid: i32,
    /// The bundle's annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl OciState {
    /// The networks to connect to: the annotation's, then `extra`.
    pub fn networks(&self, extra: &[String]) -> Vec<String> {
        let mut v: Vec<String> = self
            .annotations
            .get(NETWORKS_ANNOTATION)
            .map(|s| s.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        for n in extra {
            if !v.contains(n) {
                v.push(n.clone());
            }
        }
        v
    }
}

/// Runs the hook with the state read from standard input.
pub async fn run(client: &Client, args: HookArgs) -> Result<(), CliError> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| CliError::Usage(format!("cannot read the state: {e}")))?;
    let state: OciState = serde_json::from_str(&input)
        .map_err(|e| CliError::Usage(format!("standard input is not an OCI container state: {e}")))?;
    if state.status == "stopped" || state.pid <= 0 {
        return detach(client, &state).await;
    }
    attach(client, &state, &state.networks(&args.network)).await
}

async fn attach(client: &Client, state: &OciState, networks: &[String]) -> Result<(), CliError> {
    let req = SandboxCreateRequest {
        name: state.id.clone(),
        hostname: state.annotations.get(HOSTNAME_ANNOTATION).cloned().unwrap_or_default(),
        netns: format!("/proc/{}/ns/net", state.pid),
        ..Default::default()
    };
    let _: SandboxCreateResponse = client.post("/sandboxes", &req).await?;
    for net in networks {
        let req = NetworkConnectRequest { container: state.id.clone(), endpoint_config: None };
        if let Err(e) = client.post_unit(&format!("/networks/{}/connect", encode(net)), &req).await {
            // Undo: the container must not start half connected.
            let _ = client.delete(&format!("/sandboxes/{}", encode(&state.id))).await;
            return Err(e.into());
        }
    }
    Ok(())
}

async fn detach(client: &Client, state: &OciState) -> Result<(), CliError> {
    match client.delete(&format!("/sandboxes/{}", encode(&state.id))).await {
        Err(ClientError::Api { status, .. }) if status == hyper::StatusCode::NOT_FOUND => Ok(()),
        other => other.map_err(Into::into),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_runtime_state() {
        let s: OciState = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":4242,"bundle":"/b",
                "annotations":{"cnm.networks":"front, back,"}}"#,
        )
        .unwrap();
        assert_eq!((s.id.as_str(), s.pid), ("c1", 4242));
        assert_eq!(s.networks(&["back".into(), "extra".into()]), ["front", "back", "extra"]);
        let stopped: OciState = serde_json::from_str(r#"{"ociVersion":"1.0.2","id":"c1","status":"stopped"}"#).unwrap();
        assert_eq!(stopped.pid, 0);
    }
}
