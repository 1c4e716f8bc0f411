//! Writing a large room table fast, as a store-level helper: the records
//! and their owner-index entries exactly as the product lays them out
//! (`proto::keys`), in etcd transactions of [`MAX_TXN_OPS`] writes, many in
//! flight. Tests use it to reach sizes where defaults bite (etcd's 4 MiB
//! answer) in seconds instead of going through the API room by room.

use futures_util::StreamExt;
use proto::keys::Keys;
use proto::record::RoomRecord;
use proto::{InstanceId, RoomId};
use store::kv::{Kv, MAX_TXN_OPS, Op};
use store::store::encode;

/// Transactions in flight at once.
const IN_FLIGHT: usize = 16;

/// A room id of exactly `len` characters (1..=64) numbered `n`.
pub fn long_id(n: usize, len: usize) -> RoomId {
    let digits = format!("{n}");
    let pad = len.saturating_sub(digits.len() + 1);
    format!("{}-{digits}", "r".repeat(pad.max(1)))
        .parse()
        .expect("a valid room id")
}

/// Epoch-1 records for `ids`, spread over `nodes` round robin.
pub fn records(ids: impl IntoIterator<Item = RoomId>, nodes: &[InstanceId]) -> Vec<RoomRecord> {
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| RoomRecord::new(id, nodes[i % nodes.len()], false, 1_700_000_000))
        .collect()
}

/// Writes every record and its index entry under `prefix`.
pub async fn write_rooms(kv: &impl Kv, prefix: &str, rooms: &[RoomRecord]) {
    let keys = Keys::new(prefix);
    let batches: Vec<Vec<Op>> = rooms
        .chunks(MAX_TXN_OPS / 2)
        .map(|chunk| {
            chunk
                .iter()
                .flat_map(|r| {
                    let value = encode(r);
                    [
                        Op::Put(keys.room(&r.id), value.clone()),
                        Op::Put(keys.owned(r.node, &r.id), value),
                    ]
                })
                .collect()
        })
        .collect();
    let mut writes = futures_util::stream::iter(batches)
        .map(|ops| kv.txn(Vec::new(), ops))
        .buffer_unordered(IN_FLIGHT);
    while let Some(done) = writes.next().await {
        assert!(
            done.expect("bulk write of rooms"),
            "an unconditional txn always applies"
        );
    }
}
