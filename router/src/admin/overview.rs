//! `GET /admin/overview`: the cluster at a glance for the dashboard: every
//! live node with its record, its room count from this router's mirror
//! (per-node counts are kept by the mirror, so no room is scanned), its
//! live figures ([`super::scrape`]), and the imbalance indicator.

use axum::Json;
use axum::extract::State;
use proto::InstanceId;
use proto::record::NodeRecord;
use serde::Serialize;

use crate::admin::events::{state, unix_ms};
use crate::admin::scrape::Figures;
use crate::app::App;

/// The `RoomImbalance` alert's rule (deploy/prometheus/alerts.yml), over
/// `roomnode_rooms`, which is the same count as the mirror's per node:
/// the busiest node holds more than this times the average...
const IMBALANCE_RATIO: f64 = 1.5;
/// ...while the cluster holds at least this many rooms.
const IMBALANCE_MIN_ROOMS: u64 = 100;
/// The rule, for people.
const IMBALANCE_RULE: &str = "max(rooms per node) / avg(rooms per node) > 1.5 \
    and total rooms >= 100 (alert RoomImbalance, which fires after 15 minutes of it)";

/// `GET /admin/overview` answer.
#[derive(Debug, Serialize)]
pub(crate) struct Overview {
    router: RouterRow,
    nodes: Vec<NodeRow>,
    imbalance: Imbalance,
    /// Unix ms of this answer.
    at: u64,
}

/// This router.
#[derive(Debug, Serialize)]
struct RouterRow {
    ready: bool,
    /// Why not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    rooms: usize,
    nodes: usize,
    /// Seconds since the store last confirmed its view.
    view_age_secs: f64,
}

/// One node.
#[derive(Debug, Serialize)]
struct NodeRow {
    id: InstanceId,
    addr: String,
    weight: f64,
    state: &'static str,
    /// Rooms assigned to it in the store.
    rooms: u64,
    /// What its `/metrics` said.
    live: Figures,
}

/// The imbalance indicator.
#[derive(Debug, Serialize)]
pub(crate) struct Imbalance {
    /// The busiest node's rooms over the average; absent without nodes.
    ratio: Option<f64>,
    busiest: Option<InstanceId>,
    total_rooms: u64,
    /// Whether the rule holds now.
    over: bool,
    rule: &'static str,
}

/// The imbalance of `counts` (rooms per live node).
pub(crate) fn imbalance(counts: &[(InstanceId, u64)]) -> Imbalance {
    let total: u64 = counts.iter().map(|(_, c)| c).sum();
    let busiest = counts.iter().max_by_key(|(_, c)| *c).copied();
    let ratio = busiest.and_then(|(_, max)| {
        let avg = total as f64 / counts.len() as f64;
        (avg > 0.0).then(|| max as f64 / avg)
    });
    Imbalance {
        ratio,
        busiest: busiest.map(|(id, _)| id),
        total_rooms: total,
        over: total >= IMBALANCE_MIN_ROOMS && ratio.is_some_and(|r| r > IMBALANCE_RATIO),
        rule: IMBALANCE_RULE,
    }
}

/// `GET /admin/overview`.
pub(crate) async fn overview(State(app): State<App>) -> Json<Overview> {
    let nodes: Vec<NodeRecord> = app.mirror().nodes().nodes.values().cloned().collect();
    let events = app.admin().events.clone();
    let round = app
        .admin()
        .scraper
        .figures(&nodes, |slow| {
            for s in slow {
                events.push(
                    "slow_consumers",
                    Some(s.node),
                    format!(
                        "{} disconnected {} slow consumer(s) (from its roomnode_slow_consumers_total)",
                        s.node, s.count
                    ),
                );
            }
        })
        .await;
    let counts = app.mirror().room_counts();
    let per_node: Vec<(InstanceId, u64)> = nodes
        .iter()
        .map(|n| (n.id, counts.get(&n.id).copied().unwrap_or(0)))
        .collect();
    let rows = nodes
        .into_iter()
        .zip(&per_node)
        .map(|(n, (_, rooms))| NodeRow {
            live: round.get(&n.id).cloned().unwrap_or(Figures {
                status: "no_answer",
                error: Some("joined after the last scrape".into()),
                sample: None,
            }),
            id: n.id,
            state: state(n.state),
            weight: n.weight,
            addr: n.addr,
            rooms: *rooms,
        })
        .collect();
    let readiness = app.readiness();
    Json(Overview {
        router: RouterRow {
            ready: readiness.is_ok(),
            reason: readiness.err().map(|e| e.message().to_owned()),
            rooms: app.mirror().room_count(),
            nodes: per_node.len(),
            view_age_secs: app.mirror().age().as_secs_f64(),
        },
        imbalance: imbalance(&per_node),
        nodes: rows,
        at: unix_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(c: &[u64]) -> Vec<(InstanceId, u64)> {
        c.iter()
            .enumerate()
            .map(|(i, &n)| (InstanceId::new(i as u16 + 1).unwrap(), n))
            .collect()
    }

    #[test]
    fn the_alerts_rule_with_its_floor() {
        // 3 nodes at 100 and a new empty one: max/avg = 100/75.
        let i = imbalance(&counts(&[100, 100, 100, 0]));
        assert!(!i.over && (i.ratio.unwrap() - 4.0 / 3.0).abs() < 1e-9);
        let i = imbalance(&counts(&[150, 30, 30]));
        assert!(i.over, "{i:?}");
        assert_eq!(i.busiest, InstanceId::new(1));
        // The same spread on too few rooms does not count.
        assert!(!imbalance(&counts(&[50, 10, 10])).over);
        assert_eq!(imbalance(&[]).ratio, None);
    }
}
