//! The one mapping from a refused request to an HTTP answer:
//! `{"error":"<code>","message":"<text>"}` with the status of its
//! [`ErrorCode`] (one status per code, everywhere). Client mistakes are
//! specific; internal failures say little.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proto::api::ErrorBody;
use proto::{ErrorCode, IdError, InstanceId, RoomId};

/// A refused request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    location: Option<String>,
    /// Seconds for `Retry-After`.
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this code (and so its status) and text.
    pub fn new(code: ErrorCode, message: String) -> Self {
        let status = StatusCode::from_u16(code.status()).expect("error statuses are valid");
        Self::with_status(status, code.as_str(), message)
    }

    /// An answer the framework gave a status to already.
    fn with_status(status: StatusCode, code: &str, message: String) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: code.to_owned(),
                message,
            },
            location: None,
            retry_after: None,
        }
    }

    /// A refusal that frees up by itself, with `Retry-After`.
    pub fn busy(code: ErrorCode, message: String, retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(code, message)
        }
    }

    /// A client mistake with a specific code.
    pub fn bad_request(code: ErrorCode, message: String) -> Self {
        Self::new(code, message)
    }

    /// 400 for an id that breaks its rule; the message states the rule.
    pub fn bad_id(e: IdError) -> Self {
        let code = match e {
            IdError::Instance(_) => ErrorCode::InvalidInstanceId,
            IdError::Room(_) => ErrorCode::InvalidRoomId,
        };
        Self::new(code, e.to_string())
    }

    /// 404 `not_found`.
    pub fn not_found(message: &str) -> Self {
        Self::new(ErrorCode::NotFound, message.to_owned())
    }

    /// 503: the store does not answer.
    pub fn store_unavailable(detail: &str) -> Self {
        tracing::warn!(error = detail, "store unavailable");
        Self::new(
            ErrorCode::StoreUnavailable,
            "the coordination store is unreachable; retry shortly".into(),
        )
    }

    /// 500, details logged, not shown.
    pub fn internal(e: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(ErrorCode::Internal, "internal error".into())
    }

    /// 307 to the room's path on `node`, keeping the query string.
    pub fn redirect(node: InstanceId, room: &RoomId, query: Option<&str>) -> Self {
        let mut location = proto::path::sharded(node, room);
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            location.push('?');
            location.push_str(q);
        }
        Self {
            location: Some(location.clone()),
            ..Self::new(ErrorCode::Moved, format!("room {room} lives at {location}"))
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &str {
        &self.body.error
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            resp.headers_mut().insert(header::LOCATION, loc);
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::Unavailable(detail) => Self::store_unavailable(&detail),
            store::StoreError::Conflict(message) => Self::new(ErrorCode::Conflict, message),
            store::StoreError::NoSpace(detail) => {
                tracing::error!(
                    error = detail,
                    "the store refuses writes: its space quota is exhausted"
                );
                Self::new(ErrorCode::StoreFull,
                    "the coordination store refuses writes (space quota exhausted); reads still work".into(),
                )
            }
            other => Self::internal(&other),
        }
    }
}

impl From<proto::wire::NameTooLong> for ApiError {
    fn from(e: proto::wire::NameTooLong) -> Self {
        Self::bad_request(ErrorCode::InvalidName, e.to_string())
    }
}

/// Turns the framework's own plain-text refusals (405 for a method a route
/// does not have, 400 for an undecodable path, 413 for an oversized body)
/// into the JSON error body every other answer uses.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::BodyTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    };
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message = match String::from_utf8_lossy(&text).trim() {
        "" => status.canonical_reason().unwrap_or("refused").to_owned(),
        t => t.to_owned(),
    };
    // The framework's status stands (a 422 stays a 422): only the body is
    // made the JSON one.
    let mut fixed = ApiError::with_status(status, code.as_str(), message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed
}
