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
use cnm_tests::dockerd::{Engine, address, import_busybox};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        // httpd needs a moment to listen: polled, bounded.
        cnm_tests::dockerd::page_answers(ns, addr)
            .await
            .unwrap_or_else(|e| panic!("published port did not answer: {e}"));
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
    if !cnm_tests::dockerd::available("docker_engine_uses_our_plugins") {
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
    let engine = tokio::task::spawn_blocking(move || Engine::start(dir, &ns_for_engine, false)).await.unwrap();
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

    let engine = engine.stop_async().await;
    assert!(engine.processes().is_empty(), "dockerd and containerd are gone");
    drop((served_net, served_ipam));
    assert!(!plugins.join(format!("{net_plugin}.sock")).exists(), "plugin socket removed");
    drop(ns);
    Namespace::remove(&ns_path).unwrap();
    drop(ns_dir);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&engine.dir.path().to_string_lossy().to_string()), "no mount left:\n{mounts}");
}
