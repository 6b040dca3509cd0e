//! The daemon under test: `cnmd` started as a child process inside a scratch
//! host namespace (cnm-tests' `TestHost`) with its own data and exec roots
//! and socket; helpers to run `cnmctl` and `docker` against it.

#![allow(dead_code)]

pub mod cluster;
pub mod plugins;
pub mod podman;

use cnm_tests::TestHost;
use cnmd::client::Client;
use cnmd::listen::ListenAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) daemon in its scratch host.
pub struct Daemon {
    /// The scratch host.
    pub host: TestHost,
    child: Option<Child>,
    /// The API socket.
    pub sock: PathBuf,
    starts: u32,
    /// Run cnmd in a mount namespace of its own (as systemd's `PrivateMounts=`).
    private_mounts: bool,
    /// More command-line arguments.
    extra_args: Vec<String>,
    /// Run cnmd inside the scratch host's network namespace (its TCP
    /// connections, to etcd say, leave from there), not only its netlink.
    in_host_net: bool,
}

impl Daemon {
    /// Starts a daemon in a new scratch host; `None` when the test must be skipped (not root).
    pub async fn start(test: &str) -> Option<Daemon> {
        let host = TestHost::new(test).await?;
        let sock = host.dir.path().join("cnmd.sock");
        std::fs::write(host.dir.path().join("cnmd.toml"), "").expect("write empty config");
        let mut d = Daemon {
            host,
            child: None,
            sock,
            starts: 0,
            private_mounts: false,
            extra_args: Vec::new(),
            in_host_net: false,
        };
        d.spawn();
        Some(d)
    }

    /// Starts a daemon with more command-line arguments; `None` when skipped.
    pub async fn start_with_args(test: &str, args: &[&str]) -> Option<Daemon> {
        let host = TestHost::new(test).await?;
        let sock = host.dir.path().join("cnmd.sock");
        std::fs::write(host.dir.path().join("cnmd.toml"), "").expect("write empty config");
        let extra_args = args.iter().map(|s| s.to_string()).collect();
        let mut d =
            Daemon { host, child: None, sock, starts: 0, private_mounts: false, extra_args, in_host_net: false };
        d.spawn();
        Some(d)
    }

    /// Starts a daemon in its own private mount namespace (its namespace
    /// mounts are invisible to the test and to cnmctl); `None` when skipped.
    pub async fn start_in_private_mounts(test: &str) -> Option<Daemon> {
        if !cnm_tests::real_root(test) || !cnm_tests::tools(test, &["unshare"], "util-linux") {
            return None;
        }
        let host = TestHost::new(test).await?;
        let sock = host.dir.path().join("cnmd.sock");
        std::fs::write(host.dir.path().join("cnmd.toml"), "").expect("write empty config");
        let mut d = Daemon {
            host,
            child: None,
            sock,
            starts: 0,
            private_mounts: true,
            extra_args: Vec::new(),
            in_host_net: false,
        };
        d.spawn();
        Some(d)
    }

    /// A daemon in a new scratch host, not started yet (`spawn` starts it),
    /// running inside the host's network namespace; `None` when skipped.
    pub async fn unstarted_in_host(test: &str, args: &[&str]) -> Option<Daemon> {
        let host = TestHost::new(test).await?;
        let sock = host.dir.path().join("cnmd.sock");
        std::fs::write(host.dir.path().join("cnmd.toml"), "").expect("write empty config");
        let extra_args = args.iter().map(|s| s.to_string()).collect();
        Some(Daemon { host, child: None, sock, starts: 0, private_mounts: false, extra_args, in_host_net: true })
    }

    /// The exec root (namespaces live under `netns/`).
    pub fn run_dir(&self) -> PathBuf {
        self.host.dir.path().join("run")
    }

