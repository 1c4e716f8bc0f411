//! Rebalancing: compute, for every room, its HRW owner over the active nodes
//! and move the rooms whose owner changed, by live handoffs on their current
//! nodes. Adding an N+1st equal node moves about 1/(N+1) of the rooms, all to
//! the new node; a second run right after moves nothing.
//!
//! Moves go in batches: the plan's moves grouped by (owner, target), up to
//! [`BATCH`] rooms (one store transaction's worth) in one handoff request,
//! [`DEFAULT_CONCURRENCY`] requests in flight unless told otherwise; each
//! room of a batch still gets its own outcome.
//!
//! The plan is made from records (the store's, for the command; the
//! mirror's, for the admin endpoint); every move re-checks its epoch, so a
//! stale plan can only skip rooms, never move one twice.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use proto::handoff::{HandoffAnswer, HandoffBatch, HandoffOutcome, HandoffRoom};
use proto::placement::Placement;
use proto::record::{NodeRecord, RoomRecord};
use proto::{InstanceId, RoomId};
use serde::Serialize;
use service::client::{CallError, InternalClient};

/// Rooms per handoff request: one store transaction's worth, so a batch
/// freezes its rooms for one adopt call and one transaction.
pub const BATCH: usize = store::store::ROOMS_PER_TXN;

/// Handoff requests in flight at once, by default. Measured with
/// `bench/moves` (100,000 rooms on 3 nodes, a 4th added, 2 cores shared
/// with etcd): one batch at a time moved about as many rooms per second as
/// two or four (etcd's CPU is the limit, so more in flight only queue
/// there) and kept the longest freeze of a live room lowest; each batch in
/// flight adds its turn at etcd to every frozen room's wait. Raise it where
/// etcd has cores of its own.
pub const DEFAULT_CONCURRENCY: usize = 1;

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

