//! The rooms this node hosts, by id: the live instances, and the memory
//! they hold. Which rooms belong here is decided in
//! [`crate::cluster::ownership`]; this map only holds the answer, and
//! removing a room from it is how a room stops being served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use proto::RoomId;
use proto::handoff::RoomSnapshot;
use proto::record::RoomRecord;
use tokio::time::Instant;

use crate::feed::Feed;
use crate::member::close::CloseReason;
use crate::metrics::Metrics;
use crate::replication::Replication;
use crate::room::Room;
use crate::room::limits::RoomLimits;

/// The hosted rooms. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Rooms {
    shared: Arc<Shared>,
}

struct Shared {
    limits: RoomLimits,
    metrics: Arc<Metrics>,
    /// The events feed every hosted room reports to, if any.
    feed: Option<Arc<Feed>>,
    /// Where every hosted room gets its replica.
    replication: Replication,
    live: Mutex<HashMap<RoomId, Arc<Room>>>,
}

impl Rooms {
    pub(crate) fn new(
        limits: RoomLimits,
        metrics: Arc<Metrics>,
        feed: Option<Arc<Feed>>,
        replication: Replication,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits,
                metrics,
                feed,
                replication,
                live: Mutex::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomId, Arc<Room>>> {
        self.shared.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hosted instance of a room, if any.
    pub(crate) fn get(&self, id: &RoomId) -> Option<Arc<Room>> {
        self.lock().get(id).cloned()
    }

    /// Hosts a new instance of `rec`'s room: restored from `snapshot` (a
    /// room moved here), or with no past. Returns it, and the instance it
    /// replaced, if any, for the caller to close.
    pub(crate) fn host(
        &self,
        rec: &RoomRecord,
        snapshot: Option<RoomSnapshot>,
    ) -> (Arc<Room>, Option<Arc<Room>>) {
        let (limits, metrics) = (self.shared.limits, self.shared.metrics.clone());
        let room = match snapshot {
            Some(snapshot) => Room::restore(rec, snapshot, limits, metrics),
            None => Room::new(rec, limits, metrics),
        };
        if let Some(feed) = &self.shared.feed {
            room.attach_feed(feed.clone());
        }
        self.shared.replication.attach(&room);
        let replaced = self.lock().insert(rec.id.clone(), room.clone());
        (room, replaced)
    }

    /// Stops hosting `room`, if it is still the hosted instance.
    pub(crate) fn remove(&self, room: &Arc<Room>) {
        let mut live = self.lock();
        if live.get(room.id()).is_some_and(|r| Arc::ptr_eq(r, room)) {
            live.remove(room.id());
        }
    }

    /// Removes and closes every room (shutdown, fencing).
    pub(crate) fn close_all(&self, reason: &CloseReason) {
        let rooms: Vec<_> = self.lock().drain().map(|(_, r)| r).collect();
        for room in rooms {
            room.close(reason);
        }
    }

    /// Drops every room nobody has been in for `idle`, with its history,
    /// then the longest idle of the others until the history of rooms
    /// nobody is in fits `budget`; how many it dropped.
    pub(crate) fn drop_idle(&self, idle: Duration, budget: usize) -> usize {
        let mut idle_rooms: Vec<(Instant, Arc<Room>)> = self
            .lock()
            .values()
            .filter_map(|r| r.idle_since().map(|t| (t, r.clone())))
            .collect();
        idle_rooms.sort_by_key(|(t, _)| *t);
        let mut held: usize = idle_rooms.iter().map(|(_, r)| r.history_bytes()).sum();
        let mut dropped = 0;
        for (since, room) in idle_rooms {
            let over = held > budget;
            if !over && since.elapsed() < idle {
                // The rest are idle for less still.
                break;
            }
            let bytes = room.history_bytes();
            // A zero wait drops it now: it is over the budget or idle long.
            if room.close_if_idle(Duration::ZERO) {
                self.remove(&room);
                held -= bytes.min(held);
                dropped += 1;
            }
        }
        dropped
    }

    /// Every hosted room.
    pub(crate) fn all(&self) -> Vec<Arc<Room>> {
        self.lock().values().cloned().collect()
    }

    /// Messages waiting for replicas, and rooms without a replica, over
    /// every hosted room.
    pub(crate) fn replication_status(&self) -> (usize, usize) {
        self.all().iter().fold((0, 0), |(pending, without), r| {
            let (p, unprotected) = r.replication_status();
            (pending + p, without + usize::from(unprotected))
        })
    }

    /// Bytes of history held by every hosted room.
    pub(crate) fn history_bytes(&self) -> usize {
        let rooms: Vec<Arc<Room>> = self.lock().values().cloned().collect();
        rooms.iter().map(|r| r.history_bytes()).sum()
    }

    /// Rooms with at least one member.
    pub(crate) fn active(&self) -> usize {
        self.lock().values().filter(|r| r.is_active()).count()
    }
}
