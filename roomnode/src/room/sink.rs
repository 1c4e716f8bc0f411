//! Where a member's frames go, by protocol: a native member's [`Outlet`]
//! (every room frame, as one shared WebSocket frame), or a Socket.IO
//! member's Engine.IO session (messages only, as events encoded once per
//! namespace spelling, to every member but the sender).

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use crate::engineio::Close;
use crate::member::close::CloseReason;
use crate::member::outlet::{Outlet, Overflow};
use crate::socketio::outbound::{self, Delivery, Peer};
use proto::RoomId;

/// A member's way out.
pub(crate) enum Sink {
    Native(Arc<Outlet>),
    SocketIo(Peer),
}

/// One room frame on its way to every member.
pub(crate) struct Broadcast<'a> {
    /// The native frame.
    pub(crate) frame: Bytes,
    /// When the room accepted it (messages only).
    pub(crate) accepted: Option<Instant>,
    /// The message as Socket.IO events; `None` for what Socket.IO has no
    /// packet for (presence: `joined`, `left`, `members`).
    pub(crate) delivery: Option<&'a Delivery<'a>>,
}

impl Sink {
    /// Sends the broadcast to the member with room key `key`; `Overflow`
    /// when it has too much waiting (a slow consumer).
    pub(crate) fn deliver(&self, key: u64, b: &Broadcast<'_>) -> Result<(), Overflow> {
        match self {
            Self::Native(outlet) => outlet.send(&b.frame, b.accepted),
            Self::SocketIo(peer) => match b.delivery {
                Some(d) if d.sender != key => peer.send(d.packets(peer.nsp)),
                _ => Ok(()),
            },
        }
    }

    /// Drops a slow consumer at once. A Socket.IO session closed itself
    /// when its send overflowed, and counts itself when it ends.
    pub(crate) fn drop_slow(&self) -> bool {
        match self {
            Self::Native(outlet) => {
                outlet.end(CloseReason::slow_consumer(), true);
                true
            }
            Self::SocketIo(_) => false,
        }
    }

    /// Ends the member's connection after what is queued for it: a native
    /// member gets `reason`'s last frame and close frame; a Socket.IO
    /// member a DISCONNECT when its membership is over for good, else only
    /// the end of its transport, so that its client reconnects.
    pub(crate) fn end(&self, reason: &CloseReason, room: &RoomId) {
        match self {
            Self::Native(outlet) => outlet.end(reason.clone(), false),
            Self::SocketIo(peer) if reason.disconnect => {
                // A full queue closes the session anyway.
                let _ = peer.send(&[outbound::disconnect(&peer.nsp.name(room))]);
                peer.session.close(Close::Packet);
            }
            Self::SocketIo(peer) => peer.session.close(Close::Transport),
        }
    }
}
