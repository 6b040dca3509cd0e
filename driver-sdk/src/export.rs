//! The library side of the driver ABI ([`crate::abi`]): what
//! [`export_plugin!`](crate::export_plugin) expands to calls. The only
//! `unsafe` of the crate is here.
//!
//! Invariants the daemon's loader keeps, and this module relies on:
//! * request pointers are valid for `len` bytes for the whole call (or
//!   null with `len` 0); out pointers point to writable [`Buffer`]s;
//! * every buffer written here is given back once to [`free`] and never
//!   used after;
//! * [`init`] is called once, before any call.
//!
//! And what this module guarantees: no panic crosses the boundary (each
//! call runs under `catch_unwind`; a panic becomes a 500 answer of kind
//! `internal` naming the call), and a call blocks only the caller's thread
//! (the plugin's futures run on the library's own tokio runtime).

use crate::abi::{Buffer, LibraryConfig, LibraryInfo};
use cnm_driver_remote::PluginServer;
use cnm_driverapi::Driver;
use cnm_ipamapi::Ipam;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// What a library serves: a network driver and/or an IPAM, under one name.
#[derive(Clone)]
pub struct Exported {
    name: String,
    server: PluginServer,
}

impl Exported {
    /// A network driver, under its own name.
    pub fn driver(driver: Arc<dyn Driver>) -> Self {
        Exported { name: driver.name().to_string(), server: PluginServer::new().with_driver(driver) }
    }

    /// An IPAM driver, under `name`.
    pub fn ipam(name: impl Into<String>, ipam: Arc<dyn Ipam>) -> Self {
        Exported { name: name.into(), server: PluginServer::new().with_ipam(ipam) }
    }

    /// Adds an IPAM driver beside the network driver (one name for both).
    pub fn with_ipam(mut self, ipam: Arc<dyn Ipam>) -> Self {
        self.server = self.server.with_ipam(ipam);
        self
    }

    /// The name the daemon registers it under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same plugin as a remote plugin server (the third way to ship it).
    pub fn plugin_server(&self) -> PluginServer {
        self.server.clone()
    }
}

/// What the daemon tells the plugin when it starts it.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The namespace the daemon treats as the host's; `None`: the process's own.
    pub host_namespace: Option<PathBuf>,
}

impl Context {
    /// The host's namespace.
    pub fn host_namespace(&self) -> cnm_osl::Result<cnm_osl::Namespace> {
        match &self.host_namespace {
            Some(p) => cnm_osl::Namespace::open(p),
            None => cnm_osl::Namespace::current(),
        }
    }

    /// A netlink handle on the host's namespace.
    pub async fn host_netlink(&self) -> cnm_osl::Result<cnm_osl::Netlink> {
        cnm_osl::Netlink::connect(&self.host_namespace()?, cnm_osl::DEFAULT_DEADLINE).await
    }
}

/// The started plugin: its runtime and what it serves.
struct Started {
    runtime: tokio::runtime::Runtime,
    exported: Exported,
}

static STARTED: OnceLock<Started> = OnceLock::new();

/// Hands `bytes` to the daemon through `out`.
///
/// # Safety
/// `out` is null or points to a writable [`Buffer`].
unsafe fn give(out: *mut Buffer, bytes: Vec<u8>) {
    if out.is_null() {
        return;
    }
    let mut bytes = std::mem::ManuallyDrop::new(bytes);
    let buf = Buffer { ptr: bytes.as_mut_ptr(), len: bytes.len(), cap: bytes.capacity() };
    // SAFETY: the caller guarantees `out` is writable.
    unsafe { out.write(buf) };
}

/// `cnm_init`: starts the plugin made by `make` with the daemon's config.
///
/// # Safety
/// See the module's invariants.
pub unsafe fn init<F, Fut>(config: *const u8, len: usize, out: *mut Buffer, make: F) -> i32
where
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<Exported, String>>,
{
    // SAFETY: the loader passes a pointer valid for `len` bytes (or null with 0).
    let bytes = if config.is_null() || len == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(config, len) } };
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<LibraryInfo, String> {
        let cfg: LibraryConfig = if bytes.is_empty() {
            LibraryConfig::default()
        } else {
            serde_json::from_slice(bytes).map_err(|e| format!("invalid library config: {e}"))?
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cnm-driver-lib")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the library's runtime: {e}"))?;
        let ctx = Context { host_namespace: cfg.host_namespace.map(PathBuf::from) };
        let exported = runtime.block_on(make(ctx))?;
        let info = LibraryInfo { name: exported.name.clone() };
        STARTED.set(Started { runtime, exported }).map_err(|_| "the library was started twice".to_string())?;
        Ok(info)
    }));
    let (code, msg) = match result {
        Ok(Ok(info)) => (0, serde_json::to_vec(&info).unwrap_or_default()),
        Ok(Err(e)) => (1, e.into_bytes()),
        Err(p) => (2, format!("the library panicked at start: {}", panic_message(&p)).into_bytes()),
    };
    // SAFETY: `out` is writable (the loader's invariant).
    unsafe { give(out, msg) };
    code
}

