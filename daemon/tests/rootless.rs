//! `cnmd` run by an ordinary user (`nobody`): without `--rootless` it says
//! in one line what to do; with it, it runs in a user namespace of its own
//! and serves its API: a sandbox joins the default network and reaches its
//! gateway by ping.

use cnmd::client::Client;
use cnmd::listen::ListenAddr;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TEST: &str = "cnmd_run_by_an_ordinary_user";

/// `cnmd` and `cnmctl` copied where `nobody` may run them, and a directory of its own.
fn setup(dir: &Path) {
    for bin in [env!("CARGO_BIN_EXE_cnmd"), env!("CARGO_BIN_EXE_cnmctl")] {
        let to = dir.join(Path::new(bin).file_name().unwrap());
        std::fs::copy(bin, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    nix::unistd::chown(&home, Some(nix::unistd::Uid::from_raw(65534)), Some(nix::unistd::Gid::from_raw(65534)))
        .unwrap();
}

/// The daemon under test, killed if the test fails before stopping it.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn as_nobody(program: &Path) -> Command {
    let mut c = Command::new(program);
    // (std drops root's supplementary groups itself when it changes the user.)
    c.uid(65534).gid(65534).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cnmd_run_by_an_ordinary_user() {
    if !cnm_tests::real_root(TEST) || !cnm_tests::tools(TEST, &["busybox"], "busybox-static") {
        return;
    }
    let dir = tempfile::Builder::new().prefix("cnm-rootless-").tempdir().unwrap();
    setup(dir.path());
    let home = dir.path().join("home");
    let cnmd = dir.path().join("cnmd");

    // Not root, no --rootless: one line that says what to do.
    let out = as_nobody(&cnmd).env("HOME", &home).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("cnmd needs root") && err.contains("--rootless"), "{err}");

    // --rootless: its roots under the user's home and runtime directory.
    let run = home.join("run");
    let mut child = Running(
        as_nobody(&cnmd)
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &run)
            .arg("--rootless")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    std::fs::create_dir_all(&run).unwrap();
    nix::unistd::chown(&run, Some(nix::unistd::Uid::from_raw(65534)), Some(nix::unistd::Gid::from_raw(65534))).unwrap();
    let sock = run.join("cnm/cnmd.sock");
    let client = Client::new(ListenAddr::Unix(sock.clone()));
    let start = Instant::now();
    let networks: Vec<Value> = loop {
        if let Ok(n) = client.get("/networks").await {
            break n;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            let mut log = String::new();
            std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut log).unwrap();
            panic!("cnmd --rootless exited ({status}): {log}");
        }
        assert!(start.elapsed() < Duration::from_secs(20), "cnmd --rootless never served {}", sock.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(networks.iter().any(|n| n["Name"] == "bridge"), "{networks:?}");
    assert!(home.join(".local/share/cnm").is_dir(), "the data root is the user's");

    // A sandbox on the default network pings its gateway (cnmctl, as root,
    // reaches the namespace through cnmd's own mount namespace).
    let cnmctl = |args: &[&str]| {
        let out = Command::new(dir.path().join("cnmctl"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "cnmctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    cnmctl(&["sandbox", "create", "a"]);
    cnmctl(&["network", "connect", "bridge", "a"]);
    let bridge: Value = client.get("/networks/bridge").await.unwrap();
    let gateway = bridge["IPAM"]["Config"][0]["Gateway"].as_str().expect("the default network's gateway").to_string();
    cnmctl(&["sandbox", "exec", "a", "--", "busybox", "ping", "-c", "1", "-W", "2", &gateway]);
    cnmctl(&["sandbox", "rm", "a"]);

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.0.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "cnmd --rootless stopped with {status}");
}
