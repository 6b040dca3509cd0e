//! The controller's kill points (see [`cnm_kinds::kill`]): their names,
//! and the one call that stops at them.

pub use cnm_kinds::kill::{Scope, scope};

/// The controller's kill points, in the order a network's life reaches
/// them; at start they are reached again under the `default.` scope while
/// the default network is made.
pub const POINTS: &[&str] = &[
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

/// The controller's kill points reached only on a member of a cluster,
/// in a global network's life.
pub const CLUSTER_POINTS: &[&str] =
    &["network.create.published", "endpoint.create.claimed", "network.delete.withdrawn"];

/// Dies here if the test build was told to (see [`cnm_kinds::kill`]).
#[inline]
pub(crate) fn point(name: &'static str) {
    debug_assert!(
        POINTS.contains(&name) || CLUSTER_POINTS.contains(&name),
        "kill point {name} is not in cnm::kill::POINTS"
    );
    cnm_kinds::kill::point(name);
}
