//! `cnm-cni` run the way a CNI runtime runs a plugin (the `CNI_*`
//! environment, the network config on standard input, the result or the
//! spec's error on standard output) against a real cnmd in a scratch host;
//! the containers are network namespaces the test makes, as a runtime
//! makes them. Proved by packets: pings, DNS answers from cnm's resolver
//! in the runtime's namespace, a published port from an outside host.

mod common;

use common::podman::{IMAGE, Podman, busybox_rootfs};

use common::Daemon;
use serde_json::{Value, json};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `cnm-cni` with `command` for `container` on `netns`, `conf` on
/// stdin; its exit code and what it printed (JSON, or nothing).
fn cni(command: &str, container: &str, netns: &Path, conf: &Value) -> (i32, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnm-cni"))
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/opt/cni/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cnm-cni");
    child.stdin.take().unwrap().write_all(conf.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("cnm-cni printed no JSON ({e}): {text}"))
    };
    (out.status.code().unwrap_or(-1), value)
}

fn ok(command: &str, container: &str, netns: &Path, conf: &Value) -> Value {
    let (code, out) = cni(command, container, netns, conf);
    assert_eq!(code, 0, "{command} {container}: {out}");
    out
}

fn failed(command: &str, container: &str, netns: &Path, conf: &Value) -> Value {
    let (code, out) = cni(command, container, netns, conf);
    assert_eq!(code, 1, "{command} {container} should fail: {out}");
    assert!(out["msg"].is_string() && out["code"].is_u64(), "the spec's error shape: {out}");
    out
}

