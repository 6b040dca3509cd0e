//! `cnmd --docker-plugins` with real Docker Engines (Debian's `docker.io`,
//! as root): each simulated Docker host is a scratch network namespace and
//! a mount namespace with its own `/run/docker` (so Docker's plugin
//! directory and its containers' namespace files are that host's alone, and
//! cnmd sees them as on a real host), running dockerd (live-restore) and
//! cnmd serving the plugins; containers are made from Debian's
//! busybox-static, imported offline. Everything they made is checked gone.

mod common;

use common::plugins::Plugins;

use cnm_tests::dockerd::{DockerHost, Engine, address, import_busybox};
use cnm_tests::{OUTSIDE, TestHost, UPLINK_HOST};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn ping(e: &Engine, from: &str, to: &str) -> Result<String, String> {
    e.docker(&["exec", from, "ping", "-c", "1", "-W", "3", to])
}

/// What container `c` wrote on its standard error (httpd -v logs there).
fn stderr_logs(e: &Engine, c: &str) -> String {
    let out = std::process::Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", e.sock().display()))
        .args(["logs", c])
        .output()
        .expect("docker logs");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Whether any process of the engine is a `docker-proxy`.
fn proxies(e: &Engine) -> usize {
    e.processes().iter().filter(|pid| cnm_tests::dockerd::is_docker_proxy(**pid as u32)).count()
}

/// Debian's python3 (an unprivileged user cannot run one under root's home).
const PYTHON: &str = "/usr/bin/python3";

const BRIDGE_TEST: &str = "docker_runs_containers_on_cnm_plugins_across_restarts";

/// Docker Engine uses `cnm-bridge` and the IPAM `cnm`: containers ping
/// each other, a published port answers from an outside host with the
/// client's address kept and no docker-proxy; cnmd killed with SIGKILL and
/// started again while the containers run changes nothing (traffic, the
/// published port, fresh addresses for new containers, removals); dockerd
/// restarted (live-restore) keeps its containers on their network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_runs_containers_on_cnm_plugins_across_restarts() {
    if !cnm_tests::dockerd::available(BRIDGE_TEST)
        || (!std::path::Path::new(PYTHON).exists()
            && !cnm_tests::skip(BRIDGE_TEST, "needs Debian's python3 (/usr/bin/python3)"))
        || !cnm_tests::tools(BRIDGE_TEST, &["setpriv"], "util-linux")
    {
        return;
    }
    let Some(h) = TestHost::new(BRIDGE_TEST).await else { return };
    let out = h.outside().await;
    let dhost = DockerHost::new(&h.ns_path());
    let mut plugins = Plugins::new(h.dir.path(), &[]);
    let served = ["cnm-bridge", "cnm-macvlan", "cnm"];
    plugins.start(&dhost, &served);
    // The protocol has no authentication: only root may connect.
    let connect = |user: Option<&str>| {
        let mut c = dhost.command_prefix();
        if let Some(u) = user {
            c.args(["setpriv", &format!("--reuid={u}"), &format!("--regid={u}"), "--clear-groups"]);
        }
        // 0: connected; 3: refused for want of permission; anything else: the probe failed.
        let script = "import socket, sys\ntry:\n socket.socket(socket.AF_UNIX).connect('/run/docker/plugins/cnm-bridge.sock')\nexcept PermissionError:\n sys.exit(3)";
        c.args([PYTHON, "-c", script]).status().expect("python3").code()
    };
    assert_eq!(connect(None), Some(0), "control: root reaches the plugin socket");
    assert_eq!(connect(Some("65534")), Some(3), "an unprivileged user is refused the plugin socket");
    let edir = tempfile::Builder::new().prefix("cnm-dockerd-").tempdir().unwrap();
    let dhost = std::sync::Arc::new(dhost);
    let on = dhost.clone();
    let mut engine = tokio::task::spawn_blocking(move || Engine::start_on(edir, &on)).await.unwrap();
    let e = &engine;
    import_busybox(e);

    e.ok(&["network", "create", "-d", "cnm-bridge", "--ipam-driver", "cnm", "--subnet", "10.231.210.0/24", "web"]);
    assert_eq!(e.ok(&["network", "inspect", "-f", "{{.Driver}} {{.IPAM.Driver}}", "web"]), "cnm-bridge cnm");
    for c in ["c1", "c2"] {
        e.ok(&["run", "-d", "--name", c, "--network", "web", "busybox:local", "sleep", "3600"]);
    }
    let httpd = ["httpd", "-f", "-v", "-p", "80", "-h", "/www"];
    let mut run_web = vec!["run", "-d", "--name", "www", "--network", "web", "-p", "8080:80", "busybox:local"];
    run_web.extend(httpd);
    e.ok(&run_web);
    let (a1, a2) = (address(e, "c1", "web"), address(e, "c2", "web"));
    assert!(a1.starts_with("10.231.210.") && a2.starts_with("10.231.210.") && a1 != a2, "{a1} {a2}");
    ping(e, "c1", &a2).expect("c1 pings c2 on the cnm network");
    let published: SocketAddr = format!("{UPLINK_HOST}:8080").parse().unwrap();
    cnm_tests::dockerd::page_answers(&out.ns, published).await.expect("the published port answers from outside");
    let logs = stderr_logs(e, "www");
    assert!(logs.contains(OUTSIDE), "the container saw the client's own address: {logs}");
    assert_eq!(proxies(e), 0, "no docker-proxy for a port published by cnm");
    let before: Vec<String> = ["c1", "c2", "www"].iter().map(|c| address(e, c, "web")).collect();

    // cnmd crashes and comes back while the containers run.
    plugins.kill();
    ping(e, "c1", &a2).expect("traffic does not need cnmd");
    plugins.start(&dhost, &served);
    assert!(plugins.log().contains("journal replayed"), "{}", plugins.log());
    e.ok(&["run", "-d", "--name", "c3", "--network", "web", "busybox:local", "sleep", "3600"]);
    let a3 = address(e, "c3", "web");
    assert!(!before.contains(&a3) && a3 != "10.231.210.1", "a new container gets a free address: {a3} vs {before:?}");
    ping(e, "c3", &a1).expect("c3 pings c1 after the restart");
    cnm_tests::dockerd::page_answers(&out.ns, published).await.expect("the published port still answers");
    e.ok(&["rm", "-f", "www"]);
    let get = b"GET /index.html HTTP/1.0\r\n\r\n".to_vec();
    let gone = cnm::osl::probe::tcp_exchange(&out.ns, published, get, Duration::from_secs(2)).await;
    assert!(gone.is_err(), "the port is unpublished with its container after the restart: {gone:?}");

    // dockerd restarts; its containers keep running on their network.
    let on = dhost.clone();
    engine = tokio::task::spawn_blocking(move || {
        engine.restart_on(&on);
        engine
    })
    .await
    .unwrap();
    let e = &engine;
    ping(e, "c1", &a2).expect("c1 pings c2 after dockerd's restart");
    e.ok(&["network", "disconnect", "web", "c3"]);
    ping(e, "c3", &a1).expect_err("c3 is off the network");
    e.ok(&["network", "connect", "web", "c3"]);
    ping(e, "c3", &a1).expect("c3 is back on the network");

    for c in ["c1", "c2", "c3"] {
        e.ok(&["rm", "-f", c]);
    }
    e.ok(&["network", "rm", "web"]);
    let links = h.settled_links(&["lo", "uplink"]).await;
    assert_eq!(links, ["lo", "uplink"], "bridges and veths removed");
    let engine = engine.stop_async().await;
    assert!(engine.processes().is_empty(), "dockerd and containerd are gone");
    assert!(plugins.stop(), "cnmd stops cleanly:\n{}", plugins.log());
    for p in served {
        assert!(!dhost.path(&format!("/run/docker/plugins/{p}.sock")).exists(), "socket {p} removed");
    }
}

