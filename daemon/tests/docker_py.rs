//! docker-py (the Docker SDK for Python, pinned: 7.2.0) against cnmd: the
//! network calls its users make (`IPAMConfig`/`IPAMPool` with and without
//! range and gateway, options, labels, internal, IPv6, list with filters,
//! get, connect with addresses and aliases, disconnect, prune, remove) and
//! `ping()`, `version()`, `info()`, from `tests/docker_py/networks.py`;
//! packets flow between the sandboxes docker-py connected, and stop after
//! it disconnects them.
//!
//! docker-py is looked up in `$CNM_DOCKER_PY` (default
//! `/var/cache/cnm/docker-py`, where `.ci/run` installs it with `python3 -m
//! pip install --target … docker==7.2.0`), then in python3's own path.

mod common;

use common::Daemon;
use std::path::PathBuf;
use std::process::Command;

/// The docker-py version the test is written against.
const DOCKER_PY: &str = "7.2.0";

/// Where `.ci/run` installs docker-py.
fn docker_py_dir() -> PathBuf {
    std::env::var_os("CNM_DOCKER_PY").map_or_else(|| PathBuf::from("/var/cache/cnm/docker-py"), PathBuf::from)
}

fn python(args: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.args(args).env("PYTHONPATH", docker_py_dir()).env("PYTHONDONTWRITEBYTECODE", "1");
    c
}

/// Whether docker-py of the pinned version imports; skips loudly otherwise.
fn docker_py_available(test: &str) -> bool {
    if !cnm_tests::tools(test, &["python3"], "python3") {
        return false;
    }
    let probe = python(&["-c", "import docker; print(docker.__version__)"]).output();
    match probe {
        Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == DOCKER_PY => true,
        _ => cnm_tests::skip(
            test,
            &format!(
                "needs docker-py {DOCKER_PY}: python3 -m pip install --target {} docker=={DOCKER_PY}",
                docker_py_dir().display()
            ),
        ),
    }
}

/// Runs one stage of the script; its JSON answer.
fn stage(d: &Daemon, name: &str) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/docker_py/networks.py");
    let out = python(&[script, &d.sock.display().to_string(), name]).output().expect("run python3");
    assert!(
        out.status.success(),
        "docker-py stage {name} failed:\n{}\n{}\ncnmd log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

#[tokio::test]
async fn docker_py_drives_the_network_api() {
    const TEST: &str = "docker_py_drives_the_network_api";
    if !docker_py_available(TEST) {
        return;
    }
    let Some(d) = Daemon::start(TEST).await else { return };
    d.ok(&["sandbox", "create", "web"]);
    d.ok(&["sandbox", "create", "cli"]);

    let up = stage(&d, "up");
    let (web, cli) = (up["web"].as_str().unwrap(), up["cli"].as_str().unwrap());
    assert!(d.pings("cli", web).await, "cli cannot reach web at the address docker-py asked for");
    assert!(d.pings("web", cli).await, "web cannot reach cli");
    assert!(d.pings("cli", "fd00:233:3::10").await, "cli's static IPv6 address does not answer");
    // The alias docker-py gave web answers in cnm's resolver, for cli.
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["sandbox", "inspect", "cli"])).unwrap();
    let cli_ns = cnm::osl::Namespace::open(v[0]["Key"].as_str().expect("a key")).expect("cli's namespace");
    let www = cnm_tests::dns::lookup_a(&cli_ns, "www").await.expect("the alias resolves");
    assert_eq!(www, [web.parse::<std::net::Ipv4Addr>().unwrap()], "www is web's alias");

    let down = stage(&d, "down");
    assert!(!d.pings("cli", web).await, "web still answers after docker-py disconnected it");
    assert_eq!(down["left"], serde_json::json!(["bridge", "host", "none"]), "only the pre-defined networks are left");
    d.ok(&["sandbox", "rm", "web", "cli"]);
    assert_eq!(d.host.settled_links(&["cnm0", "lo"]).await, ["cnm0", "lo"]);
}
