//! The helper behind [`super::WayOut::Slirp4netns`]: a child process forked
//! while the caller is still single-threaded and outside its new
//! namespaces. It waits on a pipe until the namespaces exist, then becomes
//! `slirp4netns`, attached to the caller's user and network namespaces by
//! pid: a tap device (`tap0`, 10.0.2.100/24, default route via 10.0.2.2,
//! which leads to the host's loopback) carried through the host's sockets.
//! slirp4netns says when it is ready on one pipe and exits when another
//! closes (when this process ends); its API socket forwards host ports.

use crate::{Error, Result};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// How long slirp4netns may take to configure the namespace.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// The address slirp4netns gives the namespace's tap device.
pub const TAP_ADDRESS: &str = "10.0.2.100";

/// API sockets are named `cnm-slirp4netns-PID.sock`.
const SOCKET_PREFIX: &str = "cnm-slirp4netns-";

/// Removes the API sockets in `dir` of processes that are gone
/// (slirp4netns leaves its socket behind when it exits).
fn remove_stale_sockets(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(SOCKET_PREFIX)?.strip_suffix(".sock")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            // Only this user's own files can go (the temporary directory is sticky).
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The forked child, waiting for [`Helper::start`].
pub(super) struct Helper {
    pid: Pid,
    /// The pipe's write end: one byte starts slirp4netns; closing it ends the child.
    go: Option<OwnedFd>,
    /// Where slirp4netns writes "1" once the namespace is configured.
    ready: Option<OwnedFd>,
    /// Held for this process's life: slirp4netns exits when it closes.
    exit: Option<OwnedFd>,
    api: PathBuf,
    started: bool,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::io("make a pipe", "slirp4netns", e.into()))
}

impl Helper {
    /// Forks the child. The caller must be single-threaded (checked by
    /// [`super::enter_with`] before).
    pub(super) fn fork() -> Result<Helper> {
        if !super::on_path("slirp4netns") {
            return Err(Error::Unsupported(
                "a way out for rootless sandboxes needs slirp4netns on PATH (Debian package slirp4netns)".into(),
            ));
        }
        let parent = nix::unistd::getpid();
        // The API socket: in this user's runtime directory (one it owns), else the temporary one.
        let uid = nix::unistd::getuid().as_raw();
        let dir = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(d).is_ok_and(|m| m.is_dir() && m.uid() == uid)
            })
            .unwrap_or_else(std::env::temp_dir);
        remove_stale_sockets(&dir);
        let api = dir.join(format!("{SOCKET_PREFIX}{parent}.sock"));
        let _ = std::fs::remove_file(&api);
        let (go_read, go_write) = pipe()?;
        let (ready_read, ready_write) = pipe()?;
        let (exit_read, exit_write) = pipe()?;
        // Everything the child needs is made before the fork: after it, the
        // child calls only async-signal-safe functions.
        let args: Vec<CString> = [
            "slirp4netns".to_string(),
            "--configure".into(),
            "--mtu=65520".into(),
            format!("--ready-fd={}", ready_write.as_raw_fd()),
            format!("--exit-fd={}", exit_read.as_raw_fd()),
            format!("--api-socket={}", api.display()),
            format!("--userns-path=/proc/{parent}/ns/user"),
            parent.to_string(),
            "tap0".into(),
        ]
        .into_iter()
        .map(|a| CString::new(a).map_err(|_| Error::Invalid("a NUL in slirp4netns's arguments".into())))
        .collect::<Result<_>>()?;
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let devnull = c"/dev/null";
        // SAFETY: the process is single-threaded (checked by the caller), so
        // the child is a full copy; it runs only async-signal-safe calls
        // (prctl, read, close, fcntl, open, dup2, signal, execvp, _exit) on
        // data made above.
        match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Child) => {
                // SAFETY: async-signal-safe system calls on valid arguments.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    if libc::getppid() != parent.as_raw() {
                        libc::_exit(1);
                    }
                    libc::close(go_write.as_raw_fd());
                    libc::close(ready_read.as_raw_fd());
                    libc::close(exit_write.as_raw_fd());
                    let mut byte = 0u8;
                    if libc::read(go_read.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) != 1 {
                        libc::_exit(1);
                    }
                    // The two descriptors slirp4netns is told about survive exec.
                    libc::fcntl(ready_write.as_raw_fd(), libc::F_SETFD, 0);
                    libc::fcntl(exit_read.as_raw_fd(), libc::F_SETFD, 0);
                    // Its messages would land in the caller's output.
                    let null = libc::open(devnull.as_ptr(), libc::O_RDWR);
                    if null >= 0 {
                        libc::dup2(null, 0);
                        libc::dup2(null, 1);
                        libc::dup2(null, 2);
                    }
                    // Rust's runtime ignores SIGPIPE, and an ignored signal
                    // stays ignored across exec: give the helper the default.
                    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                    libc::execvp(argv[0], argv.as_ptr());
                    libc::_exit(127);
                }
            }
            Ok(ForkResult::Parent { child }) => Ok(Helper {
                pid: child,
                go: Some(go_write),
                ready: Some(ready_read),
                exit: Some(exit_write),
                api,
                started: false,
            }),
            Err(e) => Err(Error::io("fork the slirp4netns helper", "slirp4netns", e.into())),
        }
    }

    /// Starts slirp4netns (the namespaces exist now) and waits until it has
    /// configured this network namespace.
    pub(super) fn start(mut self) -> Result<Forwarder> {
        let go = self.go.take().expect("started once");
        nix::unistd::write(&go, b"1").map_err(|e| Error::io("start slirp4netns", "slirp4netns", e.into()))?;
        drop(go);
        let ready = self.ready.take().expect("started once");
        let mut fds = [libc::pollfd { fd: ready.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, READY_WITHIN.as_millis() as libc::c_int) };
        let mut byte = [0u8; 1];
        let got = if n == 1 { nix::unistd::read(&ready, &mut byte).unwrap_or(0) } else { 0 };
        if got == 1 && byte[0] == b'1' {
            self.started = true;
            tracing::info!(pid = self.pid.as_raw(), "slirp4netns gives the rootless namespace a way out");
            let exit = self.exit.take().expect("started once");
            return Ok(Forwarder { api: self.api.clone(), _exit: exit });
        }
        let why = match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, 127)) => "could not be run".to_string(),
            Ok(WaitStatus::Exited(_, code)) => {
                self.started = true; // reaped
                format!("exited with status {code}")
            }
            Ok(WaitStatus::StillAlive) if n == 0 => format!("did not answer within {} s", READY_WITHIN.as_secs()),
            Ok(other) => format!("ended: {other:?}"),
            Err(e) => format!("cannot be waited for: {e}"),
        };
        Err(Error::Unsupported(format!(
            "slirp4netns {why} before configuring the rootless namespace (it needs /dev/net/tun usable by this user)"
        )))
    }
}

