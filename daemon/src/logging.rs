//! Logging setup: tracing to stderr, human-readable or JSON lines.

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Why logging cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The level or directives do not parse.
    #[error("invalid log level {level:?}: {message}")]
    Level {
        /// What was given.
        level: String,
        /// The parser's complaint.
        message: String,
    },
    /// A subscriber is installed already.
    #[error("logging is already set up")]
    AlreadySet,
}

/// Installs the global subscriber with `level` (`info`, `debug`, or tracing directives).
pub fn init(level: &str, format: LogFormat) -> Result<(), LogError> {
    let filter =
        EnvFilter::try_new(level).map_err(|e| LogError::Level { level: level.to_string(), message: e.to_string() })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|_| LogError::AlreadySet)
}
