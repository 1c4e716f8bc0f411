//! The application's backend of these tests: a real HTTP server (axum on
//! a port-0 listener) that answers the node's hooks by a few rules, checks
//! every request's signature, and records what it was asked.
//!
//! Rules: a join named `mallory` is refused ("banned"); a join named
//! `alias` is admitted as `Alias`; a join named `slowpoke` gets no answer
//! (the hook hangs); a message whose body holds `"bad"` is rejected
//! ("no bad words"); one whose body is `"replace-me"` becomes `"replaced"`;
//! every publish waits a random 0-40 ms first.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use proto::hooks::{SIGNATURE_HEADER, verify};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The hook secret the nodes of these tests sign with.
pub(crate) const SECRET: &str = "hook-secret-0123456789";

/// What the backend saw.
#[derive(Default)]
pub(crate) struct Seen {
    /// Every request's body, by hook.
    pub(crate) joins: Vec<Value>,
    pub(crate) publishes: Vec<Value>,
    /// Every event of every events request the backend took (answered 2xx).
    pub(crate) events: Vec<Value>,
    /// Events requests answered 500 on purpose.
    pub(crate) refused_batches: usize,
    /// Events requests still to answer 500.
    pub(crate) fail_next: usize,
    /// Until when events requests get no answer (the backend is "down").
    pub(crate) down_until: Option<tokio::time::Instant>,
    /// Requests whose signature did not verify.
    pub(crate) bad_signatures: usize,
}

/// A running backend.
pub(crate) struct Backend {
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    pub(crate) seen: Arc<Mutex<Seen>>,
}

impl Backend {
    pub(crate) async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route("/join", post(join))
            .route("/publish", post(publish))
            .route("/events", post(events))
            .with_state(seen.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, seen }
    }

    pub(crate) fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }
}

/// Checks the signature and parses the body.
fn read(seen: &Mutex<Seen>, headers: &HeaderMap, body: &Bytes) -> Value {
    let signed = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sig| verify(SECRET.as_bytes(), body, sig));
    if !signed {
        seen.lock().unwrap().bad_signatures += 1;
    }
    serde_json::from_slice(body).expect("a hook body is JSON")
}

async fn join(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<Value> {
    let req = read(&seen, &headers, &body);
    seen.lock().unwrap().joins.push(req.clone());
    let answer = match req["name"].as_str() {
        Some("mallory") => json!({"allow": false, "reason": "banned"}),
        Some("alias") => json!({"allow": true, "name": "Alias"}),
        Some("slowpoke") => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            json!({"allow": true})
        }
        _ => json!({"allow": true}),
    };
    axum::Json(answer)
}

async fn publish(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<Value> {
    let req = read(&seen, &headers, &body);
    seen.lock().unwrap().publishes.push(req.clone());
    let wait = rand_ms(40);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let text = req["body"].to_string();
    let answer = if text.contains("bad") {
        json!({"allow": false, "reason": "no bad words"})
    } else if req["body"] == "replace-me" {
        json!({"allow": true, "body": "replaced"})
    } else {
        json!({"allow": true})
    };
    axum::Json(answer)
}

async fn events(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let req = read(&seen, &headers, &body);
    let down = seen.lock().unwrap().down_until;
    if down.is_some_and(|until| tokio::time::Instant::now() < until) {
        // No answer: the node's timeout ends the call.
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let mut seen = seen.lock().unwrap();
    if seen.fail_next > 0 {
        seen.fail_next -= 1;
        seen.refused_batches += 1;
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    }
    seen.events
        .extend(req["events"].as_array().expect("events").iter().cloned());
    axum::http::StatusCode::NO_CONTENT
}

/// A pseudo-random number of milliseconds below `max` (no crate needed
/// for test jitter).
fn rand_ms(max: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish() % max
}
