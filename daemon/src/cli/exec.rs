//! `cnmctl sandbox exec`: runs a command inside a sandbox's network
//! namespace, as `ip netns exec` does — in a private mount namespace where
//! the sandbox's `hosts` and `resolv.conf` are bind-mounted over the host's
//! and `/sys` shows the sandbox's devices — by replacing this process, so the
//! command's exit status is cnmctl's.
//!
//! The namespace files are bind mounts in cnmd's mount namespace. From
//! another one (under `ip netns exec`, or beside a daemon run with systemd's
//! `PrivateMounts=`), the path is a plain file: then the namespace is opened
//! through `/proc/<cnmd's pid>/root`, which resolves in the daemon's mount
//! namespace (cnmctl learns the pid from its socket's peer credentials; root,
//! or the daemon's own user, may open it).

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// What to run, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPlan {
    /// The sandbox's namespace file.
    pub netns: PathBuf,
    /// The sandbox's hosts file.
    pub hosts: PathBuf,
    /// The sandbox's resolv.conf.
    pub resolv_conf: PathBuf,
    /// The daemon's process id, to reach its mount namespace.
    pub daemon_pid: Option<i32>,
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// Why the command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A system call failed.
    #[error("{op}")]
    Sys {
        /// What was being done.
        op: String,
        /// The error number.
        #[source]
        source: nix::Error,
    },
    /// The sandbox's namespace file cannot be opened.
    #[error("cannot open the sandbox's namespace {path}", path = .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The namespace file is not a network namespace from here, and cnmd's
    /// own view of it could not be reached.
    #[error(
        "{path} is not a network namespace in this mount namespace (cnmd mounts sandboxes in its own), \
         and cnmd's view of it could not be opened{through}: run cnmctl as root, or in cnmd's mount namespace",
        path = .path.display(),
        through = .through.as_ref().map(|p| format!(" through {}", p.display())).unwrap_or_default()
    )]
    NotANamespace {
        /// The sandbox's namespace file.
        path: PathBuf,
        /// The path through the daemon's root that was tried, if any.
        through: Option<PathBuf>,
    },
    /// The command could not be executed.
    #[error("cannot run {command:?}")]
    Exec {
        /// The program.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl ExecError {
    /// The exit status a shell would give: 127 for a missing program, 126 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::Exec { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 127,
            _ => 126,
        }
    }
}

fn sys(op: impl Into<String>) -> impl FnOnce(nix::Error) -> ExecError {
    let op = op.into();
    move |source| ExecError::Sys { op, source }
}

/// Enters the sandbox and replaces this process with the command; returns only on failure.
pub fn exec(plan: &ExecPlan) -> ExecError {
    match enter(plan) {
        Ok(()) => {}
        Err(e) => return e,
    }
    let (prog, args) = match plan.command.split_first() {
        Some(x) => x,
        None => return ExecError::Exec { command: String::new(), source: std::io::ErrorKind::InvalidInput.into() },
    };
    let source = std::process::Command::new(prog).args(args).exec();
    ExecError::Exec { command: prog.clone(), source }
}

/// `nsfs`' magic number: the file is a namespace.
const NSFS_MAGIC: i64 = 0x6e73_6673;

// The cast is a no-op on x86_64 but not on every target (`__fsword_t` varies).
#[allow(clippy::unnecessary_cast)]
fn is_namespace(f: &std::fs::File) -> bool {
    nix::sys::statfs::fstatfs(f).is_ok_and(|s| s.filesystem_type().0 as i64 == NSFS_MAGIC)
}

/// Opens the sandbox's namespace: at its path, or through the daemon's root.
fn open_namespace(plan: &ExecPlan) -> Result<std::fs::File, ExecError> {
    let ns = std::fs::File::open(&plan.netns).map_err(|source| ExecError::Open { path: plan.netns.clone(), source })?;
    if is_namespace(&ns) {
        return Ok(ns);
    }
    let through = plan.daemon_pid.map(|pid| {
        let rel = plan.netns.strip_prefix("/").unwrap_or(&plan.netns);
        PathBuf::from(format!("/proc/{pid}/root")).join(rel)
    });
    match through.as_ref().and_then(|p| std::fs::File::open(p).ok()) {
        Some(f) if is_namespace(&f) => Ok(f),
        _ => Err(ExecError::NotANamespace { path: plan.netns.clone(), through }),
    }
}

fn enter(plan: &ExecPlan) -> Result<(), ExecError> {
    let ns = open_namespace(plan)?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(sys("create a private mount namespace"))?;
    // Keep our mounts from propagating back to the host's mount namespace.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(sys("make mounts private"))?;
    setns(&ns, CloneFlags::CLONE_NEWNET).map_err(sys("enter the sandbox's network namespace"))?;
    // A fresh sysfs shows the sandbox's network devices (as `ip netns exec` does);
    // without it tools that read /sys/class/net see the host's. Best effort.
    if umount2("/sys", MntFlags::MNT_DETACH).is_ok() {
        let _ = mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), None::<&str>);
    }
    bind(&plan.hosts, Path::new("/etc/hosts"))?;
    bind(&plan.resolv_conf, Path::new("/etc/resolv.conf"))?;
    Ok(())
}

fn bind(src: &Path, dst: &Path) -> Result<(), ExecError> {
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(sys(format!(
        "bind-mount {} over {}",
        src.display(),
        dst.display()
    )))
}
