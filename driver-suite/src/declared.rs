//! What the driver under test says it does, from which the suite chooses
//! its cases, and what the suite found.

use std::collections::BTreeMap;

/// What a driver declares it does. The suite runs the cases that apply and
/// holds the driver to them: a declared ability is proved by packets, and
/// one not declared must be refused or absent in the documented way.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    /// Options every network of the suite is created with (a macvlan
    /// network's parent, for example).
    pub network_options: BTreeMap<String, String>,
    /// The prefix of the driver's own option keys (for example
    /// `com.docker.network.bridge.`): a key under it that the driver does
    /// not know must be refused as an invalid parameter that names it.
    /// Keys under other prefixes are kept, as Docker keeps them.
    pub option_prefix: Option<String>,
    /// A join gives the sandbox an interface.
    pub interface: bool,
    /// A joined sandbox reaches the network's gateway address.
    pub gateway: bool,
    /// Two sandboxes joined to one network reach each other.
    pub connects_sandboxes: bool,
    /// Ports given to `program_external_connectivity` answer from outside
    /// the host, and stop answering when revoked.
    pub publishes_ports: bool,
    /// The driver keeps no record of networks and endpoints (the `null`
    /// and `host` drivers of Docker): calls about unknown ones succeed.
    pub stateless: bool,
}

impl Declared {
    /// A driver that connects sandboxes to each other and to a gateway on
    /// the host, and publishes ports (the bridge driver's abilities).
    pub fn bridge_like(option_prefix: &str) -> Self {
        Declared {
            option_prefix: Some(option_prefix.to_string()),
            interface: true,
            gateway: true,
            connects_sandboxes: true,
            publishes_ports: true,
            ..Default::default()
        }
    }

    /// A driver that connects sandboxes and a gateway, without published ports.
    pub fn routed() -> Self {
        Declared { interface: true, gateway: true, connects_sandboxes: true, ..Default::default() }
    }

    /// A driver that gives a sandbox no interface (`null`, `host`).
    pub fn no_interface() -> Self {
        Declared { stateless: true, ..Default::default() }
    }

    /// The same, with `key` = `value` among every network's options.
    pub fn with_option(mut self, key: &str, value: &str) -> Self {
        self.network_options.insert(key.to_string(), value.to_string());
        self
    }

    /// The same, with `prefix` as the driver's own option namespace.
    pub fn with_option_prefix(mut self, prefix: &str) -> Self {
        self.option_prefix = Some(prefix.to_string());
        self
    }
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The driver behaved as the contract says.
    Passed,
    /// The case does not apply to this driver (why).
    Skipped(String),
    /// It did not (what happened).
    Failed(String),
}

/// What the suite found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The driver's name.
    pub driver: String,
    /// Each case and its outcome.
    pub cases: Vec<(&'static str, Outcome)>,
}

impl Report {
    /// Whether no case failed.
    pub fn passed(&self) -> bool {
        !self.cases.iter().any(|(_, o)| matches!(o, Outcome::Failed(_)))
    }

    /// The names of the cases that failed.
    pub fn failed(&self) -> Vec<&'static str> {
        self.cases.iter().filter(|(_, o)| matches!(o, Outcome::Failed(_))).map(|(n, _)| *n).collect()
    }

    /// The names of the cases that passed.
    pub fn passed_cases(&self) -> Vec<&'static str> {
        self.cases.iter().filter(|(_, o)| *o == Outcome::Passed).map(|(n, _)| *n).collect()
    }

    /// Panics with every failed case, if any (for tests).
    pub fn assert_passed(&self) {
        let failed: Vec<String> = self
            .cases
            .iter()
            .filter_map(|(n, o)| match o {
                Outcome::Failed(why) => Some(format!("  {n}: {why}")),
                _ => None,
            })
            .collect();
        assert!(failed.is_empty(), "driver {} failed the behaviour suite:\n{}", self.driver, failed.join("\n"));
    }
}
