//! The driver author's path: the behaviour suite against this driver, as
//! root or, with no root at all, in a user namespace of the test's own
//! (`rootless_tests!`): `cargo test -p cnm-example-ptp` as any user.

use cnm_driver_suite::{Declared, ScratchHost, Suite};
use cnm_example_ptp::PtpDriver;
use std::sync::Arc;

cnm_driver_suite::rootless_tests!();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptp_passes_the_behaviour_suite() {
    let host = match ScratchHost::new().await {
        Ok(h) => h,
        // Under CI a skip is a failure; elsewhere, say so loudly.
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED ptp_passes_the_behaviour_suite: {e}");
            return;
        }
        Err(e) => panic!("no scratch host: {e}"),
    };
    let nl = host.netlink().clone();
    Suite::new(Arc::new(PtpDriver::new(nl.clone())), &host)
        .declare(Declared::routed())
        .restart_with(move || Arc::new(PtpDriver::new(nl.clone())))
        .run()
        .await
        .assert_passed();
}
