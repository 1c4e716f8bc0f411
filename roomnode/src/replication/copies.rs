//! The replica's side: the copies this node holds of other owners' rooms,
//! kept exactly as their owners' streams (same stream, seqs, history,
//! member ids and idempotency keys), and handed over whole when the store
//! names this node a room's owner (failover: [`Copies::promote`]).
//!
//! Order: an owner's batches are numbered; one sent again (its answer was
//! lost) is answered as the first time without being applied twice, and
//! one overtaken by a later batch is not applied (`stale`).
//!
//! Fencing: a copy keeps its owner's epoch; items from an older epoch than
//! the copy's, or for a room this node itself hosts, are refused `fenced`,
//! so an owner that lost the room (a promoted replica, a newer owner)
//! cannot have anything more accepted. An item that does not follow from
//! the copy (no copy, another epoch, a gap in seqs) is refused `missing`
//! and the owner sends a full copy.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use proto::handoff::{PublishedKey, RoomSnapshot};
use proto::replication::{Ack, Append, Batch, Item, Refusal, Refused};
use proto::{InstanceId, RoomId};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::metrics::Metrics;
use crate::room::history::{History, HistoryLimits};
use crate::room::rooms::Rooms;

/// Most idempotency keys a copy keeps (as the owner's room does).
const MAX_KEYS: usize = 100_000;

/// One room's copy.
struct Copy {
    owner: InstanceId,
    epoch: u64,
    stream: String,
    history: History,
    members: u64,
    /// The server publishes' idempotency keys: key, seq, when published.
    published: VecDeque<(String, u64, Instant)>,
    /// When the owner last sent anything for it.
    touched: Instant,
}

/// The copies held here. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Copies {
    shared: Arc<Shared>,
}

struct Shared {
    /// This process's incarnation, in every ack.
    incarnation: u64,
    limits: HistoryLimits,
    metrics: Arc<Metrics>,
    /// Per owner, its last batch applied and the answer it got: the same
    /// batch again gets the same answer, an older one is not applied.
    senders: Mutex<HashMap<InstanceId, (u64, Ack)>>,
    copies: Mutex<HashMap<RoomId, Copy>>,
}

