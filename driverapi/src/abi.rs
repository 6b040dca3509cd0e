//! The C ABI of driver libraries: a driver (and/or an IPAM) built as a
//! `cdylib` exchanges the very JSON messages of Docker's remote protocol
//! with the daemon across a handful of C functions — no Rust ABI involved.
//! `cnm-driver-sdk`'s `export_plugin!` writes the library's side,
//! `cnm-driver-dylib` the daemon's.
//!
//! | symbol | signature | what |
//! |---|---|---|
//! | `cnm_abi_version` | `fn() -> u32` | [`ABI_VERSION`] the library was built for; checked first |
//! | `cnm_init` | `fn(config, len, out: *mut Buffer) -> i32` | starts the plugin with a [`LibraryConfig`] (JSON); 0 and a [`LibraryInfo`] (JSON) in `out`, or non-zero and a message |
//! | `cnm_<Subsystem>_<Method>` | `fn(req, len, body: *mut Buffer, kind: *mut Buffer) -> u16` | one protocol call ([`symbol`]): the request's JSON in, the answer's JSON out, an HTTP-like status returned, and the error kind's name when it failed |
//! | `cnm_free` | `fn(Buffer)` | frees a buffer the library returned |
//!
//! A method a library does not export is "not implemented" (Docker's 404).

use serde::{Deserialize, Serialize};

/// The version of this ABI. A library built for another one is refused.
pub const ABI_VERSION: u32 = 1;

/// The symbol of the version function.
pub const SYM_ABI_VERSION: &str = "cnm_abi_version";
/// The symbol of the start function.
pub const SYM_INIT: &str = "cnm_init";
/// The symbol of the function that frees returned buffers.
pub const SYM_FREE: &str = "cnm_free";

/// Bytes handed from the library to the daemon; the daemon copies them and
/// gives them back to the library's `cnm_free` (its allocator made them).
#[repr(C)]
#[derive(Debug)]
pub struct Buffer {
    /// The first byte (null for an empty buffer).
    pub ptr: *mut u8,
    /// The number of bytes.
    pub len: usize,
    /// The allocation's capacity (the library's business).
    pub cap: usize,
}

impl Buffer {
    /// An empty buffer.
    pub const fn empty() -> Self {
        Buffer { ptr: std::ptr::null_mut(), len: 0, cap: 0 }
    }
}

/// What the daemon tells a library at start (`cnm_init`'s JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryConfig {
    /// The network namespace the daemon treats as the host's (a path), if
    /// not the process's own.
    #[serde(rename = "HostNamespace", default, skip_serializing_if = "Option::is_none")]
    pub host_namespace: Option<String>,
}

/// What a started library says of itself (`cnm_init`'s answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryInfo {
    /// The name its driver and/or IPAM are registered under.
    #[serde(rename = "Name")]
    pub name: String,
}

/// The protocol calls a library may export, `Subsystem.Method` as Docker names them.
pub const METHODS: [&str; 21] = [
    "Plugin.Activate",
    "NetworkDriver.GetCapabilities",
    "NetworkDriver.CreateNetwork",
    "NetworkDriver.DeleteNetwork",
    "NetworkDriver.CreateEndpoint",
    "NetworkDriver.DeleteEndpoint",
    "NetworkDriver.EndpointOperInfo",
    "NetworkDriver.Join",
    "NetworkDriver.Leave",
    "NetworkDriver.ProgramExternalConnectivity",
    "NetworkDriver.RevokeExternalConnectivity",
    "NetworkDriver.DiscoverNew",
    "NetworkDriver.DiscoverDelete",
    "NetworkDriver.AllocateNetwork",
    "NetworkDriver.FreeNetwork",
    "IpamDriver.GetCapabilities",
    "IpamDriver.GetDefaultAddressSpaces",
    "IpamDriver.RequestPool",
    "IpamDriver.ReleasePool",
    "IpamDriver.RequestAddress",
    "IpamDriver.ReleaseAddress",
];

/// The symbol of a protocol call: `NetworkDriver.Join` → `cnm_NetworkDriver_Join`.
pub fn symbol(method: &str) -> String {
    format!("cnm_{}", method.replace('.', "_"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn symbols_follow_the_method_names() {
        assert_eq!(super::symbol("NetworkDriver.Join"), "cnm_NetworkDriver_Join");
        assert_eq!(super::symbol("Plugin.Activate"), "cnm_Plugin_Activate");
    }
}
