//! Living beside other firewalls: iptables' `FORWARD` chain.
//!
//! A packet is forwarded only if *every* base chain at the forward hook
//! accepts it: `inet cnm` accepting is not enough when dockerd, ufw or an
//! administrator has set the iptables `FORWARD` policy to DROP (iptables-nft's
//! `ip filter` table or iptables-legacy's). So cnm's table marks the packets
//! of its bridges (chain `mark`, before iptables' filter priority: one bit,
//! [`FORWARD_MARK`], or-ed into the packet's mark), and when such a foreign
//! chain is in use (a policy other than ACCEPT, or rules) cnm adds to it
//! exactly one rule per family, at the top, that accepts packets with that
//! bit: `-m mark --mark 0x1000/0x1000 -m comment --comment "cnm: …" -j
//! ACCEPT`. The number of foreign rules is constant, whatever the number of
//! networks. That hands the verdict on traffic of cnm's bridges to `inet
//! cnm`, which still enforces isolation, ICC, internal networks and
//! published ports; every other packet goes on through the foreign chain
//! untouched. The policy, the other rules and chains (Docker's
//! `DOCKER-USER` among them) are never changed.
//!
//! What iptables-nft's chains hold is read over nf_tables netlink on every
//! network change (no process); the rule itself is written by the host's own
//! `iptables` tool (rules in its tables written by other means make
//! iptables-nft refuse to list them), so a process runs only when the rule
//! is added (the first network beside a chain in use) or taken out (with the
//! last network). iptables-legacy's chains can only be read by its tool:
//! they are read once (at the first network, again after the last one went).

use crate::{Error, Namespace, Result};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

/// The bit of the packet mark that cnm's chain `mark` sets on traffic of its
/// bridges, and that cnm's rule in foreign `FORWARD` chains accepts. Chosen
/// apart from the bits kube-proxy (0x4000, 0x8000), netavark (0x2000),
/// Cilium (0x0f00) and Istio (0x539) use.
pub const FORWARD_MARK: u32 = 0x1000;

/// The comment of cnm's rule in foreign chains: how it is recognised.
pub const COMMENT: &str = "cnm: traffic of the bridges of cnm, filtered by table inet cnm";

/// The chain older cnm versions kept in foreign `filter` tables (taken out
/// when found).
const OLD_CHAIN: &str = "CNM-FORWARD";

/// One iptables tool and where it says it keeps its tables.
#[derive(Debug, Clone, Copy)]
struct Tool {
    /// The command.
    name: &'static str,
    /// For the nf_tables backend, the family of its `filter` table.
    nft_family: Option<u8>,
    /// For the legacy backend, the `/proc` file listing the namespace's
    /// tables (read before running the tool, which would otherwise load
    /// the kernel's legacy tables just by listing them).
    legacy_tables: Option<&'static str>,
}

const TOOLS: [Tool; 4] = [
    Tool { name: "iptables-nft", nft_family: Some(NFPROTO_IPV4), legacy_tables: None },
    Tool { name: "ip6tables-nft", nft_family: Some(NFPROTO_IPV6), legacy_tables: None },
    Tool { name: "iptables-legacy", nft_family: None, legacy_tables: Some("/proc/thread-self/net/ip_tables_names") },
    Tool { name: "ip6tables-legacy", nft_family: None, legacy_tables: Some("/proc/thread-self/net/ip6_tables_names") },
];

const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_GETRULE: u16 = 7;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NF_ACCEPT: u32 = 1;

/// What one family's iptables-nft `FORWARD` chain holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NftForward {
    family: u8,
    /// The policy is not ACCEPT, or other rules are there: cnm must take part.
    in_use: bool,
    /// cnm's rule is there.
    ours: bool,
}

/// Reads the iptables-nft `FORWARD` chains (netlink only: no process, and a
/// host without them costs two requests). An answer that cannot be read
/// counts as "in use, without cnm's rule": the tool then decides.
pub(crate) fn nft_forward_chains(sock: &mut super::nfnl::Socket) -> Vec<NftForward> {
    [NFPROTO_IPV4, NFPROTO_IPV6].into_iter().filter_map(|family| read_chain(sock, family)).collect()
}

