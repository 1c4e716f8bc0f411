//! The one mapping from a refused request to an HTTP answer:
//! `{"error":"<code>","message":"<text>"}` with the status of its
//! [`ErrorCode`] (one status per code, everywhere). Client mistakes are
//! specific; internal failures say little. Making an [`ApiError`] logs
//! nothing: [`json_errors`], the layer every route of both services is
//! behind, logs each refusal once, as it leaves.

use axum::extract::OriginalUri;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proto::api::ErrorBody;
use proto::{ErrorCode, IdError, InstanceId, RoomId};

/// A refused request.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    status: StatusCode,
    message: String,
    location: Option<String>,
    /// Seconds for `Retry-After`.
    retry_after: Option<u64>,
    /// What the log says and the client is not told.
    detail: Option<String>,
}

/// What [`json_errors`] logs of a refusal, carried from the [`ApiError`]
/// to the layer in the response's extensions.
#[derive(Debug, Clone)]
struct Refusal {
    code: ErrorCode,
    message: String,
    detail: Option<String>,
}

impl ApiError {
    /// An error with this code (and so its status) and text.
    pub fn new(code: ErrorCode, message: String) -> Self {
        let status = StatusCode::from_u16(code.status()).expect("error statuses are valid");
        Self::with_status(status, code, message)
    }

    /// An answer the framework gave a status to already (the one place a
    /// status is not its code's: a 422 keeps its status as `bad_request`).
    fn with_status(status: StatusCode, code: ErrorCode, message: String) -> Self {
        Self {
            code,
            status,
            message,
            location: None,
            retry_after: None,
            detail: None,
        }
    }

