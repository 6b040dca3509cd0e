//! End-to-end tests of `cnmd` and `cnmctl` (privileged): each starts the
//! daemon as a child process in its own scratch host namespace and proves
//! connectivity with `cnmctl sandbox exec … ping` between sandboxes.

mod common;

use common::{Daemon, stderr};
use std::time::Duration;

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Networks, sandboxes, connect and disconnect through cnmctl; packets flow
/// only while both sandboxes are connected; everything removed leaves no link or namespace.
#[tokio::test]
async fn cnmctl_networks_sandboxes_connect_and_ping() {
    let Some(d) = Daemon::start("cnmctl_networks_sandboxes_connect_and_ping").await else { return };
    let id = d.ok(&["network", "create", "--subnet", "10.231.1.0/24", "--label", "team=a", "n1"]);
    assert!(is_id(id.trim()), "network create prints the id, got {id:?}");
    assert!(d.ok(&["network", "ls"]).lines().any(|l| l.contains(" n1 ") && l.contains("bridge")));
    assert!(is_id(d.ok(&["sandbox", "create", "--hostname", "alpha", "--add-host", "db:10.9.9.9", "a"]).trim()));
    d.ok(&["sandbox", "create", "b"]);
    d.ok(&["network", "connect", "--ip", "10.231.1.10", "--alias", "web", "n1", "a"]);
    d.ok(&["network", "connect", "n1", "b"]);
    assert_eq!(d.ip("a", "n1"), "10.231.1.10");
    let ip_b = d.ip("b", "n1");

    assert!(d.pings("a", &ip_b).await, "a cannot ping b at {ip_b}");
    assert!(d.pings("b", "10.231.1.10").await, "b cannot ping a");
    let hosts = d.ok(&["sandbox", "exec", "a", "--", "cat", "/etc/hosts"]);
    assert!(hosts.contains("10.9.9.9\tdb"), "extra host missing from /etc/hosts:\n{hosts}");
    assert!(hosts.contains("10.231.1.10\talpha web"), "own address missing from /etc/hosts:\n{hosts}");
    let status = d.cnmctl(&["sandbox", "exec", "a", "--", "sh", "-c", "exit 3"]).status;
    assert_eq!(status.code(), Some(3), "exec exits with the command's status");

    let inspect: serde_json::Value = serde_json::from_str(&d.ok(&["network", "inspect", "n1"])).unwrap();
    assert_eq!(inspect[0]["Containers"].as_object().unwrap().len(), 2);
    assert_eq!(inspect[0]["Labels"]["team"], "a");

    d.ok(&["network", "disconnect", "n1", "b"]);
    assert!(!d.pings("a", &ip_b).await, "b still answers after disconnect");
    let out = d.cnmctl(&["network", "disconnect", "n1", "b"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not connected"), "{}", stderr(&out));

    let out = d.cnmctl(&["network", "rm", "n1"]);
    assert!(!out.status.success(), "a network with a sandbox joined must not be removed");
    assert!(stderr(&out).contains("active endpoints"), "{}", stderr(&out));
    assert!(stderr(&out).contains(r#"name:"a" id:"#), "the error names the sandboxes: {}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "one-line error");

    d.ok(&["sandbox", "rm", "a", "b"]);
    d.ok(&["network", "rm", "n1"]);
    assert_eq!(d.host.settled_links(&["cnm0", "lo"]).await, ["cnm0", "lo"]);
    assert!(d.host.netns_files().is_empty(), "namespaces left: {:?}", d.host.netns_files());
}

/// SIGTERM stops the daemon leaving everything in place (packets keep
/// flowing while it is down); the next start restores it all.
#[tokio::test]
async fn sigterm_then_restart_keeps_networks_sandboxes_and_packets() {
    let Some(mut d) = Daemon::start("sigterm_then_restart_keeps_networks_sandboxes_and_packets").await else { return };
    d.ok(&["network", "create", "--subnet", "10.231.2.0/24", "n1"]);
    d.ok(&["sandbox", "create", "a"]);
    d.ok(&["sandbox", "create", "b"]);
    d.ok(&["network", "connect", "n1", "a"]);
    d.ok(&["network", "connect", "n1", "b"]);
    let (ip_a, ip_b) = (d.ip("a", "n1"), d.ip("b", "n1"));
    let before: serde_json::Value = serde_json::from_str(&d.ok(&["sandbox", "inspect", "a", "b"])).unwrap();
    assert!(d.pings("a", &ip_b).await);

    assert!(d.sigterm(), "cnmd exits successfully on SIGTERM:\n{}", d.log());
    assert!(!d.sock.exists(), "the socket is removed at exit");
    let key = before[0]["Key"].as_str().unwrap().to_string();
    assert_eq!(d.host.netns_files().len(), 2, "sandboxes stay while the daemon is down");
    let ns = cnm::osl::Namespace::open(&key).expect("sandbox namespace still mounted");
    cnm_tests::assert_ping(&ns, ip_b.parse().unwrap()).await;

    d.spawn();
    let after: serde_json::Value = serde_json::from_str(&d.ok(&["sandbox", "inspect", "a", "b"])).unwrap();
    assert_eq!(before, after, "sandboxes are restored as they were");
    assert!(d.ok(&["network", "ls"]).contains(" n1 "));
    assert!(d.pings("a", &ip_b).await);
    assert!(d.pings("b", &ip_a).await);
    d.ok(&["sandbox", "create", "c"]);
    d.ok(&["network", "connect", "n1", "c"]);
    assert!(d.pings("c", &ip_a).await, "a sandbox connected after the restart reaches the old ones");
}

/// SIGKILL while sandboxes are being created and connected; after a restart
/// the state is consistent (every sandbox has its namespace and no other
/// namespace exists), everything can be removed, and no address leaked:
/// every address of a small subnet can be handed out again.
#[tokio::test]
async fn sigkill_mid_operation_then_restart_leaks_nothing() {
    let Some(mut d) = Daemon::start("sigkill_mid_operation_then_restart_leaks_nothing").await else { return };
    // 10.231.3.0/28: 14 hosts, one is the gateway: 13 addresses.
    d.ok(&["network", "create", "--subnet", "10.231.3.0/28", "small"]);
    let sock = d.sock.clone();
    let worker = std::thread::spawn(move || {
        for i in 0..8 {
            let name = format!("s{i}");
            let run = |args: &[&str]| {
                std::process::Command::new(env!("CARGO_BIN_EXE_cnmctl"))
                    .args(args)
                    .env("CNM_HOST", format!("unix://{}", sock.display()))
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            };
            if !run(&["sandbox", "create", &name]) || !run(&["network", "connect", "small", &name]) {
                return;
            }
        }
    });
    // Kill once a few sandboxes exist, while the worker keeps going.
    let client = d.client();
    let end = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = client.get::<Vec<serde_json::Value>>("/sandboxes").await.map(|v| v.len()).unwrap_or(0);
        if n >= 3 {
            break;
        }
        assert!(std::time::Instant::now() < end, "sandboxes were not created");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    d.sigkill();
    worker.join().unwrap();
    d.spawn();

    let sandboxes: Vec<serde_json::Value> = client.get("/sandboxes").await.unwrap();
    let mut keys: Vec<std::path::PathBuf> = sandboxes.iter().map(|s| s["Key"].as_str().unwrap().into()).collect();
    keys.sort();
    assert_eq!(keys, d.host.netns_files(), "namespaces and sandboxes match after the crash");
    let net: serde_json::Value = client.get("/networks/small").await.unwrap();
    let ids: Vec<&str> = sandboxes.iter().map(|s| s["Id"].as_str().unwrap()).collect();
    for sid in net["Containers"].as_object().unwrap().keys() {
        assert!(ids.contains(&sid.as_str()), "network lists an unknown sandbox {sid}");
    }
    for s in &sandboxes {
        client.delete(&format!("/sandboxes/{}", s["Id"].as_str().unwrap())).await.expect("remove sandbox");
    }
    assert!(d.host.netns_files().is_empty());
    // No address leaked: all 13 can be handed out again.
    for i in 0..13 {
        let name = format!("t{i}");
        d.ok(&["sandbox", "create", &name]);
        d.ok(&["network", "connect", "small", &name]);
    }
    let out = d.cnmctl(&["sandbox", "create", "t13"]);
    assert!(out.status.success());
    let out = d.cnmctl(&["network", "connect", "small", "t13"]);
    assert!(!out.status.success(), "the 14th address must not exist");
    let names: Vec<String> = (0..14).map(|i| format!("t{i}")).collect();
    let mut args = vec!["sandbox", "rm"];
    args.extend(names.iter().map(String::as_str));
    d.ok(&args);
    d.ok(&["network", "rm", "small"]);
    assert_eq!(d.host.settled_links(&["cnm0", "lo"]).await, ["cnm0", "lo"]);
}

/// 50 clients at once each create a sandbox and connect it; none fails and
/// none waits forever; the sandboxes reach each other; 50 concurrent removals succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_clients_create_and_connect() {
    let Some(d) = Daemon::start("fifty_concurrent_clients_create_and_connect").await else { return };
    d.ok(&["network", "create", "--subnet", "10.231.4.0/24", "c0"]);
    d.ok(&["network", "create", "--subnet", "10.231.5.0/24", "c1"]);
    let client = d.client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let client = client.clone();
        tasks.spawn(async move {
            let name = format!("p{i}");
            let _: serde_json::Value = client
                .post("/sandboxes", &serde_json::json!({ "Name": name }))
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            client
                .post_unit(&format!("/networks/c{}/connect", i % 2), &serde_json::json!({ "Container": name }))
                .await
                .map_err(|e| format!("{name}: {e}"))
        });
    }
    let all = tokio::time::timeout(Duration::from_secs(180), async {
        let mut errs = Vec::new();
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r.unwrap() {
                errs.push(e);
            }
        }
        errs
    })
    .await
    .expect("50 clients did not finish within 180 s: deadlock?");
    assert!(all.is_empty(), "failures: {all:?}");
    for n in ["c0", "c1"] {
        let v: serde_json::Value = client.get(&format!("/networks/{n}")).await.unwrap();
        assert_eq!(v["Containers"].as_object().unwrap().len(), 25, "{n}");
    }
    assert!(d.pings("p0", &d.ip("p48", "c0")).await);
    assert!(d.pings("p1", &d.ip("p49", "c1")).await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let client = client.clone();
        tasks.spawn(async move { client.delete(&format!("/sandboxes/p{i}")).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().expect("remove sandbox");
    }
    assert!(d.host.netns_files().is_empty());
}

/// `cnmctl sandbox create -p 8080:80` publishes through the API: the port is
/// reported by inspect and `sandbox ls`, answers from the host through localhost, and is
/// released with the sandbox.
#[tokio::test]
async fn published_port_through_the_api() {
    let Some(d) = Daemon::start("published_port_through_the_api").await else { return };
    d.ok(&["network", "create", "--subnet", "10.231.4.0/24", "pub"]);
    d.ok(&["sandbox", "create", "-p", "8080:80", "web"]);
    d.ok(&["network", "connect", "pub", "web"]);
    let inspect = d.ok(&["sandbox", "inspect", "web"]);
    assert!(inspect.contains("8080"), "inspect shows the published port:\n{inspect}");
    let ls = d.ok(&["sandbox", "ls"]);
    assert!(ls.lines().any(|l| l.contains("web") && l.contains("0.0.0.0:8080->80/tcp")), "sandbox ls shows it:\n{ls}");
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let ns = cnm::osl::Namespace::open(v[0]["Key"].as_str().unwrap()).unwrap();
    let _srv = cnm_tests::peer_echo_server(&ns, "0.0.0.0:80".parse().unwrap(), 1).await;
    let seen = cnm_tests::seen_as(&d.host.ns, "127.0.0.1:8080".parse().unwrap()).await;
    assert_eq!(seen.as_deref(), Ok("10.231.4.1"), "reached through localhost, masqueraded to the gateway");
    assert!(!cnm_tests::can_bind_tcp(&d.host.ns, "0.0.0.0:8080".parse().unwrap()).await, "reserved");
    d.ok(&["sandbox", "rm", "web"]);
    assert!(cnm_tests::can_bind_tcp(&d.host.ns, "0.0.0.0:8080".parse().unwrap()).await, "released");
    d.ok(&["network", "rm", "pub"]);
}

/// `cnmctl sandbox exec` from another mount namespace than cnmd's: the
/// sandbox's namespace file is a plain file here, and cnmctl enters the
/// namespace through the daemon's root; the embedded resolver answers there.
#[tokio::test]
async fn exec_from_another_mount_namespace() {
    let Some(d) = Daemon::start_in_private_mounts("exec_from_another_mount_namespace").await else { return };
    d.ok(&["network", "create", "--subnet", "10.231.9.0/24", "n9"]);
    for s in ["a", "b"] {
        d.ok(&["sandbox", "create", s]);
        d.ok(&["network", "connect", "n9", s]);
    }
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["sandbox", "inspect", "a"])).unwrap();
    let key = v[0]["Key"].as_str().unwrap().to_string();
    assert!(cnm::osl::Namespace::open(&key).is_err(), "{key} is not a namespace in the test's mount namespace");
    let ip_a = d.ip("a", "n9");
    let addrs = d.ok(&["sandbox", "exec", "a", "--", "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addrs.contains(&format!("inet {ip_a}/24")), "{addrs}");
    let resolv = d.ok(&["sandbox", "exec", "a", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.starts_with("nameserver 127.0.0.11\n"), "{resolv}");
    for s in ["a", "b"] {
        d.ok(&["sandbox", "rm", s]);
    }
    d.ok(&["network", "rm", "n9"]);
}

/// Configuration-only networks (`--config-only`, `--config-from`): the
/// first has the null driver, no bridge and no pool, and cannot be
/// connected; a network made from it takes its subnet, gateway and driver
/// options; the first cannot be removed while the second exists.
#[tokio::test]
async fn config_only_and_config_from() {
    let Some(d) = Daemon::start("config_only_and_config_from").await else { return };
    // The socket accepts before the controller (and its default bridge) is
    // up: a first answer means the daemon is serving.
    d.ok(&["network", "ls"]);
    let links_before = d.host.links().await;
    d.ok(&[
        "network",
        "create",
        "--config-only",
        "--subnet",
        "10.231.50.0/24",
        "--gateway",
        "10.231.50.254",
        "-o",
        "com.docker.network.bridge.name=br-fromconf",
        "conf",
    ]);
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["network", "inspect", "conf"])).unwrap();
    assert_eq!((v[0]["Driver"].as_str(), v[0]["ConfigOnly"].as_bool()), (Some("null"), Some(true)), "{v}");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "10.231.50.0/24");
    assert_eq!(d.host.links().await, links_before, "a configuration-only network makes no link");
    d.ok(&["sandbox", "create", "a"]);
    let out = d.cnmctl(&["network", "connect", "conf", "a"]);
    assert!(!out.status.success() && stderr(&out).contains("configuration-only"), "{}", stderr(&out));

    let out = d.cnmctl(&["network", "create", "--config-from", "conf", "--subnet", "10.231.51.0/24", "bad"]);
    assert!(!out.status.success(), "subnets and --config-from do not mix");
    d.ok(&["network", "create", "--config-from", "conf", "derived"]);
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["network", "inspect", "derived"])).unwrap();
    assert_eq!(v[0]["ConfigFrom"]["Network"], "conf", "{v}");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], "10.231.50.254", "{v}");
    assert!(d.host.links().await.contains(&"br-fromconf".to_string()), "the driver options came along");
    d.ok(&["network", "connect", "derived", "a"]);
    assert!(d.ip("a", "derived").starts_with("10.231.50."));
    assert!(d.pings("a", "10.231.50.254").await, "the gateway from the configuration answers");

    let out = d.cnmctl(&["network", "rm", "conf"]);
    assert!(!out.status.success() && stderr(&out).contains("in use"), "{}", stderr(&out));
    // dockerd's refusals around configuration networks, word for word.
    for (args, refused) in [
        (
            &["--config-only", "--internal"][..],
            "Network operator fields like [ ingress | internal | attachable | scope ]",
        ),
        (&["--config-only", "--config-from", "conf"][..], "a configuration network cannot depend on another"),
        (&["--config-from", "derived"][..], "configuration network \"derived\" not found"),
        (&["--config-from", "nonesuch"][..], "configuration network \"nonesuch\" not found"),
    ] {
        let out = d.cnmctl(&[&["network", "create"][..], args, &["refused"]].concat());
        assert!(!out.status.success() && stderr(&out).contains(refused), "{args:?}: {}", stderr(&out));
    }

    // Options set to false and labels come along too (libnetwork's
    // applyConfigurationTo); a request that sets its own is refused with
    // dockerd's messages.
    let quiet = ["network", "create", "--config-only", "--subnet", "10.231.52.0/24", "--label", "team=blue"];
    d.ok(&[&quiet[..], &["-o", "cnm.network.enable_dns=false", "quiet"]].concat());
    let out = d.cnmctl(&["network", "create", "--config-from", "quiet", "--label", "x=y", "bad"]);
    let refused = "user specified configurations are not supported if the node takes config from another network";
    assert!(!out.status.success() && stderr(&out).contains(refused), "{}", stderr(&out));
    let out = d.cnmctl(&["network", "create", "--config-from", "quiet", "-o", "cnm.network.enable_dns=true", "bad"]);
    let refused = "network driver options are not supported if the network depends on a configuration network";
    assert!(!out.status.success() && stderr(&out).contains(refused), "{}", stderr(&out));
    d.ok(&["network", "create", "--config-from", "quiet", "hushed"]);
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["network", "inspect", "hushed"])).unwrap();
    assert_eq!(v[0]["Labels"]["team"], "blue", "{v}");
    // By packets: no resolver answers on the derived network (its
    // configuration turned DNS off); control: on `derived`, one does.
    for (sandbox, net) in [("q1", "hushed"), ("q2", "hushed"), ("a2", "derived")] {
        d.ok(&["sandbox", "create", sandbox]);
        d.ok(&["network", "connect", net, sandbox]);
    }
    let ns_of = |sandbox: &str| {
        let v: serde_json::Value = serde_json::from_str(&d.ok(&["sandbox", "inspect", sandbox])).expect("json");
        cnm::osl::Namespace::open(v[0]["Key"].as_str().expect("a key")).expect("the sandbox's namespace")
    };
    let found = cnm_tests::dns::lookup_a(&ns_of("a"), "a2").await.expect("control: DNS answers on derived");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(d.pings("q1", &d.ip("q2", "hushed")).await, "q1 and q2 share the network");
    let err = cnm_tests::dns::lookup_a(&ns_of("q1"), "q2").await.unwrap_err();
    assert!(!err.is_empty(), "no resolver answers on a network whose configuration turned DNS off");
    for sandbox in ["a", "a2", "q1", "q2"] {
        d.ok(&["sandbox", "rm", sandbox]);
    }
    d.ok(&["network", "rm", "derived", "hushed"]);
    d.ok(&["network", "rm", "conf", "quiet"]);
}