impl Copies {
    pub(crate) fn new(limits: HistoryLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Arc::new(Shared {
                incarnation: super::link::next_number(),
                limits,
                metrics,
                senders: Mutex::default(),
                copies: Mutex::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomId, Copy>> {
        self.shared.copies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies an owner's batch in order; what it could not apply, and why.
    /// `hosted` are the rooms this node owns.
    pub(crate) fn apply(&self, batch: Batch<'_>, hosted: &Rooms) -> Ack {
        let mut senders = self
            .shared
            .senders
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match senders.get(&batch.from) {
            Some((n, ack)) if *n == batch.batch => return ack.clone(),
            Some((n, _)) if *n > batch.batch => {
                return Ack {
                    batch: batch.batch,
                    replica: self.shared.incarnation,
                    stale: true,
                    ..Ack::default()
                };
            }
            _ => {}
        }
        let (from, number) = (batch.from, batch.batch);
        let ack = self.apply_items(batch, hosted);
        senders.insert(from, (number, ack.clone()));
        ack
    }

    fn apply_items(&self, batch: Batch<'_>, hosted: &Rooms) -> Ack {
        let batch_number = batch.batch;
        let mut refused = Vec::new();
        let now = Instant::now();
        let mut copies = self.lock();
        for item in batch.items {
            let outcome = match item {
                Item::Copy(snapshot) => self.take_copy(&mut copies, batch.from, *snapshot, hosted),
                Item::Append(a) => append(&mut copies, batch.from, a, hosted, now),
                Item::Forget { room, epoch } => {
                    if copies
                        .get(&room)
                        .is_some_and(|c| c.owner == batch.from && c.epoch == epoch)
                    {
                        copies.remove(&room);
                    }
                    Ok(())
                }
            };
            if let Err(r) = outcome {
                refused.push(r);
            }
        }
        self.shared.metrics.replica_rooms.set(copies.len() as i64);
        Ack {
            batch: batch_number,
            replica: self.shared.incarnation,
            refused,
            stale: false,
        }
    }

    fn take_copy(
        &self,
        copies: &mut HashMap<RoomId, Copy>,
        from: InstanceId,
        s: RoomSnapshot,
        hosted: &Rooms,
    ) -> Result<(), Refusal> {
        let fenced = hosted.get(&s.room).is_some_and(|r| r.epoch() >= s.epoch)
            || copies.get(&s.room).is_some_and(|c| c.epoch > s.epoch);
        if fenced {
            return Err(Refusal {
                room: s.room,
                seq: s.seq,
                reason: Refused::Fenced,
            });
        }
        let frames = s.history.into_iter().map(Utf8Bytes::from).collect();
        let now = Instant::now();
        let published = s
            .published
            .into_iter()
            .map(|k| {
                let at = now.checked_sub(Duration::from_millis(k.age_ms));
                (k.key, k.seq, at.unwrap_or(now))
            })
            .collect();
        let copy = Copy {
            owner: from,
            epoch: s.epoch,
            stream: s.stream,
            history: History::restore(self.shared.limits, s.seq, frames),
            members: s.members,
            published,
            touched: now,
        };
        copies.insert(s.room, copy);
        Ok(())
    }

    /// The copy of `room` as the state of its new owner at `epoch` (this
    /// node, named by the store after its owner was gone), if this node
    /// holds one from an earlier epoch. The copy is gone afterwards.
    pub(crate) fn promote(&self, room: &RoomId, epoch: u64) -> Option<RoomSnapshot> {
        let mut copies = self.lock();
        if copies.get(room).is_none_or(|c| c.epoch >= epoch) {
            return None;
        }
        let c = copies.remove(room)?;
        self.shared.metrics.replica_rooms.set(copies.len() as i64);
        let now = Instant::now();
        Some(RoomSnapshot {
            room: room.clone(),
            epoch,
            stream: c.stream,
            seq: c.history.latest(),
            history: c
                .history
                .frames()
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
            members: c.members,
            published: c
                .published
                .into_iter()
                .map(|(key, seq, at)| PublishedKey {
                    key,
                    seq,
                    age_ms: u64::try_from(now.duration_since(at).as_millis()).unwrap_or(u64::MAX),
                })
                .collect(),
        })
    }

    /// Bytes of history in the copies held here.
    pub(crate) fn bytes(&self) -> usize {
        self.lock().values().map(|c| c.history.bytes()).sum()
    }

    /// Drops the copies whose owner is not among `live` (and that this
    /// node was not promoted for) once nothing came for them for `after`:
    /// their room failed over elsewhere, or was dropped.
    pub(crate) fn sweep(&self, live: impl Fn(InstanceId) -> bool, after: Duration) {
        let mut copies = self.lock();
        copies.retain(|_, c| live(c.owner) || c.touched.elapsed() < after);
        self.shared.metrics.replica_rooms.set(copies.len() as i64);
    }
}

/// Appends one message to its copy, if it follows from it.
fn append(
    copies: &mut HashMap<RoomId, Copy>,
    from: InstanceId,
    a: Append<'_>,
    hosted: &Rooms,
    now: Instant,
) -> Result<(), Refusal> {
    let refuse = |reason| Refusal {
        room: a.room.clone(),
        seq: a.seq,
        reason,
    };
    if hosted.get(&a.room).is_some_and(|r| r.epoch() >= a.epoch) {
        return Err(refuse(Refused::Fenced));
    }
    let Some(c) = copies.get_mut(&a.room) else {
        return Err(refuse(Refused::Missing));
    };
    if c.epoch > a.epoch {
        return Err(refuse(Refused::Fenced));
    }
    if c.owner != from || c.epoch != a.epoch || c.history.latest() + 1 != a.seq {
        return Err(refuse(Refused::Missing));
    }
    let frame: Utf8Bytes = a.frame.get().to_owned().into();
    c.history.push(|_| frame);
    c.members = c.members.max(a.members);
    c.touched = now;
    if let Some(key) = a.key {
        if c.published.len() >= MAX_KEYS {
            c.published.pop_front();
        }
        c.published.push_back((key, a.seq, now));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
