//! The daemon under concurrent clients (privileged): no deadlock, no error
//! but the documented conflicts, and afterwards the kernel, the API and the
//! store agree.

mod common;

use cnmd::client::{Client, ClientError};
use common::Daemon;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Two connects of one sandbox to one network at once: exactly one
/// succeeds, the other is refused as already connected, and the sandbox
/// keeps one working interface (today's bug: the second deleted the first's endpoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_connects_of_one_sandbox() {
    let Some(d) = Daemon::start("two_concurrent_connects_of_one_sandbox").await else { return };
    d.ok(&["network", "create", "--subnet", "10.231.6.0/24", "dup"]);
    d.ok(&["sandbox", "create", "peer"]);
    d.ok(&["network", "connect", "dup", "peer"]);
    d.ok(&["sandbox", "create", "twice"]);
    let client = d.client();
    for round in 0..10 {
        let connect = || {
            let c = client.clone();
            async move { c.post_unit("/networks/dup/connect", &json!({ "Container": "twice" })).await }
        };
        let (a, b) = tokio::join!(connect(), connect());
        let refused = match (a, b) {
            (Ok(()), Err(e)) | (Err(e), Ok(())) => e,
            other => panic!("round {round}: expected one success and one refusal, got {other:?}"),
        };
        assert_eq!(refused.status().map(|s| s.as_u16()), Some(403), "round {round}: {refused}");
        assert!(refused.to_string().contains("already connected"), "round {round}: {refused}");
        let v: Value = client.get("/networks/dup").await.unwrap();
        assert_eq!(v["Containers"].as_object().unwrap().len(), 2, "round {round}: one endpoint each");
        assert!(d.pings("twice", &d.ip("peer", "dup")).await, "round {round}: the joined interface works");
        client.post_unit("/networks/dup/disconnect", &json!({ "Container": "twice" })).await.unwrap();
    }
}

/// A tiny deterministic generator (xorshift), one per client.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Whether an error is one of the documented refusals a client can meet
/// when its request races with its own state or another client's.
fn documented(e: &ClientError) -> bool {
    let msg = cnm::chain(&e);
    match e.status().map(|s| s.as_u16()) {
        Some(403) => msg.contains("already connected") || msg.contains("active endpoints"),
        Some(404) => msg.contains("not connected") || msg.contains("not found"),
        Some(409) => msg.contains("already exists"),
        _ => false,
    }
}

async fn api(client: &Client, method: &str, path: &str, body: Value) -> Result<(), ClientError> {
    match method {
        "post" => client.post_unit(path, &body).await,
        "delete" => client.delete(path).await,
        _ => unreachable!("test helper called with {method}"),
    }
}

/// 200 clients at once, each doing random creates, connects, disconnects
/// and deletes on two shared networks and a network of its own, for a
/// bounded number of steps under a watchdog: no deadlock, no error but the
/// documented conflicts; then every address is held once, each sandbox's
/// namespace has exactly the interfaces the API reports, the host has a
/// bridge per network and a veth per joined endpoint, and a restarted
/// daemon (the store) reports the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_clients_random_operations() {
    const CLIENTS: usize = 200;
    const STEPS: usize = 8;
    let Some(mut d) = Daemon::start("two_hundred_clients_random_operations").await else { return };
    d.ok(&["network", "create", "--subnet", "10.231.8.0/22", "s0"]);
    d.ok(&["network", "create", "--subnet", "10.231.12.0/22", "s1"]);
    let client = d.client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CLIENTS {
        let client = client.clone();
        tasks.spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
            let (sb, own) = (format!("c{i}"), format!("n{i}"));
            let subnet = format!("10.232.{i}.0/24");
            let mut undocumented = Vec::new();
            let mut step = |r: Result<(), ClientError>, what: &str| {
                if let Err(e) = r
                    && !documented(&e)
                {
                    undocumented.push(format!("{sb} {what}: {e}"));
                }
            };
            step(client.post::<_, Value>("/sandboxes", &json!({ "Name": sb })).await.map(|_| ()), "create sandbox");
            for _ in 0..STEPS {
                let net = match rng.below(3) {
                    0 => "s0".to_string(),
                    1 => "s1".to_string(),
                    _ => own.clone(),
                };
                match rng.below(6) {
                    0 | 1 => {
                        let path = format!("/networks/{net}/connect");
                        step(api(&client, "post", &path, json!({ "Container": sb })).await, &path);
                    }
                    2 => {
                        let path = format!("/networks/{net}/disconnect");
                        step(api(&client, "post", &path, json!({ "Container": sb })).await, &path);
                    }
                    3 => {
                        let body = json!({ "Name": own, "IPAM": { "Config": [{ "Subnet": subnet }] } });
                        let r = client.post::<_, Value>("/networks/create", &body).await.map(|_| ());
                        step(r, "create own network");
                    }
                    4 => step(api(&client, "delete", &format!("/networks/{own}"), json!(null)).await, "delete own"),
                    _ => {
                        step(api(&client, "delete", &format!("/sandboxes/{sb}"), json!(null)).await, "remove sandbox");
                        let r = client.post::<_, Value>("/sandboxes", &json!({ "Name": sb })).await.map(|_| ());
                        step(r, "recreate sandbox");
                    }
                }
            }
            undocumented
        });
    }
    let failures = tokio::time::timeout(Duration::from_secs(300), async {
        let mut all = Vec::new();
        while let Some(r) = tasks.join_next().await {
            all.extend(r.expect("client task"));
        }
        all
    })
    .await
    .expect("200 clients did not finish within 300 s: deadlock?");
    assert!(failures.is_empty(), "undocumented errors: {failures:#?}");

    let before = view(&client).await;
    check_kernel(&d, &before).await;
    assert!(d.sigterm(), "clean stop");
    d.spawn();
    let after = view(&d.client()).await;
    assert_eq!(before, after, "the restarted daemon restores exactly what was there");
}

