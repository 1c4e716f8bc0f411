//! A room's side of replication: its messages wait for the replica's
//! confirmation before they count (history, fan-out, the sender's ack),
//! and the replica follows the room's runner-up.
//!
//! A message gets its seq when it arrives, and goes to the replica's
//! [`Link`] at once; it stays in `pending`, invisible to members, until the
//! replica confirms it (or a later seq, or a copy covering it). Pending
//! messages are delivered strictly in seq order, so members see exactly
//! the stream the replica holds. When the replica may have missed
//! something (it answered `missing`, the runner-up changed) the room sends
//! it a full copy, history and pending messages included, and what is
//! pending waits for that copy's confirmation. A replica that does not
//! answer for a few seconds makes the room refuse what is pending and what
//! comes (`not_accepted`) until it answers again or the room gets another
//! replica.
//! A replica that answers `fenced` means another node owns the room now:
//! nothing more is accepted here, and what is pending is refused.

use std::collections::VecDeque;
use std::sync::Arc;

use proto::socketio::bridge::Event;
use proto::wire::code;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::sink::Sink;
use super::{Refused, Room, State};
use crate::member::close::error_frame;
use crate::member::outlet::text_frame;
use crate::replication::link::{Link, Outgoing, Payload};
use crate::socketio::outbound::Source;

/// Most messages of one room waiting for its replica; beyond, a message is
/// refused with `not_accepted` (the replica is slow or unreachable, and the
/// room must not hold an unbounded backlog).
const MAX_PENDING: usize = 4096;

/// Who hears whether a message was accepted: called once, with its seq
/// once the replica holds it, or with why not.
pub(crate) type Receipt = Box<dyn FnOnce(Result<u64, Refused>) + Send>;

/// A room's replication state.
#[derive(Default)]
pub(crate) struct Repl {
    /// The replica, when there is one: messages wait for it.
    link: Option<Arc<Link>>,
    /// Replication is on for this node, whether or not there is a replica.
    on: bool,
    /// Messages with a seq, waiting for the replica, oldest first.
    pending: VecDeque<Pending>,
    /// The latest seq of the copy on its way to the replica.
    copy: Option<u64>,
    /// Another owner holds the room: nothing more is accepted here.
    fenced: bool,
}

/// A message waiting for the replica.
pub(crate) struct Pending {
    seq: u64,
    frame: Utf8Bytes,
    sender: u64,
    source: Owned,
    accepted: Instant,
    receipt: Option<Receipt>,
}

/// A pending message's origin, kept for its Socket.IO delivery.
enum Owned {
    Event(Event),
    Body(Box<RawValue>),
}

impl Owned {
    fn of(source: &Source<'_>) -> Self {
        match source {
            Source::Event(e) => Self::Event((*e).clone()),
            Source::Body(b) => Self::Body((*b).to_owned()),
        }
    }

    fn as_source(&self) -> Source<'_> {
        match self {
            Self::Event(e) => Source::Event(e),
            Self::Body(b) => Source::Body(b),
        }
    }
}

impl Repl {
    /// Whether `link` is the room's link to its replica (the very link:
    /// an answer that comes through another one is no news of it).
    fn is_replica(&self, link: &Link) -> bool {
        self.link
            .as_ref()
            .is_some_and(|l| std::ptr::eq(Arc::as_ptr(l), link))
    }

    /// Messages waiting for the replica.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Replication is on but the room has no live replica to confirm.
    pub(crate) fn unprotected(&self) -> bool {
        self.on && (self.link.is_none() || self.fenced)
    }

    /// The seq the next message gets, after what is pending.
    pub(crate) fn next_seq(&self, latest: u64) -> u64 {
        latest + self.pending.len() as u64 + 1
    }

    /// The frames of pending messages, oldest first, and the latest seq
    /// they reach (what a copy or a snapshot must include).
    pub(crate) fn pending_frames(&self) -> impl Iterator<Item = &Utf8Bytes> {
        self.pending.iter().map(|p| &p.frame)
    }
}

