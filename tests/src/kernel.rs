//! Kernel features, probed rather than assumed, and the second kernel.
//!
//! A test that depends on a kernel feature (802.1q VLAN links, dummy links,
//! ipvlan, WireGuard…) asks [`has`] on its scratch host: the probe creates
//! a throwaway link of that kind and removes it. Where the kernel has the
//! feature, the test proves the success path by packets; where it does
//! not, it proves that the error names the missing module.
//!
//! Inside the second kernel ([`in_second_kernel`]: Debian's stock kernel
//! booted under qemu by [`run_in_second_kernel`], which has every module
//! this project uses), a missing feature is a failure: the success paths
//! must run there.

use std::path::{Path, PathBuf};

pub use cnm::osl::kernel::LinkFeature as Feature;

/// The environment variable set inside the second kernel's guest.
pub const GUEST_ENV: &str = "CNM_IN_SECOND_KERNEL";

/// Whether this process runs inside the second kernel's guest.
pub fn in_second_kernel() -> bool {
    std::env::var_os(GUEST_ENV).is_some()
}

/// Whether the running kernel has `feature` ([`cnm::osl::kernel::has_link`]:
/// a throwaway link in a scratch namespace). Inside the second kernel a
/// missing feature fails the test; elsewhere it is noted on stderr.
pub async fn has(feature: Feature) -> bool {
    let present = cnm::osl::kernel::has_link(feature).await.unwrap_or_else(|e| panic!("probing {feature:?}: {e}"));
    assert!(
        present || !in_second_kernel(),
        "the second kernel must have {feature:?} (module {}): the success path has to run there",
        feature.module()
    );
    if !present {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "NOTE: this kernel has no {feature:?} (module {}): testing the error that names it",
            feature.module()
        );
    }
    present
}

/// Where the second kernel is unpacked: `CNM_SECOND_KERNEL`, else
/// `/var/cache/cnm/second-kernel` (what `.ci/run` fills with
/// `tests/kernel/fetch`).
pub fn kernel_dir() -> PathBuf {
    std::env::var_os("CNM_SECOND_KERNEL").map_or_else(|| PathBuf::from("/var/cache/cnm/second-kernel"), PathBuf::from)
}

/// The harness script that boots the second kernel with a command.
fn run_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kernel/run")
}

/// Boots the second kernel under qemu with this test binary in its
/// initramfs, runs `tests` in it as root (exact names, one thread), prints
/// the guest's output, and fails unless every one passed. Outside CI a
/// machine without the kernel or qemu skips loudly; under `CI=true` that is
/// a failure. Does nothing inside the guest itself.
pub fn run_in_second_kernel(test: &str, tests: &[&str]) {
    run_in_second_kernel_with(test, tests, &[]);
}

/// [`run_in_second_kernel`] with `programs` (names found on `PATH`, each
/// with its shared libraries, or absolute paths of other files), each with
/// the Debian package that has it, in the guest too at the same paths:
/// `etcd`, `openssl` and its configuration for a cluster test, say.
pub fn run_in_second_kernel_with(test: &str, tests: &[&str], programs: &[(&str, &str)]) {
    if in_second_kernel() {
        return;
    }
    let dir = kernel_dir();
    if !dir.join("version").is_file() {
        crate::skip(test, &format!("the second kernel is not at {} (tests/kernel/fetch DIR fills it)", dir.display()));
        return;
    }
    if !crate::tools(test, &["qemu-system-x86_64"], "qemu-system-x86") || !crate::tools(test, &["cpio"], "cpio") {
        return;
    }
    for (program, package) in programs.iter().filter(|(p, _)| !p.contains('/')) {
        if !crate::tools(test, &[program], package) {
            return;
        }
    }
    let exe = std::env::current_exe().expect("this test binary");
    let mut cmd = std::process::Command::new(run_script());
    cmd.arg("--kernel").arg(&dir).arg("--timeout").arg("600").arg("--file").arg(&exe);
    let path = std::env::var_os("PATH").unwrap_or_default();
    for (program, package) in programs {
        if program.contains('/') {
            if !Path::new(program).exists() {
                crate::skip(test, &format!("needs {program} (Debian package {package})"));
                return;
            }
            cmd.arg("--file").arg(program);
            continue;
        }
        let found = std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file());
        cmd.arg("--file").arg(found.expect("found on PATH above"));
    }
    cmd.arg("--");
    cmd.args(["env", &format!("{GUEST_ENV}=1"), "CI=true"]);
    if let Some(log) = std::env::var_os("CNM_LOG") {
        cmd.arg(format!("CNM_LOG={}", log.to_string_lossy()));
    }
    cmd.arg(&exe).args(["--exact", "--test-threads=1", "--nocapture"]).args(tests);
    let out = cmd.output().unwrap_or_else(|e| panic!("run {}: {e}", run_script().display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Through the process's stderr, so that cargo shows the guest's run.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "--- second kernel ({}) ---\n{stdout}", kernel_version(&dir));
    assert!(out.status.success(), "in the second kernel: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let summary = format!("test result: ok. {} passed; 0 failed", tests.len());
    assert!(stdout.contains(&summary), "the guest did not run every test ({summary:?} missing)");
}

/// The version of the second kernel, as `tests/kernel/fetch` wrote it.
pub fn kernel_version(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("version")).map(|s| s.trim().to_string()).unwrap_or_default()
}
