//! `cnmd --docker-plugins` as a child process on a simulated Docker host
//! (cnm-tests' `DockerHost`), with its own data and exec roots; started,
//! killed (optionally at a kill point) and stopped by the tests.

use cnm_tests::dockerd::DockerHost;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// `cnmd --docker-plugins` on a Docker host, with its own data and exec roots.
pub struct Plugins {
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    starts: u32,
}

impl Plugins {
    /// A plugin host whose data and exec roots are under `dir`, started with `args` too.
    pub fn new(dir: &Path, args: &[String]) -> Plugins {
        Plugins { dir: dir.to_path_buf(), args: args.to_vec(), child: None, starts: 0 }
    }

    /// The log of the current (or last) run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("cnmd-{}.log", self.starts))).unwrap_or_default()
    }

    /// Starts cnmd on `host` and waits (at most 30 s) until every plugin socket answers.
    pub fn start(&mut self, host: &DockerHost, plugins: &[&str]) {
        self.launch(host, plugins, None);
    }

    /// [`Plugins::start`] with `CNM_KILL_AT=point`: the channel gets a
    /// message when cnmd stops there (it then waits to be killed).
    pub fn start_killing_at(
        &mut self,
        host: &DockerHost,
        plugins: &[&str],
        point: &str,
    ) -> std::sync::mpsc::Receiver<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.launch(host, plugins, Some((point, tx)));
        rx
    }

    fn launch(&mut self, host: &DockerHost, plugins: &[&str], kill_at: Option<(&str, std::sync::mpsc::Sender<()>)>) {
        assert!(self.child.is_none());
        self.starts += 1;
        let log = std::fs::File::create(self.dir.join(format!("cnmd-{}.log", self.starts))).unwrap();
        // nsenter execs cnmd: the child's pid is cnmd's.
        let mut cmd = host.command_prefix();
        if let Some((point, _)) = &kill_at {
            cmd.env("CNM_KILL_AT", point).stdout(Stdio::piped());
        } else {
            cmd.stdout(Stdio::null());
        }
        let mut child = cmd
            .arg(env!("CARGO_BIN_EXE_cnmd"))
            .arg("--docker-plugins")
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("run"))
            .args(["--log-level", "debug"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cnmd --docker-plugins");
        if let Some((point, tx)) = kill_at {
            let out = child.stdout.take().expect("cnmd's output");
            let wanted = format!("CNM-KILL-POINT {point}");
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if line == wanted {
                        let _ = tx.send(());
                    }
                }
            });
        }
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(30);
        for p in plugins {
            let sock = host.path(&format!("/run/docker/plugins/{p}.sock"));
            while std::os::unix::net::UnixStream::connect(&sock).is_err() {
                if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    panic!("cnmd --docker-plugins exited with {status}:\n{}", self.log());
                }
                assert!(Instant::now() < end, "plugin {p} was not served within 30 s:\n{}", self.log());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The sockets are bound before the journal is replayed: served once it was.
        while !self.log().contains("serving Docker plugins") {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("cnmd --docker-plugins exited with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < end, "the journal was not replayed within 30 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// cnmd's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills cnmd with SIGKILL (a crash).
    pub fn kill(&mut self) {
        let mut c = self.child.take().expect("running");
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Stops cnmd with SIGTERM; whether it exited successfully (at most 30 s).
    pub fn stop(&mut self) -> bool {
        let mut c = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > end {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Plugins {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
