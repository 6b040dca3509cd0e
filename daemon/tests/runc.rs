//! Containers started by a real runtime (Debian's `runc`, with
//! `busybox-static` as the image): the runtime owns the network namespace,
//! and `cnmctl oci-hook` in the bundle's `createRuntime` and `poststop`
//! hooks attaches the container to the networks of its annotations and
//! detaches it. Needs real root.

mod common;

use common::Daemon;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TEST: &str = "runc_containers_get_networks_through_the_hook";
const BUSYBOX: &str = "/bin/busybox";

/// A bundle in `dir/NAME`: busybox as the root file system, `sleep` as the
/// process (with CAP_NET_RAW, for ping), the hook in `createRuntime` and
/// `poststop`, and the networks in its annotations.
fn bundle(d: &Daemon, dir: &Path, name: &str, networks: &str, poststop: bool) -> PathBuf {
    let b = dir.join(name);
    let bin = b.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
    for applet in ["sh", "sleep", "ping", "ip", "nslookup"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let out = Command::new("runc").arg("spec").arg("--bundle").arg(&b).output().unwrap();
    assert!(out.status.success(), "runc spec: {}", String::from_utf8_lossy(&out.stderr));
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["sleep", "3600"]);
    for set in ["bounding", "effective", "permitted", "ambient"] {
        spec["process"]["capabilities"][set].as_array_mut().unwrap().push("CAP_NET_RAW".into());
    }
    spec["hostname"] = name.into();
    let hook = serde_json::json!([{
        "path": env!("CARGO_BIN_EXE_cnmctl"),
        "args": ["cnmctl", "-H", format!("unix://{}", d.sock.display()), "oci-hook"],
    }]);
    spec["hooks"] = if poststop {
        serde_json::json!({ "createRuntime": hook, "poststop": hook })
    } else {
        serde_json::json!({ "createRuntime": hook })
    };
    spec["annotations"] = serde_json::json!({ "cnm.networks": networks });
    std::fs::write(b.join("config.json"), serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    b
}

/// Runs `runc --root ROOT ARGS`; its stdout, or what it said.
fn runc(root: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("runc {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Starts container `name` detached (its stdio on /dev/null, so nothing waits on it).
fn run_detached(root: &Path, bundle: &Path, name: &str) {
    let status = Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["run", "-d", "--bundle"])
        .arg(bundle)
        .arg(name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "runc run {name} failed (the hook refused?)");
}

/// Kills container `name` and waits (bounded: 10 s) until runc reports it stopped.
fn kill(root: &Path, name: &str) {
    runc(root, &["kill", name, "KILL"]).unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let state = runc(root, &["state", name]).unwrap_or_default();
        let status: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
        if status["status"] == "stopped" {
            return;
        }
        assert!(std::time::Instant::now() < end, "{name} did not stop within 10 s: {state}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn ping(root: &Path, from: &str, to: &str) -> Result<String, String> {
    runc(root, &["exec", from, "ping", "-c", "1", "-W", "3", to])
}

fn sandboxes(d: &Daemon) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["sandbox", "ls", "--format", "json"])).unwrap();
    v.as_array().unwrap().iter().map(|s| s["Name"].as_str().unwrap().to_string()).collect()
}

/// Two runc containers attached by the hook ping each other and a cnm
/// sandbox; a daemon restart keeps a running one connected and removes one
/// whose namespace went while it was down; `runc delete` (the poststop
/// hook), a `network disconnect` before it, and one after it leave nothing
/// behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runc_containers_get_networks_through_the_hook() {
    if !cnm_tests::real_root(TEST)
        || !cnm_tests::tools(TEST, &["runc"], "runc")
        || !(Path::new(BUSYBOX).exists() || cnm_tests::tools(TEST, &["busybox"], "busybox-static"))
    {
        return;
    }
    let Some(mut d) = Daemon::start(TEST).await else { return };
    let dir = d.host.dir.path().join("runc");
    let root = dir.join("state");
    std::fs::create_dir_all(&root).unwrap();
    d.ok(&["network", "create", "--subnet", "10.231.20.0/24", "rn"]);
    d.ok(&["sandbox", "create", "s"]);
    d.ok(&["network", "connect", "rn", "s"]);
    let s_ip = d.ip("s", "rn");

    for c in ["c1", "c2", "c3"] {
        let b = bundle(&d, &dir, c, "rn", true);
        run_detached(&root, &b, c);
    }
    // c4 has no poststop hook: it is disconnected by hand after `runc delete`.
    let b4 = bundle(&d, &dir, "c4", "rn", false);
    run_detached(&root, &b4, "c4");
    ping(&root, "c4", &s_ip).expect("c4 pings the sandbox");
    let (c1, c2, c3) = (d.ip("c1", "rn"), d.ip("c2", "rn"), d.ip("c3", "rn"));
    ping(&root, "c1", &c2).expect("c1 pings c2");
    ping(&root, "c2", &c1).expect("c2 pings c1");
    ping(&root, "c2", &s_ip).expect("a runc container pings a cnm sandbox");
    assert!(d.pings("s", &c3).await, "the sandbox pings a runc container");
    let eth0 = runc(&root, &["exec", "c1", "ip", "-o", "-4", "addr", "show", "eth0"]).unwrap();
    assert!(eth0.contains(&format!("inet {c1}/24")), "{eth0}");
    let found = runc(&root, &["exec", "c1", "nslookup", "c2", "127.0.0.11"]).expect("nslookup c2");
    assert!(found.contains(&c2), "the embedded resolver answers in a runtime's namespace:\n{found}");

    // Down while c3 exits: the next start removes c3's sandbox and endpoint.
    assert!(d.sigterm());
    kill(&root, "c3");
    let _ = runc(&root, &["delete", "c3"]); // its poststop hook finds no daemon: a warning.
    d.spawn();
    assert!(!sandboxes(&d).contains(&"c3".to_string()), "c3's sandbox is gone: {:?}", sandboxes(&d));
    ping(&root, "c1", &c2).expect("running containers keep their networks across a restart");

    // runc delete: the poststop hook removes the sandbox.
    kill(&root, "c1");
    runc(&root, &["delete", "c1"]).unwrap();
    assert!(!sandboxes(&d).contains(&"c1".to_string()), "{:?}", sandboxes(&d));
    // network disconnect first, then runc delete.
    d.ok(&["network", "disconnect", "rn", "c2"]);
    kill(&root, "c2");
    runc(&root, &["delete", "c2"]).unwrap();
    // runc delete, then network disconnect and sandbox rm.
    kill(&root, "c4");
    runc(&root, &["delete", "c4"]).unwrap();
    d.ok(&["network", "disconnect", "rn", "c4"]);
    d.ok(&["sandbox", "rm", "c4"]);
    assert_eq!(sandboxes(&d), vec!["s".to_string()]);

    let inspect: serde_json::Value = serde_json::from_str(&d.ok(&["network", "inspect", "rn"])).unwrap();
    assert_eq!(inspect[0]["Containers"].as_object().unwrap().len(), 1, "only s is left on rn");
    d.ok(&["sandbox", "rm", "s"]);
    d.ok(&["network", "rm", "rn"]);
    // The default network's bridge (cnm0) stays.
    let links = cnm_tests::settled_links_in(&d.host.ns, &["cnm0", "lo"]).await;
    assert_eq!(links, ["cnm0", "lo"], "no other bridge or veth left");
}
