//! [`Node`]: the handle every part of a running node shares: its identity,
//! configuration, store, mirror, rooms and their ownership, registration
//! and metrics.

use proto::ErrorCode;
use std::sync::Arc;

use proto::InstanceId;
use store::{Mirror, Store};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::ownership::Ownership;
use crate::cluster::registration::Registration;
use crate::config::Config;
use crate::engineio::Engine;
use crate::hooks::Hooks;
use crate::member::limits::Slots;
use crate::metrics::Metrics;
use crate::replication::Replication;
use crate::room::rooms::Rooms;
use service::client::InternalClient;
use service::error::ApiError;

/// Shared handle to a running node. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Node {
    inner: Arc<Parts>,
}

/// What a node is made of.
pub(crate) struct Parts {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) mirror: Mirror,
    pub(crate) rooms: Rooms,
    /// Which rooms are served here, on the store's word.
    pub(crate) ownership: Ownership,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) registration: Registration,
    pub(crate) sessions: TaskTracker,
    pub(crate) stopping: CancellationToken,
    /// Calls to other nodes, when a cluster secret is set.
    pub(crate) internal: Option<(InternalClient, String)>,
    /// Member connections, bounded.
    pub(crate) connections: Slots,
    /// Joins between their request and their admission to the room,
    /// bounded.
    pub(crate) handshakes: Slots,
    /// The Socket.IO members' Engine.IO sessions.
    pub(crate) engine: Engine,
    /// The application's join and publish hooks, if any.
    pub(crate) hooks: Option<Arc<Hooks>>,
    /// Rooms copied to their runner-ups, and the copies held here.
    pub(crate) replication: Replication,
}

impl Node {
    pub(crate) fn new(parts: Parts) -> Self {
        Self {
            inner: Arc::new(parts),
        }
    }

    pub(crate) fn id(&self) -> InstanceId {
        self.inner.config.id
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn mirror(&self) -> &Mirror {
        &self.inner.mirror
    }

    pub(crate) fn ownership(&self) -> &Ownership {
        &self.inner.ownership
    }

    pub(crate) fn registration(&self) -> &Registration {
        &self.inner.registration
    }

    /// The client for other nodes' internal endpoints.
    pub(crate) fn internal_client(&self) -> Option<&InternalClient> {
        self.inner.internal.as_ref().map(|(c, _)| c)
    }

    /// The key internal callers must present.
    pub(crate) fn internal_key(&self) -> Option<&str> {
        self.inner.internal.as_ref().map(|(_, k)| k.as_str())
    }

    /// Member connections, bounded.
    pub(crate) fn connections(&self) -> &Slots {
        &self.inner.connections
    }

    /// Joins in progress, bounded.
    pub(crate) fn hooks(&self) -> Option<&Arc<Hooks>> {
        self.inner.hooks.as_ref()
    }

    pub(crate) fn replication(&self) -> &Replication {
        &self.inner.replication
    }

    /// The rooms hosted here.
    pub(crate) fn rooms(&self) -> &Rooms {
        &self.inner.rooms
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn handshakes(&self) -> &Slots {
        &self.inner.handshakes
    }

    pub(crate) fn metrics(&self) -> Arc<Metrics> {
        self.inner.metrics.clone()
    }

    /// Cancelled when the node begins to shut down.
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.inner.stopping
    }

    /// Why the node takes no joins now, if it doesn't.
    pub(crate) fn unavailable(&self) -> Option<ApiError> {
        if self.inner.stopping.is_cancelled() {
            Some(ApiError::new(
                ErrorCode::ShuttingDown,
                "this node is shutting down; reconnect through the router".into(),
            ))
        } else if self.inner.registration.is_fenced() {
            Some(ApiError::new(
                ErrorCode::Fenced,
                "this node lost its registration and is re-registering; retry shortly".into(),
            ))
        } else {
            None
        }
    }

    /// Why the node is not ready, if it isn't: it takes no joins, or its
    /// view of the store is not current. Such a node takes no part in
    /// moves either, whose checks read that view.
    pub(crate) fn not_ready(&self) -> Option<ApiError> {
        self.unavailable().or_else(|| self.stale_view())
    }

    /// Why this node's view of the store (the node registry and its own
    /// rooms) cannot be trusted now, if it can't.
    fn stale_view(&self) -> Option<ApiError> {
        let why = self.inner.mirror.staleness()?;
        Some(ApiError::new(
            why.code(),
            format!(
                "this node's view of the store is not current (last confirmed {:.1}s ago); retry shortly",
                self.inner.mirror.age().as_secs_f64()
            ),
        ))
    }

    /// WebSocket settings: this node's frame limit and small buffers.
    pub(crate) fn websocket_config(&self) -> WebSocketConfig {
        let max = self.inner.config.max_frame_bytes;
        WebSocketConfig::default()
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
    }

    /// Member sessions, tracked so shutdown can wait for them.
    pub(crate) fn sessions(&self) -> &TaskTracker {
        &self.inner.sessions
    }

    pub(crate) fn render_metrics(&self) -> String {
        let m = &self.inner.metrics;
        m.rooms.set(self.inner.mirror.room_count() as i64);
        m.store_view_age.set(self.inner.mirror.age().as_secs_f64());
        m.active_rooms.set(self.inner.rooms.active() as i64);
        m.history_bytes.set(self.inner.rooms.history_bytes() as i64);
        m.socketio_sessions.set(self.inner.engine.sessions() as i64);
        self.inner.replication.update_gauges(&self.inner.rooms);
        m.render()
    }
}

/// tungstenite's read buffer, allocated per connection when it opens. Its
/// default (128 KiB) would be most of an idle member's memory; clients send
/// small frames, and a larger one is still read, in several steps. With it,
/// an idle member costs the node about 7.5 KiB (BENCHMARKS.md, idle-15k).
/// Socket.IO members' WebSockets use the same.
pub(crate) const READ_BUFFER: usize = 1024;
/// Bytes gathered before a write reaches the socket. It is only a target:
/// the buffer grows as frames are queued and is not allocated up front, and
/// a flush sends what is there, so one flush per batch of queued frames is
/// one `write`.
pub(crate) const WRITE_BUFFER: usize = 32 * 1024;
