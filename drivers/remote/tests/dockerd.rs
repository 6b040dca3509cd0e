//! Docker Engine as a real client of our plugin server (privileged; needs
//! Debian's `docker.io`). A private `dockerd` (own data root, exec root,
//! socket and pidfile in a scratch directory; no iptables, no default
//! bridge) runs inside a scratch network namespace and its own mount
//! namespace; our bridge driver, serving that namespace, is a plugin at
//! `/run/docker/plugins/<unique>.sock`, and our default IPAM another.
//! Containers made from Debian's busybox-static ping each other by packets.
//! Everything is removed afterwards: containers, networks, dockerd and its
//! containerd, sockets, the namespace, the scratch directory.
//! A port published with `docker run -p` is served through our bridge
//! driver's DNAT and reached from the host, through localhost and through
//! the network's gateway address.

use cnm_driver_remote::PluginServer;
use cnm_osl::{Namespace, Netlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUSYBOX: &str = "/bin/busybox";

/// Whether this test can run: real root (dockerd does not run in our
/// user namespace), dockerd, the docker CLI and busybox-static; under CI all are required.
fn available() -> bool {
    const TEST: &str = "docker_engine_uses_our_plugins";
    cnm_tests::real_root(TEST)
        && cnm_tests::tools(TEST, &["dockerd", "docker"], "docker.io")
        && cnm_tests::tools(TEST, &["unshare", "nsenter"], "util-linux")
        && (Path::new(BUSYBOX).exists() || cnm_tests::tools(TEST, &["busybox"], "busybox-static"))
}

/// A private dockerd in a scratch network namespace; killed (with every
/// process under its scratch directory) when dropped.
struct Engine {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Engine {
    fn sock(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    fn docker(&self, args: &[&str]) -> Result<String, String> {
        let host = format!("unix://{}", self.sock().display());
        let out = Command::new("docker").arg("-H").arg(&host).args(args).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        self.docker(args).unwrap_or_else(|e| panic!("{e}\n--- dockerd log (tail) ---\n{}", self.log_tail()))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn start(dir: tempfile::TempDir, netns: &Path) -> Engine {
        let d = dir.path();
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        // unshare and nsenter exec: the child's pid is dockerd's.
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "nsenter"])
            .arg(format!("--net={}", netns.display()))
            .arg("dockerd")
            .arg(format!("--config-file={}", d.join("daemon.json").display()))
            .arg(format!("--data-root={}", d.join("data").display()))
            .arg(format!("--exec-root={}", d.join("exec").display()))
            .arg(format!("--pidfile={}", d.join("dockerd.pid").display()))
            .arg(format!("--host=unix://{}", d.join("docker.sock").display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-masq=false", "--storage-driver=vfs"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let engine = Engine { dir, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while engine.docker(&["version"]).is_err() {
            assert!(Instant::now() < deadline, "dockerd did not come up in 60 s:\n{}", engine.log_tail());
            std::thread::sleep(Duration::from_millis(200));
        }
        engine
    }

    /// Processes whose command line mentions the scratch directory (dockerd, containerd, shims).
    fn processes(&self) -> Vec<i32> {
        let needle = self.dir.path().to_string_lossy().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(&needle))
            })
            .collect()
    }

    /// Stops dockerd with SIGTERM and waits (bounded) for it and its children.
    fn stop(&mut self) {
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

/// The image `busybox:local`: Debian's static busybox and the applets the test uses.
fn import_busybox(engine: &Engine) {
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

fn address(engine: &Engine, container: &str, network: &str) -> String {
    engine.ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        container,
    ])
}

fn ping(engine: &Engine, from: &str, to: &str) -> Result<String, String> {
    engine.docker(&["exec", from, "ping", "-c", "1", "-W", "3", to])
}

/// A port published with `-p 8080:80` on `network` (our bridge driver does
/// the publishing, through ProgramExternalConnectivity) answers from the
/// host, through localhost and through the gateway; it is gone with the container.
async fn check_published_port(engine: &Engine, ns: &Namespace, network: &str, gateway: &str) {
    engine.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        network,
        "-p",
        "8080:80",
        "busybox:local",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    let get = b"GET /index.html HTTP/1.0\r\n\r\n".to_vec();
    for host in ["127.0.0.1", gateway] {
        let addr: std::net::SocketAddr = format!("{host}:8080").parse().unwrap();
        // httpd needs a moment to listen: poll, bounded.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = cnm_osl::probe::tcp_exchange(ns, addr, get.clone(), Duration::from_secs(2)).await;
            match answer {
                Ok(body) if String::from_utf8_lossy(&body).contains("published through cnm") => break,
                other if Instant::now() > deadline => panic!("published port {addr} did not answer: {other:?}"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    engine.ok(&["rm", "-f", "web"]);
    let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let gone = cnm_osl::probe::tcp_exchange(ns, addr, get, Duration::from_secs(2)).await;
    assert!(gone.is_err(), "the port is unpublished with the container: {gone:?}");
}

/// A plugin server task; aborting it closes every connection, as a dying plugin would.
struct Served {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    fn start(path: PathBuf, server: PluginServer) -> Served {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let task = tokio::spawn(async move {
            let _ = server.serve(listener).await;
        });
        Served { path, task }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The scratch namespace's directory: the namespace is unmounted before the directory goes, even after a panic.
struct NsDir(tempfile::TempDir);

impl Drop for NsDir {
    fn drop(&mut self) {
        let _ = Namespace::remove(self.0.path().join("host.netns"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_engine_uses_our_plugins() {
    if !available() {
        return;
    }
    let dir = tempfile::Builder::new().prefix("cnm-dockerd-").tempdir().unwrap();
    let ns_dir = NsDir(tempfile::Builder::new().prefix("cnm-dockerd-ns-").tempdir().unwrap());
    let ns_path = ns_dir.0.path().join("host.netns");
    let (ns, nl) = Netlink::create_namespace(&ns_path, cnm_osl::DEFAULT_DEADLINE).await.unwrap();
    let lo = nl.link_get("lo").await.unwrap().unwrap();
    nl.link_set_up(lo.index).await.unwrap();

    let unique = format!("cnm-test-{}", std::process::id());
    let (net_plugin, ipam_plugin) = (format!("{unique}-net"), format!("{unique}-ipam"));
    let plugins = Path::new(cnm_driver_remote::DEFAULT_SOCKET_DIR);
    let served_net = Served::start(
        plugins.join(format!("{net_plugin}.sock")),
        PluginServer::new().with_driver(Arc::new(cnm_driver_bridge::BridgeDriver::new(nl.clone()))),
    );
    let served_ipam = Served::start(
        plugins.join(format!("{ipam_plugin}.sock")),
        PluginServer::new().with_ipam(Arc::new(cnm_ipams::DefaultIpam::new(Default::default()))),
    );

    let ns_for_engine = ns_path.clone();
    let mut engine = tokio::task::spawn_blocking(move || Engine::start(dir, &ns_for_engine)).await.unwrap();
    let e = &engine;
    import_busybox(e);

    // Networks served by our bridge driver, with and without --subnet.
    e.ok(&["network", "create", "-d", &net_plugin, "--subnet", "10.231.200.0/24", "sub"]);
    e.ok(&["network", "create", "-d", &net_plugin, "auto"]);
    assert_eq!(e.ok(&["network", "inspect", "-f", "{{.Driver}}", "sub"]), net_plugin);
    for (c, n) in [("c1", "sub"), ("c2", "sub"), ("c3", "auto")] {
        e.ok(&["run", "-d", "--name", c, "--network", n, "busybox:local", "sleep", "3600"]);
    }
    let (a1, a2, a3) = (address(e, "c1", "sub"), address(e, "c2", "sub"), address(e, "c3", "auto"));
    assert!(a1.starts_with("10.231.200.") && a2.starts_with("10.231.200."), "{a1} {a2}");
    ping(e, "c1", &a2).expect("c1 pings c2");
    ping(e, "c2", &a1).expect("c2 pings c1");
    ping(e, "c1", &a3).expect_err("c1 is not on c3's network yet");

    // docker network connect / disconnect on a running container.
    e.ok(&["network", "connect", "auto", "c1"]);
    ping(e, "c1", &a3).expect("c1 pings c3 after connect");
    ping(e, "c3", &address(e, "c1", "auto")).expect("c3 pings c1");
    e.ok(&["network", "disconnect", "auto", "c1"]);
    let addrs = e.ok(&["exec", "c1", "ip", "-o", "addr"]);
    assert!(!addrs.contains(&format!("{} ", a3.rsplit_once('.').unwrap().0)), "no interface on auto left: {addrs}");
    ping(e, "c1", &a2).expect("still on sub");
    check_published_port(e, &ns, "sub", "10.231.200.1").await;

    // Our default IPAM as an IPAM plugin, with our bridge driver.
    e.ok(&[
        "network",
        "create",
        "-d",
        &net_plugin,
        "--ipam-driver",
        &ipam_plugin,
        "--subnet",
        "10.231.201.0/24",
        "ipam",
    ]);
    for c in ["c4", "c5"] {
        e.ok(&["run", "-d", "--name", c, "--network", "ipam", "busybox:local", "sleep", "3600"]);
    }
    let (a4, a5) = (address(e, "c4", "ipam"), address(e, "c5", "ipam"));
    assert!(a4.starts_with("10.231.201.") && a5.starts_with("10.231.201.") && a4 != a5, "{a4} {a5}");
    ping(e, "c4", &a5).expect("c4 pings c5");

    for c in ["c1", "c2", "c3", "c4", "c5"] {
        e.ok(&["rm", "-f", c]);
    }
    for n in ["sub", "auto", "ipam"] {
        e.ok(&["network", "rm", n]);
    }
    let left = e.ok(&["network", "ls", "--format", "{{.Driver}}"]);
    assert!(!left.contains(&unique), "networks left: {left}");
    // Deleted bridges finish their unregister in the background: wait, bounded.
    let deadline = Instant::now() + Duration::from_secs(5);
    let links = loop {
        let links: Vec<String> = nl.link_list().await.unwrap().into_iter().map(|l| l.name).collect();
        if links == ["lo"] || Instant::now() > deadline {
            break links;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(links, ["lo"], "bridges and veths removed");

    let engine = tokio::task::spawn_blocking(move || {
        engine.stop();
        engine
    })
    .await
    .unwrap();
    assert!(engine.processes().is_empty(), "dockerd and containerd are gone");
    drop((served_net, served_ipam));
    assert!(!plugins.join(format!("{net_plugin}.sock")).exists(), "plugin socket removed");
    drop(ns);
    Namespace::remove(&ns_path).unwrap();
    drop(ns_dir);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&engine.dir.path().to_string_lossy().to_string()), "no mount left:\n{mounts}");
}
