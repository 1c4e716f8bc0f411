//! The node's Prometheus metrics (names fixed by SPEC), all labelled
//! `node="iN"`. Gauges derived from other state (rooms, active rooms) are
//! set when scraped.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};
use proto::InstanceId;

/// Every metric of one node.
pub(crate) struct Metrics {
    registry: Registry,
    /// Rooms assigned to this node in the store.
    pub(crate) rooms: IntGauge,
    /// Rooms with at least one member here.
    pub(crate) active_rooms: IntGauge,
    /// Open member connections.
    pub(crate) connections: IntGauge,
    /// Open Engine.IO sessions (Socket.IO members and sessions that have
    /// not sent CONNECT yet).
    pub(crate) socketio_sessions: IntGauge,
    /// Messages accepted from clients.
    pub(crate) received: IntCounter,
    /// Message frames written to clients.
    pub(crate) delivered: IntCounter,
    /// Clients disconnected for not reading.
    pub(crate) slow_consumers: IntCounter,
    /// Time from accepting a message to writing it to a member.
    pub(crate) delivery_latency: Histogram,
    /// Joins and messages refused by a limit, by reason.
    pub(crate) rejected: IntCounterVec,
    /// Rooms handed off from this node.
    pub(crate) moves: IntCounter,
    /// Handoffs from this node that did not happen.
    pub(crate) moves_failed: IntCounter,
    /// Time a handoff held the room frozen.
    pub(crate) move_duration: Histogram,
    /// Seconds since the store last confirmed this node's view.
    pub(crate) store_view_age: Gauge,
    /// Time each lease renewal took.
    pub(crate) lease_renewal: Histogram,
    /// Bytes of retained history in every hosted room.
    pub(crate) history_bytes: IntGauge,
    /// Hook calls, by hook and outcome.
    pub(crate) hook_calls: IntCounterVec,
    /// Hook call latency, by hook.
    pub(crate) hook_duration: HistogramVec,
    /// Events the feed sent (taken by the backend).
    pub(crate) hook_events_sent: IntCounter,
    /// Events the feed dropped: its buffer was full.
    pub(crate) hook_events_dropped: IntCounter,
    /// Time from sending a replication batch to its replica's answer.
    pub(crate) replication_round_trip: Histogram,
    /// Replication batches whose answer was lost (error or timeout).
    pub(crate) replication_failures: IntCounter,
    /// Full copies of a room sent to its replica.
    pub(crate) replication_copies: IntCounter,
    /// Items queued for replicas, not sent yet.
    pub(crate) replication_queued: IntGauge,
    /// Messages waiting for their room's replica.
    pub(crate) replication_pending: IntGauge,
    /// Hosted rooms with no replica confirming their messages.
    pub(crate) rooms_without_replica: IntGauge,
    /// Copies held here of other owners' rooms.
    pub(crate) replica_rooms: IntGauge,
    pub(crate) replica_bytes: IntGauge,
}

