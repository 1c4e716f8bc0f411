//! Rebalancing: compute, for every room, its HRW owner over the active nodes
//! and move the rooms whose owner changed, each by a live handoff on its
//! current node. Adding an N+1st equal node moves about 1/(N+1) of the rooms,
//! all to the new node; a second run right after moves nothing.
//!
//! The plan is made from records (the store's, for the command; the
//! mirror's, for the admin endpoint); every move re-checks its epoch, so a
//! stale plan can only skip rooms, never move one twice.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use proto::handoff::{HandoffDone, HandoffRequest, handoff_path};
use proto::placement::Placement;
use proto::record::{NodeRecord, RoomRecord};
use proto::{InstanceId, RoomId};
use roomnode::client::{CallError, InternalClient};
use serde::Serialize;

/// One room to move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    /// The room.
    pub room: RoomId,
    /// Its epoch when planned.
    pub epoch: u64,
    /// Its owner now.
    pub from: InstanceId,
    /// Its HRW owner.
    pub to: InstanceId,
}

/// What a rebalance would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Rooms to move, in room order.
    pub moves: Vec<Move>,
    /// Rooms per live node now.
    pub before: BTreeMap<InstanceId, u64>,
    /// Rooms per live node after the moves.
    pub after: BTreeMap<InstanceId, u64>,
    /// Rooms whose owner is not registered: failover's business, not moved.
    pub orphaned: u64,
}

/// The plan for `rooms` over the live `nodes`; draining nodes only give.
pub fn plan<'a>(
    nodes: &BTreeMap<InstanceId, NodeRecord>,
    rooms: impl IntoIterator<Item = &'a RoomRecord>,
) -> Plan {
    let placement = Placement::active(nodes.values());
    let mut plan = Plan::default();
    for id in nodes.keys() {
        plan.before.insert(*id, 0);
        plan.after.insert(*id, 0);
    }
    for rec in rooms {
        if !nodes.contains_key(&rec.node) {
            plan.orphaned += 1;
            continue;
        }
        *plan.before.entry(rec.node).or_default() += 1;
        let to = placement.owner(&rec.id).unwrap_or(rec.node);
        *plan.after.entry(to).or_default() += 1;
        if to != rec.node {
            plan.moves.push(Move {
                room: rec.id.clone(),
                epoch: rec.epoch,
                from: rec.node,
                to,
            });
        }
    }
    plan
}

/// The outcome of one move.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The move.
    #[serde(flatten)]
    pub planned: Move,
    /// `None` when it happened, else why not.
    pub error: Option<String>,
}

/// What a run did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Rooms moved.
    pub moved: u64,
    /// Members told to reconnect to the new owner.
    pub members: u64,
    /// Moves that did not happen, with why.
    pub failed: Vec<Outcome>,
}

/// Runs `moves` as live handoffs, `concurrency` at a time; `progress` sees
/// each outcome as it lands.
pub async fn execute(
    client: &InternalClient,
    nodes: &BTreeMap<InstanceId, NodeRecord>,
    moves: Vec<Move>,
    concurrency: usize,
    mut progress: impl FnMut(&Outcome),
) -> Summary {
    let mut summary = Summary::default();
    let mut results = futures_util::stream::iter(moves)
        .map(|m| async move {
            let result = hand_off(client, nodes, &m).await;
            (m, result)
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((planned, result)) = results.next().await {
        let outcome = match result {
            Ok(done) => {
                summary.moved += 1;
                summary.members += done.members as u64;
                Outcome {
                    planned,
                    error: None,
                }
            }
            Err(e) => Outcome {
                planned,
                error: Some(e.to_string()),
            },
        };
        progress(&outcome);
        if outcome.error.is_some() {
            summary.failed.push(outcome);
        }
    }
    summary
}

async fn hand_off(
    client: &InternalClient,
    nodes: &BTreeMap<InstanceId, NodeRecord>,
    m: &Move,
) -> Result<HandoffDone, CallError> {
    let Some(owner) = nodes.get(&m.from) else {
        return Err(CallError::Unreachable {
            url: m.from.to_string(),
            reason: "the owner is no longer registered".into(),
        });
    };
    let req = HandoffRequest {
        to: m.to,
        epoch: m.epoch,
    };
    client.post(&owner.addr, &handoff_path(&m.room), &req).await
}

/// The plan as text lines, for people.
pub fn describe(plan: &Plan) -> String {
    let mut out = format!("{} room(s) to move", plan.moves.len());
    if plan.orphaned > 0 {
        out.push_str(&format!(
            ", {} on dead nodes (failover moves those)",
            plan.orphaned
        ));
    }
    out.push_str("\nnode   before  after\n");
    for (id, before) in &plan.before {
        let after = plan.after.get(id).copied().unwrap_or(0);
        out.push_str(&format!(
            "{:<6} {:>6} {:>6}\n",
            id.to_string(),
            before,
            after
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use proto::record::NodeState;

    use super::*;

    fn nodes(n: u16) -> BTreeMap<InstanceId, NodeRecord> {
        (1..=n)
            .map(|i| {
                let id = InstanceId::new(i).unwrap();
                (
                    id,
                    NodeRecord {
                        id,
                        addr: format!("http://n{i}"),
                        weight: 1.0,
                        state: NodeState::Active,
                    },
                )
            })
            .collect()
    }

    fn rooms_on(nodes: &BTreeMap<InstanceId, NodeRecord>, count: usize) -> Vec<RoomRecord> {
        let placement = Placement::active(nodes.values());
        (0..count)
            .map(|i| {
                let id: RoomId = format!("room-{i}").parse().unwrap();
                RoomRecord {
                    node: placement.owner(&id).unwrap(),
                    id,
                    epoch: 1,
                    private: false,
                    created_at: 0,
                }
            })
            .collect()
    }

    #[test]
    fn scale_out_moves_only_onto_the_new_node() {
        let rooms = rooms_on(&nodes(3), 3000);
        let plan = plan(&nodes(4), &rooms);
        let fraction = plan.moves.len() as f64 / 3000.0;
        assert!((0.2..0.3).contains(&fraction), "moved {fraction}");
        assert!(plan.moves.iter().all(|m| m.to.number() == 4));
        assert_eq!(plan.before[&InstanceId::new(4).unwrap()], 0);
        assert_eq!(plan.after.values().sum::<u64>(), 3000);
    }

    #[test]
    fn a_balanced_cluster_moves_nothing_and_draining_nodes_empty() {
        let mut n = nodes(3);
        let rooms = rooms_on(&n, 500);
        assert!(plan(&n, &rooms).moves.is_empty());
        let i2 = InstanceId::new(2).unwrap();
        n.get_mut(&i2).unwrap().state = NodeState::Draining;
        let drain = plan(&n, &rooms);
        assert_eq!(drain.after[&i2], 0);
        assert_eq!(drain.moves.len() as u64, drain.before[&i2]);
        assert!(drain.moves.iter().all(|m| m.from == i2));
        n.remove(&i2);
        assert_eq!(plan(&n, &rooms).orphaned, drain.before[&i2]);
    }
}