/// `network connect --link-local-ip`: the address is on the sandbox's
/// interface (as libnetwork puts it, /16) and answers from the other
/// sandbox on the same network; a non-link-local one is refused.
#[tokio::test]
async fn link_local_addresses_answer_on_the_network() {
    let Some(d) = Daemon::start("link_local_addresses_answer_on_the_network").await else { return };
    d.ok(&["network", "create", "--subnet", "10.231.2.0/24", "ll"]);
    d.ok(&["sandbox", "create", "a"]);
    d.ok(&["sandbox", "create", "b"]);
    d.ok(&["network", "connect", "--link-local-ip", "169.254.7.7", "ll", "a"]);
    d.ok(&["network", "connect", "--link-local-ip", "169.254.7.8", "ll", "b"]);
    let addrs = d.ok(&["sandbox", "exec", "a", "--", "ip", "-o", "addr", "show", "eth0"]);
    assert!(addrs.contains("169.254.7.7/16"), "link-local address on eth0:\n{addrs}");
    assert!(d.pings("b", "169.254.7.7").await, "b cannot reach a's link-local address");
    d.ok(&["sandbox", "create", "c"]);
    let out = d.cnmctl(&["network", "connect", "--link-local-ip", "10.1.2.3", "ll", "c"]);
    assert!(!out.status.success(), "a non-link-local address is refused");
    assert!(stderr(&out).contains("not a link-local address"), "{}", stderr(&out));
    d.ok(&["sandbox", "rm", "a", "b", "c"]);
    d.ok(&["network", "rm", "ll"]);
}