/// A message the room is taking in (see [`Room::accept`]).
pub(crate) struct Incoming<'a> {
    pub(crate) seq: u64,
    pub(crate) frame: Utf8Bytes,
    pub(crate) sender: u64,
    pub(crate) source: Source<'a>,
    pub(crate) key: Option<&'a str>,
    pub(crate) receipt: Option<Receipt>,
}

impl Room {
    /// Hands `msg` to the replica and holds it until confirmed; `Err` when
    /// it cannot be accepted here now. `Ok(false)`: there is no replica to
    /// wait for; the caller delivers at once.
    pub(super) fn replicate(
        &self,
        st: &mut State,
        msg: &mut Option<Incoming<'_>>,
    ) -> Result<bool, Refused> {
        let Some(link) = st.repl.link.clone() else {
            return Ok(false);
        };
        if st.repl.fenced || st.repl.pending.len() >= MAX_PENDING {
            return Err(Refused::NotAccepted);
        }
        let m = msg.take().expect("a message to replicate");
        let out = Outgoing {
            room: self.me.clone(),
            id: self.id.clone(),
            seq: m.seq,
            item: Payload::Append {
                epoch: self.epoch,
                members: st.next_member,
                key: m.key.map(str::to_owned),
                frame: m.frame.clone(),
            },
        };
        link.push(out).map_err(|_| Refused::NotAccepted)?;
        st.repl.pending.push_back(Pending {
            seq: m.seq,
            frame: m.frame,
            sender: m.sender,
            source: Owned::of(&m.source),
            accepted: Instant::now(),
            receipt: m.receipt,
        });
        Ok(true)
    }

    /// The replica `peer` holds everything up to `seq`: what waited for
    /// it is delivered, in order.
    pub(crate) fn replicated(&self, peer: &Link, seq: u64) {
        let mut st = self.lock();
        if !st.repl.is_replica(peer) {
            return;
        }
        if st.repl.copy.is_some_and(|c| c <= seq) {
            st.repl.copy = None;
        }
        self.release(&mut st, seq);
    }

    /// Delivers the pending messages up to `seq`.
    fn release(&self, st: &mut State, seq: u64) {
        while st.repl.pending.front().is_some_and(|p| p.seq <= seq) {
            let p = st.repl.pending.pop_front().expect("a pending message");
            let (kept, frame) = st.history.push(|_| p.frame);
            debug_assert_eq!(kept, p.seq, "pending messages follow the history");
            self.deliver(st, p.seq, frame, p.sender, p.source.as_source(), p.accepted);
            if let Some(r) = p.receipt {
                r(Ok(p.seq));
            }
        }
    }

    /// The replica `peer` cannot apply the item of `seq`: unless a copy
    /// covering it is on its way, it gets a full copy.
    pub(crate) fn replica_missing(&self, peer: &Link, seq: u64) {
        let mut st = self.lock();
        if st.repl.is_replica(peer) && st.repl.copy.is_none_or(|c| c < seq) {
            self.send_copy(&mut st);
        }
    }

    /// The replica `peer` restarted and holds nothing of the room: it gets
    /// a full copy.
    pub(crate) fn replica_restarted(&self, peer: &Link) {
        let mut st = self.lock();
        if st.repl.is_replica(peer) && !st.closed {
            self.send_copy(&mut st);
        }
    }

    /// The replica `peer` has not answered for a while: what is pending is
    /// refused, and a full copy waits for the replica to answer again (it
    /// may have applied some of what it never confirmed).
    pub(crate) fn replica_unreachable(&self, peer: &Link) {
        let mut st = self.lock();
        if st.repl.is_replica(peer) {
            self.refuse_pending(&mut st);
            self.send_copy(&mut st);
        }
    }

