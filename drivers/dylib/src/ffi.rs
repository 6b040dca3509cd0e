//! The daemon's side of the driver ABI ([`cnm_driverapi::abi`]): the only
//! `unsafe` of the crate.
//!
//! Invariants this module keeps, and why the calls are sound:
//! * the version is read before anything else is called, and a library of
//!   another ABI version is refused: every signature below is then the one
//!   the library was built with;
//! * the `libloading::Library` lives as long as any [`Library`] handle (an
//!   `Arc`), so no function pointer outlives its code;
//! * request bytes stay borrowed for the whole call; out buffers start
//!   empty, are copied once, and each non-null one goes back to the
//!   library's `cnm_free` exactly once;
//! * `cnm_init` is called once, before any protocol call.
//!
//! What the library must keep (the SDK's exporter does): no unwinding
//! across the boundary, buffers made by its own allocator.

use cnm_driverapi::abi::{self, Buffer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

type AbiVersionFn = unsafe extern "C" fn() -> u32;
type InitFn = unsafe extern "C" fn(*const u8, usize, *mut Buffer) -> i32;
type FreeFn = unsafe extern "C" fn(Buffer);
type CallFn = unsafe extern "C" fn(*const u8, usize, *mut Buffer, *mut Buffer) -> u16;

/// Why a library could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file could not be loaded, or lacks a symbol every library has.
    /// (The loader's error names the path.)
    #[error("cannot load the driver library")]
    Load {
        /// The library.
        path: PathBuf,
        /// The loader's error.
        #[source]
        source: libloading::Error,
    },
    /// Built for another version of the ABI.
    #[error(
        "{path} was built for cnm driver ABI version {found}; this daemon speaks version {expected}: rebuild it against this cnm",
        path = .path.display()
    )]
    AbiVersion {
        /// The library.
        path: PathBuf,
        /// The library's version.
        found: u32,
        /// Ours.
        expected: u32,
    },
}

/// An open library of the current ABI version, with its functions resolved.
pub(crate) struct Library {
    calls: HashMap<&'static str, CallFn>,
    init: InitFn,
    free: FreeFn,
    // Last: dropped after the function pointers above are gone.
    _lib: libloading::Library,
}

impl Library {
    /// Opens `path` and checks its ABI version.
    pub fn open(path: &Path) -> Result<Library, OpenError> {
        let load = |source| OpenError::Load { path: path.to_path_buf(), source };
        // SAFETY: loading runs the library's initialisers; a driver library
        // is trusted code that the operator put in the driver directory.
        let lib = unsafe { libloading::Library::new(path) }.map_err(load)?;
        // SAFETY: every library of any version exports this symbol with this signature.
        let version: AbiVersionFn = unsafe { *lib.get::<AbiVersionFn>(abi::SYM_ABI_VERSION.as_bytes()).map_err(load)? };
        // SAFETY: a plain function of no argument.
        let found = unsafe { version() };
        if found != abi::ABI_VERSION {
            return Err(OpenError::AbiVersion { path: path.to_path_buf(), found, expected: abi::ABI_VERSION });
        }
        // SAFETY: the version matches, so these symbols have these signatures.
        let (init, free) = unsafe {
            (
                *lib.get::<InitFn>(abi::SYM_INIT.as_bytes()).map_err(load)?,
                *lib.get::<FreeFn>(abi::SYM_FREE.as_bytes()).map_err(load)?,
            )
        };
        let mut calls = HashMap::new();
        for method in abi::METHODS {
            // SAFETY: as above; a missing method is simply not exported.
            if let Ok(f) = unsafe { lib.get::<CallFn>(abi::symbol(method).as_bytes()) } {
                calls.insert(method, *f);
            }
        }
        Ok(Library { calls, init, free, _lib: lib })
    }

    /// Starts the library with `config` (JSON): its answer, and whether it succeeded.
    pub fn init(&self, config: &[u8]) -> (bool, Vec<u8>) {
        let mut out = Buffer::empty();
        // SAFETY: `config` is borrowed for the call; `out` is a valid, empty buffer.
        let code = unsafe { (self.init)(config.as_ptr(), config.len(), &mut out) };
        (code == 0, self.take(out))
    }

    /// Whether the library exports `method`.
    pub fn exports(&self, method: &str) -> bool {
        self.calls.contains_key(method)
    }

    /// One protocol call: `None` if the library does not export `method`;
    /// else the status, the answer's bytes and the error kind's name.
    pub fn call(&self, method: &str, request: &[u8]) -> Option<(u16, Vec<u8>, Vec<u8>)> {
        let f = self.calls.get(method)?;
        let (mut body, mut kind) = (Buffer::empty(), Buffer::empty());
        // SAFETY: `request` is borrowed for the call; both buffers are valid and empty.
        let status = unsafe { f(request.as_ptr(), request.len(), &mut body, &mut kind) };
        Some((status, self.take(body), self.take(kind)))
    }

    /// Copies a buffer the library returned and gives it back.
    fn take(&self, buf: Buffer) -> Vec<u8> {
        if buf.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: the library wrote `len` initialised bytes at `ptr`.
        let bytes = unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }.to_vec();
        // SAFETY: returned once, to the library that allocated it.
        unsafe { (self.free)(buf) };
        bytes
    }
}
