//! The JSON records kept in the coordination store, readable with
//! `etcdctl get --prefix /roomrouter`.

use serde::{Deserialize, Serialize};

use crate::id::{InstanceId, RoomId};

/// Whether a node takes new rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Eligible for placement.
    #[default]
    Active,
    /// Serves the rooms it has but gets no new ones (being drained).
    Draining,
}

/// `{prefix}/nodes/{iN}`: a live node, bound to its lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's instance id.
    pub id: InstanceId,
    /// The URL other components use to reach it, e.g. `http://10.0.0.5:9000`.
    pub addr: String,
    /// Relative share of new rooms; positive.
    pub weight: f64,
    /// Whether it takes new rooms.
    pub state: NodeState,
}

/// `{prefix}/rooms/{room}`: which node owns a room. Durable (no lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// The room.
    pub id: RoomId,
    /// Its owner.
    pub node: InstanceId,
    /// Incremented by one on every change of owner; fences stale owners.
    pub epoch: u64,
    /// Joining needs a token.
    #[serde(default)]
    pub private: bool,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
}

impl RoomRecord {
    /// A room just created on `node`: epoch 1.
    pub fn new(id: RoomId, node: InstanceId, private: bool, created_at: u64) -> Self {
        Self {
            id,
            node,
            epoch: 1,
            private,
            created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_spec_fields() {
        let node = NodeRecord {
            id: "i2".parse().unwrap(),
            addr: "http://127.0.0.1:9000".into(),
            weight: 1.0,
            state: NodeState::Draining,
        };
        let v = serde_json::to_value(&node).unwrap();
        assert_eq!(v["id"], "i2");
        assert_eq!(v["state"], "draining");
        assert_eq!(v["weight"], 1.0);
        let room = RoomRecord {
            id: "r".parse().unwrap(),
            node: "i2".parse().unwrap(),
            epoch: 1,
            private: false,
            created_at: 5,
        };
        let v = serde_json::to_value(&room).unwrap();
        for field in ["id", "node", "epoch", "private", "created_at"] {
            assert!(v.get(field).is_some(), "{field} missing");
        }
        assert_eq!(serde_json::from_value::<RoomRecord>(v).unwrap(), room);
    }
}
