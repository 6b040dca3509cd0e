//! A podman installation of a test's own (podman 4.3, its CNI backend),
//! and the busybox root filesystem its image (and ctr's containers) use.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// A root filesystem of Debian's static busybox with the applets the test uses.
pub fn busybox_rootfs(dir: &Path) {
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(cnm_tests::dockerd::BUSYBOX, dir.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "ping", "nslookup", "ip"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
}

/// A podman installation of the test's own: storage, state and
/// configuration in `dir` (its CNI backend; `cnm-cni` in its plugin
/// directory; network `conflist`), the image `localhost/busybox:cnm`
/// imported; its processes and containers killed when dropped.
pub struct Podman {
    dir: std::path::PathBuf,
    /// The host's network namespace, which podman runs in. (Its mount
    /// namespace is the machine's: the network namespaces it mounts under
    /// `/run/netns` must be visible to cnmd.)
    netns: std::path::PathBuf,
    /// The network's name: libcni's cache entries of it go when dropped.
    network: String,
    /// Whether libcni's cache directory (`/var/lib/cni`) was made by this
    /// test's runtime (then removed when empty).
    made_cache: bool,
}

/// The image the podman tests import.
pub const IMAGE: &str = "localhost/busybox:cnm";

impl Podman {
    /// A podman in `dir` with network `conflist`, run in network
    /// namespace `netns` (the host's: where the standard plugins would
    /// make their bridge and rules).
    pub fn new(dir: &Path, conflist: &Value, netns: &Path) -> Podman {
        let p = Podman {
            dir: dir.to_path_buf(),
            netns: netns.to_path_buf(),
            network: conflist["name"].as_str().unwrap_or_default().to_string(),
            made_cache: *MADE_CACHE.get_or_init(|| !Path::new(CNI_CACHE).exists()),
        };
        let (bin, netd) = (dir.join("cni-bin"), dir.join("net.d"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&netd).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_cnm-cni"), bin.join("cnm-cni")).unwrap();
        // Limits within the machine's (podman's defaults exceed what root may set here).
        let conf = format!(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\", \"/usr/lib/cni\"]\nnetwork_config_dir = \"{}\"\n\
             [engine]\nruntime = \"runc\"\n",
            bin.display(),
            netd.display()
        );
        std::fs::write(dir.join("containers.conf"), conf).unwrap();
        let name = conflist["name"].as_str().unwrap();
        std::fs::write(netd.join(format!("{name}.conflist")), conflist.to_string()).unwrap();
        let rootfs = dir.join("rootfs");
        busybox_rootfs(&rootfs);
        for applet in ["httpd", "cat"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        std::fs::create_dir_all(rootfs.join("www")).unwrap();
        std::fs::write(rootfs.join("www/index.html"), "published through cnm\n").unwrap();
        let tar = dir.join("rootfs.tar");
        let packed = Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".").status().unwrap();
        assert!(packed.success());
        p.run(&["import", &tar.display().to_string(), IMAGE]).unwrap();
        p
    }

    fn command(&self) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.netns.display())).arg("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("podman-root"))
            .arg("--runroot")
            .arg(self.dir.join("podman-run"))
            .arg("--tmpdir")
            .arg(self.dir.join("podman-tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
        c
    }

    /// Runs podman; its output, or what it said.
    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = self.command().args(args).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!("podman {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// What container `c` wrote on its standard error.
    pub fn stderr_logs(&self, c: &str) -> String {
        let out = self.command().args(["logs", c]).output().expect("podman logs");
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    /// Container `c`'s address on `network`.
    pub fn address(&self, c: &str, network: &str) -> String {
        self.run(&["inspect", "-f", &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"), c])
            .unwrap()
    }
}

/// libcni's cache of results (podman's CNI backend writes there).
const CNI_CACHE: &str = "/var/lib/cni";

/// Whether libcni's cache was absent when this test process first ran a
/// runtime (its tests run at once: each removes the directories once empty).
static MADE_CACHE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

impl Drop for Podman {
    fn drop(&mut self) {
        cnm_tests::dockerd::kill_processes_of(&self.dir);
        // What podman mounted under its directory (a container's shm) and
        // did not unmount, so the scratch directory can go.
        let dir = self.dir.to_string_lossy().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for point in mounts.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&dir)) {
            let _unmounted = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
        remove_cni_cache(&self.network, self.made_cache);
    }
}

/// Removes libcni's cached results of `network`; with `made`, the cache
/// directories too once empty.
pub fn remove_cni_cache(network: &str, made: bool) {
    let results = Path::new(CNI_CACHE).join("results");
    if let Ok(entries) = std::fs::read_dir(&results) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&format!("{network}-")) {
                let _removed = std::fs::remove_file(e.path());
            }
        }
    }
    if made {
        // Only when empty: another test's runtime may be using them.
        let _results_gone = std::fs::remove_dir(&results);
        let _cache_gone = std::fs::remove_dir(CNI_CACHE);
    }
}
