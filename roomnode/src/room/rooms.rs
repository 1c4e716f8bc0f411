//! The rooms this node hosts, by id. A room instance is created on its first
//! join after ownership was checked, and removed when the store says it is
//! deleted or owned by someone else: removing it closes every connection.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use proto::handoff::RoomSnapshot;
use tokio::time::Instant;

use proto::record::RoomRecord;
use proto::{InstanceId, RoomId};
use store::{Change, Store};

use crate::member::close::CloseReason;
use crate::metrics::Metrics;
use crate::room::Room;
use crate::room::limits::RoomLimits;

/// The room registry. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Rooms {
    shared: Arc<Shared>,
}

struct Shared {
    node: InstanceId,
    limits: RoomLimits,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    live: HashMap<RoomId, Arc<Room>>,
    /// Rooms handed to this node by their old owner, waiting for the store
    /// to name this node their owner at the snapshot's epoch.
    adopted: HashMap<RoomId, Adopted>,
    /// When expired adoptions are next swept (not on every adoption: a
    /// move of thousands of rooms would sweep thousands of times).
    next_sweep: Option<Instant>,
    /// Rooms that left this node's index while frozen for a move: the move
    /// decides; if it fails, the store is asked where they went.
    left_while_moving: HashSet<RoomId>,
}

struct Adopted {
    snapshot: RoomSnapshot,
    expires: Instant,
}

/// How long an adopted room waits for its move to commit; a move that
/// never commits (its old owner died mid-way) leaves nothing behind.
const ADOPTION_TTL: Duration = Duration::from_secs(60);

/// An adoption that cannot be taken.
#[derive(Debug)]
pub(crate) struct AdoptionRefused(pub(crate) String);

