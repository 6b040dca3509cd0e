//! The driver error type and its kinds (libnetwork's error classes).

pub use cnm_kinds::ErrorKind;

/// An error returned by a driver: a kind and a lowercase message with its context.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The result type of driver calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None }
    }

    /// An error of `kind` that is `source` (another crate's typed error,
    /// kept as the cause and reachable by `source()`); its text is the message.
    pub fn from_source(kind: ErrorKind, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error { kind, message: source.to_string(), source: Some(Box::new(source)) }
    }

    /// Attaches the underlying cause; its text is appended to the message.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.message = format!("{}: {}", self.message, source);
        self.source = Some(Box::new(source));
        self
    }

    /// An invalid-parameter error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }

    /// A not-found error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// A not-implemented error for `call`.
    pub fn not_implemented(call: &str) -> Self {
        Self::new(ErrorKind::NotImplemented, format!("{call} is not implemented by this driver"))
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// A forbidden error: valid, but not allowed now.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    /// A conflict with an existing object.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// A resource or service the call needs is not available.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// The call did not finish in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Any error that knows its kind (the OS layer's, say) becomes a driver
/// error of that kind, its text the message and itself the source.
impl<E: cnm_kinds::Kinded + std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Self {
        Error::from_source(e.kind(), e)
    }
}
