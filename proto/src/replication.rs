//! The owner-to-replica contract (SPEC "No accepted message lost when a
//! node dies"): a room's owner copies its stream to the room's HRW
//! runner-up, [`crate::placement::Placement::runner_up`], before any
//! message counts as accepted.
//!
//! One long-lived WebSocket per owner and replica node, opened by the owner
//! at `GET {replica}/internal/replicate` with the cluster key: each text
//! frame the owner sends is a [`Batch`], each the replica sends back the
//! [`Ack`] of the batch it read, in order. The owner has at most one batch
//! in flight per replica node, so a batch carries whatever its rooms
//! accepted while the last one was answered (many rooms, many messages,
//! one round trip), and a round trip costs two small frames on an open
//! connection, not an HTTP request. A
//! batch is applied in order, item by item; an item the replica cannot
//! apply is named in the ack's `refused`, and the owner answers that with a
//! full [`Item::Copy`] (`missing`) or stops accepting for the room
//! (`fenced`).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::handoff::RoomSnapshot;
use crate::id::RoomId;

/// `GET {replica}/internal/replicate`, a WebSocket upgrade with the
/// cluster key: [`Batch`]es one way, [`Ack`]s the other.
pub const REPLICATE_PATH: &str = "/internal/replicate";

/// One round trip's worth of items for one replica node, in the order the
/// owner produced them.
#[derive(Debug, Serialize, Deserialize)]
pub struct Batch<'a> {
    /// The owner that sends it.
    pub from: crate::id::InstanceId,
    /// Its number: greater than every earlier batch of the same owner
    /// process. A batch sent again keeps its number, so the replica
    /// applies it once (and answers again what it answered then), and a
    /// batch delayed past a later one is not applied at all.
    pub batch: u64,
    /// The items, applied in order.
    #[serde(borrow)]
    pub items: Vec<Item<'a>>,
}

/// One change to a room's copy.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item<'a> {
    /// The whole room: replaces what the replica held of it. Sent first,
    /// and again whenever the replica may have missed something.
    Copy(Box<RoomSnapshot>),
    /// One accepted message: the next seq of the room's stream.
    Append(#[serde(borrow)] Append<'a>),
    /// The owner no longer keeps this copy here (the room closed, moved,
    /// or has another replica now).
    Forget {
        /// The room.
        room: RoomId,
        /// The epoch of the owner that forgets it.
        epoch: u64,
    },
}

/// One message of a room's stream.
#[derive(Debug, Serialize, Deserialize)]
pub struct Append<'a> {
    /// The room.
    pub room: RoomId,
    /// The owner's epoch.
    pub epoch: u64,
    /// The message's seq: the copy's latest + 1.
    pub seq: u64,
    /// Member ids issued so far, as in [`RoomSnapshot::members`].
    pub members: u64,
    /// The server publish's idempotency key, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The message frame, as members receive it.
    #[serde(borrow)]
    pub frame: &'a RawValue,
}

/// The answer to a [`Batch`]: every item applied but those `refused`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The number of the batch it answers.
    pub batch: u64,
    /// The replica process's incarnation: it changes when the replica
    /// restarts, and with it every copy is gone, so the owner sends every
    /// room it replicates there a full copy (an idle room's copy would
    /// otherwise be missed until the room speaks).
    #[serde(default)]
    pub replica: u64,
    /// Items not applied, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refusal>,
    /// The batch came after a later one of its owner and was not applied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

/// An item the replica did not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The room.
    pub room: RoomId,
    /// The refused item's seq (a copy's latest seq).
    pub seq: u64,
    /// Why.
    pub reason: Refused,
}

/// Why a replica did not apply an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refused {
    /// It has no copy the item follows from (it restarted, or missed an
    /// earlier batch): the owner sends a full copy.
    Missing,
    /// It, or another owner it heard from, holds the room at a later
    /// epoch: the sender is no longer the room's owner and must not accept
    /// anything more for it.
    Fenced,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_keeps_frames_verbatim() {
        let frame = r#"{"type":"message","room":"r","seq":3,"from":"m1","body":{"a":[1,2]}}"#;
        let text = format!(
            r#"{{"from":"i2","batch":9,"items":[{{"append":{{"room":"r","epoch":4,"seq":3,"members":1,"frame":{frame}}}}},{{"forget":{{"room":"q","epoch":1}}}}]}}"#
        );
        let batch: Batch<'_> = serde_json::from_str(&text).unwrap();
        let Item::Append(a) = &batch.items[0] else {
            panic!("not an append: {:?}", batch.items[0])
        };
        assert_eq!((a.epoch, a.seq, a.frame.get()), (4, 3, frame));
        assert_eq!(serde_json::to_string(&batch).unwrap(), text);
    }

    #[test]
    fn an_ack_names_its_refusals() {
        let ack = Ack {
            batch: 3,
            replica: 9,
            refused: vec![Refusal {
                room: "r".parse().unwrap(),
                seq: 7,
                reason: Refused::Fenced,
            }],
            stale: false,
        };
        assert_eq!(
            serde_json::to_value(&ack).unwrap(),
            serde_json::json!({"batch":3,"replica":9,"refused":[{"room":"r","seq":7,"reason":"fenced"}]})
        );
        assert_eq!(
            serde_json::to_string(&Ack::default()).unwrap(),
            r#"{"batch":0,"replica":0}"#
        );
    }
}
