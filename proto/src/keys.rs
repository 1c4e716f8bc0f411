//! The etcd key schema: `{prefix}/nodes/{iN}` (leased registrations),
//! `{prefix}/rooms/{room}` (the room records: the truth), and the index
//! `{prefix}/by-node/{iN}/{room}` (a copy of each room record under its
//! owner, written in the same transaction as the record, so a node watches
//! only its own rooms), and `{prefix}/schema` (the layout's version).

use crate::id::{InstanceId, RoomId};

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "/roomrouter";

/// Which record a key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A node registration.
    Node(InstanceId),
    /// A room assignment.
    Room(RoomId),
    /// A room's entry in its owner's index.
    Owned(InstanceId, RoomId),
}

/// The layout version this code writes: 2 added the `by-node` index.
pub const SCHEMA_VERSION: u32 = 2;

/// Builds and parses keys under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (a trailing `/` is ignored).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// The prefix itself, covering every key of the cluster.
    pub fn all(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// The prefix of every node key.
    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }

    /// The prefix of every room key.
    pub fn rooms(&self) -> String {
        format!("{}/rooms/", self.prefix)
    }

    /// The prefix of `node`'s index of owned rooms.
    pub fn owned_by(&self, node: InstanceId) -> String {
        format!("{}/by-node/{node}/", self.prefix)
    }

    /// A room's key in its owner's index.
    pub fn owned(&self, node: InstanceId, room: &RoomId) -> String {
        format!("{}/by-node/{node}/{room}", self.prefix)
    }

    /// The key holding the layout's version.
    pub fn schema(&self) -> String {
        format!("{}/schema", self.prefix)
    }

    /// A node's key.
    pub fn node(&self, id: InstanceId) -> String {
        format!("{}/nodes/{id}", self.prefix)
    }

    /// A room's key.
    pub fn room(&self, id: &RoomId) -> String {
        format!("{}/rooms/{id}", self.prefix)
    }

    /// What a key under this prefix names; `None` for anything else.
    pub fn parse(&self, key: &str) -> Option<Key> {
        let rest = key.strip_prefix(&self.prefix)?;
        if let Some(id) = rest.strip_prefix("/nodes/") {
            id.parse().ok().map(Key::Node)
        } else if let Some(rest) = rest.strip_prefix("/by-node/") {
            let (node, room) = rest.split_once('/')?;
            Some(Key::Owned(node.parse().ok()?, room.parse().ok()?))
        } else {
            rest.strip_prefix("/rooms/")
                .and_then(|id| id.parse().ok())
                .map(Key::Room)
        }
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let keys = Keys::new("/rr/");
        let room: RoomId = "lobby".parse().unwrap();
        let node: InstanceId = "i4".parse().unwrap();
        assert_eq!(keys.room(&room), "/rr/rooms/lobby");
        assert_eq!(keys.node(node), "/rr/nodes/i4");
        assert_eq!(keys.parse(&keys.room(&room)), Some(Key::Room(room.clone())));
        assert_eq!(keys.parse(&keys.node(node)), Some(Key::Node(node)));
        assert_eq!(keys.owned(node, &room), "/rr/by-node/i4/lobby");
        assert!(keys.owned(node, &room).starts_with(&keys.owned_by(node)));
        assert_eq!(
            keys.parse(&keys.owned(node, &room)),
            Some(Key::Owned(node, room.clone()))
        );
        assert_eq!(keys.parse("/rr/by-node/i4"), None);
        assert_eq!(keys.parse("/other/rooms/lobby"), None);
        assert_eq!(keys.parse("/rr/rooms/bad id"), None);
        assert!(keys.room(&"x".parse().unwrap()).starts_with(&keys.rooms()));
    }
}