    /// Starts the daemon process.
    fn launch(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        self.starts += 1;
        let dir = self.host.dir.path();
        let log = std::fs::File::create(dir.join(format!("cnmd-{}.log", self.starts))).expect("create log");
        let mut cmd = if self.in_host_net {
            // nsenter execs cnmd: the child's pid is cnmd's.
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", self.host.ns_path().display())).arg(env!("CARGO_BIN_EXE_cnmd"));
            c
        } else if self.private_mounts {
            // unshare execs cnmd: the child's pid is cnmd's.
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", env!("CARGO_BIN_EXE_cnmd")]);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_cnmd"))
        };
        let child = cmd
            .arg("--config")
            .arg(dir.join("cnmd.toml"))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("run"))
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .arg("--host-netns")
            .arg(self.host.ns_path())
            .arg("--host-resolv-conf")
            .arg(dir.join("resolv.conf"))
            .arg("--log-level")
            .arg("debug")
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cnmd");
        self.child = Some(child);
    }

    /// Starts the daemon and waits (at most 30 s) until it serves its API.
    pub fn spawn(&mut self) {
        self.launch();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.sock).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("cnmd exited at start with {status}; log:\n{}", self.log());
            }
            assert!(Instant::now() < end, "cnmd did not listen within 30 s; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the daemon expecting it to refuse to start: waits (at most
    /// 30 s) for its failing exit and returns its log.
    pub fn spawn_fails(&mut self) -> String {
        self.launch();
        let mut child = self.child.take().expect("started");
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait cnmd") {
                assert!(!status.success(), "cnmd exited successfully; log:\n{}", self.log());
                return self.log();
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!("cnmd did not exit within 30 s; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The current log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.host.dir.path().join(format!("cnmd-{}.log", self.starts))).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit (at most 30 s); returns whether it exited successfully.
    pub fn sigterm(&mut self) -> bool {
        let mut child = self.child.take().expect("daemon running");
        signal(&child, nix::sys::signal::Signal::SIGTERM);
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait cnmd") {
                return status.success();
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!("cnmd did not stop within 30 s of SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the daemon with SIGKILL.
    pub fn sigkill(&mut self) {
        let mut child = self.child.take().expect("daemon running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// An API client.
    pub fn client(&self) -> Client {
        Client::new(ListenAddr::Unix(self.sock.clone()))
    }

    /// Runs `cnmctl ARGS` against the daemon.
    pub fn cnmctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cnmctl"))
            .args(args)
            .env("CNM_HOST", format!("unix://{}", self.sock.display()))
            .output()
            .expect("run cnmctl")
    }

    /// Runs `cnmctl ARGS`, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cnmctl(args);
        assert!(out.status.success(), "cnmctl {args:?} failed: {}\n{}", stderr(&out), self.log());
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Runs `docker ARGS` with DOCKER_HOST pointing at the daemon (and a scratch client config).
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.host.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .output()
            .expect("run docker (is the docker CLI installed?)")
    }

    /// The IPv4 address of `sandbox` on `network`.
    pub fn ip(&self, sandbox: &str, network: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["sandbox", "inspect", sandbox])).expect("json");
        v[0]["Networks"][network]["IPAddress"].as_str().expect("sandbox has an address").to_string()
    }

    /// Whether `ip` answers an ICMP echo sent from inside sandbox `from`
    /// (its namespace found through `cnmctl sandbox inspect`; no `ping`
    /// program needed).
    pub async fn pings(&self, from: &str, ip: &str) -> bool {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["sandbox", "inspect", from])).expect("json");
        let key = v[0]["Key"].as_str().expect("sandbox has a key");
        let ns = cnm::osl::Namespace::open(key).expect("open the sandbox's namespace");
        let ip: std::net::IpAddr = ip.parse().expect("an IP address");
        cnm::osl::probe::ping(&ns, ip, Duration::from_secs(2)).await.is_ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, sig).expect("signal cnmd");
}

pub use cnm_tests::tls::make_certs;

/// The standard error of an output, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// The standard output of an output, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
