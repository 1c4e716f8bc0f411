//! [`RoomTable`]: room records in a compact form, found by id, with a count
//! per owner. A router holds every room of the cluster in one, so each
//! entry is the id (inline up to 23 bytes, see [`RoomId`]) and a 24-byte
//! [`Slot`], nothing else: no second copy of the id, no order kept (pages
//! in id order are read from the store, which keeps them sorted anyway).

use std::collections::HashMap;

use proto::record::RoomRecord;
use proto::{InstanceId, RoomId};

/// A room record without its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    epoch: u64,
    created_at: u64,
    node: InstanceId,
    private: bool,
}

impl Slot {
    fn of(rec: &RoomRecord) -> Self {
        Self {
            epoch: rec.epoch,
            created_at: rec.created_at,
            node: rec.node,
            private: rec.private,
        }
    }

    fn record(&self, id: &RoomId) -> RoomRecord {
        RoomRecord {
            id: id.clone(),
            node: self.node,
            epoch: self.epoch,
            private: self.private,
            created_at: self.created_at,
        }
    }
}

/// Rooms by id and counts per owner.
#[derive(Default)]
pub(crate) struct RoomTable {
    by_id: HashMap<RoomId, Slot>,
    per_node: HashMap<InstanceId, u64>,
}

impl RoomTable {
    pub(crate) fn get(&self, id: &RoomId) -> Option<RoomRecord> {
        self.by_id.get(id).map(|s| s.record(id))
    }

    /// Inserts or replaces `rec`; the record it replaced.
    pub(crate) fn insert(&mut self, rec: &RoomRecord) -> Option<RoomRecord> {
        *self.per_node.entry(rec.node).or_default() += 1;
        let before = match self.by_id.get_mut(&rec.id) {
            Some(slot) => Some(std::mem::replace(slot, Slot::of(rec)).record(&rec.id)),
            None => {
                self.by_id.insert(rec.id.clone(), Slot::of(rec));
                None
            }
        };
        if let Some(b) = &before {
            self.uncount(b.node);
        }
        before
    }

    /// Removes a room; the record it had.
    pub(crate) fn remove(&mut self, id: &RoomId) -> Option<RoomRecord> {
        let before = self.by_id.remove(id).map(|s| s.record(id));
        if let Some(b) = &before {
            self.uncount(b.node);
        }
        before
    }

    fn uncount(&mut self, node: InstanceId) {
        if let Some(n) = self.per_node.get_mut(&node) {
            *n -= 1;
            if *n == 0 {
                self.per_node.remove(&node);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn per_node(&self) -> &HashMap<InstanceId, u64> {
        &self.per_node
    }

    /// Every record, in no particular order.
    pub(crate) fn records(&self) -> impl Iterator<Item = RoomRecord> + '_ {
        self.by_id.iter().map(|(id, s)| s.record(id))
    }

    /// Every difference from `old` to `self`, as (id, before, after).
    pub(crate) fn diff(&self, old: &Self) -> Vec<(RoomId, Option<RoomRecord>, Option<RoomRecord>)> {
        let mut out = Vec::new();
        for (id, before) in &old.by_id {
            match self.by_id.get(id) {
                Some(after) if after == before => {}
                after => out.push((
                    id.clone(),
                    Some(before.record(id)),
                    after.map(|a| a.record(id)),
                )),
            }
        }
        for (id, after) in &self.by_id {
            if !old.by_id.contains_key(id) {
                out.push((id.clone(), None, Some(after.record(id))));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, node: u16, epoch: u64) -> RoomRecord {
        RoomRecord {
            id: id.parse().unwrap(),
            node: InstanceId::new(node).unwrap(),
            epoch,
            private: node.is_multiple_of(2),
            created_at: 7,
        }
    }

    #[test]
    fn records_come_back_whole_and_counts_follow_owners() {
        let mut t = RoomTable::default();
        assert_eq!(t.insert(&rec("a", 1, 1)), None);
        assert_eq!(t.insert(&rec("b", 1, 1)), None);
        assert_eq!(t.insert(&rec("a", 2, 2)), Some(rec("a", 1, 1)));
        assert_eq!(t.get(&"a".parse().unwrap()), Some(rec("a", 2, 2)));
        let counts = |t: &RoomTable, n| t.per_node().get(&InstanceId::new(n).unwrap()).copied();
        assert_eq!((counts(&t, 1), counts(&t, 2)), (Some(1), Some(1)));
        assert_eq!(t.remove(&"b".parse().unwrap()), Some(rec("b", 1, 1)));
        assert_eq!(counts(&t, 1), None, "a node without rooms is not listed");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn diff_names_every_change() {
        let mut old = RoomTable::default();
        old.insert(&rec("same", 1, 1));
        old.insert(&rec("moved", 1, 1));
        old.insert(&rec("gone", 1, 1));
        let mut new = RoomTable::default();
        new.insert(&rec("same", 1, 1));
        new.insert(&rec("moved", 2, 2));
        new.insert(&rec("new", 3, 1));
        let mut d = new.diff(&old);
        d.sort_by(|a, b| a.0.cmp(&b.0));
        let ids: Vec<_> = d.iter().map(|c| c.0.to_string()).collect();
        assert_eq!(ids, ["gone", "moved", "new"]);
        assert_eq!(d[0].2, None);
        assert_eq!(d[1].2, Some(rec("moved", 2, 2)));
        assert_eq!(d[2].1, None);
    }
}
