//! The dashboard's live log of what happens to the cluster, kept in memory
//! (the last [`KEEP`] events, numbered) and read with a cursor
//! (`GET /admin/events?after=N`). Sources:
//!
//! - nodes joining, leaving and changing state or weight: a registry-only
//!   [`Mirror`] (nodes, no rooms) with a hook, so the router's big room
//!   table is never diffed for it;
//! - room moves: every [`WATCH_INTERVAL`] the router's per-node room counts
//!   are compared with the last ones, and rooms that left some nodes while
//!   others gained are reported as moved (creations and deletions only add
//!   or only remove, and are not logged); moves run from this dashboard
//!   are logged by their operation as well;
//! - failovers: this router's own count of rooms it gave a new owner
//!   (`router_failovers_total`), and a node leaving while it still owned
//!   rooms;
//! - slow-consumer disconnects: the growth of a node's
//!   `roomnode_slow_consumers_total` between two scrapes, so seen only
//!   while a dashboard is open (nodes publish no event for it).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use proto::InstanceId;
use proto::record::{NodeRecord, NodeState};
use serde::{Deserialize, Serialize};
use service::error::ApiError;
use store::{Change, Mirror, Scope};

use crate::app::App;

/// Events kept.
const KEEP: usize = 500;
/// Longest answer of `GET /admin/events`.
const MAX_PAGE: usize = 200;
/// One wait for the mirrors' first load (then again, until they load).
const SYNC_WAIT: Duration = Duration::from_secs(60);
/// How often room counts and the failover counter are compared.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// One thing that happened.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Event {
    /// Increases by one per event, from 1.
    seq: u64,
    /// Unix time in milliseconds.
    at: u64,
    /// `node_joined`, `node_left`, `node_changed`, `rooms_moved`,
    /// `failover`, `slow_consumers`, `operation`.
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<InstanceId>,
    /// For people.
    message: String,
}

/// The bounded log. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Events {
    inner: Arc<Mutex<Log>>,
}

#[derive(Default)]
struct Log {
    next: u64,
    events: VecDeque<Event>,
}

impl Events {
    /// Appends an event and logs it.
    pub(crate) fn push(&self, kind: &'static str, node: Option<InstanceId>, message: String) {
        tracing::info!(kind, node = node.map(|n| n.to_string()), "{message}");
        let mut log = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        log.next += 1;
        let event = Event {
            seq: log.next,
            at: unix_ms(),
            kind,
            node,
            message,
        };
        if log.events.len() == KEEP {
            log.events.pop_front();
        }
        log.events.push_back(event);
    }

