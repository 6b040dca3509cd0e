//! The plugin host's kill points (see [`cnm_kinds::kill`]).

/// The plugin host's kill points, in the order a container's life reaches them.
pub const POINTS: &[&str] = &[
    "plugin.network.intent",
    "plugin.network.created",
    "plugin.pool.granted",
    "plugin.address.granted",
    "plugin.endpoint.created",
    "plugin.join.intent",
    "plugin.join.done",
    "plugin.publish.intent",
    "plugin.leave.intent",
    "plugin.endpoint.deleting",
    "plugin.address.releasing",
    "plugin.network.deleting",
];

/// Dies here if the test build was told to (see [`cnm_kinds::kill`]).
#[inline]
pub(crate) fn point(name: &'static str) {
    debug_assert!(POINTS.contains(&name), "kill point {name} is not in cnm_docker_plugin::kill::POINTS");
    cnm_kinds::kill::point(name);
}
