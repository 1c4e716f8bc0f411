//! One room, entirely in this process: its members, its sequence and its
//! history. Every message is encoded once, as a whole WebSocket frame, and
//! the same bytes go to every member's [`Outlet`] (written at once to an
//! idle member's socket); a member with too many frames waiting is
//! disconnected, never waited for, so one slow reader cannot slow the room
//! or grow the node's memory.
//!
//! The state sits behind a std `Mutex` (never held across `.await`): a
//! broadcast is one lock and one non-blocking `write` per member, on the
//! sender's thread, not a hop through a room task or the members' tasks.
//! Holding the lock across the writes is what keeps every member's frames
//! in seq order.
//!
//! Layout: this file (the [`Room`]), [`history`] (the ring behind `since`
//! resume), [`limits`] (the sizes a room lives by), [`rooms`] (the rooms
//! this node hosts, by id), `tests`.

pub(crate) mod history;
pub(crate) mod limits;
pub(crate) mod rooms;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use proto::handoff::RoomSnapshot;
use proto::record::RoomRecord;
use proto::wire::{ServerMsg, code};
use proto::{InstanceId, RoomId};
use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::member::close::{CloseReason, error_frame};
use crate::member::limits::{RateLimit, Verdict};
use crate::member::outlet::{Outlet, text_frame};
use crate::metrics::Metrics;
use history::{Gap, History};
use limits::{PRESENCE_INTERVAL, RoomLimits};

struct Member {
    id: Arc<str>,
    name: Option<Arc<str>>,
    outlet: Arc<Outlet>,
}

impl State {
    fn accepting(&self) -> Result<(), Refused> {
        if self.closed {
            Err(Refused::Closed)
        } else if self.moving {
            Err(Refused::Moving)
        } else {
            Ok(())
        }
    }
}

impl Member {
    /// The `left` frame announcing this member's departure.
    fn left_frame(&self, members: usize) -> Utf8Bytes {
        ServerMsg::Left {
            member: &self.id,
            name: self.name.as_deref(),
            members,
        }
        .encode()
        .into()
    }
}

struct State {
    history: History,
    members: HashMap<u64, Member>,
    next_member: u64,
    closed: bool,
    /// Frozen for a move: sends and joins are refused, nothing changes.
    moving: bool,
    /// With a flush window: a flush of the members' held frames is due.
    flush_due: bool,
    /// A crowded room's member count is to be announced.
    presence_due: bool,
    /// Since when nobody has been in the room (`None` while someone is).
    idle_since: Option<Instant>,
    /// Joins admitted, per second.
    joins: RateLimit,
}

/// A room hosted here.
pub(crate) struct Room {
    /// This room, for the flush it schedules.
    me: Weak<Room>,
    id: RoomId,
    node: InstanceId,
    epoch: u64,
    private: bool,
    created_at: u64,
    stream: String,
    limits: RoomLimits,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

/// Why the room turned a member or a message away.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Closed (deleted, moved away or fenced): it takes no one.
    Closed,
    /// Frozen while it moves to another node: try again after `moved`.
    Moving,
    /// At its member limit.
    Full,
}

/// What a join asks for.
pub(crate) struct JoinRequest<'a> {
    pub(crate) name: Option<&'a str>,
    pub(crate) since: Option<u64>,
    pub(crate) stream: Option<&'a str>,
}

impl Room {
    /// A room with no past: a fresh stream, history starts here.
    pub(crate) fn new(rec: &RoomRecord, limits: RoomLimits, metrics: Arc<Metrics>) -> Arc<Self> {
        let stream = format!("{:016x}", rand::random::<u64>());
        Self::with(rec, stream, History::new(limits.history), limits, metrics)
    }

    /// A room moved here: same stream, same seq, same history.
    pub(crate) fn restore(
        rec: &RoomRecord,
        snapshot: RoomSnapshot,
        limits: RoomLimits,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let frames = snapshot.history.into_iter().map(Utf8Bytes::from).collect();
        let history = History::restore(limits.history, snapshot.seq, frames);
        Self::with(rec, snapshot.stream, history, limits, metrics)
    }

