//! The WebSocket protocol between clients and room nodes: one JSON object per
//! text frame, tagged by `type`. Message bodies stay raw JSON end to end: the
//! node never parses or re-encodes what a client sends.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::id::{InstanceId, RoomId};

/// WebSocket close codes the node uses, and why.
pub mod close {
    /// The room was deleted or closed normally.
    pub const NORMAL: u16 = 1000;
    /// The node is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke a policy: its outbound queue overflowed (slow reader).
    pub const POLICY: u16 = 1008;
    /// A frame was larger than the limit.
    pub const TOO_BIG: u16 = 1009;
    /// The node fenced itself (lost its lease); reconnect through the router.
    pub const RESTART: u16 = 1012;
    /// The room is full; try again later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Error codes carried by [`ServerMsg::Error`].
pub mod code {
    /// A frame that is not a valid client message; the connection stays open.
    pub const BAD_FRAME: &str = "bad_frame";
    /// `since`/`stream` cannot be honoured; live traffic follows.
    pub const HISTORY_GAP: &str = "history_gap";
    /// The room was deleted; the connection closes.
    pub const ROOM_CLOSED: &str = "room_closed";
    /// The client reads too slowly; the connection closes.
    pub const SLOW_CONSUMER: &str = "slow_consumer";
    /// The node is shutting down or fenced; the connection closes.
    pub const UNAVAILABLE: &str = "unavailable";
    /// Over the per-connection message rate: this message was not accepted.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The room is being moved to another node: this message was not
    /// accepted; send it again after reconnecting (a `moved` follows).
    pub const ROOM_MOVING: &str = "room_moving";
    /// The room could not copy this message to its replica (see SPEC "No
    /// accepted message lost"): it was not accepted; send it again.
    pub const NOT_ACCEPTED: &str = "not_accepted";
    /// The application's backend removed this member (server API); the
    /// connection closes with 1008.
    pub const KICKED: &str = "kicked";
    /// The application's publish hook rejected the message (the `message`
    /// field says why); nobody else saw it.
    pub const REJECTED: &str = "rejected";
}

/// A frame from a client.
#[derive(Debug)]
pub enum ClientMsg {
    /// Broadcast `body` (any JSON) to the room.
    Send {
        /// Kept verbatim.
        body: Box<RawValue>,
    },
}

/// The frame as read: serde's internally tagged enums buffer their content,
/// which loses `RawValue`, so the tag is read as a plain field.
#[derive(Deserialize)]
struct RawClientMsg<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, deserialize_with = "present")]
    body: Option<Box<RawValue>>,
}

/// `None` only when the field is absent: `"body":null` is a valid body.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// Why a client frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not a JSON object at all.
    #[error("frame is not a JSON object")]
    NotAnObject,
    /// Not a JSON object with a string `type`.
    #[error("frame is not a JSON object with a \"type\": {0}")]
    Json(#[from] serde_json::Error),
    /// A `type` this protocol does not have.
    #[error("unknown message type {0:?}: expected \"send\"")]
    UnknownType(String),
    /// A `send` without `body`.
    #[error("\"send\" needs a \"body\"")]
    MissingBody,
}

impl ClientMsg {
    /// Decodes one text frame. Unknown extra fields are ignored, so newer
    /// clients can talk to older nodes.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        // serde would also read the struct from a JSON array.
        if !text.trim_start().starts_with('{') {
            return Err(DecodeError::NotAnObject);
        }
        let raw: RawClientMsg<'_> = serde_json::from_str(text)?;
        match &*raw.kind {
            "send" => Ok(Self::Send {
                body: raw.body.ok_or(DecodeError::MissingBody)?,
            }),
            other => Err(DecodeError::UnknownType(other.chars().take(32).collect())),
        }
    }
}

