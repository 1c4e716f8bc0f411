//! How a member's connection ends, in one place: the close code and reason
//! of every server-initiated close, and the last frame (`moved`, `error`)
//! that goes before it. A leaf module: rooms, outlets and sessions all use
//! it, and it uses none of them.

use proto::wire::{ServerMsg, close, code};
use tokio_tungstenite::tungstenite::Utf8Bytes;
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
}

impl CloseReason {
    pub(crate) fn deleted() -> Self {
        Self {
            last: Some(error_frame(code::ROOM_CLOSED, "the room was deleted").into()),
            code: close::NORMAL,
            reason: "room deleted",
        }
    }

    pub(crate) fn moved(path: &str) -> Self {
        Self {
            last: Some(ServerMsg::Moved { path }.encode().into()),
            code: close::NORMAL,
            reason: "room moved",
        }
    }

    pub(crate) fn fenced() -> Self {
        Self {
            last: Some(
                error_frame(code::UNAVAILABLE, "node lost its registration; reconnect").into(),
            ),
            code: close::RESTART,
            reason: "node fenced",
        }
    }

    pub(crate) fn shutdown() -> Self {
        Self {
            last: None,
            code: close::GOING_AWAY,
            reason: "node shutting down",
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

    /// A client that broke the WebSocket protocol (1002) or sent text that
    /// is not UTF-8 (1007).
    pub(crate) fn violation(code: CloseCode, reason: &'static str) -> Self {
        Self::bare(code.into(), reason)
    }

    fn bare(code: u16, reason: &'static str) -> Self {
        Self {
            last: None,
            code,
            reason,
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
        }
    }
}

/// An `error` frame's text.
pub(crate) fn error_frame(code: &str, message: &str) -> String {
    ServerMsg::Error { code, message }.encode()
}