/// `cnmctl network create -d macvlan -o parent=…`: a sandbox on the parent's
/// segment answers the outside host there, and the network goes cleanly.
#[tokio::test]
async fn macvlan_network_through_cnmctl() {
    let Some(d) = Daemon::start("macvlan_network_through_cnmctl").await else { return };
    let outside = d.host.outside().await;
    d.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        "parent=uplink",
        "--subnet",
        "10.250.0.0/24",
        "--ip-range",
        "10.250.0.128/25",
        "--gateway",
        "10.250.0.2",
        "mv",
    ]);
    d.ok(&["sandbox", "create", "a"]);
    d.ok(&["network", "connect", "mv", "a"]);
    assert_eq!(d.ip("a", "mv"), "10.250.0.128");
    assert!(d.pings("a", cnm_tests::OUTSIDE).await, "the sandbox reaches the outside host on the segment");
    cnm_tests::assert_ping(&outside.ns, "10.250.0.128".parse().unwrap()).await;
    d.ok(&["sandbox", "rm", "a"]);
    d.ok(&["network", "rm", "mv"]);
}

/// Without a cluster store, a global-scope network is refused with an error
/// that says what to start cnmd with.
#[tokio::test]
async fn overlay_without_a_cluster_store_is_refused() {
    let Some(d) = Daemon::start("overlay_without_a_cluster_store_is_refused").await else { return };
    let out = d.cnmctl(&["network", "create", "-d", "overlay", "ov"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--cluster-store etcd://HOST:PORT"), "{}", stderr(&out));
    assert!(!d.ok(&["network", "ls"]).contains(" ov "), "nothing created");
}

/// Values that would add lines to a sandbox's /etc/hosts or resolv.conf are
/// refused with a clear error and nothing is created; so is an alias.
#[tokio::test]
async fn newlines_never_reach_hosts_or_resolv_conf() {
    let Some(d) = Daemon::start("newlines_never_reach_hosts_or_resolv_conf").await else { return };
    let c = d.client();
    for body in [
        serde_json::json!({ "Name": "x", "Hostname": "a\n10.0.0.66 bank.example" }),
        serde_json::json!({ "Name": "x", "DnsOptions": ["ndots:1\nnameserver 6.6.6.6"] }),
        serde_json::json!({ "Name": "x", "DnsSearch": ["a\rb"] }),
    ] {
        let e = c.post::<_, serde_json::Value>("/sandboxes", &body).await.unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
        assert!(cnm::chain(&e).contains("not allowed in /etc/hosts or resolv.conf"), "{e}");
    }
    assert!(c.get::<serde_json::Value>("/sandboxes/x").await.is_err(), "nothing created");
    d.ok(&["network", "create", "--subnet", "10.231.3.0/24", "n"]);
    d.ok(&["sandbox", "create", "y"]);
    let body = serde_json::json!({ "Container": "y", "EndpointConfig": { "Aliases": ["ok\n10.0.0.66 evil"] } });
    let e = c.post_unit("/networks/n/connect", &body).await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    d.ok(&["sandbox", "rm", "y"]);
    d.ok(&["network", "rm", "n"]);
}

/// The API on TCP with `--tlsverify`: a client with a certificate of the
/// daemon's CA is served (through the library's client and cnmctl); one
/// with a certificate of another CA and one speaking plain HTTP are not;
/// a client stuck before its handshake delays no one.
#[tokio::test]
async fn tls_api_serves_only_clients_with_a_certificate() {
    if !cnm_tests::tools("tls_api_serves_only_clients_with_a_certificate", &["openssl"], "openssl") {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    common::make_certs(certs.path(), "IP:127.0.0.1");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let p = |f: &str| certs.path().join(f).to_str().unwrap().to_string();
    // `-H ADDR --tlsverify` with a CA and one side's certificate and key.
    let tls_args = |cert: &str, key: &str| -> Vec<String> {
        ["-H", &addr, "--tlsverify", "--tlscacert", &p("ca.pem"), "--tlscert", &p(cert), "--tlskey", &p(key)]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let daemon_args = tls_args("server.pem", "server.key");
    let args: Vec<&str> = daemon_args.iter().map(String::as_str).collect();
    let Some(d) = Daemon::start_with_args("tls_api_serves_only_clients_with_a_certificate", &args).await else {
        return;
    };
    let _: serde_json::Value = d.client().get("/networks").await.expect("the unix socket serves");
    let tcp: cnmd::listen::ListenAddr = addr.parse().unwrap();
    let files = |cert: &str, key: &str| cnmd::tls::TlsFiles {
        ca: p("ca.pem").into(),
        cert: p(cert).into(),
        key: p(key).into(),
    };
    // A client that connects and never starts its handshake holds no one
    // up (the daemon gives a handshake 10 s; the next client must not wait
    // for that).
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let good = cnmd::client::Client::with_tls(tcp.clone(), files("client.pem", "client.key").client_config().unwrap());
    let nets: Vec<serde_json::Value> = tokio::time::timeout(std::time::Duration::from_secs(5), good.get("/networks"))
        .await
        .expect("served while another client's handshake is pending")
        .expect("a client with a certificate is served");
    assert!(!nets.is_empty());
    let stranger =
        cnmd::client::Client::with_tls(tcp.clone(), files("stranger.pem", "stranger.key").client_config().unwrap());
    assert!(stranger.get::<serde_json::Value>("/networks").await.is_err(), "a certificate of another CA is refused");
    let plain = cnmd::client::Client::new(tcp);
    assert!(plain.get::<serde_json::Value>("/networks").await.is_err(), "plain HTTP is refused");
    // cnmctl too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnmctl"))
        .args(tls_args("client.pem", "client.key"))
        .args(["network", "ls"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Drift repair through the daemon: a sandbox's veth deleted on the host
/// behind cnmd's back is put back (the sandbox answers again) and
/// `cnmctl info` counts it, beside the other kinds of repair.
#[tokio::test]
async fn a_removed_veth_is_put_back_and_counted_in_info() {
    let Some(d) = Daemon::start("a_removed_veth_is_put_back_and_counted_in_info").await else { return };
    d.ok(&["network", "create", "--subnet", "10.231.29.0/24", "n1"]);
    for sb in ["a", "b"] {
        d.ok(&["sandbox", "create", sb]);
        d.ok(&["network", "connect", "n1", sb]);
    }
    let ip_a = d.ip("a", "n1");
    assert!(d.pings("b", &ip_a).await);
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["sandbox", "inspect", "a"])).unwrap();
    let eid = v[0]["Networks"]["n1"]["EndpointID"].as_str().expect("an endpoint id").to_string();
    let veth = d.host.nl.link_get(&format!("veth{}", &eid[..11])).await.unwrap().expect("a's veth");
    d.host.nl.link_del(veth.index).await.unwrap();

    let counted = |info: &str| info.lines().any(|l| l == "Repaired (bridge: container interface):\t1");
    let end = std::time::Instant::now() + Duration::from_secs(5);
    let mut info = d.ok(&["info"]);
    while !counted(&info) {
        assert!(std::time::Instant::now() < end, "no repair counted:\n{info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        info = d.ok(&["info"]);
    }
    assert!(info.contains("Repaired (bridge: bridge):\t0"), "{info}");
    assert!(d.pings("b", &ip_a).await, "a answers again");
    assert_eq!(d.ip("a", "n1"), ip_a, "with its address");
    d.ok(&["sandbox", "rm", "a", "b"]);
    d.ok(&["network", "rm", "n1"]);
}

/// `cnmctl network` takes what `docker network` users type: `-q`,
/// `--filter`, `--no-trunc`, Go-template `--format`, `inspect -f`; `rm` of
/// several names reports every failure and exits non-zero; `prune` asks
/// (and does nothing on no) unless `-f`; `sandbox exec` needs no `--`.
#[tokio::test]
async fn cnmctl_takes_docker_network_flags() {
    let Some(d) = Daemon::start("cnmctl_takes_docker_network_flags").await else { return };
    d.ok(&["network", "create", "--subnet", "10.231.7.0/24", "--label", "team=x", "f1"]);
    d.ok(&["network", "create", "--internal", "f2"]);
    let ids = d.ok(&["network", "ls", "-q"]);
    assert!(ids.lines().count() >= 2 && ids.lines().all(|l| l.len() == 12), "{ids}");
    let full = d.ok(&["network", "ls", "-q", "--no-trunc", "--filter", "name=f1"]);
    assert!(is_id(full.trim()), "{full}");
    let row = d.ok(&["network", "ls", "--filter", "label=team=x", "--format", "{{.Name}}\\t{{.Driver}} {{.Internal}}"]);
    assert_eq!(row, "f1\tbridge false\n");
    let driver = d.ok(&["network", "inspect", "-f", "{{.IPAM.Driver}} {{.Internal}} {{json .Labels}}", "f1", "f2"]);
    assert_eq!(driver, "default false {\"team\":\"x\"}\ndefault true {}\n");
    // The rest of the templates docker users write: table, index, range, if, and json lines.
    let table = d.ok(&["network", "ls", "--filter", "label=team=x", "--format", "table {{.Name}}\t{{.Driver}}"]);
    let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines, [vec!["NAME", "DRIVER"], vec!["f1", "bridge"]], "{table}");
    let tmpl =
        r#"{{index .Labels "team"}}{{range .IPAM.Config}} {{.Subnet}}{{end}} {{if .Internal}}in{{else}}out{{end}}"#;
    assert_eq!(d.ok(&["network", "inspect", "-f", tmpl, "f1"]), "x 10.231.7.0/24 out\n");
    let json = d.ok(&["network", "ls", "--filter", "name=f", "--format", "json"]);
    let names: Vec<String> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("one object a line")["Name"].to_string())
        .collect();
    assert_eq!(names, ["\"f1\"", "\"f2\""], "{json}");

    let out = d.cnmctl(&["network", "rm", "f1", "nope1", "nope2"]);
    assert!(!out.status.success(), "rm with missing networks must fail");
    let err = stderr(&out);
    assert!(err.contains("nope1") && err.contains("nope2") && err.contains("2 of 3"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "f1\n", "f1 was removed");

    // No answer (stdin closed) is no.
    let asked = d.cnmctl(&["network", "prune"]);
    assert!(asked.status.success());
    assert!(String::from_utf8_lossy(&asked.stdout).contains("Are you sure"), "prune asks first");
    assert!(d.ok(&["network", "ls", "--format", "{{.Name}}"]).lines().any(|l| l == "f2"), "nothing pruned on no");
    let pruned = d.ok(&["network", "prune", "-f"]);
    assert!(pruned.contains("f2"), "{pruned}");

    d.ok(&["sandbox", "create", "x"]);
    let lo = d.ok(&["sandbox", "exec", "x", "ip", "-o", "link", "show", "lo"]);
    assert!(lo.contains("lo:"), "exec without --: {lo}");
    // docker's newer flags: rm -f of a missing network, --ipv4=false and
    // --ipv6=false, connect --driver-opt (the interface's name) and --gw-priority.
    d.ok(&["network", "rm", "-f", "nope9"]);
    d.ok(&["network", "create", "--ipv4=false", "--ipv6", "v6only"]);
    d.ok(&["network", "create", "--ipv6=false", "--subnet", "10.231.9.0/24", "v4only"]);
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["network", "inspect", "v6only", "v4only"])).unwrap();
    assert_eq!((v[0]["EnableIPv4"].as_bool(), v[0]["EnableIPv6"].as_bool()), (Some(false), Some(true)), "{v}");
    assert_eq!((v[1]["EnableIPv4"].as_bool(), v[1]["EnableIPv6"].as_bool()), (Some(true), Some(false)), "{v}");
    let ifname = "com.docker.network.endpoint.ifname=lan0";
    d.ok(&["network", "connect", "--driver-opt", ifname, "--gw-priority", "5", "v4only", "x"]);
    let lan = d.ok(&["sandbox", "exec", "x", "ip", "-o", "-4", "addr", "show", "lan0"]);
    assert!(lan.contains("10.231.9."), "the interface is named as asked: {lan}");
    d.ok(&["network", "disconnect", "v4only", "x"]);
    d.ok(&["network", "rm", "v6only", "v4only"]);
    // Every failure of a multi-name sandbox command is reported; the
    // names that exist are still done.
    let out = d.cnmctl(&["sandbox", "rm", "nope1", "x", "nope2"]);
    assert!(!out.status.success(), "rm with missing sandboxes must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope1") && err.contains("nope2") && err.contains("2 of 3"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "x", "x is removed");
    let out = d.cnmctl(&["sandbox", "inspect", "nope3", "nope4"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nope3") && err.contains("nope4"), "{err}");
}