/// What the API reports: per sandbox, its networks and addresses.
async fn view(client: &Client) -> BTreeMap<String, BTreeMap<String, String>> {
    let sandboxes: Value = client.get("/sandboxes").await.expect("list sandboxes");
    let mut out = BTreeMap::new();
    for s in sandboxes.as_array().expect("a list") {
        let name = s["Name"].as_str().expect("a name").to_string();
        let v: Value = client.get(&format!("/sandboxes/{name}")).await.expect("inspect sandbox");
        let nets = v["Networks"]
            .as_object()
            .map(|m| m.iter().map(|(k, n)| (k.clone(), n["IPAddress"].as_str().unwrap_or("").to_string())).collect())
            .unwrap_or_default();
        out.insert(name, nets);
    }
    out
}

/// The kernel agrees with the API: addresses held once, one interface per
/// connection in each sandbox, a bridge per network, a veth per connection.
async fn check_kernel(d: &Daemon, view: &BTreeMap<String, BTreeMap<String, String>>) {
    let mut seen = BTreeSet::new();
    let mut joined = 0;
    for (sb, nets) in view {
        for ip in nets.values() {
            assert!(seen.insert(ip.clone()), "address {ip} held twice (again by {sb})");
        }
        joined += nets.len();
        let v: Value = serde_json::from_str(&d.ok(&["sandbox", "inspect", sb])).expect("json");
        let ns = cnm::osl::Namespace::open(v[0]["Key"].as_str().expect("a key")).expect("sandbox namespace");
        let want = nets.len();
        let links = settle(|| cnm_tests::links_in(&ns), |l: &Vec<String>| l.len() == want + 1).await;
        assert_eq!(links.len(), want + 1, "{sb}: lo and one interface per network: {links:?} for {nets:?}");
    }
    let networks: Value = d.client().get("/networks").await.expect("list networks");
    let bridges = networks.as_array().expect("a list").iter().filter(|n| n["Driver"] == "bridge").count();
    let is_bridge = |n: &String| n.starts_with("br-") || n.as_str() == "cnm0";
    let host_links = settle(
        || d.host.links(),
        |l: &Vec<String>| {
            l.iter().filter(|n| n.starts_with("veth")).count() == joined
                && l.iter().filter(|n| is_bridge(n)).count() == bridges
        },
    )
    .await;
    let veths = host_links.iter().filter(|n| n.starts_with("veth")).count();
    assert_eq!(veths, joined, "one veth per connection on the host: {host_links:?}");
    let host_bridges = host_links.iter().filter(|n| is_bridge(n)).count();
    let warnings =
        || d.log().lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect::<Vec<_>>().join("\n");
    assert_eq!(
        host_bridges,
        bridges,
        "one bridge per bridge network: {host_links:?}\ndaemon warnings:\n{}",
        warnings()
    );
}

/// Polls `get` until `done` holds (background deletions finish within tens
/// of milliseconds), for at most five seconds; returns the last value.
async fn settle<T, F, Fut>(get: F, done: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = T>,
{
    let end = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v = get().await;
        if done(&v) || std::time::Instant::now() > end {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
