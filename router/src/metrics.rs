//! The router's Prometheus metrics (names fixed by SPEC). Gauges that mirror
//! the store (`router_rooms`, `router_nodes`) are set when scraped.

use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use store::Mirror;

/// Every metric of one router.
pub(crate) struct Metrics {
    registry: Registry,
    rooms: IntGaugeVec,
    nodes: IntGauge,
    /// Requests by route template and status.
    pub(crate) requests: IntCounterVec,
    /// Open proxied WebSocket tunnels.
    pub(crate) proxy_connections: IntGauge,
    /// Rooms this router moved off a dead node.
    pub(crate) failovers: IntCounter,
    /// 1 while the store answers this router's probes, else 0.
    pub(crate) store_up: IntGauge,
    /// Seconds since the store last confirmed this router's view.
    store_view_age: Gauge,
    /// Connections and requests refused by a limit of the listener, by
    /// reason.
    pub(crate) rejected: IntCounterVec,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let registry = Registry::new();
        let rooms = IntGaugeVec::new(
            Opts::new(
                "router_rooms",
                "Rooms assigned to each node, from the store.",
            ),
            &["node"],
        )
        .expect("valid gauge");
        let nodes = IntGauge::new("router_nodes", "Live room nodes.").expect("valid gauge");
        let requests = IntCounterVec::new(
            Opts::new(
                "router_requests_total",
                "HTTP requests by route and status.",
            ),
            &["route", "status"],
        )
        .expect("valid counter");
        let proxy_connections = IntGauge::new(
            "router_proxy_connections",
            "Open WebSocket tunnels proxied to room nodes.",
        )
        .expect("valid gauge");
        let failovers = IntCounter::new(
            "router_failovers_total",
            "Rooms this router gave a new owner because theirs was gone.",
        )
        .expect("valid counter");
        let store_up = IntGauge::new(
            "router_store_up",
            "1 while the coordination store answers this router, 0 while it does not.",
        )
        .expect("valid gauge");
        let store_view_age = Gauge::new(
            "router_store_view_age_seconds",
            "Seconds since the store last confirmed this router's view of nodes and rooms (a watch event or progress report); the router is not ready past 6.",
        )
        .expect("valid gauge");
        let rejected = IntCounterVec::new(
            Opts::new(
                "router_rejected_total",
                "Connections and requests refused by a limit of the listener (per_ip, body_timeout, head_too_large).",
            ),
            &["reason"],
        )
        .expect("valid counter");
        for m in [
            Box::new(store_up.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rejected.clone()),
            Box::new(store_view_age.clone()),
            Box::new(failovers.clone()),
            Box::new(rooms.clone()),
            Box::new(nodes.clone()),
            Box::new(requests.clone()),
            Box::new(proxy_connections.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        Self {
            registry,
            rooms,
            nodes,
            requests,
            proxy_connections,
            failovers,
            store_up,
            store_view_age,
            rejected,
        }
    }

    /// The text exposition format, with the store-derived gauges refreshed
    /// from `mirror`.
    pub(crate) fn render(&self, mirror: &Mirror) -> String {
        let nodes = mirror.nodes();
        let counts = mirror.room_counts();
        self.rooms.reset();
        for id in nodes.nodes.keys() {
            self.rooms.with_label_values(&[&id.to_string()]).set(0);
        }
        for (id, n) in counts {
            self.rooms
                .with_label_values(&[&id.to_string()])
                .set(n as i64);
        }
        self.nodes.set(nodes.nodes.len() as i64);
        self.store_view_age.set(mirror.age().as_secs_f64());
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("exposition format is UTF-8")
    }
}