    fn with(
        rec: &RoomRecord,
        stream: String,
        history: History,
        limits: RoomLimits,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            id: rec.id.clone(),
            node: rec.node,
            epoch: rec.epoch,
            private: rec.private,
            created_at: rec.created_at,
            stream,
            limits,
            metrics,
            state: Mutex::new(State {
                history,
                members: HashMap::new(),
                next_member: 0,
                closed: false,
                moving: false,
                flush_due: false,
                presence_due: false,
                idle_since: Some(Instant::now()),
                joins: RateLimit::new(limits.join_rate, limits.join_burst),
            }),
        })
    }

    pub(crate) fn id(&self) -> &RoomId {
        &self.id
    }

    /// Whether joining needs a token.
    pub(crate) fn is_private(&self) -> bool {
        self.private
    }

    /// The incarnation of the room's id: its record's `created_at`.
    pub(crate) fn created_at(&self) -> u64 {
        self.created_at
    }

    /// The owner epoch this instance serves; another epoch means another
    /// owner took over and this instance must go.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether anyone is connected.
    pub(crate) fn is_active(&self) -> bool {
        !self.lock().members.is_empty()
    }

    /// Adds a member writing to `outlet`; its key, for [`Room::send`] and
    /// [`Room::leave`]. Under one lock: the welcome's seq, the replay (or
    /// `history_gap`) queued to the outlet and the start of live delivery
    /// line up, so nothing is missed or repeated.
    pub(crate) fn join(&self, req: JoinRequest<'_>, outlet: &Arc<Outlet>) -> Result<u64, Refused> {
        let mut st = self.lock();
        st.accepting()?;
        if st.members.len() >= self.limits.members {
            return Err(Refused::Full);
        }
        st.next_member += 1;
        let key = st.next_member;
        let id: Arc<str> = format!("m{key}").into();
        let name: Option<Arc<str>> = req.name.map(Into::into);
        let members = st.members.len() + 1;
        let latest = st.history.latest();
        let mut first = vec![
            ServerMsg::Welcome {
                room: &self.id,
                node: self.node,
                member: &id,
                members,
                seq: latest,
                stream: &self.stream,
            }
            .encode()
            .into(),
        ];
        if let Some(since) = req.since {
            let same_stream = req.stream.is_none_or(|s| s == self.stream);
            match same_stream.then(|| st.history.since(since)) {
                Some(Ok(replay)) => first.extend(replay),
                Some(Err(Gap)) | None => first.push(
                    error_frame(
                        code::HISTORY_GAP,
                        &format!(
                            "cannot resume after seq {since}: history of stream {} holds up to {latest}",
                            self.stream
                        ),
                    )
                    .into(),
                ),
            }
        }
        for text in first {
            // A failed queue is a connection already gone: its session ends
            // and leaves.
            let _ = outlet.queue(text_frame(&text));
        }
        if self.crowded(members) {
            self.presence_changed(&mut st);
        } else {
            let joined = ServerMsg::Joined {
                member: &id,
                name: name.as_deref(),
                members,
            };
            self.fan_out(&mut st, joined.encode().into(), None);
        }
        st.members.insert(
            key,
            Member {
                id,
                name,
                outlet: outlet.clone(),
            },
        );
        st.idle_since = None;
        Ok(key)
    }

    /// Broadcasts a member's message to everyone, sender included.
    pub(crate) fn send(&self, key: u64, body: &RawValue) -> Result<(), Refused> {
        let mut st = self.lock();
        st.accepting()?;
        let Some(sender) = st.members.get(&key) else {
            return Err(Refused::Closed);
        };
        let (from, name) = (sender.id.clone(), sender.name.clone());
        let room = &self.id;
        let (_, frame) = st.history.push(|seq| {
            ServerMsg::Message {
                room,
                seq,
                from: &from,
                name: name.as_deref(),
                body,
            }
            .encode()
            .into()
        });
        self.metrics.received.inc();
        self.fan_out(&mut st, frame, Some(Instant::now()));
        Ok(())
    }

    /// Removes a member (idempotent) and tells the others.
    pub(crate) fn leave(&self, key: u64) {
        let mut st = self.lock();
        if let Some(m) = st.members.remove(&key) {
            if st.members.is_empty() {
                st.idle_since = Some(Instant::now());
            }
            if self.crowded(st.members.len() + 1) {
                self.presence_changed(&mut st);
            } else {
                let left = m.left_frame(st.members.len());
                self.fan_out(&mut st, left, None);
            }
        }
    }

    /// Whether a room of `members` (the member joining or leaving counted)
    /// announces presence by count only.
    fn crowded(&self, members: usize) -> bool {
        members > self.limits.presence
    }

    /// Schedules the announcement of a crowded room's member count, once
    /// per [`PRESENCE_INTERVAL`] however many joins and leaves it covers.
    fn presence_changed(&self, st: &mut State) {
        if st.presence_due {
            return;
        }
        st.presence_due = true;
        let me = self.me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PRESENCE_INTERVAL).await;
            if let Some(room) = me.upgrade() {
                let mut st = room.lock();
                st.presence_due = false;
                if !st.closed {
                    let members = ServerMsg::Members {
                        members: st.members.len(),
                    };
                    room.fan_out(&mut st, members.encode().into(), None);
                }
            }
        });
    }

    /// Sends `text` to every member; members with too much waiting are
    /// disconnected (and their departure announced, which may in turn find
    /// more slow members).
    fn fan_out(&self, st: &mut State, text: Utf8Bytes, accepted: Option<Instant>) {
        let mut pending = vec![(text_frame(&text), accepted)];
        while let Some((frame, accepted)) = pending.pop() {
            let mut slow = Vec::new();
            for (key, m) in &st.members {
                if m.outlet.send(&frame, accepted).is_err() {
                    slow.push(*key);
                }
            }
            for key in slow {
                if let Some(m) = st.members.remove(&key) {
                    self.metrics.slow_consumers.inc();
                    tracing::info!(room = %self.id, member = %m.id, "disconnecting slow consumer");
                    m.outlet.end(CloseReason::slow_consumer(), true);
                    if st.members.is_empty() {
                        st.idle_since = Some(Instant::now());
                    }
                    if self.crowded(st.members.len() + 1) {
                        self.presence_changed(st);
                    } else {
                        pending.push((text_frame(&m.left_frame(st.members.len())), None));
                    }
                }
            }
        }
        if let Some(window) = self.limits.flush_window
            && !st.flush_due
        {
            st.flush_due = true;
            let me = self.me.clone();
            tokio::spawn(async move {
                tokio::time::sleep(window).await;
                if let Some(room) = me.upgrade() {
                    room.flush();
                }
            });
        }
    }

    /// Writes every member's held frames, one `writev` each: the end of a
    /// flush window, which started with the first frame after the last
    /// flush. One timer per room and window, not per member.
    fn flush(&self) {
        let mut st = self.lock();
        st.flush_due = false;
        for m in st.members.values() {
            m.outlet.flush_held();
        }
    }

    /// Freezes the room for a move and returns its state, to be held at
    /// `epoch` by the new owner. Until [`Room::close`] or
    /// [`Room::unfreeze`], sends are refused with `room_moving`, so nothing
    /// is accepted that the snapshot would miss.
    pub(crate) fn freeze(&self, epoch: u64) -> Result<RoomSnapshot, Refused> {
        let mut st = self.lock();
        st.accepting()?;
        st.moving = true;
        Ok(RoomSnapshot {
            room: self.id.clone(),
            epoch,
            stream: self.stream.clone(),
            seq: st.history.latest(),
            history: st
                .history
                .frames()
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
        })
    }

    /// Undoes [`Room::freeze`] after a move that did not happen.
    pub(crate) fn unfreeze(&self) {
        self.lock().moving = false;
    }

    /// Whether the room is frozen for a move.
    pub(crate) fn is_moving(&self) -> bool {
        self.lock().moving
    }

    /// Admits one more join under the room's join rate, or says in how many
    /// seconds to try again.
    pub(crate) fn admit_join(&self) -> Result<(), u64> {
        let mut st = self.lock();
        match st.joins.check() {
            Verdict::Accept => Ok(()),
            Verdict::Refuse | Verdict::Close => Err(st.joins.retry_after()),
        }
    }

    /// Whether the room is at its member limit.
    pub(crate) fn is_full(&self) -> bool {
        self.lock().members.len() >= self.limits.members
    }

    /// Members connected now.
    pub(crate) fn members(&self) -> usize {
        self.lock().members.len()
    }

    /// Since when nobody has been in the room, if nobody is.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        self.lock().idle_since
    }

    /// Closes the room if nobody has been in it for `idle` (and it is not
    /// moving); whether it did. Its history goes with it.
    pub(crate) fn close_if_idle(&self, idle: Duration) -> bool {
        let mut st = self.lock();
        let idle_long = st.members.is_empty()
            && !st.moving
            && !st.closed
            && st.idle_since.is_some_and(|t| t.elapsed() >= idle);
        st.closed |= idle_long;
        idle_long
    }

    /// Bytes of history held.
    pub(crate) fn history_bytes(&self) -> usize {
        self.lock().history.bytes()
    }

    /// Closes the room: every member gets the reason after what is already
    /// queued for it, and no one can join any more.
    pub(crate) fn close(&self, reason: &CloseReason) {
        let mut st = self.lock();
        st.closed = true;
        for (_, m) in st.members.drain() {
            m.outlet.end(reason.clone(), false);
        }
    }
}

#[cfg(test)]
mod tests;