fn read_chain(sock: &mut super::nfnl::Socket, family: u8) -> Option<NftForward> {
    let unclear = NftForward { family, in_use: true, ours: false };
    let what = format!("get chain FORWARD of table filter (family {family})");
    let chain = match sock.request(NFT_MSG_GETCHAIN, 0, family, &what, |w| {
        w.attr_str(NFTA_CHAIN_TABLE, "filter");
        w.attr_str(NFTA_CHAIN_NAME, "FORWARD");
    }) {
        Ok(answers) => answers,
        Err(e) if e.is_not_found() => return None,
        Err(_) => return Some(unclear),
    };
    let policy = chain
        .iter()
        .flat_map(|a| super::nfnl::attrs(a))
        .find(|(t, _)| *t == NFTA_CHAIN_POLICY)
        .and_then(|(_, v)| Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?)));
    let what = format!("list rules of chain FORWARD of table filter (family {family})");
    let Ok(rules) = sock.request(NFT_MSG_GETRULE, super::nfnl::NLM_F_DUMP, family, &what, |w| {
        w.attr_str(NFTA_RULE_TABLE, "filter");
        w.attr_str(NFTA_RULE_CHAIN, "FORWARD");
    }) else {
        return Some(unclear);
    };
    let (mut ours, mut others) = (false, 0usize);
    for rule in &rules {
        let exprs = super::nfnl::attrs(rule).find(|(t, _)| *t == NFTA_RULE_EXPRESSIONS).map(|(_, v)| v);
        // The comment is an `xt` match whose data holds the text.
        if exprs.is_some_and(|e| e.windows(COMMENT.len()).any(|w| w == COMMENT.as_bytes())) {
            ours = true;
        } else {
            others += 1;
        }
    }
    Some(NftForward { family, in_use: policy != Some(NF_ACCEPT) || others > 0, ours })
}

/// The iptables `FORWARD` chains of a namespace, as cnm touches them.
#[derive(Debug, Clone)]
pub struct ForeignForward {
    ns: Namespace,
    /// Serialises changes (two first networks at once add one rule), and
    /// remembers whether iptables-legacy's chains were read since cnm's
    /// first network.
    legacy_read: Arc<tokio::sync::Mutex<bool>>,
}

impl ForeignForward {
    /// The chains of namespace `ns`.
    pub fn new(ns: Namespace) -> Self {
        ForeignForward { ns, legacy_read: Arc::default() }
    }

    /// Brings the foreign chains in line with whether cnm has bridges:
    /// with some, cnm's rule is in every chain in use; with none, in no
    /// chain. `nft`: iptables-nft's chains as read now. Runs a tool only
    /// where something must change (and reads iptables-legacy's chains
    /// once per lifetime of cnm's networks).
    pub(crate) async fn sync(&self, nft: Vec<NftForward>, bridges: bool) -> Result<()> {
        let mut legacy_read = self.legacy_read.lock().await;
        let nft_work: Vec<u8> =
            nft.iter().filter(|c| if bridges { c.in_use && !c.ours } else { c.ours }).map(|c| c.family).collect();
        // Legacy chains: read at the first network, and once after the last one.
        let legacy_work = bridges != *legacy_read;
        if nft_work.is_empty() && !legacy_work {
            return Ok(());
        }
        let act = if bridges { add_blocking } else { take_out_blocking };
        let done = self.each_tool(nft_work, legacy_work, act).await;
        *legacy_read = bridges;
        done
    }

    /// Removes cnm's rules (and an older cnm's chain) from every foreign
    /// table: iptables-nft's where `nft` has a chain, iptables-legacy's if
    /// it has a `filter` table.
    pub(crate) async fn remove_all(&self, nft: Vec<NftForward>) -> Result<()> {
        let mut legacy_read = self.legacy_read.lock().await;
        *legacy_read = false;
        self.each_tool(nft.iter().map(|c| c.family).collect(), true, take_out_blocking).await
    }

    /// Runs `act` in the namespace (one thread for all) with the installed
    /// iptables-nft tools of `nft_families`, and with `legacy` the
    /// iptables-legacy tools whose `filter` table exists; the first error,
    /// after trying all.
    async fn each_tool(&self, nft_families: Vec<u8>, legacy: bool, act: fn(&Found) -> Result<()>) -> Result<()> {
        self.ns
            .run(move || {
                let mut first_err = None;
                let picked = |t: &&Tool| match (t.nft_family, t.legacy_tables) {
                    (Some(family), _) => nft_families.contains(&family),
                    (None, Some(file)) => legacy && legacy_filter_table(file),
                    (None, None) => false,
                };
                for tool in TOOLS.iter().filter(picked) {
                    let Some(found) = find(tool) else { continue };
                    if let Err(e) = act(&found) {
                        tracing::warn!(tool = tool.name, error = %crate::Chain(&e), "iptables FORWARD chain");
                        first_err.get_or_insert(e);
                    }
                }
                first_err.map_or(Ok(()), Err)
            })
            .await?
    }
}

/// Whether iptables-legacy has a `filter` table in the calling thread's namespace.
fn legacy_filter_table(file: &str) -> bool {
    std::fs::read_to_string(file).is_ok_and(|s| s.lines().any(|l| l == "filter"))
}

/// An installed tool.
#[derive(Debug, Clone)]
struct Found {
    name: &'static str,
    path: PathBuf,
}

