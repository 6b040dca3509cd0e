//! Extractors whose failures are API errors (`{"message"}`, right status):
//! a strict JSON body, the `{id}` path parameter, the query string.

use crate::errors::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1 << 20;

/// A JSON body decoded strictly: malformed JSON, a wrong type or an unknown
/// field is a 400 naming the problem; a body over [`BODY_LIMIT`] is a 413.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // As dockerd: a body must be declared JSON, so that a web page (which
        // can only send forms and text without a preflight) cannot forge one.
        let content_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is too large: the limit is {BODY_LIMIT} bytes"),
                )
            } else {
                ApiError::bad_request(format!("cannot read request body: {}", e.body_text()))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("request body is empty: a JSON object is expected"));
        }
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::bad_request(format!(
                "Content-Type specified ({content_type}) must be 'application/json'"
            )));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
    }
}

/// The `{id}` path parameter (a name or an id).
#[derive(Debug)]
pub struct IdParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))?;
        params
            .iter()
            .find(|(k, _)| *k == "id")
            .map(|(_, v)| IdParam(v.to_string()))
            .ok_or_else(|| ApiError::internal("route has no id parameter"))
    }
}

/// The query string as a map; a malformed one is a 400.
#[derive(Debug, Default)]
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| QueryMap(q))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))
    }
}

impl QueryMap {
    /// A boolean parameter as Docker reads them (`1`, `true`, `True`…); absent is false.
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.0.get(key).map(|s| s.to_ascii_lowercase()) {
            None => Ok(false),
            Some(v) if v.is_empty() || v == "0" || v == "false" => Ok(false),
            Some(v) if v == "1" || v == "true" => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!("invalid value for {key}: {v:?} is not a boolean"))),
        }
    }
}
