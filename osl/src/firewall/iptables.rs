//! Living beside other firewalls: iptables' `FORWARD` chain.
//!
//! A packet is forwarded only if *every* base chain at the forward hook
//! accepts it: `inet cnm` accepting is not enough when dockerd, ufw or an
//! administrator has set the iptables `FORWARD` policy to DROP (iptables-nft's
//! `ip filter` table or iptables-legacy's). So, when such a chain is in use
//! (a policy other than ACCEPT, or rules), cnm adds to it exactly one rule of
//! its own, `-j CNM-FORWARD`, at the top, and owns the chain `CNM-FORWARD`:
//! two rules per cnm bridge (`-i BRIDGE -j ACCEPT`, `-o BRIDGE -j ACCEPT`).
//! That hands the verdict on traffic of cnm's bridges to `inet cnm`, which
//! still enforces isolation, ICC, internal networks and published ports;
//! every other packet goes on through the foreign chain untouched. The
//! policy, the other rules and chains (Docker's `DOCKER-USER` among them)
//! are never changed. The rules are written by the host's own `iptables`
//! tools, so that those tools keep reading their tables (rules in their
//! tables written by other means make iptables-nft refuse to list them);
//! the jump and the chain go with the last bridge.

use crate::{Error, Namespace, Result};
use std::path::PathBuf;
use std::process::Command;

/// The chain cnm owns in foreign `filter` tables.
pub const CHAIN: &str = "CNM-FORWARD";

/// One iptables tool and where it says it keeps its tables.
#[derive(Debug, Clone, Copy)]
struct Tool {
    /// The command.
    name: &'static str,
    /// For the nf_tables backend, the family of its `filter` table (the tool
    /// is only run when that table has a `FORWARD` chain: see [`nft_forward_families`]).
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
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;

/// The families whose nf_tables `filter` table has a `FORWARD` chain (what
/// iptables-nft makes): one netlink request each, so that a host without
/// such a chain costs no process at all. An unclear answer counts as "has".
pub(crate) fn nft_forward_families(sock: &mut super::nfnl::Socket) -> Vec<u8> {
    [NFPROTO_IPV4, NFPROTO_IPV6]
        .into_iter()
        .filter(|&family| {
            let what = format!("get chain FORWARD of table filter (family {family})");
            match sock.request(NFT_MSG_GETCHAIN, 0, family, &what, |w| {
                w.attr_str(NFTA_CHAIN_TABLE, "filter");
                w.attr_str(NFTA_CHAIN_NAME, "FORWARD");
            }) {
                Ok(_) => true,
                Err(e) => !e.is_not_found(),
            }
        })
        .collect()
}

/// The iptables `FORWARD` chains of a namespace, as cnm touches them.
#[derive(Debug, Clone)]
pub struct ForeignForward {
    ns: Namespace,
}

/// What one tool's `FORWARD` chain holds.
#[derive(Debug, Default, PartialEq, Eq)]
struct ForwardState {
    /// The policy is not ACCEPT, or other rules are there: cnm must take part.
    in_use: bool,
    /// cnm's jump is there.
    jump: bool,
}

impl ForeignForward {
    /// The chains of namespace `ns`.
    pub fn new(ns: Namespace) -> Self {
        ForeignForward { ns }
    }

    /// Lets traffic of `bridge` through every foreign `FORWARD` chain in use
    /// (idempotent); with no such chain (or no iptables), does nothing.
    /// `nft_families`: where iptables-nft has a `FORWARD` chain ([`nft_forward_families`]).
    pub async fn allow(&self, bridge: &str, nft_families: Vec<u8>) -> Result<()> {
        let bridge = bridge.to_string();
        self.ns.run(move || for_each_tool(&nft_families, |tool| allow_blocking(tool, &bridge))).await?
    }

    /// Takes `bridge`'s rules out; with no rule left, the jump and the chain go too.
    pub async fn revoke(&self, bridge: &str, nft_families: Vec<u8>) -> Result<()> {
        let bridge = bridge.to_string();
        self.ns.run(move || for_each_tool(&nft_families, |tool| revoke_blocking(tool, &bridge))).await?
    }

    /// Removes cnm's jump and chain from every foreign table.
    pub async fn remove_all(&self, nft_families: Vec<u8>) -> Result<()> {
        self.ns.run(move || for_each_tool(&nft_families, remove_all_blocking)).await?
    }

