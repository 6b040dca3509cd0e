//! The kernel probes themselves: on this machine's kernel they answer
//! whatever it has (printed), and in the second kernel (Debian's stock
//! kernel under qemu) every link kind cnm uses and the IPsec ESP module are
//! found — so a probe never reports missing what a kernel has.

use cnm::osl::kernel::{LinkFeature, has_link, module_available};
use cnm_tests::kernel;

const FEATURES: [LinkFeature; 4] = [LinkFeature::Dummy, LinkFeature::Vlan, LinkFeature::Ipvlan, LinkFeature::Wireguard];

/// Each probe answers (no error), and its answer matches the module files:
/// a link kind found means its module is loaded, built in or installed. In
/// the second kernel every one is found.
#[tokio::test]
async fn probes_answer_what_the_kernel_has() {
    if !cnm_tests::privileged("probes_answer_what_the_kernel_has") {
        return;
    }
    for feature in FEATURES {
        let present = has_link(feature).await.unwrap_or_else(|e| panic!("probe {feature:?}: {e}"));
        eprintln!("{feature:?} (module {}): {present}", feature.module());
        if present {
            assert!(module_available(feature.module()), "{feature:?} works, so its module is there");
        }
        if kernel::in_second_kernel() {
            assert!(present, "the second kernel has {feature:?}");
        }
    }
    if kernel::in_second_kernel() {
        assert!(module_available("esp4"), "the second kernel has IPsec ESP");
    }
}

/// The probes again, in the second kernel.
#[test]
fn in_the_second_kernel() {
    kernel::run_in_second_kernel("kernel_features_in_the_second_kernel", &["probes_answer_what_the_kernel_has"]);
}
