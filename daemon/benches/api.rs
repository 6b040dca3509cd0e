//! API overhead: the same operations through the HTTP API (unix socket,
//! one connection per request, as the docker CLI's first request) and
//! through the library, each repeated 200 times on bridge networks in a
//! scratch host namespace; prints the medians and the difference.
//! Target: at most 1 ms added per request, network create and delete <= 2
//! ms. Then, through the API: attach alone (target <= 2.5 ms median) and
//! detach alone (target <= 2 ms median), 200 sandbox removals at once (target
//! <= 2 s), and `network ls` and a connect while a driver hangs in
//! CreateNetwork (target <= 10 ms). Needs root or a user namespace (skips otherwise).
//!
//! Run: `cargo bench -p cnmd --bench api`.

use cnm::{EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnmd::api::{ApiState, DaemonFacts};
use cnmd::client::Client;
use cnmd::listen::{ListenAddr, Listener};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A driver that never answers CreateNetwork, as a hung plugin.
struct Hanging;

#[async_trait::async_trait]
impl cnm::driverapi::Driver for Hanging {
    fn name(&self) -> &str {
        "hanging"
    }
    fn capability(&self) -> cnm::driverapi::Capability {
        cnm::driverapi::Capability::local()
    }
    async fn create_network(&self, _: cnm::driverapi::CreateNetworkRequest) -> cnm::driverapi::Result<()> {
        std::future::pending().await
    }
    async fn delete_network(&self, _: cnm::driverapi::DeleteNetworkRequest) -> cnm::driverapi::Result<()> {
        Ok(())
    }
    async fn create_endpoint(
        &self,
        _: cnm::driverapi::CreateEndpointRequest,
    ) -> cnm::driverapi::Result<cnm::driverapi::CreateEndpointResponse> {
        Ok(Default::default())
    }
    async fn delete_endpoint(&self, _: cnm::driverapi::DeleteEndpointRequest) -> cnm::driverapi::Result<()> {
        Ok(())
    }
    async fn join(&self, _: cnm::driverapi::JoinRequest) -> cnm::driverapi::Result<cnm::driverapi::JoinResponse> {
        Ok(Default::default())
    }
    async fn leave(&self, _: cnm::driverapi::LeaveRequest) -> cnm::driverapi::Result<()> {
        Ok(())
    }
}

const N: usize = 200;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    for foreign in [false, true] {
        run(foreign).await;
    }
}

