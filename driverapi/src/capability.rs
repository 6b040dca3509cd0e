//! What a driver declares about itself: where its data lives and how far its networks reach.

use serde::{Deserialize, Serialize};

/// Where a driver's state is kept, or how far its connectivity reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One host: networks are stored in the local store.
    #[default]
    Local,
    /// Many hosts: networks are stored in the global (cluster) store.
    Global,
}

/// The answer to `NetworkDriver.GetCapabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Capability {
    /// Where the driver's networks are stored.
    #[serde(rename = "Scope")]
    pub data_scope: Scope,
    /// How far the connectivity of the driver's networks reaches; `None` means "as the data scope".
    #[serde(rename = "ConnectivityScope", default, skip_serializing_if = "Option::is_none", with = "opt_scope")]
    pub connectivity_scope: Option<Scope>,
    /// The driver's endpoints are the host's own stack (the `host` driver):
    /// only sandboxes that share the host's namespace can join its networks,
    /// and such sandboxes join no other kind. Not part of the plugin protocol
    /// (a plugin never answers it; it is `false` for them).
    #[serde(skip)]
    pub host_namespace: bool,
    /// The driver answers [`crate::Driver::gateway_allocation`] (Docker
    /// 28's `GwAllocChecker`): asked before a network's pools are
    /// allocated whether its gateway addresses are needed.
    #[serde(rename = "GwAllocChecker", default, skip_serializing_if = "std::ops::Not::not")]
    pub gw_alloc_checker: bool,
}

impl Capability {
    /// A local driver (local data, local connectivity).
    pub const fn local() -> Self {
        Capability {
            data_scope: Scope::Local,
            connectivity_scope: Some(Scope::Local),
            host_namespace: false,
            gw_alloc_checker: false,
        }
    }

    /// A local driver whose networks are the host's own stack (see [`Capability::host_namespace`]).
    pub const fn host_stack() -> Self {
        Capability { host_namespace: true, ..Capability::local() }
    }

    /// The connectivity scope, defaulting to the data scope.
    pub fn connectivity(&self) -> Scope {
        self.connectivity_scope.unwrap_or(self.data_scope)
    }
}

/// `Option<Scope>` where `""` means `None` (the `ConnectivityScope` field).
pub mod opt_scope {
    use super::Scope;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes the scope, or `""`.
    pub fn serialize<S: Serializer>(v: &Option<Scope>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => v.serialize(s),
            None => s.serialize_str(""),
        }
    }

    /// Deserializes `"local"`, `"global"`, or `""`/`null`/missing as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Scope>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s.as_deref() {
            None | Some("") => Ok(None),
            Some("local") => Ok(Some(Scope::Local)),
            Some("global") => Ok(Some(Scope::Global)),
            Some(other) => Err(serde::de::Error::custom(format!(
                "invalid connectivity scope {other:?}: expected \"local\" or \"global\""
            ))),
        }
    }
}
