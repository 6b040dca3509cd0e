//! Named kill points: places in every step of every operation where a test
//! build (feature `kill-points`) stops for good when `CNM_KILL_AT` names
//! the point, after printing `CNM-KILL-POINT <name>` on standard output —
//! the harness then kills the process with SIGKILL — so that a controller
//! can be crashed at each step in turn and a restart checked. Without the
//! feature a kill point is nothing.

/// Every kill point, in the order a network's life reaches them.
pub const ALL: &[&str] = &[
    "network.create.intent",
    "network.create.pools",
    "network.create.driver",
    "sandbox.create.intent",
    "sandbox.create.namespace",
    "endpoint.create.addresses",
    "endpoint.create.intent",
    "endpoint.create.driver",
    "join.intent",
    "join.driver",
    "join.interface",
    "join.gateway",
    "gateway.programmed",
    "gateway.revoked",
    "leave.intent",
    "leave.driver",
    "leave.interface",
    "endpoint.delete.intent",
    "endpoint.delete.driver",
    "sandbox.delete.intent",
    "sandbox.delete.leaves",
    "sandbox.delete.namespace",
    "network.delete.intent",
    "network.delete.pools",
    "network.delete.driver",
];

/// Dies here if the test build was told to (see the module's docs).
#[inline]
pub(crate) fn point(name: &'static str) {
    #[cfg(feature = "kill-points")]
    {
        static TARGET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        debug_assert!(ALL.contains(&name), "kill point {name} is not listed");
        if TARGET.get_or_init(|| std::env::var("CNM_KILL_AT").ok()).as_deref() == Some(name) {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "CNM-KILL-POINT {name}");
            let _ = out.flush();
            // Never go past the point: the harness's SIGKILL ends the process here.
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
    #[cfg(not(feature = "kill-points"))]
    let _ = name;
}
