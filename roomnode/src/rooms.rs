//! The rooms this node hosts, by id. A room instance is created on its first
//! join after ownership was checked, and removed when the store says it is
//! deleted or owned by someone else: removing it closes every connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use proto::record::RoomRecord;
use proto::{InstanceId, RoomId};
use store::Change;

use crate::metrics::Metrics;
use crate::room::{CloseReason, Room, RoomLimits};

/// The room registry. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Rooms {
    shared: Arc<Shared>,
}

struct Shared {
    node: InstanceId,
    limits: RoomLimits,
    metrics: Arc<Metrics>,
    map: Mutex<HashMap<RoomId, Arc<Room>>>,
}

impl Rooms {
    pub(crate) fn new(node: InstanceId, limits: RoomLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Arc::new(Shared {
                node,
                limits,
                metrics,
                map: Mutex::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomId, Arc<Room>>> {
        self.shared.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hosted instance of a room, if any.
    pub(crate) fn get(&self, id: &RoomId) -> Option<Arc<Room>> {
        self.lock().get(id).cloned()
    }

    /// The instance for `rec`, which names this node as owner: the existing
    /// one at the same epoch, or a new one (replacing a stale epoch's).
    pub(crate) fn activate(&self, rec: &RoomRecord) -> Arc<Room> {
        debug_assert_eq!(rec.node, self.shared.node);
        let mut map = self.lock();
        if let Some(room) = map.get(&rec.id)
            && room.epoch() == rec.epoch
        {
            return room.clone();
        }
        let room = Arc::new(Room::new(
            rec,
            self.shared.limits,
            self.shared.metrics.clone(),
        ));
        if let Some(stale) = map.insert(rec.id.clone(), room.clone()) {
            stale.close(&CloseReason::moved(&proto::path::sharded(
                rec.node, &rec.id,
            )));
        }
        room
    }

    /// Removes and closes every room (shutdown, fencing).
    pub(crate) fn close_all(&self, reason: &CloseReason) {
        let rooms: Vec<_> = self.lock().drain().map(|(_, r)| r).collect();
        for room in rooms {
            room.close(reason);
        }
    }

    /// Rooms with at least one member.
    pub(crate) fn active(&self) -> usize {
        self.lock().values().filter(|r| r.is_active()).count()
    }

    /// Keeps hosted rooms in line with the store: a room deleted, or now
    /// owned by another node or at another epoch, is closed here.
    pub(crate) fn on_change(&self, change: &Change) {
        let Change::Room { id, after, .. } = change else {
            return;
        };
        let Some(room) = self.get(id) else { return };
        let reason = match after {
            None => CloseReason::deleted(),
            Some(rec) if rec.node != self.shared.node || rec.epoch != room.epoch() => {
                CloseReason::moved(&proto::path::sharded(rec.node, id))
            }
            Some(_) => return,
        };
        tracing::info!(room = %id, "room no longer hosted here; closing it");
        let mut map = self.lock();
        if map.get(id).is_some_and(|r| Arc::ptr_eq(r, &room)) {
            map.remove(id);
        }
        drop(map);
        room.close(&reason);
    }
}