/// One protocol call: `method` with the request's JSON; the answer's JSON
/// in `body`, the error kind's name (if any) in `kind`; returns the status.
///
/// # Safety
/// See the module's invariants.
pub unsafe fn call(method: &str, req: *const u8, len: usize, body: *mut Buffer, kind: *mut Buffer) -> u16 {
    // SAFETY: the loader passes a pointer valid for `len` bytes (or null with 0).
    let request = if req.is_null() || len == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(req, len) } };
    let Some(started) = STARTED.get() else {
        // SAFETY: out pointers are writable (the loader's invariant).
        unsafe {
            give(body, br#"{"Err":"the driver library was not started (cnm_init)"}"#.to_vec());
            give(kind, b"internal".to_vec());
        }
        return 500;
    };
    let reply =
        catch_unwind(AssertUnwindSafe(|| started.runtime.block_on(started.exported.server.handle(method, request))));
    let (status, answer, error_kind) = match reply {
        Ok(r) => (r.status, r.body.to_vec(), r.kind.map(cnm_driver_remote::kind_name)),
        Err(p) => {
            let msg = format!("the driver library panicked in {method}: {}", panic_message(&p));
            (500, serde_json::to_vec(&serde_json::json!({ "Err": msg })).unwrap_or_default(), Some("internal".into()))
        }
    };
    // SAFETY: out pointers are writable (the loader's invariant).
    unsafe {
        give(body, answer);
        if let Some(k) = error_kind {
            give(kind, k.into_bytes());
        }
    }
    status
}

/// `cnm_free`: takes back a buffer this library handed out.
///
/// # Safety
/// `buf` was written by this module and is freed once.
pub unsafe fn free(buf: Buffer) {
    if !buf.ptr.is_null() {
        // SAFETY: made from a Vec<u8> of this allocator with these parts (see `give`).
        drop(unsafe { Vec::from_raw_parts(buf.ptr, buf.len, buf.cap) });
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Exports a driver (and/or IPAM) from a `cdylib` crate: `make` is an
/// `FnOnce(Context) -> impl Future<Output = Result<Exported, String>>`,
/// run once when the daemon loads the library.
#[macro_export]
macro_rules! export_plugin {
    ($make:expr) => {
        /// The driver ABI this library was built for.
        #[unsafe(no_mangle)]
        pub extern "C" fn cnm_abi_version() -> u32 {
            $crate::abi::ABI_VERSION
        }

        /// Starts the plugin (see `cnm_driver_sdk::export::init`).
        ///
        /// # Safety
        /// As `cnm_driver_sdk::export::init`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn cnm_init(config: *const u8, len: usize, out: *mut $crate::abi::Buffer) -> i32 {
            // SAFETY: forwarded as is; the loader keeps the invariants.
            unsafe { $crate::export::init(config, len, out, $make) }
        }

        /// Frees a buffer this library returned.
        ///
        /// # Safety
        /// As `cnm_driver_sdk::export::free`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn cnm_free(buf: $crate::abi::Buffer) {
            // SAFETY: forwarded as is; the loader keeps the invariants.
            unsafe { $crate::export::free(buf) }
        }

        $crate::__export_calls! {
            cnm_Plugin_Activate = "Plugin.Activate",
            cnm_NetworkDriver_GetCapabilities = "NetworkDriver.GetCapabilities",
            cnm_NetworkDriver_CreateNetwork = "NetworkDriver.CreateNetwork",
            cnm_NetworkDriver_DeleteNetwork = "NetworkDriver.DeleteNetwork",
            cnm_NetworkDriver_CreateEndpoint = "NetworkDriver.CreateEndpoint",
            cnm_NetworkDriver_DeleteEndpoint = "NetworkDriver.DeleteEndpoint",
            cnm_NetworkDriver_EndpointOperInfo = "NetworkDriver.EndpointOperInfo",
            cnm_NetworkDriver_Join = "NetworkDriver.Join",
            cnm_NetworkDriver_Leave = "NetworkDriver.Leave",
            cnm_NetworkDriver_ProgramExternalConnectivity = "NetworkDriver.ProgramExternalConnectivity",
            cnm_NetworkDriver_RevokeExternalConnectivity = "NetworkDriver.RevokeExternalConnectivity",
            cnm_NetworkDriver_DiscoverNew = "NetworkDriver.DiscoverNew",
            cnm_NetworkDriver_DiscoverDelete = "NetworkDriver.DiscoverDelete",
            cnm_NetworkDriver_AllocateNetwork = "NetworkDriver.AllocateNetwork",
            cnm_NetworkDriver_FreeNetwork = "NetworkDriver.FreeNetwork",
            cnm_IpamDriver_GetCapabilities = "IpamDriver.GetCapabilities",
            cnm_IpamDriver_GetDefaultAddressSpaces = "IpamDriver.GetDefaultAddressSpaces",
            cnm_IpamDriver_RequestPool = "IpamDriver.RequestPool",
            cnm_IpamDriver_ReleasePool = "IpamDriver.ReleasePool",
            cnm_IpamDriver_RequestAddress = "IpamDriver.RequestAddress",
            cnm_IpamDriver_ReleaseAddress = "IpamDriver.ReleaseAddress",
        }
    };
}

/// One exported function per protocol call (used by [`export_plugin!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __export_calls {
    ($($sym:ident = $method:literal),* $(,)?) => {
        $(
            /// One protocol call (see `cnm_driver_sdk::export::call`).
            ///
            /// # Safety
            /// As `cnm_driver_sdk::export::call`.
            #[unsafe(no_mangle)]
            #[allow(non_snake_case)]
            pub unsafe extern "C" fn $sym(
                req: *const u8,
                len: usize,
                body: *mut $crate::abi::Buffer,
                kind: *mut $crate::abi::Buffer,
            ) -> u16 {
                // SAFETY: forwarded as is; the loader keeps the invariants.
                unsafe { $crate::export::call($method, req, len, body, kind) }
            }
        )*
    };
}
