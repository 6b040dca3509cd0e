//! One behaviour suite for every driver (OpenDAL's habit): give it any
//! `Arc<dyn Driver>`, a [`ScratchHost`] and what the driver [`Declared`],
//! and it holds the driver to the contract of `cnm_driverapi::Driver`,
//! choosing its cases by what was declared. Every in-tree driver passes
//! it in CI, compiled in, loaded as a library and served as a remote
//! plugin; a driver author runs it against theirs in a test:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn example(driver: Arc<dyn cnm_driverapi::Driver>) -> Result<(), String> {
//! use cnm_driver_suite::{Declared, ScratchHost, Suite};
//! let host = ScratchHost::new().await?; // root, or rootless: see rootless_tests!
//! Suite::new(driver, &host)
//!     .declare(Declared::routed().with_option_prefix("com.example.mydriver."))
//!     .run()
//!     .await
//!     .assert_passed();
//! # Ok(())
//! # }
//! ```
//!
//! Without root, one line in the test file makes every test of the binary
//! run in a user namespace of its own (bridges, veths, namespaces and
//! nf_tables all work there): `cnm_driver_suite::rootless_tests!();`, then
//! `cargo test` as any user.
//!
//! What it proves, without a controller (the suite places the join's
//! interface in the sandbox itself, as the controller does, so it reads
//! the driver's answers and the kernel's packets, not cnm's bookkeeping):
//! * a network is created, deleted, and created again (what a restart
//!   replays); an endpoint with an address, created twice (a replay), and
//!   without one (created, or refused as an invalid parameter);
//! * the documented error kinds: an endpoint on an unknown network is
//!   not-found (unless the driver declares it keeps no records); deleting
//!   or leaving what is unknown succeeds or is not-found, never more;
//! * options: a key of another namespace is kept (the network is made);
//!   an unknown key of the driver's own namespace is refused as an
//!   invalid parameter that names it, and leaves nothing behind;
//! * join, by packets: the sandbox pings the gateway and the other
//!   sandbox (on the second host, for a driver that spans hosts), as
//!   declared; after a leave the other sandbox no longer answers, and the
//!   link the join named is gone;
//! * external connectivity, observed: a port published through
//!   `program_external_connectivity` answers a client outside the host
//!   with the sandbox's service, and no longer after the revoke; a driver
//!   that publishes nothing succeeds or answers not-implemented;
//! * restart and replay: a new instance of the driver, told again of the
//!   network, its endpoints and ports, keeps the sandboxes connected and
//!   the port answering, and then leaves and deletes cleanly.

mod cases;
mod declared;
mod host;
mod ipam;
mod plumb;

pub use cases::{Restart, Suite};
pub use declared::{Declared, Outcome, Report};
pub use host::{CLIENT_ADDRESS, HOST_ADDRESS, Sandbox, ScratchHost};
pub use ipam::check_ipam;

/// Moves the test binary into a user namespace of its own before `main`
/// when it is not run as root, so that the suite runs rootless with a
/// plain `cargo test`. Put it once at the top level of the test file.
///
/// The kernel lets only a single-threaded process enter a user namespace,
/// and libtest starts its threads in `main`: the macro places a function
/// in the binary's `.init_array`, which runs before. When entering fails
/// (the kernel refuses unprivileged user namespaces), [`ScratchHost::new`]
/// fails with the reason.
#[macro_export]
macro_rules! rootless_tests {
    () => {
        #[used]
        #[unsafe(link_section = ".init_array")]
        static CNM_SUITE_ENTER_ROOTLESS: extern "C" fn() = {
            extern "C" fn enter() {
                $crate::enter_rootless();
            }
            enter
        };
    };
}

/// What [`rootless_tests!`] calls: enters a user namespace (with network
/// and mount namespaces of its own) unless the process is root or
/// `CNM_TEST_NO_USERNS` is set. Remembers a failure for
/// [`rootless_error`].
#[doc(hidden)]
pub fn enter_rootless() {
    if cnm_osl::userns::is_root() || std::env::var_os("CNM_TEST_NO_USERNS").is_some() {
        return;
    }
    if let Err(e) = cnm_osl::userns::enter() {
        let _ = ROOTLESS_ERROR.set(cnm_osl::chain(&e));
    }
}

static ROOTLESS_ERROR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Why [`rootless_tests!`] could not enter a user namespace, if it tried and failed.
pub fn rootless_error() -> Option<&'static str> {
    ROOTLESS_ERROR.get().map(String::as_str)
}