const MACVLAN_TEST: &str = "docker_runs_containers_on_a_cnm_macvlan_network";

/// `cnm-macvlan` through Docker: containers on the host's link to the
/// outside host (its parent) reach each other and the outside host on
/// that segment; removed, their links are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_runs_containers_on_a_cnm_macvlan_network() {
    if !cnm_tests::dockerd::available(MACVLAN_TEST) {
        return;
    }
    let Some(h) = TestHost::new(MACVLAN_TEST).await else { return };
    let _out = h.outside().await;
    let dhost = std::sync::Arc::new(DockerHost::new(&h.ns_path()));
    let mut plugins = Plugins::new(h.dir.path(), &[]);
    plugins.start(&dhost, &["cnm-macvlan", "cnm"]);
    let edir = tempfile::Builder::new().prefix("cnm-dockerd-").tempdir().unwrap();
    let on = dhost.clone();
    let engine = tokio::task::spawn_blocking(move || Engine::start_on(edir, &on)).await.unwrap();
    let e = &engine;
    import_busybox(e);
    e.ok(&[
        "network",
        "create",
        "-d",
        "cnm-macvlan",
        "-o",
        "parent=uplink",
        "--ipam-driver",
        "cnm",
        "--subnet",
        "10.250.0.0/24",
        "--ip-range",
        "10.250.0.128/25",
        "--gateway",
        UPLINK_HOST,
        "lan",
    ]);
    for c in ["v1", "v2"] {
        e.ok(&["run", "-d", "--name", c, "--network", "lan", "busybox:local", "sleep", "3600"]);
    }
    let v2 = address(e, "v2", "lan");
    let range: ipnet::Ipv4Net = "10.250.0.128/25".parse().unwrap();
    assert!(v2.parse::<std::net::Ipv4Addr>().is_ok_and(|a| range.contains(&a)), "{v2} is in the --ip-range");
    ping(e, "v1", &v2).expect("v1 pings v2 on the macvlan network");
    ping(e, "v1", OUTSIDE).expect("v1 reaches the outside host on the parent's segment");
    e.ok(&["rm", "-f", "v1", "v2"]);
    e.ok(&["network", "rm", "lan"]);
    let links = h.settled_links(&["lo", "uplink"]).await;
    assert_eq!(links, ["lo", "uplink"], "macvlan links removed");
    let engine = engine.stop_async().await;
    assert!(engine.processes().is_empty(), "dockerd and containerd are gone");
    assert!(plugins.stop(), "cnmd stops cleanly:\n{}", plugins.log());
}