fn find(tool: &Tool) -> Option<Found> {
    Some(Found { name: tool.name, path: which(tool.name)? })
}

/// cnm's rule, as the tool's arguments after the chain.
fn rule() -> [String; 10] {
    let mark = format!("{FORWARD_MARK:#x}/{FORWARD_MARK:#x}");
    ["-m", "mark", "--mark", &mark, "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"].map(str::to_string)
}

/// Adds cnm's rule at the top of the tool's `FORWARD` chain if the chain is
/// in use and the rule is not there.
fn add_blocking(tool: &Found) -> Result<()> {
    // A tool that cannot even list (no permission, say) has nothing cnm can change.
    let state = match run(tool, &["-S", "FORWARD"]) {
        Ok(text) => parse_forward(&text),
        Err(e) => {
            tracing::debug!(tool = tool.name, error = %crate::Chain(&e), "iptables not usable here");
            return Ok(());
        }
    };
    remove_old_chain(tool)?;
    if state.in_use && !state.ours {
        let mut args = vec!["-I".to_string(), "FORWARD".into(), "1".into()];
        args.extend(rule());
        run(tool, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
        tracing::info!(tool = tool.name, "iptables FORWARD chain in use: accepts traffic cnm marked");
    }
    Ok(())
}

/// Takes every copy of cnm's rule (and an older cnm's chain) out.
fn take_out_blocking(tool: &Found) -> Result<()> {
    let mut delete = vec!["-D".to_string(), "FORWARD".into()];
    delete.extend(rule());
    let delete: Vec<&str> = delete.iter().map(String::as_str).collect();
    let Ok(text) = run(tool, &["-S", "FORWARD"]) else { return Ok(()) };
    for _ in 0..parse_forward(&text).copies {
        run(tool, &delete)?;
    }
    remove_old_chain(tool)
}

/// An older cnm's jump and chain (`-j CNM-FORWARD`), if there.
fn remove_old_chain(tool: &Found) -> Result<()> {
    if run(tool, &["-S", OLD_CHAIN]).is_err() {
        return Ok(());
    }
    while run(tool, &["-C", "FORWARD", "-j", OLD_CHAIN]).is_ok() {
        run(tool, &["-D", "FORWARD", "-j", OLD_CHAIN])?;
    }
    run(tool, &["-F", OLD_CHAIN])?;
    run(tool, &["-X", OLD_CHAIN])?;
    Ok(())
}

/// What `iptables -S FORWARD` says, as cnm reads it.
#[derive(Debug, Default, PartialEq, Eq)]
struct ForwardState {
    /// The policy is not ACCEPT, or other rules are there.
    in_use: bool,
    /// cnm's rule is there.
    ours: bool,
    /// How many times.
    copies: usize,
}

/// Reads `iptables -S FORWARD`.
fn parse_forward(text: &str) -> ForwardState {
    let mut s = ForwardState::default();
    for line in text.lines().map(str::trim) {
        if let Some(policy) = line.strip_prefix("-P FORWARD ") {
            s.in_use |= policy != "ACCEPT";
        } else if line.starts_with("-A FORWARD") && line.contains(COMMENT) {
            s.ours = true;
            s.copies += 1;
        } else if line.starts_with("-A FORWARD") && !line.ends_with(&format!("-j {OLD_CHAIN}")) {
            s.in_use = true;
        }
    }
    s
}

/// Runs `tool -w ARGS` in the calling thread's namespace; its output, or
/// an error with what it said.
fn run(tool: &Found, args: &[&str]) -> Result<String> {
    let op = || format!("{} {}", tool.name, args.join(" "));
    let out = Command::new(&tool.path)
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| Error::Command { op: op(), message: e.to_string() })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command { op: op(), message: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

/// Where `cmd` is on `PATH` (or in the sbin directories, which an ordinary
/// user's `PATH` may lack).
fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(cmd))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_is_in_use_with_a_drop_policy_or_rules() {
        assert_eq!(parse_forward("-P FORWARD ACCEPT\n"), ForwardState::default());
        assert!(parse_forward("-P FORWARD DROP\n").in_use);
        assert!(parse_forward("-P FORWARD ACCEPT\n-A FORWARD -j DOCKER-USER\n").in_use);
        let ours = format!(
            "-P FORWARD ACCEPT\n-A FORWARD -m mark --mark 0x1000/0x1000 -m comment --comment \"{COMMENT}\" -j ACCEPT\n-A FORWARD -j CNM-FORWARD\n"
        );
        assert_eq!(parse_forward(&ours), ForwardState { in_use: false, ours: true, copies: 1 });
    }

    #[test]
    fn the_rule_names_the_mark_and_comment() {
        let r = rule();
        assert_eq!(r[3], "0x1000/0x1000");
        assert_eq!(r[7], COMMENT);
    }
}
