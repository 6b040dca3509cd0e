//! Drivers found by name when first used (remote plugins), instead of being
//! registered up front.

use crate::{Driver, Result};
use async_trait::async_trait;
use std::sync::Arc;

/// Supplies network drivers by name on demand.
///
/// The controller asks its providers for a driver name it does not know, and
/// keeps the answer for later calls.
#[async_trait]
pub trait DriverProvider: Send + Sync + 'static {
    /// The driver named `name`, or `None` if this provider has no such driver.
    ///
    /// # Behavior
    /// - Answers quickly: a controller that restores its state asks for every
    ///   driver its networks use, and must not wait long for one that is down
    ///   (an error here leaves the network to be restored on its next use).
    async fn network_driver(&self, name: &str) -> Result<Option<Arc<dyn Driver>>>;

    /// The names this provider can supply now (for error messages).
    async fn available(&self) -> Vec<String> {
        Vec::new()
    }
}
