//! A private Docker Engine for tests (Debian's `docker.io`): `dockerd` with
//! its own data root, exec root, socket and pidfile in a scratch directory,
//! inside a scratch network namespace and a mount namespace of its own;
//! killed, with every process under its directory, when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's static busybox (`busybox-static`), the image's only program.
pub const BUSYBOX: &str = "/bin/busybox";

/// Whether test `test` can run: real root (dockerd does not run in our
/// user namespace), dockerd, the docker CLI and busybox-static; under CI all are required.
pub fn available(test: &str) -> bool {
    crate::real_root(test)
        && crate::tools(test, &["dockerd", "docker"], "docker.io")
        && crate::tools(test, &["unshare", "nsenter"], "util-linux")
        && (Path::new(BUSYBOX).exists() || crate::tools(test, &["busybox"], "busybox-static"))
}

/// A private dockerd in a scratch network namespace; killed (with every
/// process under its scratch directory) when dropped.
pub struct Engine {
    /// The scratch directory.
    pub dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Engine {
    /// The engine's API socket.
    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// Runs the docker CLI against the engine; its output, or what it said.
    pub fn docker(&self, args: &[&str]) -> Result<String, String> {
        let host = format!("unix://{}", self.sock().display());
        let out = Command::new("docker").arg("-H").arg(&host).args(args).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// Runs the docker CLI, panicking (with the daemon's log) on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        self.docker(args).unwrap_or_else(|e| panic!("{e}\n--- dockerd log (tail) ---\n{}", self.log_tail()))
    }

    /// The last lines of dockerd's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Starts dockerd in network namespace `netns` and waits (bounded) for
    /// its API. With `iptables`, it programs iptables there (its chains, a
    /// `FORWARD` policy of DROP) and has a default bridge, as on a real host;
    /// without, neither.
    pub fn start(dir: tempfile::TempDir, netns: &Path, iptables: bool) -> Engine {
        // unshare and nsenter exec: the child's pid is dockerd's.
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "nsenter"]).arg(format!("--net={}", netns.display()));
        Engine::launch(dir, cmd, iptables, "{}")
    }

    /// Starts dockerd on Docker host `host` (its network and mount
    /// namespaces: its own `/run/docker`, plugin directory included), with
    /// `live-restore` (containers keep running while dockerd restarts), and
    /// waits (bounded) for its API; no iptables, no default bridge.
    pub fn start_on(dir: tempfile::TempDir, host: &DockerHost) -> Engine {
        Engine::launch(dir, host.command_prefix(), false, r#"{"live-restore": true}"#)
    }

    fn launch(dir: tempfile::TempDir, cmd: Command, iptables: bool, config: &str) -> Engine {
        std::fs::write(dir.path().join("daemon.json"), config).unwrap();
        let child = Engine::spawn_dockerd(dir.path(), cmd, iptables);
        let engine = Engine { dir, child };
        engine.wait_for_api();
        engine
    }

    fn spawn_dockerd(d: &Path, mut cmd: Command, iptables: bool) -> std::process::Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(d.join("dockerd.log")).unwrap();
        cmd.arg("dockerd")
            .arg(format!("--config-file={}", d.join("daemon.json").display()))
            .arg(format!("--data-root={}", d.join("data").display()))
            .arg(format!("--exec-root={}", d.join("exec").display()))
            .arg(format!("--pidfile={}", d.join("dockerd.pid").display()))
            .arg(format!("--host=unix://{}", d.join("docker.sock").display()))
            .args(if iptables {
                &["--iptables=true", "--bip=172.29.0.1/24", "--storage-driver=vfs"][..]
            } else {
                &["--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-masq=false", "--storage-driver=vfs"][..]
            })
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd")
    }

    fn wait_for_api(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.docker(&["version"]).is_err() {
            assert!(Instant::now() < deadline, "dockerd did not come up in 60 s:\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops dockerd only (SIGTERM; with live-restore its containers keep
    /// running) and starts it again on `host` with the same directories
    /// and configuration; waits (bounded) for its API.
    pub fn restart_on(&mut self, host: &DockerHost) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "dockerd did not stop in 30 s:\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child = Engine::spawn_dockerd(self.dir.path(), host.command_prefix(), false);
        self.wait_for_api();
    }

    /// Processes whose command line mentions the scratch directory
    /// (dockerd, containerd, shims) or whose root is in it (containers and
    /// managed plugins, which outlive dockerd with live-restore).
    pub fn processes(&self) -> Vec<i32> {
        processes_of(self.dir.path())
    }

    /// [`Engine::stop`] on a blocking thread; the engine back.
    pub async fn stop_async(mut self) -> Engine {
        tokio::task::spawn_blocking(move || {
            self.stop();
            self
        })
        .await
        .expect("stop dockerd")
    }

    /// Stops dockerd with SIGTERM and waits (bounded) for it and its children.
    pub fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.child.try_wait().ok().flatten().is_some() && self.processes().is_empty() {
                return;
            }
            if Instant::now() > deadline {
                self.kill_all();
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill_all(&mut self) {
        let _ = self.child.kill();
        for p in self.processes() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() || !self.processes().is_empty() {
            self.kill_all();
        }
    }
}

/// A Docker host of its own: a network namespace and a mount namespace
/// whose `/run/docker` is a private tmpfs (Docker's plugin directory and
/// its containers' namespace files are this host's alone, as on a machine
/// of its own), held by a sleeping process so that dockerd and plugins can
/// stop and start in it; the holder is killed when dropped.
pub struct DockerHost {
    holder: std::process::Child,
}

impl DockerHost {
    /// A Docker host in network namespace `netns`.
    pub fn new(netns: &Path) -> DockerHost {
        DockerHost::with_setup(netns, "")
    }

    /// A host in network namespace `netns` whose mount namespace also gets
    /// what shell commands `setup` do (run as root inside it, after
    /// `/run/docker` is made private).
    pub fn with_setup(netns: &Path, setup: &str) -> DockerHost {
        let script = format!(
            "mkdir -p /run/docker && mount -t tmpfs -o mode=0711 cnm-test-docker /run/docker && mkdir /run/docker/plugins && {} echo ready && exec sleep 100000",
            if setup.is_empty() { String::new() } else { format!("{setup} &&") }
        );
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "nsenter"])
            .arg(format!("--net={}", netns.display()))
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the Docker host's holder");
        let mut holder = holder;
        let mut line = String::new();
        let out = holder.stdout.take().expect("the holder's output");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("read the holder's output");
        assert_eq!(line.trim(), "ready", "the Docker host's mounts failed");
        DockerHost { holder }
    }

    /// The holder's pid: its namespaces are the host's.
    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// `nsenter` into the host's namespaces; the program and its arguments follow.
    pub fn command_prefix(&self) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--target={}", self.pid())).args(["--mount", "--net"]);
        c
    }

    /// A path of the host's mount namespace, seen from outside it.
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.pid()))
    }
}

