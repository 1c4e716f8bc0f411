//! How a member's connection ends, in one place: the close code and reason
//! of every server-initiated close, the last frame (`moved`, `error`) that
//! goes before it, and the close frame itself. A leaf module: rooms,
//! outlets and sessions all use it, and it uses none of them.

use proto::wire::{ServerMsg, close, code};
use proto::{InstanceId, RoomId};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Why and how a connection ends.
#[derive(Debug, Clone)]
pub(crate) struct CloseReason {
    /// A last frame before the close frame (`moved`, `error`).
    pub(crate) last: Option<Utf8Bytes>,
    /// WebSocket close code.
    pub(crate) code: u16,
    /// Close reason text.
    pub(crate) reason: &'static str,
    /// The membership is over for good (the room was deleted): a
    /// Socket.IO member gets a DISCONNECT, so its client does not
    /// reconnect. Otherwise it only loses its transport and reconnects.
    pub(crate) disconnect: bool,
}

impl CloseReason {
    pub(crate) fn deleted() -> Self {
        Self {
            last: Some(error_frame(code::ROOM_CLOSED, "the room was deleted").into()),
            code: close::NORMAL,
            reason: "room deleted",
            disconnect: true,
        }
    }

    /// Removed by the application's backend: for good (a Socket.IO
    /// member gets DISCONNECT and does not come back).
    pub(crate) fn kicked() -> Self {
        Self {
            last: Some(error_frame(code::KICKED, "removed from the room by the server").into()),
            code: close::POLICY,
            reason: "kicked",
            disconnect: true,
        }
    }

    /// The room now lives on `node`: the `moved` frame names its path there.
    pub(crate) fn moved(node: InstanceId, room: &RoomId) -> Self {
        let path = proto::path::sharded(node, room);
        Self {
            last: Some(ServerMsg::Moved { path: &path }.encode().into()),
            code: close::NORMAL,
            reason: "room moved",
            disconnect: false,
        }
    }

    pub(crate) fn fenced() -> Self {
        Self {
            last: Some(
                error_frame(code::UNAVAILABLE, "node lost its registration; reconnect").into(),
            ),
            code: close::RESTART,
            reason: "node fenced",
            disconnect: false,
        }
    }

    pub(crate) fn shutdown() -> Self {
        Self {
            last: None,
            code: close::GOING_AWAY,
            reason: "node shutting down",
            disconnect: false,
        }
    }

    pub(crate) fn ping_timeout() -> Self {
        Self::bare(close::GOING_AWAY, "ping timeout")
    }

    pub(crate) fn too_big() -> Self {
        Self::bare(close::TOO_BIG, "frame too large")
    }

    pub(crate) fn rate_limit() -> Self {
        Self::bare(close::POLICY, "rate limit")
    }

    /// A client that broke the WebSocket protocol (1002).
    pub(crate) fn protocol_error() -> Self {
        Self::bare(CloseCode::Protocol.into(), "protocol error")
    }

    /// A client that sent a text frame that is not UTF-8 (1007).
    pub(crate) fn invalid_utf8() -> Self {
        Self::bare(CloseCode::Invalid.into(), "invalid UTF-8")
    }

    /// A join that found the room full after its checks: try again later.
    pub(crate) fn room_full() -> Self {
        Self::bare(close::TRY_AGAIN_LATER, "room full")
    }

    /// A join that found the room closed or moving after its checks: the
    /// client reconnects (through the router).
    pub(crate) fn room_gone() -> Self {
        Self::bare(close::RESTART, "room closed or moving; reconnect")
    }

    /// A close frame alone, with `code` and `reason`.
    pub(crate) fn bare(code: u16, reason: &'static str) -> Self {
        Self {
            last: None,
            code,
            reason,
            disconnect: false,
        }
    }

    pub(crate) fn slow_consumer() -> Self {
        Self {
            last: Some(
                error_frame(
                    code::SLOW_CONSUMER,
                    "outbound queue overflowed; read faster",
                )
                .into(),
            ),
            code: close::POLICY,
            reason: "slow consumer",
            disconnect: false,
        }
    }
}

impl CloseReason {
    /// The WebSocket close frame.
    pub(crate) fn frame(&self) -> CloseFrame {
        CloseFrame {
            code: self.code.into(),
            reason: self.reason.into(),
        }
    }

    /// Whether this close follows input that cannot be read as frames any
    /// more: after an oversized frame the rest of it is still unread, and
    /// after a protocol violation tungstenite reads no more, so where the
    /// client's next frame starts is unknown.
    pub(crate) fn follows_unreadable_input(&self) -> bool {
        self.code == close::TOO_BIG
            || self.code == u16::from(CloseCode::Protocol)
            || self.code == u16::from(CloseCode::Invalid)
    }
}

/// An `error` frame's text.
pub(crate) fn error_frame(code: &str, message: &str) -> String {
    ServerMsg::Error { code, message }.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_closes_after_unreadable_input_skip_the_close_reply() {
        let unreadable = [
            CloseReason::too_big(),
            CloseReason::protocol_error(),
            CloseReason::invalid_utf8(),
        ];
        assert!(unreadable.iter().all(CloseReason::follows_unreadable_input));
        let framed = [
            CloseReason::deleted(),
            CloseReason::fenced(),
            CloseReason::shutdown(),
            CloseReason::ping_timeout(),
            CloseReason::rate_limit(),
            CloseReason::slow_consumer(),
            CloseReason::room_full(),
            CloseReason::room_gone(),
        ];
        assert!(!framed.iter().any(CloseReason::follows_unreadable_input));
    }

    #[test]
    fn a_move_names_the_new_path_before_a_normal_close() {
        let reason = CloseReason::moved("i2".parse().unwrap(), &"lobby".parse().unwrap());
        let last = reason.last.as_deref().unwrap();
        assert!(last.contains(r#""type":"moved""#), "{last}");
        assert!(last.contains("/i2/room/lobby"), "{last}");
        assert_eq!(u16::from(reason.frame().code), close::NORMAL);
    }
}
