//! Placement: weighted rendezvous (highest-random-weight) hashing over the
//! active nodes, keyed by room id, each node identified by its instance id.
//!
//! The ranking comes from the `rendezvous_hash` crate (logarithmic method for
//! weights). Its default hasher is std's `DefaultHasher`, whose algorithm may
//! change between Rust releases; routers built by different toolchains must
//! agree, so scores use SipHash-1-3 with fixed keys from `siphasher` over
//! bytes that do not depend on the platform.

use std::hash::{Hash, Hasher};

use rendezvous_hash::{Capacity, Node, NodeHasher, RendezvousNodes, WeightedNode};
use siphasher::sip::SipHasher13;

use crate::id::{InstanceId, RoomId};
use crate::record::{NodeRecord, NodeState};

/// Fixed SipHash keys: changing them moves every room.
const HASH_KEYS: (u64, u64) = (0x726f_6f6d_726f_7574, 0x6872_7720_7631_0000);

/// Scores a (node, room) pair identically on every platform and toolchain.
#[derive(Debug, Clone, Copy, Default)]
pub struct StableHasher;

impl NodeHasher<InstanceId> for StableHasher {
    fn hash<T: Hash>(&self, node: &InstanceId, item: &T) -> u64 {
        let mut h = SipHasher13::new_with_keys(HASH_KEYS.0, HASH_KEYS.1);
        h.write(&node.number().to_le_bytes());
        // `RoomId` hashes as its string: the bytes, then 0xff. No usize or
        // endianness enters, so the score is the same everywhere.
        item.hash(&mut h);
        h.finish()
    }
}

impl Node for InstanceId {
    type NodeId = InstanceId;
    type HashCode = u64;

    fn node_id(&self) -> &InstanceId {
        self
    }

    fn hash_code<H, U: Hash>(&self, hasher: &H, item: &U) -> u64
    where
        H: NodeHasher<InstanceId>,
    {
        hasher.hash(self, item)
    }
}

/// The placement table for one set of candidate nodes. Cheap to query, built
/// once per change of the node set and shared as an immutable snapshot.
pub struct Placement {
    nodes: RendezvousNodes<WeightedNode<InstanceId>, StableHasher>,
}

impl Placement {
    /// A table over `(instance, weight)` pairs. Weights that are not positive
    /// and finite count as 1 (records are validated before they get here).
    pub fn new(nodes: impl IntoIterator<Item = (InstanceId, f64)>) -> Self {
        let mut set = RendezvousNodes::new(StableHasher);
        for (id, weight) in nodes {
            let capacity = Capacity::new(weight)
                .or_else(|| Capacity::new(1.0))
                .expect("1.0 is a valid capacity");
            set.insert(WeightedNode::new(id, capacity));
        }
        Self { nodes: set }
    }