impl Drop for DockerHost {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Processes whose command line mentions `dir` or whose root is in it
/// (a runtime's daemons and shims, its containers).
pub fn processes_of(dir: &Path) -> Vec<i32> {
    let needle = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(&needle))
                || std::fs::read_link(format!("/proc/{pid}/root"))
                    .is_ok_and(|r| r.to_string_lossy().starts_with(&needle))
        })
        .collect()
}

/// Kills (SIGKILL) every process of [`processes_of`] `dir`.
pub fn kill_processes_of(dir: &Path) {
    for p in processes_of(dir) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Whether process `pid` runs Docker's userland proxy (`docker-proxy`,
/// which Docker starts by its full path).
pub fn is_docker_proxy(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let argv0 = c.split(|b| *b == 0).next().unwrap_or_default();
        argv0.rsplit(|b| *b == b'/').next() == Some(&b"docker-proxy"[..])
    })
}

/// Imports the image `busybox:local`: Debian's static busybox and the applets the tests use.
pub fn import_busybox(engine: &Engine) {
    let root = engine.dir.path().join("image");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::write(root.join("www/index.html"), "published through cnm\n").unwrap();
    for applet in ["sh", "sleep", "ping", "ip", "cat", "httpd"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -c . | docker -H unix://{} import - busybox:local >/dev/null",
            root.display(),
            engine.sock().display()
        ))
        .status()
        .unwrap();
    assert!(status.success(), "docker import failed");
}

/// A container's address on a network.
pub fn address(engine: &Engine, container: &str, network: &str) -> String {
    engine.ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        container,
    ])
}

/// Fetches `/index.html` of the image's httpd at `addr` from inside `ns`,
/// polling (bounded: 10 s) while the server comes up.
pub async fn page_answers(ns: &cnm::osl::Namespace, addr: std::net::SocketAddr) -> Result<(), String> {
    let get = b"GET /index.html HTTP/1.0\r\n\r\n".to_vec();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = cnm::osl::probe::tcp_exchange(ns, addr, get.clone(), Duration::from_secs(2)).await;
        match answer {
            Ok(body) if String::from_utf8_lossy(&body).contains("published through cnm") => return Ok(()),
            other if Instant::now() > deadline => return Err(format!("{addr}: {other:?}")),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
