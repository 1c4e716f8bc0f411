//! Which rooms this node serves, decided in one place. A room is live here
//! only on the store's word: its record names this node, at an epoch.
//!
//! - [`Ownership::resolve`]: a client asks to join a room here (any
//!   protocol): the hosted room, or a redirect to its owner, or unknown,
//!   or, with `--auto-create`, created on this node.
//! - [`Ownership::activate`]: the store names this node owner at an epoch:
//!   the instance at that epoch, restored from an adoption or new.
//! - [`Ownership::adopt`]: a room handed over by its old owner, held until
//!   the store names this node its owner (a move).
//! - [`Ownership::release`]: the room is no longer served here (moved,
//!   deleted, or its fate unknown): removed and closed.
//! - [`Ownership::on_change`]: the store's index of this node's rooms
//!   changed (a move committed, a delete, another owner).
//!
//! Lock order: the ownership lock, then the hosted rooms' lock, then a
//! room's; none of those calls back into this module.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use proto::handoff::RoomSnapshot;
use proto::record::{NodeState, RoomRecord};
use proto::{ErrorCode, InstanceId, RoomId};
use service::error::ApiError;
use store::{Change, Created, Mirror, Store, StoreError};
use tokio::time::Instant;

use crate::member::close::CloseReason;
use crate::replication::copies::Copies;
use crate::room::Room;
use crate::room::rooms::Rooms;

/// How long an adopted room waits for its move to commit; a move that
/// never commits (its old owner died mid-way) leaves nothing behind.
const ADOPTION_TTL: Duration = Duration::from_secs(60);

/// This node's rooms as the store decides them. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Ownership {
    shared: Arc<Shared>,
}

struct Shared {
    node: InstanceId,
    auto_create: bool,
    store: Store,
    rooms: Rooms,
    /// Copies of other owners' rooms, one of which becomes a room of
    /// this node when the store names it the owner after a failover.
    copies: Copies,
    pending: Mutex<Pending>,
}

