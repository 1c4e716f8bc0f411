//! Ids and placement as tests write them: [`iid`] and [`rid`] for instance
//! and room ids from literals, and [`hrw`], the node rendezvous hashing
//! picks for a room among equal-weight nodes (what placement, rebalance,
//! drain and failover must agree with).

use proto::placement::Placement;
use proto::{InstanceId, RoomId};

/// Instance `iN`; panics on an invalid number.
pub fn iid(n: u16) -> InstanceId {
    InstanceId::new(n).expect("valid instance number")
}

/// Room id `room`; panics on an invalid id.
pub fn rid(room: &str) -> RoomId {
    room.parse().expect("valid room id")
}

/// The owner (`iN`) of `room` among the equal-weight nodes `nodes`, e.g.
/// `hrw(&[1, 3], "lobby")`.
pub fn hrw(nodes: &[u16], room: &str) -> String {
    Placement::new(nodes.iter().map(|&n| (iid(n), 1.0)))
        .owner(&rid(room))
        .expect("some node")
        .to_string()
}
