//! The recorded Docker traffic: Docker Engine 20.10 facing a recording
//! plugin, kept as test fixtures in `tests/fixtures/traces` (a copy of the
//! project's shared conformance set; see its README), and the commands of
//! its scenarios, parsed for the suites that drive them.

use std::path::{Path, PathBuf};

/// The directory of the recorded traces: `CNM_TRACES_DIR` when set (to
/// run the suites against another recorded set), else the fixtures.
pub fn dir() -> PathBuf {
    std::env::var_os("CNM_TRACES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/traces"))
}

/// The trace files (`*.jsonl` without `.steps`), sorted; panics if the visible set is missing.
pub fn files() -> Vec<PathBuf> {
    let dir = dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the conformance traces must be at {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl") && !p.to_string_lossy().ends_with(".steps.jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "expected the visible trace set, found {files:?}");
    files
}

/// The lines of a JSON-lines file.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// One scenario: its trace (a call per line) and its steps.
pub fn scenario(prefix: &str) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let file = files()
        .into_iter()
        .find(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
        .unwrap_or_else(|| panic!("no trace named {prefix}*"));
    let trace = read_jsonl(&file);
    let steps = read_jsonl(&file.with_extension("").with_extension("steps.jsonl"));
    (trace, steps)
}

/// The recorded calls that arrived while `step` ran (its `seq_first`…`seq_last`).
pub fn calls_of<'a>(trace: &'a [serde_json::Value], step: &serde_json::Value) -> Vec<&'a serde_json::Value> {
    match (step["seq_first"].as_u64(), step["seq_last"].as_u64()) {
        (Some(a), Some(b)) => {
            trace.iter().filter(|c| c["seq"].as_u64().is_some_and(|s| (a..=b).contains(&s))).collect()
        }
        _ => Vec::new(),
    }
}

/// Splits a shell command line (single quotes only, as the steps use).
pub fn words(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in cmd.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// A step's command, classified (arguments after the subcommand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `docker network create ARGS`.
    NetworkCreate(Vec<String>),
    /// `docker network connect ARGS`.
    NetworkConnect(Vec<String>),
    /// `docker network disconnect NETWORK CONTAINER`.
    NetworkDisconnect(String, String),
    /// `docker network rm NETWORK…`.
    NetworkRm(Vec<String>),
    /// `docker network inspect ARGS` (the whole argument list, `-f` included).
    NetworkInspect(Vec<String>),
    /// `docker run ARGS` (flags, then the image and its command).
    Run(Vec<String>),
    /// `docker create ARGS`.
    Create(Vec<String>),
    /// `docker start CONTAINER`.
    Start(String),
    /// `docker stop … CONTAINER`.
    Stop(String),
    /// `docker restart … CONTAINER`.
    Restart(String),
    /// `docker rm … CONTAINER`.
    Rm(String),
    /// `docker port` / `docker inspect` of CONTAINER: reads only.
    Inspect(String),
    /// `docker exec …`: nothing the network sees.
    Exec,
    /// The Engine API's container create (a `curl` command): the container's name and body.
    ApiCreate(String, serde_json::Value),
}

impl Command {
    /// Classifies a step's command line; panics on a command no scenario uses.
    pub fn parse(cmd: &str) -> Command {
        if cmd.starts_with("curl ") {
            let name = cmd.split("name=").nth(1).and_then(|s| s.split('\'').next()).expect("name=").to_string();
            let body = cmd.split(" -d '").nth(1).expect("a -d body").trim_end_matches('\'');
            return Command::ApiCreate(name, serde_json::from_str(body).expect("a JSON body"));
        }
        let w: Vec<String> = words(cmd).into_iter().skip(1).collect();
        let last = || w.last().cloned().unwrap_or_default();
        match (w[0].as_str(), w.get(1).map(String::as_str)) {
            ("network", Some("create")) => Command::NetworkCreate(w[2..].to_vec()),
            ("network", Some("connect")) => Command::NetworkConnect(w[2..].to_vec()),
            ("network", Some("disconnect")) => Command::NetworkDisconnect(w[2].clone(), w[3].clone()),
            ("network", Some("rm")) => Command::NetworkRm(w[2..].to_vec()),
            ("network", Some("inspect")) => Command::NetworkInspect(w[2..].to_vec()),
            ("run", _) => Command::Run(w[1..].to_vec()),
            ("create", _) => Command::Create(w[1..].to_vec()),
            ("start", _) => Command::Start(last()),
            ("stop", _) => Command::Stop(last()),
            ("restart", _) => Command::Restart(last()),
            ("rm", _) => Command::Rm(last()),
            ("port" | "inspect", _) => Command::Inspect(w[1].clone()),
            ("exec", _) => Command::Exec,
            other => panic!("unsupported step {other:?}: {cmd}"),
        }
    }
}

