//! [`InternalClient`]: what a router or another node can ask a node to do
//! through its internal endpoints (hand rooms off, adopt rooms' state,
//! change its state), one typed method per endpoint of
//! [`proto::handoff`], and [`InternalClient::relay`] for the server API
//! ([`proto::backend`]) that the router passes on. Every call is bounded by
//! a timeout and carries the cluster key.

use std::time::Duration;

use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use proto::RoomId;
use proto::api::ErrorBody;
use proto::handoff::{
    ADOPT_PATH, AdoptAnswer, Adopted, HANDOFF_PATH, HandoffAnswer, HandoffBatch, STATE_PATH,
    StateAnswer, StateRequest, adopt_path, internal_key,
};
use proto::record::NodeState;
use proto::replication::REPLICATE_PATH;
use proto::token::Secret;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Bound on one internal call (a handoff batch includes the target's
/// adoption and the store transactions of up to a batch of rooms).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on opening a connection to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The owner's end of a replication stream ([`InternalClient::open_replication`]).
pub type ReplicaSocket = WebSocketStream<TcpStream>;

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

/// A node's answer, whatever its status.
#[derive(Debug)]
pub struct Relayed {
    /// The status.
    pub status: StatusCode,
    /// A redirect's `Location`.
    pub location: Option<String>,
    /// The body (JSON, or empty).
    pub body: Bytes,
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
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        Self {
            http: Client::builder(TokioExecutor::new()).build(connector),
            key: internal_key(secret),
        }
    }

    /// Asks the owner at `base` to move the batch's rooms to `batch.to`;
    /// one outcome per room.
    pub async fn handoff(
        &self,
        base: &str,
        batch: &HandoffBatch,
    ) -> Result<HandoffAnswer, CallError> {
        self.post(base, HANDOFF_PATH, batch).await
    }

    /// Gives the target at `base` one room's state: `snapshot` is a
    /// [`proto::handoff::RoomSnapshot`] of `room` serialized as JSON
    /// already (the owner sizes its requests by the serialized bytes).
    pub async fn adopt_one(
        &self,
        base: &str,
        room: &RoomId,
        snapshot: Vec<u8>,
    ) -> Result<Adopted, CallError> {
        self.post_json(base, &adopt_path(room), Bytes::from(snapshot))
            .await
    }

    /// Gives the target at `base` several rooms' state in one
    /// [`proto::handoff::AdoptBatch`], each snapshot serialized as JSON
    /// already; one entry per snapshot, in order.
    pub async fn adopt(
        &self,
        base: &str,
        snapshots: Vec<Vec<u8>>,
    ) -> Result<Vec<Adopted>, CallError> {
        let body = adopt_body(snapshots);
        let answer: AdoptAnswer = self.post_json(base, ADOPT_PATH, body.into()).await?;
        Ok(answer.rooms)
    }

    /// Opens the replication stream to the replica at `base`
    /// ([`proto::replication`]): a WebSocket with the cluster key, on a
    /// connection without Nagle's delay (each batch waits for its answer).
    pub async fn open_replication(&self, base: &str) -> Result<ReplicaSocket, CallError> {
        let url = format!("{}{REPLICATE_PATH}", base.trim_end_matches('/'));
        let unreachable = |reason: String| CallError::Unreachable {
            url: url.clone(),
            reason,
        };
        // Internal calls are plain HTTP, as every other one of this client.
        let authority = base
            .trim_end_matches('/')
            .strip_prefix("http://")
            .ok_or_else(|| unreachable("not an http:// address".to_owned()))?;
        let mut req = format!("ws://{authority}{REPLICATE_PATH}")
            .into_client_request()
            .map_err(|e| unreachable(e.to_string()))?;
        let key = HeaderValue::from_str(&format!("Bearer {}", self.key))
            .map_err(|e| unreachable(e.to_string()))?;
        req.headers_mut().insert(header::AUTHORIZATION, key);
        let open = async {
            let tcp = TcpStream::connect(authority)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            tcp.set_nodelay(true)
                .map_err(|e| unreachable(e.to_string()))?;
            match tokio_tungstenite::client_async(req, tcp).await {
                Ok((socket, _)) => Ok(socket),
                Err(WsError::Http(resp)) => {
                    let status = resp.status();
                    let bytes = resp.into_body().unwrap_or_default();
                    Err(CallError::Refused {
                        url: url.clone(),
                        status,
                        body: error_body(&bytes),
                    })
                }
                Err(e) => Err(unreachable(e.to_string())),
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, open)
            .await
            .map_err(|_| unreachable(format!("no connection in {CONNECT_TIMEOUT:?}")))?
    }

    /// Makes the node at `base` stop taking new rooms (`Draining`) or take
    /// them again (`Active`).
    pub async fn set_state(&self, base: &str, state: NodeState) -> Result<StateAnswer, CallError> {
        self.post(base, STATE_PATH, &StateRequest { state }).await
    }

    /// `POST {base}{path}` with a JSON body; the JSON answer on 2xx.
    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: &B,
    ) -> Result<R, CallError> {
        let json = serde_json::to_vec(body).expect("internal bodies serialize");
        self.post_json(base, path, Bytes::from(json)).await
    }

    /// `POST {base}{path}` with a body that is JSON already; the JSON
    /// answer on 2xx.
    async fn post_json<R: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        json: Bytes,
    ) -> Result<R, CallError> {
        let (url, answer) = self.call(Method::POST, base, path, Some(json)).await?;
        let Relayed {
            status,
            body: bytes,
            ..
        } = answer;
        if status.is_success() {
            serde_json::from_slice(&bytes).map_err(|e| CallError::Unreachable {
                url,
                reason: format!("unreadable answer: {e}"),
            })
        } else {
            Err(CallError::Refused {
                url,
                status,
                body: error_body(&bytes),
            })
        }
    }

    /// `method {base}{path_and_query}` with an optional JSON body, for the
    /// server API the router passes on: the node's status and body as they
    /// are, whatever the status.
    pub async fn relay(
        &self,
        method: Method,
        base: &str,
        path_and_query: &str,
        json: Option<Bytes>,
    ) -> Result<Relayed, CallError> {
        let (_, answer) = self.call(method, base, path_and_query, json).await?;
        Ok(answer)
    }

    /// One call, bounded by [`CALL_TIMEOUT`]: the URL and the answer.
    async fn call(
        &self,
        method: Method,
        base: &str,
        path: &str,
        json: Option<Bytes>,
    ) -> Result<(String, Relayed), CallError> {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let unreachable = |reason: String| CallError::Unreachable {
            url: url.clone(),
            reason,
        };
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key));
        if json.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(json.unwrap_or_default()))
            .map_err(|e| unreachable(e.to_string()))?;
        let call = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let status = resp.status();
            let location = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok::<_, CallError>(Relayed {
                status,
                location,
                body,
            })
        };
        let answer = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| unreachable(format!("timed out after {CALL_TIMEOUT:?}")))??;
        Ok((url, answer))
    }
}