    /// Up to `limit` events after `after`, oldest first, and the last seq.
    fn after(&self, after: u64, limit: usize) -> (Vec<Event>, u64) {
        let log = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let events = log
            .events
            .iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .cloned()
            .collect();
        (events, log.next)
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `GET /admin/events` query.
#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

/// `GET /admin/events` answer.
#[derive(Debug, Serialize)]
pub(crate) struct EventsPage {
    events: Vec<Event>,
    /// The newest event's seq: the next request's `after` once caught up.
    last: u64,
}

/// `GET /admin/events?after=N&limit=M`: events after seq N, oldest first.
pub(crate) async fn list(
    State(app): State<App>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventsPage>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(proto::ErrorCode::InvalidQuery, e.body_text()))?;
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let (events, last) = app.admin().events.after(q.after, limit);
    Ok(Json(EventsPage { events, last }))
}

/// Feeds the log until the router stops: node changes from a registry
/// mirror, moves and failovers from counts.
pub(crate) async fn watch(app: App) {
    let events = app.admin().events.clone();
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook = {
        let (app, events, ready) = (app.clone(), events.clone(), ready.clone());
        Arc::new(move |change: &Change| {
            // The first load lists every node: not news.
            if ready.load(std::sync::atomic::Ordering::Acquire) {
                node_change(&app, &events, change);
            }
        })
    };
    let registry = Mirror::start(app.store().clone(), Scope::Registry, Some(hook));
    let stopping = app.stopping().clone();
    // Counts start from the whole table, not from an empty one.
    let synced = async {
        while !(registry.wait_synced(SYNC_WAIT).await && app.mirror().wait_synced(SYNC_WAIT).await)
        {
        }
    };
    tokio::select! {
        () = synced => {}
        () = stopping.cancelled() => return,
    }
    ready.store(true, std::sync::atomic::Ordering::Release);
    let mut counts = app.mirror().room_counts();
    let mut failovers = app.metrics().failovers.get();
    loop {
        tokio::select! {
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
            () = stopping.cancelled() => return,
        }
        let now = app.mirror().room_counts();
        if let Some(message) = moved(&counts, &now) {
            events.push("rooms_moved", None, message);
        }
        counts = now;
        let f = app.metrics().failovers.get();
        if f > failovers {
            events.push(
                "failover",
                None,
                format!(
                    "this router gave {} room(s) of lost nodes a new owner",
                    f - failovers
                ),
            );
        }
        failovers = f;
    }
    // `registry` stops watching when dropped.
}

/// One node change as an event.
fn node_change(app: &App, events: &Events, change: &Change) {
    let Change::Node { id, before, after } = change else {
        return;
    };
    let id = *id;
    match (before, after) {
        (None, Some(n)) => events.push(
            "node_joined",
            Some(id),
            format!(
                "{id} joined at {} (weight {}, {})",
                n.addr,
                n.weight,
                state(n.state)
            ),
        ),
        (Some(_), None) => {
            let rooms = app.mirror().rooms_of(id);
            if rooms > 0 {
                events.push(
                    "node_left",
                    Some(id),
                    format!("{id} left owning {rooms} room(s): they fail over to other nodes"),
                );
            } else {
                events.push(
                    "node_left",
                    Some(id),
                    format!("{id} left (owning no rooms)"),
                );
            }
        }
        (Some(b), Some(a)) => {
            if let Some(what) = difference(b, a) {
                events.push("node_changed", Some(id), format!("{id}: {what}"));
            }
        }
        (None, None) => {}
    }
}

/// What changed in a node's record that an operator cares about.
fn difference(before: &NodeRecord, after: &NodeRecord) -> Option<String> {
    let mut parts = Vec::new();
    if before.state != after.state {
        parts.push(format!(
            "state {} → {}",
            state(before.state),
            state(after.state)
        ));
    }
    if before.weight != after.weight {
        parts.push(format!("weight {} → {}", before.weight, after.weight));
    }
    if before.addr != after.addr {
        parts.push(format!("address {} → {}", before.addr, after.addr));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// `active` or `draining`.
pub(crate) fn state(s: NodeState) -> &'static str {
    match s {
        NodeState::Active => "active",
        NodeState::Draining => "draining",
    }
}

/// Rooms that moved between two samples of the per-node counts: as many as
/// both the losers lost and the gainers gained, with who lost and gained.
fn moved(before: &HashMap<InstanceId, u64>, after: &HashMap<InstanceId, u64>) -> Option<String> {
    let mut deltas: Vec<(InstanceId, i64)> = before
        .keys()
        .chain(after.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|id| {
            let b = before.get(id).copied().unwrap_or(0) as i64;
            let a = after.get(id).copied().unwrap_or(0) as i64;
            (*id, a - b)
        })
        .filter(|(_, d)| *d != 0)
        .collect();
    let lost: i64 = deltas.iter().filter(|(_, d)| *d < 0).map(|(_, d)| -d).sum();
    let gained: i64 = deltas.iter().filter(|(_, d)| *d > 0).map(|(_, d)| d).sum();
    let count = lost.min(gained);
    if count == 0 {
        return None;
    }
    deltas.sort_by_key(|(_, d)| *d);
    let list: Vec<String> = deltas.iter().map(|(id, d)| format!("{id} {d:+}")).collect();
    Some(format!(
        "about {count} room(s) moved between nodes ({})",
        list.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(u16, u64)]) -> HashMap<InstanceId, u64> {
        pairs
            .iter()
            .map(|&(n, c)| (InstanceId::new(n).unwrap(), c))
            .collect()
    }

    #[test]
    fn moves_need_a_loser_and_a_gainer() {
        let before = counts(&[(1, 10), (2, 10)]);
        assert_eq!(moved(&before, &counts(&[(1, 12), (2, 10)])), None);
        assert_eq!(moved(&before, &counts(&[(1, 9), (2, 10)])), None);
        let m = moved(&before, &counts(&[(1, 6), (2, 10), (3, 5)])).unwrap();
        assert!(m.starts_with("about 4 room(s)"), "{m}");
        assert!(m.contains("i1 -4") && m.contains("i3 +5"), "{m}");
    }

    #[test]
    fn the_log_keeps_the_newest_and_pages_by_seq() {
        let events = Events::default();
        for i in 0..(KEEP + 5) {
            events.push("operation", None, format!("e{i}"));
        }
        let (page, last) = events.after(0, 3);
        assert_eq!(last, (KEEP + 5) as u64);
        assert_eq!(page[0].seq, 6);
        let (page, _) = events.after(last - 1, 10);
        assert_eq!(page.len(), 1);
    }
}
