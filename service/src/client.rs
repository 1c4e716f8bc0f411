//! [`InternalClient`]: calls to the nodes' internal endpoints (handoff,
//! adopt, drain), from another node or from the router's operator commands.
//! Every call is bounded by a timeout and carries the cluster key.

use std::time::Duration;

use axum::http::{Method, Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use proto::api::ErrorBody;
use proto::handoff::internal_key;
use proto::token::Secret;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bound on one internal call (a handoff batch includes the target's
/// adoption and the store transactions of up to a batch of rooms).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an internal call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer (connect failure, timeout, broken connection).
    #[error("{url}: no answer: {reason}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        reason: String,
    },
    /// An answer that is an error.
    #[error("{url}: {status} {}: {}", body.error, body.message)]
    Refused {
        /// Where.
        url: String,
        /// The status.
        status: StatusCode,
        /// The error body.
        body: ErrorBody,
    },
}

impl CallError {
    /// The error code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { body, .. } => Some(&body.error),
            Self::Unreachable { .. } => None,
        }
    }
}

/// A pooled HTTP client for internal calls. Cheap to clone.
#[derive(Clone)]
pub struct InternalClient {
    http: Client<HttpConnector, Full<Bytes>>,
    key: String,
}

impl InternalClient {
    /// A client that authenticates with the key derived from `secret`.
    pub fn new(secret: &Secret) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(3)));
        Self {
            http: Client::builder(TokioExecutor::new()).build(connector),
            key: internal_key(secret),
        }
    }

    /// `POST {base}{path}` with a JSON body; the JSON answer on 2xx.
    pub async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: &B,
    ) -> Result<R, CallError> {
        let json = serde_json::to_vec(body).expect("internal bodies serialize");
        self.post_json(base, path, Bytes::from(json)).await
    }

    /// `POST {base}{path}` with a body that is JSON already (assembled by
    /// the caller, e.g. from snapshots it has serialized one by one to size
    /// its requests); the JSON answer on 2xx.
    pub async fn post_json<R: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        json: Bytes,
    ) -> Result<R, CallError> {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let unreachable = |reason: String| CallError::Unreachable {
            url: url.clone(),
            reason,
        };
        let req = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(json))
            .map_err(|e| unreachable(e.to_string()))?;
        let call = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok::<_, CallError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| unreachable(format!("timed out after {CALL_TIMEOUT:?}")))??;
        if status.is_success() {
            serde_json::from_slice(&bytes)
                .map_err(|e| unreachable(format!("unreadable answer: {e}")))
        } else {
            let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
                error: "unknown".into(),
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
            Err(CallError::Refused { url, status, body })
        }
    }
}