impl Drop for Helper {
    /// A helper that never started (or did not configure the namespace) is
    /// stopped and reaped: no child is left behind.
    fn drop(&mut self) {
        if self.started {
            return;
        }
        self.go = None;
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGTERM);
        let _ = waitpid(self.pid, None);
        let _ = std::fs::remove_file(&self.api);
    }
}

/// The running slirp4netns's API: host ports forwarded into the namespace.
#[derive(Debug)]
pub struct Forwarder {
    api: PathBuf,
    /// slirp4netns exits when this closes (with the process).
    _exit: OwnedFd,
}

/// A host port forwarded into the namespace; dropping it removes the forward.
#[derive(Debug)]
pub struct Forward {
    api: PathBuf,
    id: u64,
}

impl Forwarder {
    /// One request on the API socket; the answer's `return`.
    fn call(api: &PathBuf, request: &serde_json::Value) -> std::io::Result<serde_json::Value> {
        let mut s = UnixStream::connect(api)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(request.to_string().as_bytes())?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        let answer: serde_json::Value = serde_json::from_str(&line).map_err(std::io::Error::other)?;
        match answer.get("error") {
            Some(e) => Err(std::io::Error::other(e.to_string())),
            None => Ok(answer.get("return").cloned().unwrap_or_default()),
        }
    }

    /// Forwards `host_ip:port` (`proto` "tcp" or "udp") on the host to the
    /// same port of the namespace's tap address.
    pub fn forward(&self, proto: &str, host_ip: IpAddr, port: u16) -> std::io::Result<Forward> {
        let request = serde_json::json!({
            "execute": "add_hostfwd",
            "arguments": {
                "proto": proto,
                "host_addr": host_ip.to_string(),
                "host_port": port,
                "guest_addr": TAP_ADDRESS,
                "guest_port": port,
            }
        });
        let answer = Self::call(&self.api, &request)?;
        let id = answer.get("id").and_then(|i| i.as_u64()).ok_or_else(|| std::io::Error::other("no forward id"))?;
        Ok(Forward { api: self.api.clone(), id })
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let request = serde_json::json!({ "execute": "remove_hostfwd", "arguments": { "id": self.id } });
        if let Err(e) = Forwarder::call(&self.api, &request) {
            tracing::warn!(id = self.id, error = %crate::Chain(&e), "cannot remove a host port forward of slirp4netns");
        }
    }
}
