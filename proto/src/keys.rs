//! The etcd key schema: `{prefix}/nodes/{iN}` and `{prefix}/rooms/{room}`.

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
}

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
        assert_eq!(keys.parse(&keys.room(&room)), Some(Key::Room(room)));
        assert_eq!(keys.parse(&keys.node(node)), Some(Key::Node(node)));
        assert_eq!(keys.parse("/other/rooms/lobby"), None);
        assert_eq!(keys.parse("/rr/rooms/bad id"), None);
        assert!(keys.room(&"x".parse().unwrap()).starts_with(&keys.rooms()));
    }
}