/// A refusal's error body, or its text as the message.
fn error_body(bytes: &[u8]) -> ErrorBody {
    serde_json::from_slice(bytes).unwrap_or_else(|_| ErrorBody {
        error: "unknown".into(),
        message: String::from_utf8_lossy(bytes).into_owned(),
    })
}

/// An [`proto::handoff::AdoptBatch`] body from snapshots serialized one by
/// one.
fn adopt_body(snapshots: Vec<Vec<u8>>) -> Vec<u8> {
    let size = snapshots.iter().map(|s| s.len() + 1).sum::<usize>() + 16;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(b"{\"rooms\":[");
    for (i, snapshot) in snapshots.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&snapshot);
    }
    body.extend_from_slice(b"]}");
    body
}

#[cfg(test)]
mod tests {
    use proto::handoff::{AdoptBatch, RoomSnapshot};

    use super::*;

    #[test]
    fn an_adopt_body_is_a_batch_of_the_snapshots() {
        let snapshots: Vec<RoomSnapshot> = ["a", "b"]
            .into_iter()
            .map(|room| RoomSnapshot {
                room: room.parse().unwrap(),
                epoch: 2,
                stream: "s".into(),
                seq: 1,
                history: vec!["{}".into()],
                members: 0,
                published: Vec::new(),
            })
            .collect();
        let json = snapshots
            .iter()
            .map(|s| serde_json::to_vec(s).unwrap())
            .collect();
        let batch: AdoptBatch = serde_json::from_slice(&adopt_body(json)).unwrap();
        assert_eq!(batch.rooms, snapshots);
        let empty: AdoptBatch = serde_json::from_slice(&adopt_body(Vec::new())).unwrap();
        assert!(empty.rooms.is_empty());
    }
}