    /// The rules of cnm's chain in each tool that has it (diagnostics and tests).
    pub async fn rules(&self) -> Result<Vec<(String, Vec<String>)>> {
        self.ns
            .run(move || {
                let mut out = Vec::new();
                for tool in usable_tools(&[NFPROTO_IPV4, NFPROTO_IPV6]) {
                    if let Ok(text) = run(&tool, &["-S", CHAIN]) {
                        out.push((tool.name.to_string(), text.lines().map(str::to_string).collect()));
                    }
                }
                out
            })
            .await
    }
}

/// An installed tool.
#[derive(Debug, Clone)]
struct Found {
    name: &'static str,
    path: PathBuf,
}

/// The tools installed whose backend has a filter table in this namespace.
fn usable_tools(nft_families: &[u8]) -> Vec<Found> {
    TOOLS
        .iter()
        .filter(|t| match (t.legacy_tables, t.nft_family) {
            (Some(file), _) => std::fs::read_to_string(file).is_ok_and(|s| s.lines().any(|l| l == "filter")),
            (None, Some(family)) => nft_families.contains(&family),
            (None, None) => true,
        })
        .filter_map(|t| Some(Found { name: t.name, path: which(t.name)? }))
        .collect()
}

fn for_each_tool(nft_families: &[u8], mut f: impl FnMut(&Found) -> Result<()>) -> Result<()> {
    let mut first_err = None;
    for tool in usable_tools(nft_families) {
        if let Err(e) = f(&tool) {
            tracing::warn!(tool = tool.name, error = %e, "iptables FORWARD chain");
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn allow_blocking(tool: &Found, bridge: &str) -> Result<()> {
    // A tool that cannot even list (no permission, say) has nothing cnm can change.
    let state = match forward_state(tool) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(tool = tool.name, error = %e, "iptables not usable here");
            return Ok(());
        }
    };
    if !state.in_use && !state.jump {
        return Ok(());
    }
    if run(tool, &["-S", CHAIN]).is_err() {
        run(tool, &["-N", CHAIN])?;
    }
    for dir in ["-i", "-o"] {
        let rule = [CHAIN, dir, bridge, "-j", "ACCEPT"];
        if run(tool, &with("-C", &rule)).is_err() {
            run(tool, &with("-A", &rule))?;
        }
    }
    if !state.jump {
        run(tool, &["-I", "FORWARD", "1", "-j", CHAIN])?;
        tracing::info!(tool = tool.name, "iptables FORWARD chain in use: added the jump to {CHAIN}");
    }
    Ok(())
}

fn revoke_blocking(tool: &Found, bridge: &str) -> Result<()> {
    if run(tool, &["-S", CHAIN]).is_err() {
        return Ok(());
    }
    for dir in ["-i", "-o"] {
        let rule = [CHAIN, dir, bridge, "-j", "ACCEPT"];
        while run(tool, &with("-C", &rule)).is_ok() {
            run(tool, &with("-D", &rule))?;
        }
    }
    let left = run(tool, &["-S", CHAIN])?;
    if left.lines().any(|l| l.starts_with("-A ")) {
        return Ok(());
    }
    remove_all_blocking(tool)
}

fn remove_all_blocking(tool: &Found) -> Result<()> {
    while run(tool, &["-C", "FORWARD", "-j", CHAIN]).is_ok() {
        run(tool, &["-D", "FORWARD", "-j", CHAIN])?;
    }
    if run(tool, &["-S", CHAIN]).is_ok() {
        run(tool, &["-F", CHAIN])?;
        run(tool, &["-X", CHAIN])?;
    }
    Ok(())
}

fn forward_state(tool: &Found) -> Result<ForwardState> {
    Ok(parse_forward(&run(tool, &["-S", "FORWARD"])?))
}

/// Reads `iptables -S FORWARD`.
fn parse_forward(text: &str) -> ForwardState {
    let mut s = ForwardState::default();
    let jump = format!("-A FORWARD -j {CHAIN}");
    for line in text.lines().map(str::trim) {
        if let Some(policy) = line.strip_prefix("-P FORWARD ") {
            s.in_use |= policy != "ACCEPT";
        } else if line == jump {
            s.jump = true;
        } else if line.starts_with("-A FORWARD") {
            s.in_use = true;
        }
    }
    s
}

fn with<'a>(op: &'a str, rule: &[&'a str]) -> Vec<&'a str> {
    std::iter::once(op).chain(rule.iter().copied()).collect()
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
        let ours = parse_forward("-P FORWARD ACCEPT\n-A FORWARD -j CNM-FORWARD\n");
        assert_eq!(ours, ForwardState { in_use: false, jump: true });
    }
}
