//! A member's arrival, per protocol, under the room's lock: a native
//! member's welcome and replay (or `history_gap`), a Socket.IO member's
//! CONNECT answer and recovery replay, then the announcement and live
//! delivery, so nothing is missed or repeated.

use std::sync::Arc;

use proto::socketio::recovery::Resume;
use proto::wire::{ServerMsg, code};

use super::history::Gap;
use super::sink::Sink;
use super::{JoinRequest, Member, Refused, Room, State};
use crate::member::close::error_frame;
use crate::member::outlet::{Outlet, text_frame};
use crate::socketio::outbound::{self, Peer};

impl Room {
    /// Adds a native member writing to `outlet`; its key, for
    /// [`Room::send`] and [`Room::leave`]. Under one lock: the welcome's
    /// seq, the replay (or `history_gap`) queued to the outlet and the start
    /// of live delivery line up, so nothing is missed or repeated.
    pub(crate) fn join(&self, req: JoinRequest<'_>, outlet: &Arc<Outlet>) -> Result<u64, Refused> {
        let mut st = self.lock();
        self.has_place(&st)?;
        let (key, id) = st.new_member(None);
        let members = st.members.len() + 1;
        let latest = st.history.latest();
        // The welcome names the last seq given, pending ones included: the
        // messages waiting for the replica reach this member live, right
        // after the replay, so a resuming client waits for them before it
        // sends again what it has not seen (else it would send twice a
        // message that was about to count).
        let mut first = vec![
            ServerMsg::Welcome {
                room: &self.id,
                node: self.node,
                member: &id,
                members,
                seq: st.repl.next_seq(latest) - 1,
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
        let sink = Sink::Native(outlet.clone());
        self.admit(&mut st, key, id, req.name, sink);
        Ok(key)
    }

    /// Adds a Socket.IO member; its key. Under one lock, its session gets
    /// the CONNECT answer and, when `resume` can be honoured (same stream,
    /// history reaching back to its offset, its member id free), the
    /// retained events after the offset that it did not send itself,
    /// before live traffic. Whether it recovered shows in the answer's
    /// `pid` (see [`proto::socketio::recovery`]).
    pub(crate) fn join_socketio(
        &self,
        name: Option<&str>,
        peer: Peer,
        resume: Option<Resume<'_>>,
    ) -> Result<u64, Refused> {
        let mut st = self.lock();
        self.has_place(&st)?;
        let recovery = resume
            .filter(|r| r.stream == self.stream && is_member_id(r.member))
            .filter(|r| !st.by_id.contains_key(r.member))
            .and_then(|r| Some((r.member, st.history.since(r.offset).ok()?)));
        let (key, id) = st.new_member(recovery.as_ref().map(|(member, _)| *member));
        let nsp = peer.nsp.name(&self.id);
        let mut first = vec![outbound::connected(&nsp, &id, &self.stream)];
        if let Some((member, frames)) = &recovery {
            first.extend(outbound::replay(frames, &nsp, member));
        }
        // A session that overflows with its replay has closed itself: it
        // leaves when its end is handled.
        let _ = peer.send(&first);
        self.admit(&mut st, key, id, name, Sink::SocketIo(peer));
        Ok(key)
    }

    /// Whether one more member may join now.
    fn has_place(&self, st: &State) -> Result<(), Refused> {
        st.accepting()?;
        if st.members.len() >= self.limits.members {
            return Err(Refused::Full);
        }
        Ok(())
    }

    /// Announces a new member and starts its live delivery.
    fn admit(&self, st: &mut State, key: u64, id: Arc<str>, name: Option<&str>, sink: Sink) {
        let name: Option<Arc<str>> = name.map(Into::into);
        let members = st.members.len() + 1;
        if self.crowded(members) {
            self.presence_changed(st);
        } else {
            let joined = ServerMsg::Joined {
                member: &id,
                name: name.as_deref(),
                members,
            };
            self.fan_out(st, joined.encode().into(), None, None);
        }
        self.feed_presence(true, &id, name.as_ref());
        let joined_at = store::store::unix_now();
        st.add(
            key,
            Member {
                id,
                name,
                sink,
                joined_at,
            },
        );
    }
}

/// Whether `id` is a member id as this node makes them (`m<digits>`).
fn is_member_id(id: &str) -> bool {
    id.strip_prefix('m')
        .is_some_and(|n| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()))
}