const OVERLAY_TEST: &str = "docker_hosts_share_a_cnm_overlay_without_swarm";

/// Two Docker hosts, no swarm, one etcd: `docker network create -d
/// cnm-overlay` on each (the second without a subnet: the cluster's pool
/// is handed out) ties both to one overlay network; their containers get
/// distinct addresses from the one pool and ping each other across hosts.
/// Removed on both hosts, nothing is left in the cluster store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_hosts_share_a_cnm_overlay_without_swarm() {
    if !cnm_tests::dockerd::available(OVERLAY_TEST)
        || !cnm_tests::tools(OVERLAY_TEST, &["etcd"], "etcd-server")
        || !cnm_tests::tools(OVERLAY_TEST, &["openssl"], "openssl")
    {
        return;
    }
    let mut underlay = common::cluster::Underlay::new().await;
    underlay.start_etcd().await;
    let mut hosts = Vec::new();
    for i in 1..=2u8 {
        let Some(h) = TestHost::new(OVERLAY_TEST).await else { return };
        underlay.plug(&h, i).await;
        let dhost = std::sync::Arc::new(DockerHost::new(&h.ns_path()));
        let mut args = vec![
            "--cluster-store".to_string(),
            format!("etcd://{}:2379", common::cluster::ETCD),
            "--advertise-addr".to_string(),
            format!("192.168.231.{i}"),
        ];
        args.extend(underlay.store_args());
        let mut plugins = Plugins::new(h.dir.path(), &args);
        plugins.start(&dhost, &["cnm-overlay", "cnm"]);
        let edir = tempfile::Builder::new().prefix("cnm-dockerd-").tempdir().unwrap();
        let on = dhost.clone();
        let engine = tokio::task::spawn_blocking(move || Engine::start_on(edir, &on)).await.unwrap();
        import_busybox(&engine);
        hosts.push((h, dhost, plugins, engine));
    }
    let (e1, e2) = (&hosts[0].3, &hosts[1].3);
    let shared =
        ["-d", "cnm-overlay", "--ipam-driver", "cnm", "-o", "cnm.network=web", "--ipam-opt", "cnm.network=web"];
    let mut first = vec!["network", "create"];
    first.extend(shared);
    first.extend(["--subnet", "10.231.220.0/24", "web"]);
    e1.ok(&first);
    let mut second = vec!["network", "create"];
    second.extend(shared);
    second.push("web");
    e2.ok(&second);
    assert_eq!(
        e2.ok(&["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "web"]),
        "10.231.220.0/24",
        "the second host got the cluster network's pool"
    );
    // Another subnet under the same name is refused.
    let mut clash = vec!["network", "create"];
    clash.extend(shared);
    clash.extend(["--subnet", "10.231.221.0/24", "clash"]);
    let refused = e2.docker(&clash).expect_err("a second network of one name on a host");
    assert!(refused.contains("already another network's on this host"), "{refused}");

    e1.ok(&["run", "-d", "--name", "c1", "--network", "web", "busybox:local", "sleep", "3600"]);
    e2.ok(&["run", "-d", "--name", "c2", "--network", "web", "busybox:local", "sleep", "3600"]);
    let (a1, a2) = (address(e1, "c1", "web"), address(e2, "c2", "web"));
    assert!(a1.starts_with("10.231.220.") && a2.starts_with("10.231.220.") && a1 != a2, "{a1} {a2}");
    ping(e1, "c1", &a2).expect("c1 on host 1 pings c2 on host 2 over the overlay");
    ping(e2, "c2", &a1).expect("and back");

    // The plugin host on host 2 crashes and comes back: traffic goes on.
    let (_, dhost2, plugins2, _) = &mut hosts[1];
    plugins2.kill();
    plugins2.start(dhost2, &["cnm-overlay", "cnm"]);
    let (e1, e2) = (&hosts[0].3, &hosts[1].3);
    cnm_tests::eventually("c1 reaches c2 after host 2's plugin restart", 10, || async { ping(e1, "c1", &a2).is_ok() })
        .await;
    // What the restarted plugin host knows: a new container joins the overlay.
    e2.ok(&["run", "-d", "--name", "c3", "--network", "web", "busybox:local", "sleep", "3600"]);
    let a3 = address(e2, "c3", "web");
    assert!(a3 != a1 && a3 != a2, "{a3}: a fresh address");
    ping(e2, "c3", &a1).expect("a container started after the restart reaches host 1");
    e2.ok(&["rm", "-f", "c3"]);

    e1.ok(&["rm", "-f", "c1"]);
    e2.ok(&["rm", "-f", "c2"]);
    e1.ok(&["network", "rm", "web"]);
    e2.ok(&["network", "rm", "web"]);
    let left = underlay
        .as_store_client(|c| async move {
            let mut keys = Vec::new();
            for prefix in ["docker-plugin/", "ipam/", "overlay/vni/", "overlay/peers/"] {
                keys.extend(c.list(prefix).await.unwrap().0.into_iter().map(|(k, _)| k));
            }
            keys
        })
        .await;
    assert!(left.is_empty(), "the cluster store holds nothing of the network: {left:?}");
    for (h, dhost, mut plugins, engine) in hosts {
        let engine = engine.stop_async().await;
        assert!(engine.processes().is_empty(), "dockerd and containerd are gone");
        assert!(plugins.stop(), "cnmd stops cleanly:\n{}", plugins.log());
        drop(dhost);
        drop(h);
    }
    underlay.stop_etcd();
}

const KILL_TEST: &str = "the_docker_plugin_host_crashed_at_every_step_leaks_nothing";

/// The steps of a container's life on a cnm network, through the docker
/// CLI; the first that fails ends the run.
fn scenario(e: &Engine) -> Result<(), String> {
    e.docker(&["network", "create", "-d", "cnm-bridge", "--ipam-driver", "cnm", "--subnet", "10.231.212.0/28", "k"])?;
    e.docker(&[
        "run",
        "-d",
        "--name",
        "kc",
        "--network",
        "k",
        "-p",
        "8090:80",
        "busybox:local",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ])?;
    e.docker(&["rm", "-f", "kc"])?;
    e.docker(&["network", "rm", "k"])?;
    Ok(())
}

/// cnmd serving Docker is killed (SIGKILL) at each of its kill points
/// (the plugin host's and the bridge driver's) while dockerd runs a
/// container's life; started again, and what the user would do after a
/// failed command done (the container and network removed if Docker kept
/// them), nothing is left: no link, no published port, no pool (the next
/// round asks for the same subnet), and an empty journal at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_plugin_host_crashed_at_every_step_leaks_nothing() {
    if !cnm_tests::dockerd::available(KILL_TEST) {
        return;
    }
    let Some(h) = TestHost::new(KILL_TEST).await else { return };
    let out = h.outside().await;
    let dhost = std::sync::Arc::new(DockerHost::new(&h.ns_path()));
    let mut plugins = Plugins::new(h.dir.path(), &[]);
    let served = ["cnm-bridge", "cnm"];
    let edir = tempfile::Builder::new().prefix("cnm-dockerd-").tempdir().unwrap();
    plugins.start(&dhost, &served);
    let on = dhost.clone();
    let engine = std::sync::Arc::new(tokio::task::spawn_blocking(move || Engine::start_on(edir, &on)).await.unwrap());
    import_busybox(&engine);
    assert!(plugins.stop(), "cnmd stops cleanly:\n{}", plugins.log());
    let published: SocketAddr = format!("{UPLINK_HOST}:8090").parse().unwrap();
    let points: Vec<&str> =
        cnm_docker_plugin::kill::POINTS.iter().chain(cnm_driver_bridge::kill::POINTS).copied().collect();
    for point in points {
        let outcome = crash_at(&mut plugins, &dhost, &served, &engine, point, scenario).await;
        let left = engine.ok(&["network", "ls", "-q", "--filter", "driver=cnm-bridge"]);
        assert!(left.is_empty(), "{point}: Docker still has a cnm network: {left} ({outcome:?})");
        let links = h.settled_links(&["lo", "uplink"]).await;
        assert_eq!(links, ["lo", "uplink"], "{point}: links left ({outcome:?})\n{}", plugins.log());
        let get = b"GET / HTTP/1.0\r\n\r\n".to_vec();
        let answer = cnm::osl::probe::tcp_exchange(&out.ns, published, get, Duration::from_millis(500)).await;
        assert!(answer.is_err(), "{point}: the port is still published: {answer:?}");
        assert!(plugins.stop(), "{point}: cnmd stops cleanly:\n{}", plugins.log());
    }
    // A last run to its end: the subnet is free, and nothing is journaled after it.
    clean_run_after_crashes(&mut plugins, &dhost, &served, engine, &h.dir.path().join("data"), scenario).await;
}

