//! The events feed (`--events-hook`): every accepted message, join and
//! leave of the rooms hosted here, POSTed to the application's backend in
//! signed batches `{"events":[…]}`, at least once, in seq order per room.
//!
//! Rooms push under their own lock, so a room's events queue in seq order,
//! and pushing never waits: the queue is bounded (`--events-buffer`), and
//! an event that finds it full is dropped, counted in
//! `roomnode_hook_events_dropped_total` and logged. One task sends: up to
//! `--events-batch` events per request; a batch the backend does not
//! answer with 2xx (or at all, within `--hook-timeout`) is sent again,
//! the same batch, after 100 ms, 200 ms, … up to 30 s, until it is taken,
//! so order holds across retries. The idempotency key of a message is
//! `(room, stream, seq)`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::{Method, Request, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use proto::hooks::{SIGNATURE_HEADER, signature};
use serde_json::json;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;

/// First wait before a batch is sent again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One event waiting to be sent.
pub(crate) enum Event {
    /// An accepted message: its native frame (which names the room, seq,
    /// sender and body) and its stream.
    Message { frame: Utf8Bytes, stream: Arc<str> },
    /// A member joined or left.
    Presence {
        joined: bool,
        room: Arc<str>,
        member: Arc<str>,
        name: Option<Arc<str>>,
    },
}

impl Event {
    fn to_json(&self) -> String {
        match self {
            // The frame is `{"type":"message",…}`: the stream goes in front.
            Self::Message { frame, stream } => {
                let stream = serde_json::Value::String(stream.to_string());
                format!("{{\"stream\":{stream},{}", &frame.as_str()[1..])
            }
            Self::Presence {
                joined,
                room,
                member,
                name,
            } => {
                let kind = if *joined { "joined" } else { "left" };
                let mut v = json!({"type": kind, "room": &**room, "member": &**member});
                if let Some(name) = name {
                    v["name"] = json!(&**name);
                }
                v.to_string()
            }
        }
    }
}

/// The feed: the queue, and what sends it.
pub(crate) struct Feed {
    queue: Mutex<VecDeque<Event>>,
    wake: Notify,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Feed {
    /// The feed of `config`, and its sending task (until `stop`); `None`
    /// without `--events-hook`.
    pub(crate) fn start(
        config: &Config,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Option<Arc<Self>> {
        let url = config.hooks.events_hook.clone()?;
        let feed = Arc::new(Self {
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            capacity: config.events_buffer,
            metrics,
        });
        let sender = Sender {
            url,
            secret: crate::hooks::secret(config),
            timeout: config.hooks.hook_timeout,
            batch: config.events_batch,
            http: crate::hooks::client(config),
        };
        tokio::spawn(sender.run(feed.clone(), stop));
        Some(feed)
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Event>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `event`; never waits. A full queue drops it (counted).
    pub(crate) fn push(&self, event: Event) {
        let mut q = self.lock();
        if q.len() >= self.capacity {
            drop(q);
            let dropped = &self.metrics.hook_events_dropped;
            dropped.inc();
            // Once per thousand, not once per event.
            if dropped.get() % 1000 == 1 {
                tracing::warn!(
                    dropped = dropped.get(),
                    "events feed buffer full: events dropped (the backend is down or slow)"
                );
            }
            return;
        }
        q.push_back(event);
        drop(q);
        self.wake.notify_one();
    }

    /// Up to `n` events from the front, as JSON, without removing them.
    fn peek(&self, n: usize) -> Vec<String> {
        self.lock().iter().take(n).map(Event::to_json).collect()
    }

    fn pop(&self, n: usize) {
        let mut q = self.lock();
        let n = n.min(q.len());
        q.drain(..n);
    }
}

struct Sender {
    url: String,
    secret: Vec<u8>,
    timeout: Duration,
    batch: usize,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Sender {
    async fn run(self, feed: Arc<Feed>, stop: CancellationToken) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let events = feed.peek(self.batch);
            if events.is_empty() {
                tokio::select! {
                    () = feed.wake.notified() => continue,
                    () = stop.cancelled() => return,
                }
            }
            let body = format!("{{\"events\":[{}]}}", events.join(","));
            match self.post(body).await {
                Ok(()) => {
                    feed.pop(events.len());
                    feed.metrics.hook_events_sent.inc_by(events.len() as u64);
                    backoff = FIRST_BACKOFF;
                }
                Err(why) => {
                    feed.metrics
                        .hook_calls
                        .with_label_values(&["events", why])
                        .inc();
                    tracing::debug!(why, ?backoff, "events feed: batch not taken; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn post(&self, body: String) -> Result<(), &'static str> {
        let sig = signature(&self.secret, body.as_bytes());
        let req = Request::builder()
            .method(Method::POST)
            .uri(&self.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sig)
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| "unreachable")?;
        let call = async {
            let resp = self.http.request(req).await.map_err(|_| "unreachable")?;
            let ok = resp.status().is_success();
            // Read the answer through, so the connection can be kept.
            let _ = resp.into_body().collect().await;
            if ok { Ok(()) } else { Err("status") }
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err("timeout"))
    }
}
