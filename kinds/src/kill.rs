//! Named kill points: places in every step of every operation, in the
//! controller and in drivers, where a test build (feature `kill-points`)
//! stops for good when `CNM_KILL_AT` names the point, after printing
//! `CNM-KILL-POINT <name>` on standard output — the harness then kills the
//! process with SIGKILL — so that a controller can be crashed at each step
//! in turn and a restart checked. Without the feature a kill point is nothing.
//!
//! Each crate names its own points (and lists them, for the harness);
//! this module only stops at them. A [`scope`] prefixes the names of the
//! points reached while it lives
//! (`default.` while the controller creates its default network), so that
//! the same step can be crashed in each context.

#[cfg(feature = "kill-points")]
static SCOPE: std::sync::Mutex<Option<&'static str>> = std::sync::Mutex::new(None);

/// Prefixes the points reached until it is dropped (see [`scope`]).
#[derive(Debug)]
#[must_use = "the scope ends when dropped"]
pub struct Scope(());

impl Drop for Scope {
    fn drop(&mut self) {
        #[cfg(feature = "kill-points")]
        if let Ok(mut s) = SCOPE.lock() {
            *s = None;
        }
    }
}

/// Prefixes with `prefix` the names of the points the process reaches
/// until the returned guard is dropped. Process-wide: meant for a step that
/// runs alone (the controller's start).
pub fn scope(prefix: &'static str) -> Scope {
    #[cfg(feature = "kill-points")]
    if let Ok(mut s) = SCOPE.lock() {
        *s = Some(prefix);
    }
    #[cfg(not(feature = "kill-points"))]
    let _ = prefix;
    Scope(())
}

/// Dies here if the test build was told to (see the module's docs).
#[inline]
pub fn point(name: &'static str) {
    #[cfg(feature = "kill-points")]
    {
        static TARGET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let Some(target) = TARGET.get_or_init(|| std::env::var("CNM_KILL_AT").ok()).as_deref() else { return };
        let prefix = SCOPE.lock().ok().and_then(|s| *s).unwrap_or("");
        if target.strip_prefix(prefix) == Some(name) {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "CNM-KILL-POINT {target}");
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