/// Every measurement on a scratch host; with `foreign`, one whose iptables
/// `FORWARD` chain is a Docker host's (policy DROP, dockerd's chains).
async fn run(foreign: bool) {
    let Some(host) = cnm_tests::bench_host("bench api", foreign).await else { return };
    let ctrl = host
        .builder()
        .driver_on_host(|h| cnm_driver_bridge::BridgeDriver::new(h.clone()))
        .driver_arc(Arc::new(Hanging))
        .build()
        .await
        .expect("controller");
    let state = ApiState::new(ctrl.clone(), DaemonFacts::default());
    let addr = ListenAddr::Unix(host.dir.path().join("bench.sock"));
    let listener = Listener::bind(&addr).await.expect("bind");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let inflight = state.inflight.clone();
    let server = tokio::spawn(cnmd::server::serve(vec![listener], cnmd::server::router(state), inflight, async {
        let _ = stop_rx.await;
    }));
    let client = Client::new(addr);

    // The network the sandboxes use exists throughout, as cnmd's default
    // `bridge` network does: creates and deletes below are never the first
    // or last network (those add or take out the one foreign rule).
    let net = ctrl.new_network("bridge", "bench", NetworkConfig::default()).await.expect("network");

    // 1. network create, and delete.
    let (mut lib, mut api, mut lib_rm, mut api_rm) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..N {
        let t = Instant::now();
        let n = ctrl.new_network("bridge", &format!("lib{i}"), NetworkConfig::default()).await.expect("lib create");
        lib.push(t.elapsed());
        let t = Instant::now();
        n.delete().await.expect("delete");
        lib_rm.push(t.elapsed());
        let t = Instant::now();
        let _: serde_json::Value = client
            .post("/networks/create", &serde_json::json!({ "Name": format!("api{i}") }))
            .await
            .expect("api create");
        api.push(t.elapsed());
        let t = Instant::now();
        client.delete(&format!("/networks/api{i}")).await.expect("delete");
        api_rm.push(t.elapsed());
    }
    report("network create", lib, api);
    report("network delete", lib_rm, api_rm);

    // 2. sandbox create + connect, 3. disconnect + sandbox rm.
    let (mut lib_up, mut api_up, mut lib_down, mut api_down) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..N {
        let name = format!("l{i}");
        let t = Instant::now();
        let sb = ctrl.new_sandbox(&name, SandboxConfig::default()).await.expect("sandbox");
        let ep = net.create_endpoint(&name, EndpointConfig::default()).await.expect("endpoint");
        ep.join(&sb, JoinOptions::default()).await.expect("join");
        lib_up.push(t.elapsed());
        let t = Instant::now();
        ep.leave(&sb).await.expect("leave");
        ep.delete().await.expect("delete endpoint");
        sb.delete().await.expect("delete sandbox");
        lib_down.push(t.elapsed());

        let name = format!("a{i}");
        let t = Instant::now();
        let _: serde_json::Value =
            client.post("/sandboxes", &serde_json::json!({ "Name": name })).await.expect("api sandbox");
        client.post_unit("/networks/bench/connect", &serde_json::json!({ "Container": name })).await.expect("connect");
        api_up.push(t.elapsed());
        let t = Instant::now();
        client
            .post_unit("/networks/bench/disconnect", &serde_json::json!({ "Container": name }))
            .await
            .expect("disconnect");
        client.delete(&format!("/sandboxes/{name}")).await.expect("api rm");
        api_down.push(t.elapsed());
    }
    report("sandbox create + connect", lib_up, api_up);
    report("disconnect + sandbox rm", lib_down, api_down);

    // 4. A request with no kernel work (network inspect): the bare API cost.
    let (mut lib, mut api) = (Vec::new(), Vec::new());
    for _ in 0..N {
        let t = Instant::now();
        let _ = net.info().await.expect("info");
        lib.push(t.elapsed());
        let t = Instant::now();
        let _: serde_json::Value = client.get("/networks/bench").await.expect("inspect");
        api.push(t.elapsed());
    }
    report("network inspect", lib, api);

    // 5. Attach alone (connect) and detach alone (disconnect), on the shared network.
    let (mut attach, mut detach) = (Vec::new(), Vec::new());
    for i in 0..N {
        let name = format!("d{i}");
        let _: serde_json::Value =
            client.post("/sandboxes", &serde_json::json!({ "Name": name })).await.expect("sandbox");
        let t = Instant::now();
        client.post_unit("/networks/bench/connect", &serde_json::json!({ "Container": name })).await.expect("connect");
        attach.push(t.elapsed());
        let t = Instant::now();
        client
            .post_unit("/networks/bench/disconnect", &serde_json::json!({ "Container": name }))
            .await
            .expect("disconnect");
        detach.push(t.elapsed());
        client.delete(&format!("/sandboxes/{name}")).await.expect("rm");
    }
    println!("attach (connect)           API median {:>8.3} ms (target <= 2.5 ms) [{N}]", ms(median(attach)));
    let mut sorted = detach.clone();
    sorted.sort();
    println!(
        "detach (disconnect)        API median {:>8.3} ms  p95 {:>8.3} ms (target median <= 2 ms) [{N}]",
        ms(median(detach)),
        ms(sorted[sorted.len() * 95 / 100])
    );

    // 6. 200 connected sandboxes removed at once.
    for i in 0..N {
        let name = format!("r{i}");
        let _: serde_json::Value =
            client.post("/sandboxes", &serde_json::json!({ "Name": name })).await.expect("sandbox");
        client.post_unit("/networks/bench/connect", &serde_json::json!({ "Container": name })).await.expect("connect");
    }
    let t = Instant::now();
    let mut rms = tokio::task::JoinSet::new();
    for i in 0..N {
        let client = client.clone();
        rms.spawn(async move { client.delete(&format!("/sandboxes/r{i}")).await });
    }
    while let Some(r) = rms.join_next().await {
        r.expect("task").expect("rm");
    }
    println!("{N} parallel sandbox rm      API total  {:>8.1} ms (target <= 2000 ms)", ms(t.elapsed()));

    // 7. A driver hangs in CreateNetwork: list and connect meanwhile.
    let hung = tokio::spawn({
        let client = client.clone();
        async move {
            let _ = client
                .post::<_, serde_json::Value>(
                    "/networks/create",
                    &serde_json::json!({ "Name": "stuck", "Driver": "hanging" }),
                )
                .await;
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (mut ls, mut connect) = (Vec::new(), Vec::new());
    for i in 0..N {
        let t = Instant::now();
        let _: serde_json::Value = client.get("/networks").await.expect("ls");
        ls.push(t.elapsed());
        let name = format!("h{i}");
        let _: serde_json::Value =
            client.post("/sandboxes", &serde_json::json!({ "Name": name })).await.expect("sandbox");
        let t = Instant::now();
        client.post_unit("/networks/bench/connect", &serde_json::json!({ "Container": name })).await.expect("connect");
        connect.push(t.elapsed());
        client.delete(&format!("/sandboxes/{name}")).await.expect("rm");
    }
    assert!(!hung.is_finished(), "the hanging call is still pending");
    println!(
        "while a driver hangs       network ls median {:>7.3} ms, connect median {:>7.3} ms (target <= 10 ms) [{N}]",
        ms(median(ls)),
        ms(median(connect))
    );
    hung.abort();
    net.delete().await.expect("delete network");
    // A graceful stop would wait for the hung request: end the server instead.
    drop(stop_tx);
    server.abort();
}

fn report(what: &str, lib: Vec<Duration>, api: Vec<Duration>) {
    let (l, a) = (median(lib), median(api));
    let added = ms(a) - ms(l);
    // Two requests for the combined operations: the target is per request.
    let requests = if what.contains('+') { 2.0 } else { 1.0 };
    println!(
        "{what:<26} library {:>8.3} ms   API {:>8.3} ms   added {:>7.3} ms ({:.3} ms per request; target <= 1 ms) [median of {N}]",
        ms(l),
        ms(a),
        added,
        added / requests
    );
}