const MANAGED_TEST: &str = "docker_installs_cnm_as_a_managed_plugin";

/// The managed (v2) plugin the way a Docker user installs it:
/// `contrib/docker-plugin/build` (here with the test build of cnmd and its
/// libraries), `docker plugin create` and `enable` (Docker runs it with
/// runc: its own rootfs and mounts, the host's network, a read-only
/// `/proc/sys` it makes writable); containers on its network ping each
/// other and a published port answers from an outside host; disabled and
/// removed, it leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_installs_cnm_as_a_managed_plugin() {
    if !cnm_tests::dockerd::available(MANAGED_TEST) {
        return;
    }
    let Some(h) = TestHost::new(MANAGED_TEST).await else { return };
    let out = h.outside().await;
    let dhost = std::sync::Arc::new(DockerHost::new(&h.ns_path()));
    let plugin_dir = h.dir.path().join("plugin");
    let build = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../contrib/docker-plugin/build"))
        .arg(&plugin_dir)
        .arg("bridge")
        .env("CNMD", env!("CARGO_BIN_EXE_cnmd"))
        .output()
        .expect("run contrib/docker-plugin/build");
    assert!(build.status.success(), "build: {}", String::from_utf8_lossy(&build.stderr));
    let edir = tempfile::Builder::new().prefix("cnm-dockerd-").tempdir().unwrap();
    let on = dhost.clone();
    let engine = tokio::task::spawn_blocking(move || Engine::start_on(edir, &on)).await.unwrap();
    let e = &engine;
    import_busybox(e);
    e.ok(&["plugin", "create", "cnm-bridge", &plugin_dir.display().to_string()]);
    e.ok(&["plugin", "enable", "cnm-bridge"]);
    assert_eq!(e.ok(&["plugin", "inspect", "-f", "{{.Enabled}}", "cnm-bridge"]), "true");

    let plugin = "cnm-bridge:latest";
    e.ok(&["network", "create", "-d", plugin, "--ipam-driver", plugin, "--subnet", "10.231.214.0/24", "m"]);
    e.ok(&["run", "-d", "--name", "m1", "--network", "m", "busybox:local", "sleep", "3600"]);
    e.ok(&[
        "run",
        "-d",
        "--name",
        "mweb",
        "--network",
        "m",
        "-p",
        "8085:80",
        "busybox:local",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    let web = address(e, "mweb", "m");
    assert!(web.starts_with("10.231.214."), "{web}");
    ping(e, "m1", &web).expect("containers on the managed plugin's network ping each other");
    let published: SocketAddr = format!("{UPLINK_HOST}:8085").parse().unwrap();
    cnm_tests::dockerd::page_answers(&out.ns, published).await.expect("the published port answers from outside");
    assert_eq!(proxies(e), 0, "no docker-proxy");

    e.ok(&["rm", "-f", "m1", "mweb"]);
    e.ok(&["network", "rm", "m"]);
    e.ok(&["plugin", "disable", "cnm-bridge"]);
    e.ok(&["plugin", "rm", "cnm-bridge"]);
    let links = h.settled_links(&["lo", "uplink"]).await;
    assert_eq!(links, ["lo", "uplink"], "bridges and veths removed");
    let engine = engine.stop_async().await;
    assert!(engine.processes().is_empty(), "dockerd, containerd and the plugin are gone");
}

const OVERLAY_KILL_TEST: &str = "the_docker_plugin_host_crashed_at_every_overlay_step_leaks_nothing";

/// A container's life on a cnm overlay network through the docker CLI;
/// the first step that fails ends the run.
fn overlay_scenario(e: &Engine) -> Result<(), String> {
    e.docker(&[
        "network",
        "create",
        "-d",
        "cnm-overlay",
        "--ipam-driver",
        "cnm",
        "-o",
        "cnm.network=k",
        "--ipam-opt",
        "cnm.network=k",
        "--subnet",
        "10.231.215.0/28",
        "k",
    ])?;
    e.docker(&["run", "-d", "--name", "kc", "--network", "k", "busybox:local", "sleep", "3600"])?;
    e.docker(&["rm", "-f", "kc"])?;
    e.docker(&["network", "rm", "k"])?;
    Ok(())
}

/// The crash harness above on a cnm overlay network with a real etcd: cnmd
/// serving Docker is killed at each of the plugin host's kill points a
/// container's overlay life reaches (its ports are Docker's gateway
/// bridge's, so no publish) and at the overlay driver's; after a restart
/// and the user's clean-up, neither the host nor the cluster store holds
/// anything of the network (its VNI, pool, addresses, peers, names).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_plugin_host_crashed_at_every_overlay_step_leaks_nothing() {
    if !cnm_tests::dockerd::available(OVERLAY_KILL_TEST)
        || !cnm_tests::tools(OVERLAY_KILL_TEST, &["etcd"], "etcd-server")
        || !cnm_tests::tools(OVERLAY_KILL_TEST, &["openssl"], "openssl")
    {
        return;
    }
    let mut underlay = common::cluster::Underlay::new().await;
    underlay.start_etcd().await;
    let Some(h) = TestHost::new(OVERLAY_KILL_TEST).await else { return };
    underlay.plug(&h, 1).await;
    let dhost = std::sync::Arc::new(DockerHost::new(&h.ns_path()));
    let mut args = vec![
        "--cluster-store".to_string(),
        format!("etcd://{}:2379", common::cluster::ETCD),
        "--advertise-addr".to_string(),
        "192.168.231.1".to_string(),
    ];
    args.extend(underlay.store_args());
    let mut plugins = Plugins::new(h.dir.path(), &args);
    let served = ["cnm-overlay", "cnm"];
    plugins.start(&dhost, &served);
    let edir = tempfile::Builder::new().prefix("cnm-dockerd-").tempdir().unwrap();
    let on = dhost.clone();
    let engine = std::sync::Arc::new(tokio::task::spawn_blocking(move || Engine::start_on(edir, &on)).await.unwrap());
    import_busybox(&engine);
    assert!(plugins.stop(), "cnmd stops cleanly:\n{}", plugins.log());
    let points: Vec<&str> = cnm_docker_plugin::kill::POINTS
        .iter()
        .copied()
        .filter(|p| *p != "plugin.publish.intent")
        .chain(cnm_driver_overlay::kill::POINTS.iter().copied())
        .collect();
    let store_keys = || {
        underlay.as_store_client(|c| async move {
            let mut keys = Vec::new();
            for prefix in ["docker-plugin/", "ipam/pools/", "ipam/addrs/", "overlay/vni/", "overlay/peers/", "names/"] {
                keys.extend(c.list(prefix).await.unwrap().0.into_iter().map(|(k, _)| k));
            }
            keys
        })
    };
    for point in points {
        let outcome = crash_at(&mut plugins, &dhost, &served, &engine, point, overlay_scenario).await;
        let left = engine.ok(&["network", "ls", "-q", "--filter", "driver=cnm-overlay"]);
        assert!(left.is_empty(), "{point}: Docker still has a cnm network: {left} ({outcome:?})");
        // Docker keeps its own gateway bridge for overlay containers.
        let end = Instant::now() + Duration::from_secs(5);
        let links = loop {
            let links: Vec<String> =
                h.links().await.into_iter().filter(|l| l != "docker_gwbridge" && !l.starts_with("veth")).collect();
            if links == ["eth0", "lo"] || Instant::now() > end {
                break links;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(links, ["eth0", "lo"], "{point}: links left ({outcome:?})\n{}", plugins.log());
        let keys = store_keys().await;
        assert!(keys.is_empty(), "{point}: the cluster store holds {keys:?} ({outcome:?})\n{}", plugins.log());
        assert!(plugins.stop(), "{point}: cnmd stops cleanly:\n{}", plugins.log());
    }
    clean_run_after_crashes(&mut plugins, &dhost, &served, engine, &h.dir.path().join("data"), overlay_scenario).await;
    underlay.stop_etcd();
}

/// Runs `scenario` with cnmd set to stop at `point`, kills it there (the
/// scenario must reach it), starts it again, waits (bounded) for the
/// scenario's end and does the user's clean-up (the container and the
/// network `k` removed if Docker kept them); what the scenario said.
async fn crash_at(
    plugins: &mut Plugins,
    dhost: &DockerHost,
    served: &[&str],
    engine: &std::sync::Arc<Engine>,
    point: &str,
    scenario: fn(&Engine) -> Result<(), String>,
) -> Result<(), String> {
    let reached = plugins.start_killing_at(dhost, served, point);
    let e = engine.clone();
    let run = std::thread::spawn(move || scenario(&e));
    let end = Instant::now() + Duration::from_secs(60);
    while reached.recv_timeout(Duration::from_millis(50)).is_err() {
        assert!(!run.is_finished(), "{point}: the scenario never reaches this kill point");
        assert!(Instant::now() < end, "{point}: neither reached nor finished in 60 s");
    }
    plugins.kill();
    plugins.start(dhost, served);
    // Docker retries a call whose connection broke: it may go through now.
    let end = Instant::now() + Duration::from_secs(120);
    while !run.is_finished() {
        assert!(Instant::now() < end, "{point}: the scenario did not end within 120 s of the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outcome = run.join().expect("the scenario thread");
    let _ = engine.docker(&["rm", "-f", "kc"]);
    let _ = engine.docker(&["network", "rm", "k"]);
    outcome
}

/// After every crash: `scenario` runs to its end, the journal (under
/// `data`) holds nothing after it, and dockerd stops with all its processes.
async fn clean_run_after_crashes(
    plugins: &mut Plugins,
    dhost: &DockerHost,
    served: &[&str],
    engine: std::sync::Arc<Engine>,
    data: &std::path::Path,
    scenario: fn(&Engine) -> Result<(), String>,
) {
    plugins.start(dhost, served);
    let e = engine.clone();
    tokio::task::spawn_blocking(move || scenario(&e)).await.unwrap().expect("a clean run after every crash");
    assert!(plugins.stop(), "cnmd stops cleanly:\n{}", plugins.log());
    let journal = cnm_docker_plugin::Journal::open(&data.join("docker-plugins.db")).unwrap();
    let records: Vec<(String, serde_json::Value)> = journal.load("").unwrap();
    assert!(records.is_empty(), "the journal holds nothing: {records:?}");
    let engine = std::sync::Arc::into_inner(engine).expect("the scenario threads ended");
    let engine = engine.stop_async().await;
    assert!(engine.processes().is_empty(), "dockerd and containerd are gone");
}