    /// The same refusal with `detail` for the log, not for the client.
    pub fn with_detail(self, detail: impl std::fmt::Display) -> Self {
        Self {
            detail: Some(detail.to_string()),
            ..self
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

    /// 503: the store does not answer (`detail`, why, is logged).
    pub fn store_unavailable(detail: &str) -> Self {
        Self::new(
            ErrorCode::StoreUnavailable,
            "the coordination store is unreachable; retry shortly".into(),
        )
        .with_detail(detail)
    }

    /// 500, details logged, not shown.
    pub fn internal(e: &dyn std::fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, "internal error".into()).with_detail(e)
    }

    /// 307 to the room's path on `node`, keeping the query string.
    pub fn redirect(node: InstanceId, room: &RoomId, query: Option<&str>) -> Self {
        let location = location(node, room, query);
        Self {
            location: Some(location.clone()),
            ..Self::new(ErrorCode::Moved, format!("room {room} lives at {location}"))
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &str {
        self.code.as_str()
    }

    /// What went wrong, for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A redirect to the same `suffix` below the room's path on its owner
    /// (e.g. `/socket.io/` for a Socket.IO session); other errors as they
    /// are.
    pub fn with_path_suffix(mut self, suffix: &str) -> Self {
        if let Some(location) = &mut self.location {
            let at = location.find('?').unwrap_or(location.len());
            location.insert_str(at, suffix);
        }
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// The room's path on `node` with the query string of the request (a
/// join's name, token, resume point): where a [`ApiError::redirect`] points
/// and where the router's proxy sends a join.
pub fn location(node: InstanceId, room: &RoomId, query: Option<&str>) -> String {
    let mut location = proto::path::sharded(node, room);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        location.push('?');
        location.push_str(q);
    }
    location
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.as_str().to_owned(),
            message: self.message.clone(),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            resp.headers_mut().insert(header::LOCATION, loc);
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp.extensions_mut().insert(Refusal {
            code: self.code,
            message: self.message,
            detail: self.detail,
        });
        resp
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::Unavailable(detail) => Self::store_unavailable(&detail),
            store::StoreError::Conflict(message) => Self::new(ErrorCode::Conflict, message),
            store::StoreError::NoSpace(detail) => Self::new(
                ErrorCode::StoreFull,
                "the coordination store refuses writes (space quota exhausted); reads still work"
                    .into(),
            )
            .with_detail(detail),
            other => Self::internal(&other),
        }
    }
}

impl From<proto::wire::NameTooLong> for ApiError {
    fn from(e: proto::wire::NameTooLong) -> Self {
        Self::bad_request(ErrorCode::InvalidName, e.to_string())
    }
}

/// The layer every route of both services is behind (`map_response`):
/// gives the framework's own plain-text refusals the JSON body, then logs
/// each refusal once, with its code, status, method and path (not the
/// query, which may carry a token). Failures log at warn (error for a 500
/// or a full store), refusals by design and client mistakes at debug.
/// Answers passed through from elsewhere (a node's, through the router's
/// proxy) are logged where they were made.
pub async fn json_errors(
    method: Method,
    OriginalUri(uri): OriginalUri,
    resp: Response,
) -> Response {
    let resp = as_json(resp).await;
    if let Some(refusal) = resp.extensions().get::<Refusal>()
        && resp.status().as_u16() >= 400
    {
        log(&method, uri.path(), resp.status(), refusal);
    }
    resp
}

/// Turns the framework's own plain-text refusals (405 for a method a route
/// does not have, 400 for an undecodable path, 413 for an oversized body)
/// into the JSON error body every other answer uses.
async fn as_json(resp: Response) -> Response {
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
    let mut fixed = ApiError::with_status(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed
}

/// The one log line of a refusal.
fn log(method: &Method, path: &str, status: StatusCode, refusal: &Refusal) {
    let code = refusal.code.as_str();
    let status = status.as_u16();
    let message = refusal.message.as_str();
    let detail = refusal.detail.as_deref();
    match level(refusal.code, status) {
        tracing::Level::ERROR => {
            tracing::error!(code, status, %method, path, message, detail, "request failed")
        }
        tracing::Level::WARN => {
            tracing::warn!(code, status, %method, path, message, detail, "request failed")
        }
        _ => tracing::debug!(code, status, %method, path, message, detail, "request refused"),
    }
}

/// How loudly a refusal is logged.
fn level(code: ErrorCode, status: u16) -> tracing::Level {
    match code {
        _ if status < 500 => tracing::Level::DEBUG,
        ErrorCode::Internal | ErrorCode::StoreFull => tracing::Level::ERROR,
        // A limit reached or a state the server is in, counted in metrics:
        // a burst of load must not flood the log.
        ErrorCode::NodeFull
        | ErrorCode::RoomFull
        | ErrorCode::RoomMoving
        | ErrorCode::Draining
        | ErrorCode::ShuttingDown
        | ErrorCode::Fenced
        | ErrorCode::TooManyHandshakes
        | ErrorCode::JoinRateLimited
        | ErrorCode::StoreViewLoading
        | ErrorCode::StoreViewStale => tracing::Level::DEBUG,
        _ if status == 500 => tracing::Level::ERROR,
        _ => tracing::Level::WARN,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// The log lines written while `uri` is served by a router whose
    /// handler fails with `err`, and the answer's status.
    async fn logged(err: fn() -> ApiError, uri: &str) -> (StatusCode, String) {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = Router::new()
            .route("/x", get(move || async move { err() }))
            .layer(axum::middleware::map_response(json_errors));
        let resp = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let lines = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        (resp.status(), lines)
    }

    #[tokio::test]
    async fn a_failure_is_logged_once_with_its_detail() {
        let (status, log) = logged(|| ApiError::internal(&"disk on fire"), "/x?token=s3cret").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(log.lines().count(), 1, "{log}");
        for part in [
            "ERROR",
            "code=\"internal\"",
            "status=500",
            "method=GET",
            "path=\"/x\"",
            "disk on fire",
        ] {
            assert!(log.contains(part), "{part} missing: {log}");
        }
        assert!(!log.contains("s3cret"), "the query is not logged: {log}");
    }

    #[tokio::test]
    async fn client_mistakes_and_refusals_by_design_log_at_debug() {
        let (_, log) = logged(|| ApiError::not_found("nothing"), "/x").await;
        assert!(log.contains("DEBUG") && log.contains("not_found"), "{log}");
        let (_, log) = logged(|| ApiError::new(ErrorCode::NodeFull, "full".into()), "/x").await;
        assert!(log.contains("DEBUG") && log.contains("node_full"), "{log}");
        let (_, log) = logged(|| ApiError::store_unavailable("etcd down"), "/x").await;
        assert!(log.contains("WARN") && log.contains("etcd down"), "{log}");
    }

    #[tokio::test]
    async fn the_frameworks_refusals_get_the_body_and_the_log_line() {
        let (status, log) = logged(|| ApiError::not_found("unused"), "/nowhere").await;
        // No fallback here: the framework's own 404 is made JSON and logged.
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            log.contains("code=\"bad_request\"") && log.contains("path=\"/nowhere\""),
            "{log}"
        );
    }

    #[test]
    fn every_code_has_a_valid_status() {
        for code in ErrorCode::ALL {
            let e = ApiError::new(*code, String::new());
            assert_eq!(e.status().as_u16(), code.status(), "{code}");
        }
    }
}