impl Metrics {
    /// Registers every metric for `node`.
    pub(crate) fn new(node: InstanceId) -> Self {
        let labels = [("node".to_owned(), node.to_string())].into();
        let registry = Registry::new_custom(None, Some(labels)).expect("valid labels");
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(Opts::new(name, help)).expect("valid gauge");
            registry
                .register(Box::new(g.clone()))
                .expect("unique gauge");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(Opts::new(name, help)).expect("valid counter");
            registry
                .register(Box::new(c.clone()))
                .expect("unique counter");
            c
        };
        let rooms = gauge(
            "roomnode_rooms",
            "Rooms assigned to this node in the store.",
        );
        let active_rooms = gauge("roomnode_active_rooms", "Rooms with at least one member.");
        let connections = gauge(
            "roomnode_connections",
            "Open member connections (native WebSockets and Socket.IO sessions).",
        );
        let socketio_sessions = gauge(
            "roomnode_socketio_sessions",
            "Open Engine.IO sessions, Socket.IO members and those not connected yet.",
        );
        let received = counter(
            "roomnode_messages_received_total",
            "Messages accepted from clients.",
        );
        let delivered = counter(
            "roomnode_messages_delivered_total",
            "Message frames written to members (one per member per message).",
        );
        let slow_consumers = counter(
            "roomnode_slow_consumers_total",
            "Members disconnected because their outbound queue overflowed.",
        );
        let delivery_latency = Histogram::with_opts(
            HistogramOpts::new(
                "roomnode_delivery_latency_seconds",
                "Time from accepting a message to handing it to a member's socket.",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 1.0,
            ]),
        )
        .expect("valid histogram");
        registry
            .register(Box::new(delivery_latency.clone()))
            .expect("unique histogram");
        let rejected = IntCounterVec::new(
            Opts::new(
                "roomnode_rejected_total",
                "Joins, messages and requests refused by a limit (node_full, room_full, rate_limited, origin, handshakes, join_rate, per_ip, body_timeout, head_too_large).",
            ),
            &["reason"],
        )
        .expect("valid counter");
        registry
            .register(Box::new(rejected.clone()))
            .expect("unique counter");
        let hook_calls = IntCounterVec::new(
            Opts::new(
                "roomnode_hook_calls_total",
                "Calls to the application's hooks, by hook (join, publish) and outcome (allowed, refused, and the failures: timeout, unreachable, status, invalid_answer).",
            ),
            &["hook", "outcome"],
        )
        .expect("valid counter");
        registry
            .register(Box::new(hook_calls.clone()))
            .expect("unique counter");
        let hook_duration = HistogramVec::new(
            HistogramOpts::new(
                "roomnode_hook_duration_seconds",
                "Time from sending a hook request to its answer (or failure), by hook.",
            )
            .buckets(vec![
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                0.5, 1.0, 2.5, 5.0,
            ]),
            &["hook"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(hook_duration.clone()))
            .expect("unique histogram");
        let hook_events_sent = counter(
            "roomnode_hook_events_sent_total",
            "Events (messages, joins, leaves) the events feed delivered to the backend.",
        );
        let hook_events_dropped = counter(
            "roomnode_hook_events_dropped_total",
            "Events the events feed dropped because its buffer (--events-buffer) was full.",
        );
        let moves = counter(
            "roomnode_rooms_moved_total",
            "Rooms handed off from this node to another.",
        );
        let moves_failed = counter(
            "roomnode_moves_failed_total",
            "Handoffs from this node that did not happen (the room stayed here).",
        );
        let move_duration = Histogram::with_opts(
            HistogramOpts::new(
                "roomnode_move_duration_seconds",
                "Time a handoff kept its room frozen, from freeze to moved.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
        )
        .expect("valid histogram");
        registry
            .register(Box::new(move_duration.clone()))
            .expect("unique histogram");
        let store_view_age = Gauge::with_opts(Opts::new(
            "roomnode_store_view_age_seconds",
            "Seconds since the store last confirmed this node's view of the node registry and its own rooms; the node takes no part in moves past 6.",
        ))
        .expect("valid gauge");
        registry
            .register(Box::new(store_view_age.clone()))
            .expect("unique gauge");
        let lease_renewal = Histogram::with_opts(
            HistogramOpts::new(
                "roomnode_lease_renewal_seconds",
                "Time each renewal of the node's lease took (renewals run on a thread of their own).",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )
        .expect("valid histogram");
        registry
            .register(Box::new(lease_renewal.clone()))
            .expect("unique histogram");
        let replication_round_trip = Histogram::with_opts(
            HistogramOpts::new(
                "roomnode_replication_round_trip_seconds",
                "Time from sending a batch of messages to a replica to its answer: what replication adds to a message's latency.",
            )
            .buckets(vec![
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                1.0, 2.5,
            ]),
        )
        .expect("valid histogram");
        registry
            .register(Box::new(replication_round_trip.clone()))
            .expect("unique histogram");
        let replication_failures = counter(
            "roomnode_replication_failures_total",
            "Replication batches whose answer was lost (error or timeout); their rooms send full copies.",
        );
        let replication_copies = counter(
            "roomnode_replication_copies_total",
            "Full copies of a room sent to its replica (a new replica, or one that missed something).",
        );
        let replication_queued = gauge(
            "roomnode_replication_queued",
            "Items (messages, copies) queued for this node's replicas and not sent yet.",
        );
        let replication_pending = gauge(
            "roomnode_replication_pending",
            "Messages accepted here that wait for their room's replica before they count.",
        );
        let rooms_without_replica = gauge(
            "roomnode_rooms_without_replica",
            "Rooms hosted here whose messages no replica confirms (no other active node, or fenced): a crash here loses their history.",
        );
        let replica_rooms = gauge(
            "roomnode_replica_rooms",
            "Copies this node holds of rooms owned by other nodes (it is their failover target).",
        );
        let replica_bytes = gauge(
            "roomnode_replica_bytes",
            "Bytes of message history in the copies this node holds for other owners (set at scrape time).",
        );
        let history_bytes = gauge(
            "roomnode_history_bytes",
            "Bytes of message history retained by the rooms hosted here (each room at most --history-bytes).",
        );
        Self {
            replication_round_trip,
            replication_failures,
            replication_copies,
            replication_queued,
            replication_pending,
            rooms_without_replica,
            replica_rooms,
            replica_bytes,
            hook_calls,
            hook_duration,
            hook_events_sent,
            hook_events_dropped,
            history_bytes,
            lease_renewal,
            store_view_age,
            rejected,
            moves,
            moves_failed,
            move_duration,
            registry,
            rooms,
            active_rooms,
            connections,
            socketio_sessions,
            received,
            delivered,
            slow_consumers,
            delivery_latency,
        }
    }

    /// The text exposition format.
    pub(crate) fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("exposition format is UTF-8")
    }
}