    /// A table over the `active` nodes among `records`; draining nodes take
    /// no new rooms.
    pub fn active<'a>(records: impl IntoIterator<Item = &'a NodeRecord>) -> Self {
        Self::new(
            records
                .into_iter()
                .filter(|n| n.state == NodeState::Active)
                .map(|n| (n.id, n.weight)),
        )
    }

    /// Every candidate for `room`, best first: callers fall back down the
    /// list when the first choice cannot take the room.
    pub fn rank(&self, room: &RoomId) -> Vec<InstanceId> {
        self.nodes.calc_candidates(room).map(|n| n.node).collect()
    }

    /// The best candidate for `room`, if there is any node at all: the
    /// first of [`Placement::rank`], found in one pass instead of a sort.
    pub fn owner(&self, room: &RoomId) -> Option<InstanceId> {
        self.nodes
            .iter()
            .map(|n| (n.hash_code(&StableHasher, room), n.node))
            .max()
            .map(|(_, id)| id)
    }

    /// The best candidate for `room` but `owner`: where failover puts the
    /// room when `owner` is gone, hence where its owner keeps its replica.
    pub fn runner_up(&self, room: &RoomId, owner: InstanceId) -> Option<InstanceId> {
        self.nodes
            .iter()
            .filter(|n| n.node != owner)
            .map(|n| (n.hash_code(&StableHasher, room), n.node))
            .max()
            .map(|(_, id)| id)
    }

    /// How many candidates the table holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there is no candidate.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn id(n: u16) -> InstanceId {
        InstanceId::new(n).unwrap()
    }

    fn room(i: usize) -> RoomId {
        format!("room-{i}").parse().unwrap()
    }

    fn equal(n: u16) -> Placement {
        Placement::new((1..=n).map(|i| (id(i), 1.0)))
    }

    fn counts(p: &Placement, rooms: usize) -> HashMap<InstanceId, usize> {
        let mut c = HashMap::new();
        for i in 0..rooms {
            *c.entry(p.owner(&room(i)).unwrap()).or_default() += 1;
        }
        c
    }

    #[test]
    fn owner_is_the_first_of_the_ranking() {
        let p = Placement::new((1..=50).map(|i| (id(i), f64::from(i % 3 + 1))));
        for i in 0..2000 {
            assert_eq!(p.owner(&room(i)), p.rank(&room(i)).first().copied());
        }
    }

    #[test]
    fn the_runner_up_is_the_owner_once_the_owner_is_gone() {
        let p = Placement::new((1..=50).map(|i| (id(i), f64::from(i % 3 + 1))));
        for i in 0..500 {
            let rank = p.rank(&room(i));
            // Of any node, the best of the others: second after the
            // first, first for anyone else.
            assert_eq!(p.runner_up(&room(i), rank[0]), Some(rank[1]));
            assert_eq!(p.runner_up(&room(i), rank[7]), Some(rank[0]));
            let without = Placement::new(
                (1..=50)
                    .filter(|&n| id(n) != rank[0])
                    .map(|n| (id(n), f64::from(n % 3 + 1))),
            );
            assert_eq!(without.owner(&room(i)), Some(rank[1]));
        }
        assert_eq!(equal(1).runner_up(&room(0), id(1)), None);
    }

    #[test]
    fn known_answers_stay_fixed() {
        // Pinned so that a change of hash, keys or tie-breaking, which would
        // move rooms in a running cluster, cannot pass unnoticed.
        let p = equal(5);
        let owners: Vec<u16> = (0..8)
            .map(|i| p.owner(&room(i)).unwrap().number())
            .collect();
        assert_eq!(owners, KNOWN_OWNERS);
    }

    const KNOWN_OWNERS: [u16; 8] = [5, 3, 2, 1, 5, 4, 5, 2];

    #[test]
    fn spread_is_even_over_ten_equal_nodes() {
        let c = counts(&equal(10), 100_000);
        assert_eq!(c.len(), 10);
        for (node, n) in c {
            assert!((9_500..=10_500).contains(&n), "{node} got {n} of 100000");
        }
    }

    #[test]
    fn adding_an_eleventh_node_moves_only_rooms_onto_it() {
        let (before, after) = (equal(10), equal(11));
        let mut moved = 0;
        for i in 0..100_000 {
            let (a, b) = (
                before.owner(&room(i)).unwrap(),
                after.owner(&room(i)).unwrap(),
            );
            if a != b {
                assert_eq!(b, id(11), "room {i} moved between old nodes {a} -> {b}");
                moved += 1;
            }
        }
        let fraction = moved as f64 / 100_000.0;
        assert!((fraction - 1.0 / 11.0).abs() < 0.01, "moved {fraction}");
    }

    #[test]
    fn weights_are_respected() {
        let p = Placement::new([(id(1), 1.0), (id(2), 2.0), (id(3), 1.0)]);
        let c = counts(&p, 100_000);
        let ratio = c[&id(2)] as f64 / ((c[&id(1)] + c[&id(3)]) as f64 / 2.0);
        assert!((1.9..=2.1).contains(&ratio), "weight-2 node got {ratio}x");
    }

    #[test]
    fn draining_nodes_take_no_new_rooms() {
        let rec = |n, state| NodeRecord {
            id: id(n),
            addr: String::new(),
            weight: 1.0,
            state,
        };
        let p = Placement::active(&[rec(1, NodeState::Draining), rec(2, NodeState::Active)]);
        assert_eq!(p.rank(&room(1)), vec![id(2)]);
        assert!(Placement::new([]).owner(&room(1)).is_none());
    }

    proptest! {
        #[test]
        fn ranking_is_deterministic_and_order_free(mut ids in proptest::collection::btree_set(1u16..=9999, 1..20), r in "[a-z0-9]{1,20}") {
            let room: RoomId = r.parse().unwrap();
            let forward = Placement::new(ids.iter().map(|&n| (id(n), 1.0)));
            let backward = Placement::new(ids.iter().rev().map(|&n| (id(n), 1.0)));
            let ranked = forward.rank(&room);
            prop_assert_eq!(&ranked, &backward.rank(&room));
            prop_assert_eq!(ranked.len(), ids.len());
            // Removing any node other than the owner never changes the owner.
            let owner = ranked[0];
            if let Some(&other) = ids.iter().find(|&&n| id(n) != owner) {
                ids.remove(&other);
                let fewer = Placement::new(ids.iter().map(|&n| (id(n), 1.0)));
                prop_assert_eq!(fewer.owner(&room), Some(owner));
            }
        }

        #[test]
        fn adding_a_node_moves_rooms_only_to_it(n in 1u16..30, rooms in proptest::collection::vec("[A-Za-z0-9_-]{1,16}", 1..50)) {
            let (before, after) = (equal(n), equal(n + 1));
            for r in rooms {
                let r: RoomId = r.parse().unwrap();
                let (a, b) = (before.owner(&r).unwrap(), after.owner(&r).unwrap());
                prop_assert!(a == b || b == id(n + 1));
            }
        }
    }
}