/// What is between owners.
#[derive(Default)]
struct Pending {
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

/// An adoption that cannot be taken.
#[derive(Debug)]
pub(crate) struct AdoptionRefused(pub(crate) String);

impl Ownership {
    pub(crate) fn new(
        node: InstanceId,
        auto_create: bool,
        store: Store,
        rooms: Rooms,
        copies: Copies,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                node,
                auto_create,
                store,
                rooms,
                copies,
                pending: Mutex::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The room a join of `room` is served by here: the hosted instance;
    /// else, on the store's word (`view`, this node's mirror, while the
    /// store is unreachable), this node's instance, a 307 to the owner
    /// (keeping the join's `query`), 404 `unknown_room`, or with
    /// `--auto-create` a room created on this node.
    pub(crate) async fn resolve(
        &self,
        view: &Mirror,
        room: &RoomId,
        query: Option<&str>,
    ) -> Result<Arc<Room>, ApiError> {
        if let Some(hosted) = self.shared.rooms.get(room) {
            return Ok(hosted);
        }
        let rec = match self.owner(view, room).await? {
            Some(rec) => rec,
            None if self.shared.auto_create => self.create_here(view, room).await?,
            None => {
                return Err(ApiError::new(
                    ErrorCode::UnknownRoom,
                    format!("room {room} does not exist; create it with POST /rooms on a router"),
                ));
            }
        };
        if rec.node != self.shared.node {
            return Err(ApiError::redirect(rec.node, room, query));
        }
        Ok(self.activate(&rec))
    }

    /// The room's record, from the store itself (a room becomes live here
    /// only on the store's word), or from `view` while the store is
    /// unreachable and this node's lease still holds.
    async fn owner(&self, view: &Mirror, room: &RoomId) -> Result<Option<RoomRecord>, ApiError> {
        match self.shared.store.room(room).await {
            Err(StoreError::Unavailable(e)) => match view.room(room) {
                Some(rec) => Ok(Some(rec)),
                None => Err(ApiError::store_unavailable(&e)),
            },
            other => Ok(other?),
        }
    }

    /// Creates `room` on this node, unless it is draining; a room created
    /// meanwhile by someone else is answered as it is.
    async fn create_here(&self, view: &Mirror, room: &RoomId) -> Result<RoomRecord, ApiError> {
        let me = self.shared.node;
        if view.nodes().nodes.get(&me).map(|n| n.state) == Some(NodeState::Draining) {
            return Err(ApiError::new(
                ErrorCode::Draining,
                "this node takes no new rooms".into(),
            ));
        }
        let rec = RoomRecord::new(room.clone(), me, false, store::store::unix_now());
        match self.shared.store.create_room(&rec).await? {
            Created::New(r) | Created::Existing(r) => Ok(r),
        }
    }

    /// The instance for `rec`, which names this node as owner: the existing
    /// one at the same epoch, or one restored from an adopted snapshot of
    /// that epoch (a move), or from this node's copy of an earlier epoch
    /// (a failover to the replica), or a fresh one (replacing a stale
    /// epoch's).
    pub(crate) fn activate(&self, rec: &RoomRecord) -> Arc<Room> {
        debug_assert_eq!(rec.node, self.shared.node);
        let mut pending = self.lock();
        if let Some(room) = self.shared.rooms.get(&rec.id)
            && room.epoch() == rec.epoch
        {
            return room;
        }
        // Taken either way: a copy older than the epoch now held is stale.
        let copy = self.shared.copies.promote(&rec.id, rec.epoch);
        let snapshot = match pending.adopted.remove(&rec.id) {
            Some(a) if a.snapshot.epoch == rec.epoch && a.expires > Instant::now() => {
                tracing::info!(room = %rec.id, seq = a.snapshot.seq, "room moved here; history restored");
                Some(a.snapshot)
            }
            _ => copy.inspect(|c| {
                tracing::info!(room = %rec.id, seq = c.seq, stream = %c.stream, "room failed over here; stream continued from this node's copy");
            }),
        };
        let (room, stale) = self.shared.rooms.host(rec, snapshot);
        if let Some(stale) = stale {
            stale.close(&CloseReason::moved(rec.node, &rec.id));
        }
        drop(pending);
        room
    }

    /// Holds a room's state until the store names this node its owner.
    pub(crate) fn adopt(&self, snapshot: RoomSnapshot) -> Result<(), AdoptionRefused> {
        let mut pending = self.lock();
        let now = Instant::now();
        if pending.next_sweep.is_none_or(|t| t <= now) {
            pending.adopted.retain(|_, a| a.expires > now);
            pending.next_sweep = Some(now + ADOPTION_TTL / 4);
        }
        if let Some(live) = self.shared.rooms.get(&snapshot.room)
            && live.epoch() >= snapshot.epoch
        {
            return Err(AdoptionRefused(format!(
                "room {} is already live here at epoch {}",
                snapshot.room,
                live.epoch()
            )));
        }
        let expires = now + ADOPTION_TTL;
        pending
            .adopted
            .insert(snapshot.room.clone(), Adopted { snapshot, expires });
        Ok(())
    }

    /// Stops serving `room` (if it is still this instance) and closes it.
    pub(crate) fn release(&self, room: &Arc<Room>, reason: &CloseReason) {
        let mut pending = self.lock();
        self.shared.rooms.remove(room);
        pending.left_while_moving.remove(room.id());
        drop(pending);
        room.close(reason);
    }

    /// Keeps hosted rooms in line with the store, as the node's index of
    /// its own rooms shows it: a room at another epoch is closed here, and
    /// so is one that left the index (deleted, or given to another node).
    pub(crate) fn on_change(&self, change: &Change) {
        let Change::Room { id, after, .. } = change else {
            return;
        };
        let Some(room) = self.shared.rooms.get(id) else {
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
                let mut pending = self.lock();
                // Its own move: the handoff closes it (or, if the move
                // fails, looks where it went: see `unfreeze`).
                if room.is_moving() {
                    pending.left_while_moving.insert(id.clone());
                    return;
                }
                drop(pending);
                self.look_up_and_close(room);
            }
        }
    }

    /// Lets a room frozen for a move that did not happen go on, unless it
    /// left this node's index meanwhile: then the store says where it is.
    pub(crate) fn unfreeze(&self, room: &Arc<Room>) {
        let mut pending = self.lock();
        room.unfreeze();
        let left = pending.left_while_moving.remove(room.id());
        drop(pending);
        if left {
            self.look_up_and_close(room.clone());
        }
    }

    /// The index says only that the room is no longer ours; the record says
    /// whether it was deleted or where it went.
    fn look_up_and_close(&self, room: Arc<Room>) {
        let ownership = self.clone();
        tokio::spawn(async move {
            match ownership.shared.store.room(room.id()).await {
                Ok(rec) => ownership.close_for(&room, rec.as_ref()),
                Err(e) => {
                    tracing::warn!(room = %room.id(), error = %e, "room left this node; store unreadable, closing it");
                    ownership.release(&room, &CloseReason::fenced());
                }
            }
        });
    }

    /// Closes `room` unless `rec` (its record now) still names it.
    fn close_for(&self, room: &Arc<Room>, rec: Option<&RoomRecord>) {
        let reason = match rec {
            None => CloseReason::deleted(),
            Some(r) if r.node == self.shared.node && r.epoch == room.epoch() => return,
            Some(r) => CloseReason::moved(r.node, &r.id),
        };
        tracing::info!(room = %room.id(), "room no longer hosted here; closing it");
        room.retire();
        self.release(room, &reason);
    }
}

#[cfg(test)]
mod tests;