    /// The replica `peer` knows of a newer owner: this instance accepts
    /// nothing more, and what is pending is refused.
    pub(crate) fn replica_fenced(&self, peer: &Link) {
        let mut st = self.lock();
        if !st.repl.is_replica(peer) || st.repl.fenced {
            return;
        }
        tracing::warn!(room = %self.id, replica = %peer.peer(), "the replica holds this room at a newer epoch; accepting nothing more here");
        st.repl.fenced = true;
        self.refuse_pending(&mut st);
    }

    /// The room's replica is now `link`'s node (`None`: there is none, or
    /// replication is off). A new replica gets a full copy first.
    pub(crate) fn follow_replica(&self, link: Option<Arc<Link>>) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let same = match (&st.repl.link, &link) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        self.forget_replica(&mut st);
        st.repl.link = link;
        st.repl.copy = None;
        if st.repl.link.is_some() {
            self.send_copy(&mut st);
        } else {
            // Nobody can hold a copy: what waited goes out as it is.
            let latest = st.repl.next_seq(st.history.latest()) - 1;
            self.release(&mut st, latest);
        }
    }

    /// Whether the replica holds the room's copy (no copy on its way).
    #[cfg(test)]
    pub(crate) fn replica_settled(&self) -> bool {
        let st = self.lock();
        st.repl.link.is_some() && st.repl.copy.is_none()
    }

    /// Replication is on for this room (it may have no replica yet).
    pub(crate) fn replication_on(&self) {
        self.lock().repl.on = true;
    }

    /// Messages waiting for the replica, and whether the room has none
    /// although replication is on.
    pub(crate) fn replication_status(&self) -> (usize, bool) {
        let st = self.lock();
        (st.repl.pending(), st.repl.unprotected())
    }

    /// Tells the replica to drop its copy: the room closes here.
    pub(super) fn forget_replica(&self, st: &mut State) {
        if let Some(link) = st.repl.link.take() {
            let _ = link.push(Outgoing {
                room: self.me.clone(),
                id: self.id.clone(),
                seq: 0,
                item: Payload::Forget { epoch: self.epoch },
            });
        }
    }

    /// Sends the replica everything the room holds, pending messages
    /// included; they are confirmed by this copy's ack.
    fn send_copy(&self, st: &mut State) {
        let Some(link) = st.repl.link.clone() else {
            return;
        };
        let snapshot = self.snapshot(st, self.epoch);
        st.repl.copy = Some(snapshot.seq);
        self.metrics.replication_copies.inc();
        let _ = link.push(Outgoing {
            room: self.me.clone(),
            id: self.id.clone(),
            seq: snapshot.seq,
            item: Payload::Copy(Box::new(snapshot)),
        });
    }

    /// Everything pending goes out now, as if confirmed (the room freezes
    /// for a move: its snapshot carries these messages to the new owner,
    /// whose replica gets them with its first copy).
    pub(super) fn release_all(&self, st: &mut State) {
        let latest = st.repl.next_seq(st.history.latest()) - 1;
        self.release(st, latest);
    }

    /// Refuses every pending message: receipts hear `not_accepted`, and a
    /// native sender gets an `error` frame (it would otherwise never learn
    /// that its message did not count).
    pub(super) fn refuse_pending(&self, st: &mut State) {
        let pending: Vec<Pending> = st.repl.pending.drain(..).collect();
        for p in pending {
            match p.receipt {
                Some(r) => r(Err(Refused::NotAccepted)),
                None => {
                    if let Some(Sink::Native(outlet)) = st.members.get(&p.sender).map(|m| &m.sink) {
                        let text: Utf8Bytes = error_frame(
                            code::NOT_ACCEPTED,
                            "the room's replica did not confirm this message: it was not accepted; send it again",
                        )
                        .into();
                        let _ = outlet.send(&text_frame(&text), None);
                    }
                }
            }
        }
    }
}
