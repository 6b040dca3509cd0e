//! The shared state of a cnm cluster, kept in etcd (an existing
//! distributed engine; nothing here replicates anything by itself).
//!
//! [`Cluster`] is one daemon's session: every key lives under a
//! per-cluster prefix, keys that must be unique (a pool, an address, a
//! VNI, a network) are created only by compare-and-swap transactions, and
//! keys that describe this host (its endpoints) are attached to a lease
//! that expires when the daemon stops renewing it. [`Cluster::watch`]
//! follows a prefix, resuming from the last revision seen, or re-listing
//! everything when etcd comes back after an outage.
//!
//! [`GlobalIpam`] keeps the `GlobalDefault` address space (10.0.0.0/8 in
//! /24s, or the pools users give) in etcd, so two hosts never hand out the
//! same pool or address; other spaces go to the local IPAM it wraps.
//!
//! Everything is behind the `etcd` feature (a single host needs none of
//! it); the etcd client is this crate's own ([`etcd`]: hand-written
//! messages over tonic), so the build needs cargo alone.

#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "etcd")]
mod ipam;
#[cfg(feature = "etcd")]
mod session;

#[cfg(feature = "etcd")]
pub use ipam::GlobalIpam;
#[cfg(feature = "etcd")]
pub use session::{Cluster, ClusterConfig, Error, Event, Result, STORE_OPTIONS, TlsFiles};