const TEST: &str = "a_cni_runtime_gets_cnm_networks_dns_and_ports";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cni_runtime_gets_cnm_networks_dns_and_ports() {
    let Some(mut d) = Daemon::start(TEST).await else { return };
    let out = d.host.outside().await;
    let dir = d.host.dir.path().to_path_buf();
    // The containers' namespaces go even if the test fails.
    struct Unmount(Vec<std::path::PathBuf>);
    impl Drop for Unmount {
        fn drop(&mut self) {
            for p in &self.0 {
                let _gone = cnm::osl::Namespace::remove(p);
            }
        }
    }
    let _unmount = Unmount(["c1", "c2"].iter().map(|c| dir.join(format!("{c}.netns"))).collect());
    let mut containers = Vec::new();
    for c in ["c1", "c2"] {
        let path = dir.join(format!("{c}.netns"));
        let (ns, nl) = cnm::osl::Netlink::create_namespace(&path, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
        nl.link_set_up(1).await.unwrap();
        containers.push((path, ns));
    }
    let (p1, p2) = (containers[0].0.clone(), containers[1].0.clone());
    let socket = d.sock.display().to_string();
    let base = json!({
        "cniVersion": "1.1.0", "name": "podnet", "type": "cnm-cni", "network": "cninet",
        "driver": "bridge", "subnet": "10.231.240.0/24", "socket": socket,
    });
    let with = |runtime: Value| {
        let mut c = base.clone();
        c["runtimeConfig"] = runtime;
        c
    };

    let version = ok("VERSION", "", Path::new(""), &base);
    assert!(version["supportedVersions"].as_array().unwrap().contains(&json!("1.1.0")), "{version}");
    ok("STATUS", "", Path::new(""), &base);

    // c1: an alias and a published port; the network is created by the first ADD.
    let r1 = ok(
        "ADD",
        "c1",
        &p1,
        &with(
            json!({ "aliases": { "podnet": ["web1"] }, "portMappings": [{ "hostPort": 8087, "containerPort": 80, "protocol": "tcp" }] }),
        ),
    );
    assert_eq!(r1["cniVersion"], "1.1.0");
    assert_eq!(r1["interfaces"][0]["sandbox"], p1.display().to_string());
    assert_eq!(r1["interfaces"][0]["name"], "eth0");
    assert_eq!(r1["ips"][0]["gateway"], "10.231.240.1");
    assert_eq!(r1["routes"][0], json!({ "dst": "0.0.0.0/0", "gw": "10.231.240.1" }));
    let a1: IpAddr = r1["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().parse().unwrap();
    // c2: the address and MAC the runtime asks for.
    let r2 = ok(
        "ADD",
        "c2",
        &p2,
        &with(json!({ "ips": ["10.231.240.77/24"], "mac": "02:00:0a:e7:f0:4d", "aliases": { "podnet": ["db"] } })),
    );
    assert_eq!(r2["ips"][0]["address"], "10.231.240.77/24");
    assert_eq!(r2["interfaces"][0]["mac"], "02:00:0a:e7:f0:4d");

    let (ns1, ns2) = (&containers[0].1, &containers[1].1);
    cnm_tests::assert_ping(ns1, "10.231.240.77".parse().unwrap()).await;
    cnm_tests::assert_ping(ns2, a1).await;
    let found = cnm_tests::dns::lookup_a(ns1, "db").await.expect("cnm's resolver answers in the runtime's namespace");
    assert_eq!(found, ["10.231.240.77".parse::<std::net::Ipv4Addr>().unwrap()]);
    let _srv = cnm_tests::peer_echo_server(ns1, "0.0.0.0:80".parse().unwrap(), 1).await;
    let published: SocketAddr = format!("{}:8087", cnm_tests::UPLINK_HOST).parse().unwrap();
    assert_eq!(
        cnm_tests::seen_as(&out.ns, published).await.expect("the published port answers from outside"),
        cnm_tests::OUTSIDE,
        "the container sees the client's own address"
    );
    assert!(d.ok(&["sandbox", "ls"]).contains("cni-c1"), "cnmctl shows the runtime's container");
    ok("CHECK", "c1", &p1, &base);
    assert_eq!(failed("CHECK", "nobody", &p1, &base)["code"], 3);

    // DEL is idempotent; GC removes what the runtime no longer knows.
    ok("DEL", "c2", &p2, &base);
    ok("DEL", "c2", &p2, &base);
    cnm_tests::assert_no_ping(ns1, "10.231.240.77".parse().unwrap()).await;
    // A DEL for a network the container is not on leaves it alone.
    let mut elsewhere = base.clone();
    elsewhere["network"] = json!("cninet-other");
    ok("DEL", "c1", &p1, &elsewhere);
    assert!(d.ok(&["sandbox", "ls"]).contains("cni-c1"), "a DEL of another network removed the container");
    let mut gc = base.clone();
    gc["cni.dev/valid-attachments"] = json!([{ "containerID": "c1", "ifname": "eth0" }]);
    ok("GC", "", Path::new(""), &gc);
    assert!(d.ok(&["sandbox", "ls"]).contains("cni-c1"), "GC kept an attachment the runtime lists");
    gc["cni.dev/valid-attachments"] = json!([]);
    ok("GC", "", Path::new(""), &gc);
    assert!(!d.ok(&["sandbox", "ls"]).contains("cni-c1"), "GC removed the forgotten container");
    let gone = cnm::osl::probe::tcp_exchange(&out.ns, published, Vec::new(), Duration::from_secs(1)).await;
    assert!(gone.is_err(), "its port went with it: {gone:?}");

    // The spec's errors.
    let mut unknown = base.clone();
    unknown["network"] = json!("nowhere");
    unknown.as_object_mut().unwrap().remove("driver");
    assert_eq!(failed("ADD", "c3", &p1, &unknown)["code"], 7);
    let mut newer = base.clone();
    newer["cniVersion"] = json!("9.0.0");
    assert_eq!(failed("ADD", "c3", &p1, &newer)["code"], 1);
    let (code, missing) = {
        let out = Command::new(env!("CARGO_BIN_EXE_cnm-cni"))
            .env("CNI_COMMAND", "ADD")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), serde_json::from_slice::<Value>(&out.stdout).unwrap())
    };
    assert_eq!((code, missing["code"].as_u64()), (Some(1), Some(4)), "{missing}");

    d.ok(&["network", "rm", "cninet"]);
    // cnmd down: STATUS says the plugin is unavailable, ADD to try later, each saying what to do.
    assert!(d.sigterm(), "cnmd stops");
    let down = failed("STATUS", "", Path::new(""), &base);
    assert_eq!(down["code"], 50);
    let later = failed("ADD", "c1", &p1, &base);
    assert_eq!(later["code"], 11);
    assert!(later["details"].as_str().unwrap().contains("start it"), "{later}");
    drop(containers);
}

