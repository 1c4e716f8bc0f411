//! Replication of every hosted room to its HRW runner-up (SPEC "No
//! accepted message lost when a node dies"), so that failover, which
//! picks exactly that node, continues the same stream.
//!
//! - The owner's side: each room queues its messages on the [`Link`] to
//!   its replica and delivers them when the replica confirms
//!   (`crate::room::replica`); [`link`] sends the batches.
//! - The replica's side: [`copies`] holds the copies and hands one over
//!   when the store names this node the room's owner.
//! - [`Replication::follow`]: the node set changed (a node joined, left,
//!   drained): every hosted room checks its runner-up and, if it changed,
//!   sends the new one a full copy before anything else.
//! - [`stream`]: the WebSocket between an owner and a replica node,
//!   `GET /internal/replicate` behind the internal key.

pub(crate) mod copies;
pub(crate) mod link;
#[cfg(test)]
mod model;
pub(crate) mod stream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use proto::{InstanceId, RoomId};
use store::{Mirror, NodeSet};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::room::Room;
use crate::room::rooms::Rooms;
use copies::Copies;
use link::{Link, Outbound};

/// How often the node set is compared with the last one seen.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);
/// How long a copy whose owner is gone is kept in case the store names
/// this node its owner (the router's failover runs within seconds).
const ORPHAN_COPY_TTL: Duration = Duration::from_secs(120);

/// This node's replication: its links to replicas, and the copies it
/// holds for other owners. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Replication {
    shared: Arc<Shared>,
}

struct Shared {
    me: InstanceId,
    /// `None` with `--replication off` (or no `--secret`): rooms accept
    /// at once.
    outbound: Option<Outbound>,
    metrics: Arc<Metrics>,
    links: Mutex<HashMap<InstanceId, Arc<Link>>>,
    copies: Copies,
    /// The node's view of the store, once it has one.
    mirror: OnceLock<Mirror>,
}

impl Replication {
    pub(crate) fn new(
        me: InstanceId,
        outbound: Option<Outbound>,
        copies: Copies,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                me,
                outbound,
                metrics,
                links: Mutex::default(),
                copies,
                mirror: OnceLock::new(),
            }),
        }
    }

    fn links(&self) -> MutexGuard<'_, HashMap<InstanceId, Arc<Link>>> {
        self.shared.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the view of the store replicas are chosen from.
    pub(crate) fn set_mirror(&self, mirror: Mirror) {
        let _ = self.shared.mirror.set(mirror);
    }

    /// A room starts being hosted here: it gets its replica (a full copy
    /// first). Before the node has a view, [`Replication::follow`]'s first
    /// pass does it.
    pub(crate) fn attach(&self, room: &Room) {
        if !self.is_on() {
            return;
        }
        room.replication_on();
        if let Some(mirror) = self.shared.mirror.get() {
            room.follow_replica(self.replica_of(&mirror.nodes(), room.id()));
        }
    }

    /// Whether rooms wait for a replica.
    pub(crate) fn is_on(&self) -> bool {
        self.shared.outbound.is_some()
    }

    /// The copies this node holds for other owners.
    pub(crate) fn copies(&self) -> &Copies {
        &self.shared.copies
    }

    /// The link to `room`'s replica in `nodes`: its runner-up among the
    /// active nodes. `None` when replication is off or there is no other
    /// active node.
    pub(crate) fn replica_of(&self, nodes: &NodeSet, room: &RoomId) -> Option<Arc<Link>> {
        let outbound = self.shared.outbound.as_ref()?;
        let peer = nodes.placement.runner_up(room, self.shared.me)?;
        let addr = &nodes.nodes.get(&peer)?.addr;
        let mut links = self.links();
        let link = links.entry(peer).or_insert_with(|| {
            Link::start(
                self.shared.me,
                peer,
                addr.clone(),
                outbound,
                self.shared.metrics.clone(),
            )
        });
        link.set_addr(addr);
        Some(link.clone())
    }

    /// Keeps replication in line with the node set until `stop`: every
    /// hosted room follows a change of its runner-up; links to nodes that
    /// left are dropped; copies of owners long gone are swept.
    pub(crate) async fn follow(self, mirror: Mirror, rooms: Rooms, stop: CancellationToken) {
        let mut last: Option<Arc<NodeSet>> = None;
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_INTERVAL) => {}
                () = stop.cancelled() => return,
            }
            ticks += 1;
            let nodes = mirror.nodes();
            if !mirror.is_synced() {
                continue;
            }
            if last.as_ref().is_none_or(|l| !Arc::ptr_eq(l, &nodes)) {
                for room in rooms.all() {
                    room.follow_replica(self.replica_of(&nodes, room.id()));
                }
                let mut links = self.links();
                links.retain(|peer, _| nodes.nodes.contains_key(peer));
                // A replica that left and came back between two looks
                // keeps its link, but may have lost its copies: ask.
                links.values().for_each(|l| l.probe());
                drop(links);
                last = Some(nodes.clone());
            }
            let restarted: Vec<Arc<Link>> = self
                .links()
                .values()
                .filter(|l| l.take_restarted())
                .cloned()
                .collect();
            if !restarted.is_empty() {
                for room in rooms.all() {
                    restarted.iter().for_each(|l| room.replica_restarted(l));
                }
            }
            if ticks.is_multiple_of(25) {
                self.shared
                    .copies
                    .sweep(|owner| nodes.nodes.contains_key(&owner), ORPHAN_COPY_TTL);
            }
        }
    }

    /// Sets the replication gauges (at scrape time: they visit every
    /// hosted room).
    pub(crate) fn update_gauges(&self, rooms: &Rooms) {
        let m = &self.shared.metrics;
        let queued: usize = self.links().values().map(|l| l.queued()).sum();
        m.replication_queued.set(queued as i64);
        m.replica_bytes.set(self.shared.copies.bytes() as i64);
        if self.is_on() {
            let (pending, without) = rooms.replication_status();
            m.replication_pending.set(pending as i64);
            m.rooms_without_replica.set(without as i64);
        }
    }
}