/// Runs `moves` as live handoffs, in batches of up to [`BATCH`] rooms with
/// one owner and one target, `concurrency` batches at a time; `progress`
/// sees each room's outcome as its batch lands.
pub async fn execute(
    client: &InternalClient,
    nodes: &BTreeMap<InstanceId, NodeRecord>,
    moves: Vec<Move>,
    concurrency: usize,
    mut progress: impl FnMut(&Outcome),
) -> Summary {
    let mut summary = Summary::default();
    let mut results = futures_util::stream::iter(batches(moves))
        .map(|batch| async move {
            let result = hand_off(client, nodes, &batch).await;
            (batch, result)
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((batch, result)) = results.next().await {
        for (planned, result) in outcomes(batch, result) {
            let outcome = match result {
                Ok(members) => {
                    summary.moved += 1;
                    summary.members += members as u64;
                    Outcome {
                        planned,
                        error: None,
                    }
                }
                Err(error) => Outcome {
                    planned,
                    error: Some(error),
                },
            };
            progress(&outcome);
            if outcome.error.is_some() {
                summary.failed.push(outcome);
            }
        }
    }
    summary
}

/// The moves grouped by (owner, target), in plan order within a group, cut
/// into batches of at most [`BATCH`]; the groups' batches interleaved, so
/// the requests in flight spread over the owners.
fn batches(moves: Vec<Move>) -> Vec<Vec<Move>> {
    let mut groups: BTreeMap<(InstanceId, InstanceId), Vec<Vec<Move>>> = BTreeMap::new();
    for m in moves {
        let group = groups.entry((m.from, m.to)).or_default();
        match group.last_mut() {
            Some(batch) if batch.len() < BATCH => batch.push(m),
            _ => group.push(vec![m]),
        }
    }
    let mut groups: Vec<_> = groups
        .into_values()
        .map(|g| g.into_iter().peekable())
        .collect();
    let mut out = Vec::new();
    while groups.iter_mut().any(|g| g.peek().is_some()) {
        out.extend(groups.iter_mut().filter_map(Iterator::next));
    }
    out
}

/// Each move of `batch` with its members told to reconnect, or why it did
/// not happen.
fn outcomes(
    batch: Vec<Move>,
    result: Result<HandoffAnswer, CallError>,
) -> Vec<(Move, Result<usize, String>)> {
    let answer = match result {
        Ok(answer) if answer.rooms.len() == batch.len() => answer,
        Ok(answer) => {
            let why = format!(
                "the owner answered {} outcomes for {} rooms",
                answer.rooms.len(),
                batch.len()
            );
            return batch.into_iter().map(|m| (m, Err(why.clone()))).collect();
        }
        Err(e) => {
            let why = e.to_string();
            return batch.into_iter().map(|m| (m, Err(why.clone()))).collect();
        }
    };
    batch
        .into_iter()
        .zip(answer.rooms)
        .map(|(m, outcome)| {
            let result = match outcome {
                HandoffOutcome::Moved(done) if done.room == m.room => Ok(done.members),
                HandoffOutcome::Moved(done) => Err(format!(
                    "the owner answered for {} in place of {}",
                    done.room, m.room
                )),
                HandoffOutcome::Failed { error, message, .. } => {
                    Err(format!("{}: {error}: {message}", m.from))
                }
            };
            (m, result)
        })
        .collect()
}

/// One handoff request for `batch` (one owner, one target).
async fn hand_off(
    client: &InternalClient,
    nodes: &BTreeMap<InstanceId, NodeRecord>,
    batch: &[Move],
) -> Result<HandoffAnswer, CallError> {
    let first = &batch[0];
    let Some(owner) = nodes.get(&first.from) else {
        return Err(CallError::Unreachable {
            url: first.from.to_string(),
            reason: "the owner is no longer registered".into(),
        });
    };
    let req = HandoffBatch {
        to: first.to,
        rooms: batch
            .iter()
            .map(|m| HandoffRoom {
                room: m.room.clone(),
                epoch: m.epoch,
            })
            .collect(),
    };
    client.handoff(&owner.addr, &req).await
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
                let node = placement.owner(&id).unwrap();
                RoomRecord::new(id, node, false, 0)
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
    fn batches_keep_one_owner_and_target_and_spread_over_owners() {
        let rooms = rooms_on(&nodes(3), 3000);
        let plan = plan(&nodes(4), &rooms);
        let total = plan.moves.len();
        let batches = batches(plan.moves);
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), total);
        for b in &batches {
            assert!(!b.is_empty() && b.len() <= BATCH);
            assert!(b.iter().all(|m| (m.from, m.to) == (b[0].from, b[0].to)));
        }
        let owners: Vec<_> = batches.iter().take(3).map(|b| b[0].from).collect();
        assert_eq!(owners.len(), 3);
        assert!(owners.windows(2).all(|w| w[0] != w[1]), "{owners:?}");
    }

    #[test]
    fn a_batch_answer_becomes_one_outcome_per_room() {
        let rooms = rooms_on(&nodes(3), 300);
        let plan = plan(&nodes(4), &rooms);
        let batch = batches(plan.moves).remove(0);
        let answer = HandoffAnswer {
            rooms: batch
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    if i == 0 {
                        HandoffOutcome::Failed {
                            room: m.room.clone(),
                            error: "stale".into(),
                            message: "moved meanwhile".into(),
                        }
                    } else {
                        HandoffOutcome::Moved(proto::handoff::HandoffDone {
                            room: m.room.clone(),
                            from: m.from,
                            to: m.to,
                            epoch: m.epoch + 1,
                            members: 2,
                            history: 0,
                        })
                    }
                })
                .collect(),
        };
        let n = batch.len();
        let got = outcomes(batch, Ok(answer));
        assert_eq!(got.len(), n);
        assert!(got[0].1.as_ref().is_err_and(|e| e.contains("stale")));
        assert!(got[1..].iter().all(|(_, r)| r == &Ok(2)));
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
