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
//! Members speak the native protocol or Socket.IO ([`sink`]); a message
//! reaches Socket.IO members as an event, built only when the room has
//! such members, and encoded once per namespace spelling.
//!
//! Layout: this file (the [`Room`]), [`history`] (the ring behind `since`
//! resume and Socket.IO recovery), [`limits`] (the sizes a room lives by),
//! [`rooms`] (the rooms this node hosts, by id), [`sink`] (a member's way
//! out, by protocol), [`replica`] (messages wait for the room's replica),
//! `broadcast` (the fan-out, slow members, flush window, presence), `join` (a member's arrival, per protocol: what it is
//! sent first, under the lock), `backend` (what the application's backend may do:
//! publish as the server, list and kick members, read history), `tests`.

mod backend;
mod broadcast;
pub(crate) mod history;
mod join;
pub(crate) mod limits;
pub(crate) mod replica;
pub(crate) mod rooms;
pub(crate) mod sink;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use proto::handoff::RoomSnapshot;
use proto::record::RoomRecord;
use proto::socketio::bridge::Event;
use proto::wire::ServerMsg;
use proto::{InstanceId, RoomId};
use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::feed::{Event as FeedEvent, Feed};
use crate::member::close::CloseReason;
use crate::member::limits::{RateLimit, Verdict};
use crate::metrics::Metrics;
use crate::socketio::outbound::{Delivery, Source};
use backend::Idempotency;
use history::History;
use limits::RoomLimits;
use replica::{Incoming, Receipt, Repl};
use sink::Sink;

struct Member {
    id: Arc<str>,
    name: Option<Arc<str>>,
    sink: Sink,
    /// When it joined, Unix seconds.
    joined_at: u64,
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

    /// A key and a member id for a new member: `reuse` (a recovering
    /// Socket.IO member's own id, checked free), else `m<key>`, skipping
    /// ids recovered members hold.
    fn new_member(&mut self, reuse: Option<&str>) -> (u64, Arc<str>) {
        self.next_member += 1;
        let key = self.next_member;
        if let Some(id) = reuse {
            return (key, id.into());
        }
        loop {
            let id: Arc<str> = format!("m{}", self.next_member).into();
            if !self.by_id.contains_key(&id) {
                return (key, id);
            }
            self.next_member += 1;
        }
    }

    fn add(&mut self, key: u64, member: Member) {
        self.by_id.insert(member.id.clone(), key);
        self.members.insert(key, member);
        self.idle_since = None;
    }

