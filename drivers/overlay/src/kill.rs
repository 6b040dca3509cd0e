//! The overlay driver's kill points (see [`cnm_kinds::kill`]).

/// The overlay driver's kill points, in the order a network's life reaches them.
pub const POINTS: &[&str] = &["overlay.allocate.vni", "overlay.join.peer"];

/// Dies here if the test build was told to (see [`cnm_kinds::kill`]).
#[inline]
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) fn point(name: &'static str) {
    debug_assert!(POINTS.contains(&name), "kill point {name} is not in cnm_driver_overlay::kill::POINTS");
    cnm_kinds::kill::point(name);
}