/// A frame to a client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg<'a> {
    /// First frame after a join.
    Welcome {
        /// The room joined.
        room: &'a RoomId,
        /// The node hosting it.
        node: InstanceId,
        /// This connection's member id.
        member: &'a str,
        /// Members now in the room, this one included.
        members: usize,
        /// The room's latest sequence number (0 before any message).
        seq: u64,
        /// The room's message stream; resume only within the same stream.
        stream: &'a str,
    },
    /// A message broadcast to every member, sender included.
    Message {
        /// The room.
        room: &'a RoomId,
        /// Increases by exactly 1 per message in a stream.
        seq: u64,
        /// The sender's member id.
        from: &'a str,
        /// The sender's display name, when it gave one.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        /// The body as the sender sent it.
        body: &'a RawValue,
    },
    /// Someone joined.
    Joined {
        /// Their member id.
        member: &'a str,
        /// Their display name, when given.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        /// Members now in the room.
        members: usize,
    },
    /// Someone left.
    Left {
        /// Their member id.
        member: &'a str,
        /// Their display name, when given.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        /// Members now in the room.
        members: usize,
    },
    /// The member count of a crowded room (more members than the node's
    /// presence limit), sent instead of one `joined`/`left` per member, at
    /// most once a second, when it changed: a join storm then costs each
    /// member one frame a second, not one per join.
    Members {
        /// Members now in the room.
        members: usize,
    },
    /// Something went wrong; see [`code`].
    Error {
        /// Machine-readable code.
        code: &'a str,
        /// Human-readable text.
        message: &'a str,
    },
    /// The room has a new owner: reconnect to `path` (with `since`).
    Moved {
        /// `/iK/room/{id}`.
        path: &'a str,
    },
}

impl ServerMsg<'_> {
    /// Encodes the frame text once; the caller shares it with every member.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("server messages always serialize")
    }
}

/// Query parameters of a join (`?since=&stream=&name=&token=`).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct JoinParams {
    /// Replay messages with a larger seq.
    pub since: Option<u64>,
    /// The stream `since` refers to.
    pub stream: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Join token for a private room.
    pub token: Option<String>,
}

/// Longest display name, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// A display name over [`MAX_NAME_LEN`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("name must be at most {MAX_NAME_LEN} characters")]
pub struct NameTooLong;

/// Checks a display name (`?name=`, or bound in a token).
pub fn check_name(name: &str) -> Result<(), NameTooLong> {
    if name.chars().count() > MAX_NAME_LEN {
        Err(NameTooLong)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_send_and_keeps_body_verbatim() {
        let ClientMsg::Send { body } =
            ClientMsg::decode(r#"{"type":"send","body":{"a": [1, 2]}}"#).unwrap();
        assert_eq!(body.get(), r#"{"a": [1, 2]}"#);
        assert!(ClientMsg::decode(r#"{"type":"send","body":null,"extra":1}"#).is_ok());
    }

    #[test]
    fn refuses_malformed_frames() {
        for bad in [
            r#"["send", 5]"#,
            "",
            "{}",
            "[]",
            r#"{"type":"send"}"#,
            r#"{"type":"shout","body":1}"#,
            "{\"type\":\"send\",\"body\":",
        ] {
            assert!(ClientMsg::decode(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn encodes_tagged_messages() {
        let room: RoomId = "r".parse().unwrap();
        let body = RawValue::from_string("\"hi\"".into()).unwrap();
        let text = ServerMsg::Message {
            room: &room,
            seq: 3,
            from: "m1",
            name: None,
            body: &body,
        }
        .encode();
        assert_eq!(
            text,
            r#"{"type":"message","room":"r","seq":3,"from":"m1","body":"hi"}"#
        );
        let v: serde_json::Value = serde_json::from_str(
            &ServerMsg::Welcome {
                room: &room,
                node: "i2".parse().unwrap(),
                member: "m1",
                members: 1,
                seq: 0,
                stream: "s",
            }
            .encode(),
        )
        .unwrap();
        assert_eq!(v["type"], "welcome");
        assert_eq!(v["node"], "i2");
    }
}