    fn remove(&mut self, key: u64) -> Option<Member> {
        let m = self.members.remove(&key)?;
        self.by_id.remove(&m.id);
        if self.members.is_empty() {
            self.idle_since = Some(Instant::now());
        }
        Some(m)
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
    /// Member ids to keys.
    by_id: HashMap<Arc<str>, u64>,
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
    /// The server's recent publishes, by idempotency key.
    published: Idempotency,
    /// Messages waiting for the room's replica, and who the replica is.
    repl: Repl,
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
    /// The events feed, when the node has one.
    feed: OnceLock<Arc<Feed>>,
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
    /// Its replica cannot confirm messages now (unreachable, too far
    /// behind, or the room has a newer owner): the message did not count.
    NotAccepted,
}

/// Where a message comes from: the sender's room key (0 for the server)
/// and form, a server publish's idempotency key, and who hears whether it
/// counted.
struct Origin<'a> {
    sender: u64,
    source: Source<'a>,
    key: Option<&'a str>,
    receipt: Option<Receipt>,
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
        let room = Self::with(rec, snapshot.stream, history, limits, metrics);
        {
            let mut st = room.lock();
            st.next_member = snapshot.members;
            st.published = Idempotency::import(snapshot.published, Instant::now());
        }
        room
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
            feed: OnceLock::new(),
            state: Mutex::new(State {
                history,
                members: HashMap::new(),
                by_id: HashMap::new(),
                next_member: 0,
                closed: false,
                moving: false,
                flush_due: false,
                presence_due: false,
                idle_since: Some(Instant::now()),
                joins: RateLimit::new(limits.join_rate, limits.join_burst),
                published: Idempotency::default(),
                repl: Repl::default(),
            }),
        })
    }

    pub(crate) fn id(&self) -> &RoomId {
        &self.id
    }

    /// Sends the room's events to `feed` from now on.
    pub(crate) fn attach_feed(&self, feed: Arc<Feed>) {
        let _ = self.feed.set(feed);
    }

    /// Queues a join or leave for the events feed.
    fn feed_presence(&self, joined: bool, id: &Arc<str>, name: Option<&Arc<str>>) {
        if let Some(feed) = self.feed.get() {
            feed.push(FeedEvent::Presence {
                joined,
                room: self.id.as_str().into(),
                member: id.clone(),
                name: name.cloned(),
            });
        }
    }

    /// Takes member `key` out (the events feed hears of it).
    fn remove_member(&self, st: &mut State, key: u64) -> Option<Member> {
        let m = st.remove(key)?;
        self.feed_presence(false, &m.id, m.name.as_ref());
        Some(m)
    }

    /// Member `key`'s id and name, while it is here.
    pub(crate) fn identity(&self, key: u64) -> Option<(Arc<str>, Option<Arc<str>>)> {
        let st = self.lock();
        st.members.get(&key).map(|m| (m.id.clone(), m.name.clone()))
    }

    /// The room's message stream.
    pub(crate) fn stream(&self) -> &str {
        &self.stream
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

    /// Broadcasts a native member's message to everyone, sender included;
    /// its seq.
    /// With a replica, the message is delivered once the replica holds
    /// it (see [`replica`]); a refusal then reaches the sender as an
    /// `error` frame.
    pub(crate) fn send(&self, key: u64, body: &RawValue) -> Result<u64, Refused> {
        self.publish(key, body, Source::Body(body), None)
    }

    /// [`Room::send`] with a receipt: called once, when the message counts
    /// or is refused after all, if this returns `Ok`.
    pub(crate) fn send_with(
        &self,
        key: u64,
        body: &RawValue,
        receipt: Receipt,
    ) -> Result<u64, Refused> {
        self.publish(key, body, Source::Body(body), Some(receipt))
    }

    /// Broadcasts a Socket.IO member's event (kept as `body`, its native
    /// form): to every native member, and to every other Socket.IO member
    /// as the same event; its seq. `receipt` as in [`Room::send_with`].
    pub(crate) fn emit(
        &self,
        key: u64,
        event: &Event,
        body: &RawValue,
        receipt: Option<Receipt>,
    ) -> Result<u64, Refused> {
        self.publish(key, body, Source::Event(event), receipt)
    }

    fn publish(
        &self,
        key: u64,
        body: &RawValue,
        source: Source<'_>,
        receipt: Option<Receipt>,
    ) -> Result<u64, Refused> {
        let mut st = self.lock();
        st.accepting()?;
        let Some(sender) = st.members.get(&key) else {
            return Err(Refused::Closed);
        };
        let (from, name) = (sender.id.clone(), sender.name.clone());
        let origin = Origin {
            sender: key,
            source,
            key: None,
            receipt,
        };
        self.accept(&mut st, (&from, name.as_deref()), body, origin)
    }

    /// Gives a message from `from` (its id and name) the next seq and,
    /// once the replica holds it (at once without one), puts it into the
    /// stream and sends it to everyone; its seq.
    fn accept(
        &self,
        st: &mut State,
        (from, name): (&str, Option<&str>),
        body: &RawValue,
        origin: Origin<'_>,
    ) -> Result<u64, Refused> {
        let room = &self.id;
        let seq = st.repl.next_seq(st.history.latest());
        let frame: Utf8Bytes = ServerMsg::Message {
            room,
            seq,
            from,
            name,
            body,
        }
        .encode()
        .into();
        let mut msg = Some(Incoming {
            seq,
            frame,
            sender: origin.sender,
            source: origin.source,
            key: origin.key,
            receipt: origin.receipt,
        });
        if self.replicate(st, &mut msg)? {
            return Ok(seq);
        }
        let m = msg.expect("kept when there is no replica");
        let (kept, frame) = st.history.push(|_| m.frame);
        debug_assert_eq!(kept, seq);
        self.deliver(st, seq, frame, m.sender, m.source, Instant::now());
        if let Some(r) = m.receipt {
            r(Ok(seq));
        }
        Ok(seq)
    }

    /// A message that counts now, kept in history already: to the events
    /// feed and every member.
    fn deliver(
        &self,
        st: &mut State,
        seq: u64,
        frame: Utf8Bytes,
        sender: u64,
        source: Source<'_>,
        accepted: Instant,
    ) {
        self.metrics.received.inc();
        if let Some(feed) = self.feed.get() {
            feed.push(FeedEvent::Message {
                frame: frame.clone(),
                stream: self.stream.as_str().into(),
            });
        }
        let accepted = Some(accepted);
        let delivery = Delivery::new(&self.id, seq, sender, source, accepted);
        self.fan_out(st, frame, accepted, Some(&delivery));
    }

    /// Freezes the room for a move and returns its state, to be held at
    /// `epoch` by the new owner. Until [`Room::close`] or
    /// [`Room::unfreeze`], sends are refused with `room_moving`, so nothing
    /// is accepted that the snapshot would miss.
    /// Messages still waiting for the replica go out first: the snapshot
    /// carries them to the new owner.
    pub(crate) fn freeze(&self, epoch: u64) -> Result<RoomSnapshot, Refused> {
        let mut st = self.lock();
        st.accepting()?;
        self.release_all(&mut st);
        st.moving = true;
        Ok(self.snapshot(&st, epoch))
    }

    /// The room's state, to be held at `epoch`: its stream, its history
    /// with the messages waiting for the replica, member ids issued, and
    /// the server's recent idempotency keys.
    fn snapshot(&self, st: &State, epoch: u64) -> RoomSnapshot {
        let history: Vec<String> = st
            .history
            .frames()
            .iter()
            .chain(st.repl.pending_frames())
            .map(|f| f.as_str().to_owned())
            .collect();
        RoomSnapshot {
            room: self.id.clone(),
            epoch,
            stream: self.stream.clone(),
            seq: st.repl.next_seq(st.history.latest()) - 1,
            history,
            members: st.next_member,
            published: st.published.export(Instant::now()),
        }
    }

    /// The room is gone from this node for good (deleted, or moved: its
    /// new owner keeps its own replica): the replica drops its copy.
    pub(crate) fn retire(&self) {
        let mut st = self.lock();
        self.forget_replica(&mut st);
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
        if idle_long {
            st.closed = true;
            self.forget_replica(&mut st);
        }
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
        // The replica keeps its copy: a room closed by a shutdown or a
        // fencing fails over to it. See [`Room::retire`].
        self.refuse_pending(&mut st);
        st.by_id.clear();
        for (_, m) in st.members.drain() {
            self.feed_presence(false, &m.id, m.name.as_ref());
            m.sink.end(reason, &self.id);
        }
    }
}

#[cfg(test)]
mod tests;
