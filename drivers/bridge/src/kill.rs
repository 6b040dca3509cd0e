//! The bridge driver's kill points (see [`cnm_kinds::kill`]).

/// The bridge driver's kill points, in the order a network's life reaches them.
pub const POINTS: &[&str] = &[
    "bridge.create.bridge",
    "bridge.create.firewall",
    "bridge.join.veth",
    "bridge.publish.reserved",
    "bridge.publish.mapped",
    "bridge.unpublish.unmapped",
    "bridge.leave.retired",
    "bridge.delete.firewall",
    "bridge.delete.retired",
];

/// Dies here if the test build was told to (see [`cnm_kinds::kill`]).
#[inline]
pub(crate) fn point(name: &'static str) {
    debug_assert!(POINTS.contains(&name), "kill point {name} is not in cnm_driver_bridge::kill::POINTS");
    cnm_kinds::kill::point(name);
}
