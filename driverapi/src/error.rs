//! The driver error type and its kinds (libnetwork's error classes).

pub use cnm_kinds::ErrorKind;

/// An error returned by a driver: a kind, a lowercase message saying what
/// failed, and the cause as `source()`. Its `Display` is the message alone;
/// [`cnm_kinds::Chain`] prints it with its causes (the whole text a plugin
/// replies, an API answers or a log line shows).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    /// `None`: the error is its source's (see [`Error::from_source`]).
    message: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The result type of driver calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.message, &self.source) {
            (Some(m), _) => f.write_str(m),
            (None, Some(s)) => s.fmt(f),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let source = self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static));
        match self.message {
            Some(_) => source,
            // Transparent: the source's own message is this error's.
            None => source.and_then(|s| s.source()),
        }
    }
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: Some(message.into()), source: None }
    }

    /// An error of `kind` that is `source` (another crate's typed error):
    /// its text is this error's, its causes this error's causes, and it
    /// stays reachable by downcasting.
    pub fn from_source(kind: ErrorKind, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error { kind, message: None, source: Some(Box::new(source)) }
    }

    /// Attaches the underlying cause, kept as `source()`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        if self.message.is_none() {
            // A transparent error keeps its whole text as its message.
            self.message = self.source.as_deref().map(cnm_kinds::chain);
        }
        self.source = Some(Box::new(source));
        self
    }

    /// The typed error this one was made from ([`Error::from_source`]) or
    /// attached ([`Error::with_source`]), for a caller that downcasts it.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
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

    /// The whole text: the message and its causes, without the kind.
    pub fn message(&self) -> String {
        cnm_kinds::chain(self)
    }
}

/// Any error that knows its kind (the OS layer's, say) becomes a driver
/// error of that kind, its text the message and itself the source.
impl<E: cnm_kinds::Kinded + std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Self {
        Error::from_source(e.kind(), e)
    }
}