/// Sorts calls by endpoint (stable), for steps whose order across
/// endpoints is random in dockerd (a container with several networks starting).
pub fn per_endpoint<T: Clone>(calls: &[T], endpoint: impl Fn(&T) -> String) -> Vec<T> {
    let mut v = calls.to_vec();
    v.sort_by_key(|c| endpoint(c));
    v
}

/// One test per visible scenario, each running `scenario(prefix)` (an
/// async fn of the caller's); `$what` ends each test's doc line.
#[macro_export]
macro_rules! trace_tests {
    ($scenario:path, $what:literal) => {
        $crate::trace_tests!(@each $scenario, $what,
            a1_lifecycle => "a1-", a2_connect_disconnect => "a2-", a3_published_ports => "a3-",
            a4_create_connect_start => "a4-", b1_options_ipv6_static => "b1-", b2_internal_network => "b2-",
            b3_connect_with_options => "b3-", b4_multiple_subnets => "b4-", c1_remote_ipam_auto_pool => "c1-",
            c2_remote_ipam_explicit => "c2-", c3_remote_ipam_bridge => "c3-", c4_remote_ipam_subnets => "c4-");
    };
    (@each $scenario:path, $what:literal, $($name:ident => $prefix:literal),*) => {$(
        #[doc = concat!("Trace ", $prefix, ": ", $what)]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $scenario($prefix).await;
        }
    )*};
}

/// A scenario's world of containers: what the lifecycle commands need.
pub trait Containers {
    /// Records a container from `docker run`/`docker create` flags; returns its name.
    fn define(&mut self, args: &[String]) -> String;
    /// How many networks container `name` has.
    fn network_count(&self, name: &str) -> usize;
    /// Starts container `name` (a sandbox, then its networks in order).
    fn start(&mut self, name: &str) -> impl std::future::Future<Output = ()>;
    /// Stops container `name` if it runs (its sandbox goes).
    fn stop(&mut self, name: &str) -> impl std::future::Future<Output = ()>;
    /// Forgets container `name` (stopped).
    fn forget(&mut self, name: &str);
}

/// Runs a lifecycle command (`run`, `create`, `start`, `stop`, `restart`,
/// `rm`) on `world`: `Some(unordered)` when it was one — whether its calls
/// may interleave across endpoints (a start with several networks) — and
/// `None` for any other command.
pub async fn lifecycle<W: Containers>(world: &mut W, command: &Command) -> Option<bool> {
    let starting = |w: &W, name: &str| w.network_count(name) > 1;
    Some(match command {
        Command::Run(args) => {
            let name = world.define(args);
            world.start(&name).await;
            starting(world, &name)
        }
        Command::Create(args) => {
            world.define(args);
            false
        }
        Command::Start(name) => {
            world.start(name).await;
            starting(world, name)
        }
        Command::Stop(name) => {
            world.stop(name).await;
            false
        }
        Command::Restart(name) => {
            world.stop(name).await;
            world.start(name).await;
            starting(world, name)
        }
        Command::Rm(name) => {
            world.stop(name).await;
            world.forget(name);
            false
        }
        _ => return None,
    })
}

/// Normalises request bodies for comparison: network ids become `N1…` by
/// first appearance, endpoint ids `N1.E1…` per network, sandbox keys `SB`,
/// exposed-port lists sorted (Go map order in dockerd).
#[derive(Debug, Default)]
pub struct Normaliser {
    nets: std::collections::HashMap<String, String>,
    eps: std::collections::HashMap<String, String>,
    per_net: std::collections::HashMap<String, usize>,
}

impl Normaliser {
    /// `body` with its ids labelled.
    pub fn body(&mut self, body: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        let mut v = body.clone();
        let Some(o) = v.as_object_mut() else { return v };
        if let Some(Value::String(n)) = o.get("NetworkID").cloned() {
            let k = self.nets.len() + 1;
            let net = self.nets.entry(n).or_insert_with(|| format!("N{k}")).clone();
            o.insert("NetworkID".into(), net.clone().into());
            if let Some(Value::String(e)) = o.get("EndpointID").cloned() {
                let label = match self.eps.get(&e) {
                    Some(l) => l.clone(),
                    None => {
                        let c = self.per_net.entry(net.clone()).or_default();
                        *c += 1;
                        let l = format!("{net}.E{c}");
                        self.eps.insert(e, l.clone());
                        l
                    }
                };
                o.insert("EndpointID".into(), label.into());
            }
        }
        if o.contains_key("SandboxKey") {
            o.insert("SandboxKey".into(), "SB".into());
        }
        if let Some(Value::Object(opts)) = o.get_mut("Options")
            && let Some(Value::Array(a)) = opts.get_mut("com.docker.network.endpoint.exposedports")
        {
            a.sort_by_key(|x| x.to_string());
        }
        v
    }
}