const CTR_TEST: &str = "containerd_runs_containers_on_a_cnm_network_through_cnm_cni";

/// Runs `ctr` against the test's containerd, inside its host; its output or what it said.
fn ctr(host: &cnm_tests::dockerd::DockerHost, sock: &Path, args: &[&str]) -> Result<String, String> {
    let out = host
        .command_prefix()
        .arg("ctr")
        .arg("--address")
        .arg(sock)
        .args(["--namespace", "cnmtest"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("ctr {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// containerd's own `ctr run --cni` (Debian's containerd, our private
/// instance) with `cnm-cni` as its CNI plugin (installed in `/opt/cni/bin`
/// and configured in `/etc/cni/net.d` of the test's host, overlays on the
/// machine's directories): its containers are on a cnm network, ping each
/// other and resolve each other's names through cnm's resolver; `ctr task
/// delete` runs DEL, and cnmd forgets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_runs_containers_on_a_cnm_network_through_cnm_cni() {
    if !cnm_tests::real_root(CTR_TEST)
        || !cnm_tests::tools(CTR_TEST, &["containerd", "ctr", "containerd-shim-runc-v2"], "docker.io")
        || !cnm_tests::tools(CTR_TEST, &["runc"], "runc")
        || !cnm_tests::tools(CTR_TEST, &["busybox"], "busybox-static")
    {
        return;
    }
    let Some(d) = Daemon::start(CTR_TEST).await else { return };
    d.ok(&["network", "create", "--subnet", "10.231.241.0/24", "ctrnet"]);
    let dir = d.host.dir.path().to_path_buf();
    let o = dir.join("overlays");
    let setup = format!(
        "mkdir -p {o}/etc-up {o}/etc-work {o}/opt-up {o}/opt-work && \
         mount -t overlay cnm-test-etc -o lowerdir=/etc,upperdir={o}/etc-up,workdir={o}/etc-work /etc && \
         mount -t overlay cnm-test-opt -o lowerdir=/opt,upperdir={o}/opt-up,workdir={o}/opt-work /opt && \
         mkdir -p {o}/lib-up {o}/lib-work && \
         mount -t overlay cnm-test-lib -o lowerdir=/var/lib,upperdir={o}/lib-up,workdir={o}/lib-work /var/lib && \
         mkdir -p /etc/cni/net.d /opt/cni/bin /run/containerd && \
         mount -t tmpfs -o mode=0711 cnm-test-containerd /run/containerd",
        o = o.display()
    );
    let host = cnm_tests::dockerd::DockerHost::with_setup(&d.host.ns_path(), &setup);
    let conflist = json!({
        "cniVersion": "1.0.0", "name": "ctrnet",
        "plugins": [{ "type": "cnm-cni", "network": "ctrnet", "socket": d.sock.display().to_string() }],
    });
    std::fs::write(host.path("/etc/cni/net.d/10-cnm.conflist"), conflist.to_string()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_cnm-cni"), host.path("/opt/cni/bin/cnm-cni")).unwrap();
    std::fs::write(dir.join("containerd.toml"), "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n")
        .unwrap();
    let sock = dir.join("containerd.sock");
    let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
    // containerd, its shims and the containers go even if the test fails.
    struct Reaper(std::path::PathBuf);
    impl Drop for Reaper {
        fn drop(&mut self) {
            cnm_tests::dockerd::kill_processes_of(&self.0);
        }
    }
    let _reaper = Reaper(dir.clone());
    let mut containerd = host
        .command_prefix()
        .arg("containerd")
        .arg("--config")
        .arg(dir.join("containerd.toml"))
        .arg("--root")
        .arg(dir.join("containerd-root"))
        .arg("--state")
        .arg(dir.join("containerd-state"))
        .arg("--address")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start containerd");
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while ctr(&host, &sock, &["version"]).is_err() {
        assert!(std::time::Instant::now() < end, "containerd did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    for c in ["c1", "c2"] {
        let rootfs = dir.join(format!("rootfs-{c}"));
        busybox_rootfs(&rootfs);
        let rootfs = rootfs.display().to_string();
        ctr(&host, &sock, &["run", "-d", "--cni", "--rootfs", &rootfs, c, "/bin/sleep", "3600"]).unwrap();
    }
    // ctr names the CNI attachment `<namespace>-<id>`.
    let a2 = d.ip("cni-cnmtest-c2", "ctrnet");
    assert!(a2.starts_with("10.231.241."), "{a2}");
    ctr(&host, &sock, &["task", "exec", "--exec-id", "p1", "c1", "/bin/ping", "-c", "1", "-W", "3", &a2])
        .expect("c1 pings c2 on the cnm network");
    let answer =
        ctr(&host, &sock, &["task", "exec", "--exec-id", "n1", "c1", "/bin/nslookup", "cni-cnmtest-c2", "127.0.0.11"])
            .expect("c1 resolves c2's name");
    assert!(answer.contains(&a2), "{answer}");

    // `ctr run --rm --cni` runs DEL itself when its container exits.
    let rootfs = dir.join("rootfs-c3");
    busybox_rootfs(&rootfs);
    let rootfs = rootfs.display().to_string();
    ctr(&host, &sock, &["run", "--rm", "--cni", "--rootfs", &rootfs, "c3", "/bin/ping", "-c", "1", "-W", "3", &a2])
        .expect("a one-shot container pings c2");
    assert!(!d.ok(&["sandbox", "ls"]).contains("cni-cnmtest-c3"), "ctr's DEL removed c3's attachment");
    for c in ["c1", "c2"] {
        ctr(&host, &sock, &["task", "kill", "-s", "SIGKILL", c]).unwrap();
    }
    for c in ["c1", "c2"] {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while ctr(&host, &sock, &["task", "delete", c]).is_err() {
            assert!(std::time::Instant::now() < end, "task {c} never stopped");
            std::thread::sleep(Duration::from_millis(100));
        }
        ctr(&host, &sock, &["container", "delete", c]).unwrap();
    }
    // ctr 1.6 runs no DEL for a detached task it deletes: the runtime's
    // garbage collection (CNI GC, with the attachments it still knows) does.
    assert!(d.ok(&["sandbox", "ls"]).contains("cni-cnmtest-c1"), "control: c1's attachment outlived its task");
    let mut gc = json!({ "cniVersion": "1.1.0", "name": "ctrnet", "type": "cnm-cni", "network": "ctrnet" });
    gc["socket"] = json!(d.sock.display().to_string());
    gc["cni.dev/valid-attachments"] = json!([]);
    ok("GC", "", Path::new(""), &gc);
    let left = d.ok(&["sandbox", "ls"]);
    assert!(!left.contains("cni-cnmtest"), "GC removed the attachments: {left}");
    let _ =
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(containerd.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let _ = containerd.wait();
    d.ok(&["network", "rm", "ctrnet"]);
}

const PODMAN_TEST: &str = "podman_runs_containers_on_a_cnm_network_through_cnm_cni";

fn podman_available(test: &str) -> bool {
    let tuning = std::path::Path::new("/usr/lib/cni/tuning").exists()
        || cnm_tests::skip(
            test,
            "needs the standard CNI plugins (containernetworking-plugins, a dependency of podman)",
        );
    tuning
        && cnm_tests::real_root(test)
        && cnm_tests::tools(test, &["podman", "conmon"], "podman")
        && cnm_tests::tools(test, &["runc"], "runc")
        && cnm_tests::tools(test, &["busybox"], "busybox-static")
}

/// podman 4.3 with its CNI backend and a network whose plugin is
/// `cnm-cni`: its containers ping each other, resolve each other's names
/// (the container names podman passes) through cnm's resolver, and publish
/// a port (`-p`, podman's `portMappings`) that answers an outside host
/// with the client's address; `podman rm` runs DEL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_runs_containers_on_a_cnm_network_through_cnm_cni() {
    if !podman_available(PODMAN_TEST) {
        return;
    }
    let Some(d) = Daemon::start(PODMAN_TEST).await else { return };
    let out = d.host.outside().await;
    let conflist = json!({
        "cniVersion": "1.0.0", "name": "cnmnet",
        "plugins": [{
            "type": "cnm-cni", "network": "cnmnet", "driver": "bridge", "subnet": "10.231.242.0/24",
            "socket": d.sock.display().to_string(),
            "capabilities": { "portMappings": true, "aliases": true },
        }, {
            // The standard tuning plugin after cnm-cni: it needs cnm's result as its prevResult.
            "type": "tuning", "sysctl": { "net.ipv4.conf.eth0.arp_notify": "1" },
        }],
    });
    let p = Podman::new(&d.host.dir.path().join("podman"), &conflist, &d.host.ns_path());
    p.run(&["run", "-d", "--name", "db", "--network", "cnmnet", IMAGE, "/bin/sleep", "3600"]).unwrap();
    let web = [
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "cnmnet",
        "-p",
        "8089:80",
        IMAGE,
        "/bin/httpd",
        "-f",
        "-v",
        "-p",
        "80",
        "-h",
        "/www",
    ];
    p.run(&web).unwrap();
    let db = p.address("db", "cnmnet");
    assert!(db.starts_with("10.231.242."), "{db}");
    let tuned = p.run(&["exec", "db", "/bin/cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"]).unwrap();
    assert_eq!(tuned, "1", "the chained tuning plugin got cnm-cni's result and set its sysctl");
    p.run(&["exec", "web", "/bin/ping", "-c", "1", "-W", "3", &db]).expect("web pings db on the cnm network");
    let answer = p.run(&["exec", "web", "/bin/nslookup", "db", "127.0.0.11"]).expect("web resolves db");
    assert!(answer.contains(&db), "{answer}");
    let published: SocketAddr = format!("{}:8089", cnm_tests::UPLINK_HOST).parse().unwrap();
    cnm_tests::dockerd::page_answers(&out.ns, published).await.expect("the published port answers from outside");
    let logs = p.stderr_logs("web");
    assert!(logs.contains(cnm_tests::OUTSIDE), "the container saw the client's own address: {logs}");
    assert!(d.ok(&["sandbox", "ls"]).contains("cni-"), "cnmctl shows podman's containers");

    p.run(&["rm", "-f", "web", "db"]).unwrap();
    let left = d.ok(&["sandbox", "ls"]);
    assert!(!left.contains("cni-"), "podman's DEL removed the attachments: {left}");
    d.ok(&["network", "rm", "cnmnet"]);
}

const PODMAN_OVERLAY_TEST: &str = "podman_on_two_hosts_shares_a_cnm_overlay";

/// Two simulated hosts, each with cnmd (one etcd) and a podman of its
/// own whose CNI network is a cnm overlay network: a container on each
/// host, and they ping each other across the underlay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_on_two_hosts_shares_a_cnm_overlay() {
    if !podman_available(PODMAN_OVERLAY_TEST) {
        return;
    }
    let Some((_underlay, hosts)) = common::cluster::cluster(PODMAN_OVERLAY_TEST, 2).await else { return };
    let c0 = hosts[0].client();
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.243.0/24" }] } });
    let _: Value = c0.post("/networks/create", &body).await.expect("an overlay network on host 1");
    let c1 = hosts[1].client();
    cnm_tests::eventually("the network is on host 2", 5, || common::cluster::listed(&c1, "ov")).await;
    let mut podmans = Vec::new();
    for h in &hosts {
        let conflist = json!({
            "cniVersion": "1.0.0", "name": "ov",
            "plugins": [{ "type": "cnm-cni", "network": "ov", "socket": h.sock.display().to_string() }],
        });
        podmans.push(Podman::new(&h.host.dir.path().join("podman"), &conflist, &h.host.ns_path()));
    }
    for (i, p) in podmans.iter().enumerate() {
        p.run(&["run", "-d", "--name", &format!("p{i}"), "--network", "ov", IMAGE, "/bin/sleep", "3600"]).unwrap();
    }
    let (a0, a1) = (podmans[0].address("p0", "ov"), podmans[1].address("p1", "ov"));
    assert!(a0 != a1 && a0.starts_with("10.231.243.") && a1.starts_with("10.231.243."), "{a0} {a1}");
    podmans[0].run(&["exec", "p0", "/bin/ping", "-c", "1", "-W", "3", &a1]).expect("host 1's container pings host 2's");
    podmans[1].run(&["exec", "p1", "/bin/ping", "-c", "1", "-W", "3", &a0]).expect("and back");
    for (i, p) in podmans.iter().enumerate() {
        p.run(&["rm", "-f", &format!("p{i}")]).unwrap();
    }
    c0.delete("/networks/ov").await.expect("the overlay network goes once no host has containers on it");
}
