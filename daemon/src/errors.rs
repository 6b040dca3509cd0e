//! API errors and their HTTP form: a status and `{"message": "..."}`, with
//! the controller's error kinds mapped to the statuses Docker uses.

use crate::wire::ErrorBody;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cnm::ErrorKind;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message, one line.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    /// 400: the request is malformed or names invalid values.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: the object does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 403: valid, but not allowed in the current state.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 409: clashes with an existing object.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 500: an unexpected failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// The HTTP status of a controller error kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidParameter => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<cnm::Error> for ApiError {
    fn from(e: cnm::Error) -> Self {
        ApiError::new(status_of(e.kind()), cnm::chain(&e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), error = %self.message, "request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), error = %self.message, "request refused");
        }
        (self.status, Json(ErrorBody { message: self.message })).into_response()
    }
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_errors_keep_docker_statuses() {
        let e: ApiError = cnm::Error::NetworkNameExists("n1".into()).into();
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(e.message, "network with name n1 already exists");
        let e: ApiError = cnm::Error::NetworkNotFound("x".into()).into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let endpoints = vec![("web".to_string(), "0123456789abcdef".to_string())];
        let e: ApiError = cnm::Error::ActiveEndpoints { name: "n".into(), id: "i".into(), endpoints }.into();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert_eq!(e.message, r#"network n id i has active endpoints (name:"web" id:"0123456789ab")"#);
        let e: ApiError = cnm::Error::InvalidParameter("bad".into()).into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}

/// An error and its causes on one line, each once ([`cnm::Chain`]): the
/// project's errors say only what they add, and contexts added by
/// `anyhow` are causes like any other.
pub fn report(e: &(dyn std::error::Error + 'static)) -> String {
    cnm::chain(e)
}

#[cfg(test)]
mod report_tests {
    use super::report;

    #[derive(Debug, thiserror::Error)]
    #[error("open host netlink")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_printed_once() {
        let e = Outer(std::io::Error::other("permission denied"));
        assert_eq!(report(&e), "open host netlink: permission denied");
        let wrapped = anyhow::Error::new(e).context("start the controller");
        assert_eq!(report(wrapped.as_ref()), "start the controller: open host netlink: permission denied");
    }
}
