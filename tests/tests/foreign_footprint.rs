//! A constant footprint beside a foreign firewall: on a scratch host whose
//! iptables `FORWARD` policy is DROP (dockerd, ufw and firewalld leave it
//! so), cnm's first network adds one rule to that chain by running the
//! host's iptables tool; the next 19 networks run no tool at all and add no
//! rule, and their containers still reach each other and the outside
//! through the DROP policy (cnm's mark, accepted by its one rule); deleting
//! networks runs no tool until the last one, which takes the rule out.
//!
//! Every iptables tool the firewall may run is a wrapper on `PATH` that
//! logs its arguments, then runs the real tool: the log counts processes.
//! (One test in this binary: it sets `PATH` before anything else reads it.)

use cnm::osl::firewall::iptables::COMMENT;
use cnm::{EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_tests::{OUTSIDE, TestHost, assert_ping};
use std::path::{Path, PathBuf};

const TEST: &str = "networks_add_no_rule_and_run_no_tool_beside_a_drop_policy";
const TOOLS: [&str; 4] = ["iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy"];

/// Runs the real `iptables-nft ARGS` in `ns` (not the wrapper); its output.
async fn iptables(ns: &cnm::osl::Namespace, real: &Path, args: &[&str]) -> String {
    cnm_tests::output_in(ns, real, args).await
}

/// Where `cmd` is installed.
fn real(cmd: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].iter().map(|d| Path::new(d).join(cmd)).find(|p| p.is_file())
}

/// Wrappers of every tool in `dir`, logging to `log`.
fn wrappers(dir: &Path, log: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for tool in TOOLS {
        let Some(real) = real(tool) else { continue };
        let path = dir.join(tool);
        let script = format!("#!/bin/sh\necho \"{tool} $*\" >> {}\nexec {} \"$@\"\n", log.display(), real.display());
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn runs(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_add_no_rule_and_run_no_tool_beside_a_drop_policy() {
    if !cnm_tests::real_root(TEST) || !cnm_tests::tools(TEST, &["iptables-nft"], "iptables") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    wrappers(dir.path(), &log);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(dir.path().to_path_buf()).chain(std::env::split_paths(&path)));
    // SAFETY: the only test of this binary; nothing else reads the environment now.
    unsafe { std::env::set_var("PATH", path.unwrap()) };

    let Some(h) = TestHost::new(TEST).await else { return };
    let ipt = real("iptables-nft").unwrap();
    h.ns.sysctl_set("net/bridge/bridge-nf-call-iptables", "1").await.expect("br_netfilter on");
    iptables(&h.ns, &ipt, &["-P", "FORWARD", "DROP"]).await;
    let before = iptables(&h.ns, &ipt, &["-S", "FORWARD"]).await;
    let _out = h.outside().await;
    let ctrl = h.controller().await;

    let mut nets = vec![ctrl.new_network("bridge", "n0", NetworkConfig::default()).await.unwrap()];
    let first = runs(&log);
    assert!(!first.is_empty(), "the first network added the rule with the host's tool");
    let with_one = iptables(&h.ns, &ipt, &["-S", "FORWARD"]).await;
    assert_eq!(with_one.lines().count(), before.lines().count() + 1, "one rule: {with_one}");
    assert_eq!(with_one.matches(COMMENT).count(), 1, "{with_one}");

    for i in 1..20 {
        nets.push(ctrl.new_network("bridge", &format!("n{i}"), NetworkConfig::default()).await.unwrap());
    }
    assert_eq!(runs(&log), first, "19 more networks ran no iptables tool");
    assert_eq!(iptables(&h.ns, &ipt, &["-S", "FORWARD"]).await, with_one, "and added no rule");

    // Through the DROP policy, on the last network: container to container, and out.
    let last = nets.last().unwrap();
    let mut sandboxes = Vec::new();
    for name in ["a", "b"] {
        let ep = last.create_endpoint(name, EndpointConfig::default()).await.unwrap();
        let sb = ctrl.new_sandbox(name, SandboxConfig::default()).await.unwrap();
        ep.join(&sb, JoinOptions::default()).await.unwrap();
        sandboxes.push((sb, ep.info().await.unwrap().ipv4.unwrap().addr()));
    }
    let a_ns = sandboxes[0].0.namespace().unwrap();
    assert_ping(&a_ns, sandboxes[1].1).await;
    assert_ping(&a_ns, OUTSIDE.parse().unwrap()).await;
    // Control: without cnm's rule the foreign policy drops the same traffic.
    let rule =
        ["FORWARD", "-m", "mark", "--mark", "0x1000/0x1000", "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"];
    iptables(&h.ns, &ipt, &[&["-D"][..], &rule].concat()).await;
    cnm_tests::assert_no_ping(&a_ns, OUTSIDE.parse().unwrap()).await;
    iptables(&h.ns, &ipt, &[&["-I"][..], &rule].concat()).await;
    assert_eq!(iptables(&h.ns, &ipt, &["-S", "FORWARD"]).await, with_one, "the rule is back as cnm wrote it");
    assert_ping(&a_ns, OUTSIDE.parse().unwrap()).await;
    let before_removal = runs(&log);
    for (sb, _) in sandboxes {
        sb.delete().await.unwrap();
    }
    for ep in last.endpoints().await {
        ep.delete().await.unwrap();
    }

    while nets.len() > 1 {
        nets.pop().unwrap().delete().await.unwrap();
    }
    assert_eq!(runs(&log), before_removal, "deleting 19 of 20 networks ran no iptables tool");
    nets.pop().unwrap().delete().await.unwrap();
    assert!(runs(&log).len() > before_removal.len(), "the last network took the rule out");
    assert_eq!(iptables(&h.ns, &ipt, &["-S", "FORWARD"]).await, before, "the foreign chain is as it was");
    cnm_tests::remove_all(&ctrl).await;
}