impl Rooms {
    pub(crate) fn new(node: InstanceId, limits: RoomLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Arc::new(Shared {
                node,
                limits,
                metrics,
                state: Mutex::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hosted instance of a room, if any.
    pub(crate) fn get(&self, id: &RoomId) -> Option<Arc<Room>> {
        self.lock().live.get(id).cloned()
    }

    /// The instance for `rec`, which names this node as owner: the existing
    /// one at the same epoch, or one restored from an adopted snapshot of
    /// that epoch, or a fresh one (replacing a stale epoch's).
    pub(crate) fn activate(&self, rec: &RoomRecord) -> Arc<Room> {
        debug_assert_eq!(rec.node, self.shared.node);
        let mut st = self.lock();
        if let Some(room) = st.live.get(&rec.id)
            && room.epoch() == rec.epoch
        {
            return room.clone();
        }
        let (limits, metrics) = (self.shared.limits, self.shared.metrics.clone());
        let room = match st.adopted.remove(&rec.id) {
            Some(a) if a.snapshot.epoch == rec.epoch && a.expires > Instant::now() => {
                tracing::info!(room = %rec.id, seq = a.snapshot.seq, "room moved here; history restored");
                Room::restore(rec, a.snapshot, limits, metrics)
            }
            _ => Room::new(rec, limits, metrics),
        };
        if let Some(stale) = st.live.insert(rec.id.clone(), room.clone()) {
            stale.close(&CloseReason::moved(&proto::path::sharded(
                rec.node, &rec.id,
            )));
        }
        room
    }

    /// Holds a room's state until the store names this node its owner.
    pub(crate) fn adopt(&self, snapshot: RoomSnapshot) -> Result<(), AdoptionRefused> {
        let mut st = self.lock();
        let now = Instant::now();
        if st.next_sweep.is_none_or(|t| t <= now) {
            st.adopted.retain(|_, a| a.expires > now);
            st.next_sweep = Some(now + ADOPTION_TTL / 4);
        }
        if let Some(live) = st.live.get(&snapshot.room)
            && live.epoch() >= snapshot.epoch
        {
            return Err(AdoptionRefused(format!(
                "room {} is already live here at epoch {}",
                snapshot.room,
                live.epoch()
            )));
        }
        let expires = now + ADOPTION_TTL;
        st.adopted
            .insert(snapshot.room.clone(), Adopted { snapshot, expires });
        Ok(())
    }

    /// Removes `room` (if it is still this instance) and closes it.
    pub(crate) fn remove(&self, room: &Arc<Room>, reason: &CloseReason) {
        let mut st = self.lock();
        if st.live.get(room.id()).is_some_and(|r| Arc::ptr_eq(r, room)) {
            st.live.remove(room.id());
        }
        st.left_while_moving.remove(room.id());
        drop(st);
        room.close(reason);
    }

    /// Removes and closes every room (shutdown, fencing).
    pub(crate) fn close_all(&self, reason: &CloseReason) {
        let rooms: Vec<_> = self.lock().live.drain().map(|(_, r)| r).collect();
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
            .live
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
                let mut st = self.lock();
                if st
                    .live
                    .get(room.id())
                    .is_some_and(|r| Arc::ptr_eq(r, &room))
                {
                    st.live.remove(room.id());
                }
                held -= bytes.min(held);
                dropped += 1;
            }
        }
        dropped
    }

    /// Bytes of history held by every hosted room.
    pub(crate) fn history_bytes(&self) -> usize {
        let rooms: Vec<Arc<Room>> = self.lock().live.values().cloned().collect();
        rooms.iter().map(|r| r.history_bytes()).sum()
    }

    /// Rooms with at least one member.
    pub(crate) fn active(&self) -> usize {
        self.lock().live.values().filter(|r| r.is_active()).count()
    }

    /// Keeps hosted rooms in line with the store, as the node's index of
    /// its own rooms shows it: a room at another epoch is closed here, and
    /// so is one that left the index (deleted, or given to another node).
    pub(crate) fn on_change(&self, change: &Change, store: &Store) {
        let Change::Room { id, after, .. } = change else {
            return;
        };
        let Some(room) = self.get(id) else {
            // A room moved here: live at once, with the history its old
            // owner handed over (not only at the first join, which may
            // come after the adoption expired).
            if let Some(rec) = after
                && rec.node == self.shared.node
                && self.lock().adopted.contains_key(id)
            {
                self.activate(rec);
            }
            return;
        };
        match after {
            Some(rec) if rec.node == self.shared.node && rec.epoch == room.epoch() => {}
            Some(rec) => self.close_for(&room, Some(rec)),
            None => {
                let mut st = self.lock();
                // Its own move: the handoff closes it (or, if the move
                // fails, looks where it went: see `unfreeze`).
                if room.is_moving() {
                    st.left_while_moving.insert(id.clone());
                    return;
                }
                drop(st);
                self.look_up_and_close(room, store);
            }
        }
    }

    /// Lets a room frozen for a move that did not happen go on, unless it
    /// left this node's index meanwhile: then the store says where it is.
    pub(crate) fn unfreeze(&self, room: &Arc<Room>, store: &Store) {
        let mut st = self.lock();
        room.unfreeze();
        let left = st.left_while_moving.remove(room.id());
        drop(st);
        if left {
            self.look_up_and_close(room.clone(), store);
        }
    }

    /// The index says only that the room is no longer ours; the record says
    /// whether it was deleted or where it went.
    fn look_up_and_close(&self, room: Arc<Room>, store: &Store) {
        let (rooms, store) = (self.clone(), store.clone());
        tokio::spawn(async move {
            match store.room(room.id()).await {
                Ok(rec) => rooms.close_for(&room, rec.as_ref()),
                Err(e) => {
                    tracing::warn!(room = %room.id(), error = %e, "room left this node; store unreadable, closing it");
                    rooms.remove(&room, &CloseReason::fenced());
                }
            }
        });
    }

    /// Closes `room` unless `rec` (its record now) still names it.
    fn close_for(&self, room: &Arc<Room>, rec: Option<&RoomRecord>) {
        let reason = match rec {
            None => CloseReason::deleted(),
            Some(r) if r.node == self.shared.node && r.epoch == room.epoch() => return,
            Some(r) => CloseReason::moved(&proto::path::sharded(r.node, &r.id)),
        };
        tracing::info!(room = %room.id(), "room no longer hosted here; closing it");
        self.remove(room, &reason);
    }
}
