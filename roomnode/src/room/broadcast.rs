//! A room's frames on their way out: the fan-out to every member (and a
//! message's Socket.IO events to the Socket.IO members), slow members cut
//! off, the flush window, and presence (`left`, or a crowded room's
//! `members` count at most once per interval).

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use proto::wire::ServerMsg;

use super::limits::PRESENCE_INTERVAL;
use super::sink::{Broadcast, Sink};
use super::{Room, State};
use crate::member::outlet::text_frame;
use crate::socketio::outbound::Delivery;

impl Room {
    /// Removes a member (idempotent) and tells the others.
    pub(crate) fn leave(&self, key: u64) {
        let mut st = self.lock();
        if let Some(m) = self.remove_member(&mut st, key) {
            if self.crowded(st.members.len() + 1) {
                self.presence_changed(&mut st);
            } else {
                let left = m.left_frame(st.members.len());
                self.fan_out(&mut st, left, None, None);
            }
        }
    }

    /// Whether a room of `members` (the member joining or leaving counted)
    /// announces presence by count only.
    pub(super) fn crowded(&self, members: usize) -> bool {
        members > self.limits.presence
    }

    /// Schedules the announcement of a crowded room's member count, once
    /// per [`PRESENCE_INTERVAL`] however many joins and leaves it covers.
    pub(super) fn presence_changed(&self, st: &mut State) {
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
                    room.fan_out(&mut st, members.encode().into(), None, None);
                }
            }
        });
    }

    /// Sends `text` to every member (and a message's `delivery` to the
    /// Socket.IO members); members with too much waiting are disconnected
    /// (and their departure announced, which may in turn find more slow
    /// members).
    pub(super) fn fan_out(
        &self,
        st: &mut State,
        text: Utf8Bytes,
        accepted: Option<Instant>,
        delivery: Option<&Delivery<'_>>,
    ) {
        let mut pending = vec![Broadcast {
            frame: text_frame(&text),
            accepted,
            delivery,
        }];
        while let Some(b) = pending.pop() {
            let mut slow = Vec::new();
            for (key, m) in &st.members {
                if m.sink.deliver(*key, &b).is_err() {
                    slow.push(*key);
                }
            }
            for key in slow {
                if let Some(m) = self.remove_member(st, key) {
                    if m.sink.drop_slow() {
                        self.metrics.slow_consumers.inc();
                    }
                    tracing::info!(room = %self.id, member = %m.id, "disconnecting slow consumer");
                    if self.crowded(st.members.len() + 1) {
                        self.presence_changed(st);
                    } else {
                        pending.push(Broadcast {
                            frame: text_frame(&m.left_frame(st.members.len())),
                            accepted: None,
                            delivery: None,
                        });
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
            if let Sink::Native(outlet) = &m.sink {
                outlet.flush_held();
            }
        }
    }
}
