//! The router's cached room lookup (`cargo bench -p store --bench lookup`):
//! [`Mirror::room`] over a mirror of an in-memory store holding 100 000
//! rooms, for random existing ids.
//!
//! The `lookup_parts` group takes the lookup apart on the same ids to show
//! where the time goes: the search (in a `HashMap`, close to the mirror's
//! hash set of records, next to the `BTreeMap` the mirror once used), the
//! lock, and the clone of the record that `Mirror::room` returns. That clone
//! is a plain copy: a `RoomId` of up to 22 bytes is stored inline (longer ones
//! share one heap copy, so cloning them is a reference count increment), so
//! what is left of a lookup is mostly the hash, the lock and a cache miss on
//! the record.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use proto::record::RoomRecord;
use proto::{InstanceId, RoomId};
use store::kv::memory::MemoryKv;
use store::{Backend, Mirror, Store};

const ROOMS: usize = 100_000;
const NODES: u16 = 10;

/// A small deterministic generator (xorshift64*), so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `ROOMS` distinct ids of 12 random base-36 characters, like ids clients
/// make up, in creation order.
fn room_ids(rng: &mut Rng) -> Vec<RoomId> {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut seen = std::collections::HashSet::with_capacity(ROOMS);
    while seen.len() < ROOMS {
        let id: String = (0..12)
            .map(|_| ALPHABET[(rng.next() % 36) as usize] as char)
            .collect();
        seen.insert(id);
    }
    let mut ids: Vec<RoomId> = seen
        .into_iter()
        .map(|s| s.parse().expect("valid room id"))
        .collect();
    ids.sort();
    ids
}

fn shuffle<T>(items: &mut [T], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn record(id: &RoomId, i: usize) -> RoomRecord {
    RoomRecord {
        id: id.clone(),
        node: InstanceId::new(1 + (i % NODES as usize) as u16).expect("valid instance"),
        epoch: 1,
        private: false,
        created_at: 1_700_000_000,
    }
}

/// Calls `f` on the next id of `order` each iteration, cycling.
fn cycling<'a, K, R>(order: &'a [K], mut f: impl FnMut(&'a K) -> R) -> impl FnMut() -> R {
    let mut i = 0;
    move || {
        let id = &order[i];
        i += 1;
        if i == order.len() {
            i = 0;
        }
        f(black_box(id))
    }
}

fn lookup(c: &mut Criterion) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ids = room_ids(&mut rng);
    let mut order = ids.clone();
    shuffle(&mut order, &mut rng);

    // One thread: the mirror's task runs only while the setup blocks on it,
    // so nothing else competes with the measured lookups.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mirror = rt.block_on(async {
        let store = Store::new(Backend::Memory(MemoryKv::new()), "/bench");
        // Created in random order, as clients would.
        for (i, id) in order.iter().enumerate() {
            store
                .create_room(&record(id, i))
                .await
                .expect("create room");
        }
        let mirror = Mirror::start(store, store::Scope::Cluster, None);
        assert!(
            mirror.wait_synced(Duration::from_secs(60)).await,
            "mirror never synced"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while mirror.room_counts().values().sum::<u64>() < ROOMS as u64 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "mirror never saw every room"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        mirror
    });
    assert_eq!(mirror.rooms_of(InstanceId::new(1).expect("valid")), 10_000);

    let mut group = c.benchmark_group("lookup");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mirror_room", |b| {
        b.iter(cycling(&order, |id| mirror.room(id).expect("room exists")));
    });
    group.finish();

    let btree: BTreeMap<RoomId, RoomRecord> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), record(id, i)))
        .collect();
    // Inserted one by one in key order, as the mirror's snapshot load does:
    // std's B-tree then splits every full node 6 + 5, so nodes stay about
    // half full and the tree is a level deeper than the bulk-built one.
    let mut btree_seq = BTreeMap::new();
    for (k, v) in &btree {
        btree_seq.insert(k.clone(), v.clone());
    }
    // The same ids as fixed-size inline keys: comparisons read the node
    // only, with no pointer to follow to the key's bytes.
    let inline = |id: &RoomId| {
        let mut key = [0u8; 16];
        key[..id.as_str().len()].copy_from_slice(id.as_str().as_bytes());
        key
    };
    let btree_inline: BTreeMap<[u8; 16], RoomRecord> =
        btree.iter().map(|(k, v)| (inline(k), v.clone())).collect();
    let order_inline: Vec<[u8; 16]> = order.iter().map(inline).collect();
    let hash: HashMap<RoomId, RoomRecord> = btree.clone().into_iter().collect();
    let lock = std::sync::RwLock::new(());
    let one = record(&order[0], 0);

    let mut group = c.benchmark_group("lookup_parts");
    group.throughput(Throughput::Elements(1));
    group.bench_function("btreemap_get", |b| {
        b.iter(cycling(&order, |id| btree.get(id).map(|r| r.epoch)));
    });
    group.bench_function("btreemap_get_clone", |b| {
        b.iter(cycling(&order, |id| btree.get(id).cloned()));
    });
    group.bench_function("btreemap_seq_insert_get", |b| {
        b.iter(cycling(&order, |id| btree_seq.get(id).map(|r| r.epoch)));
    });
    group.bench_function("btreemap_inline_key_get", |b| {
        b.iter(cycling(&order_inline, |key| {
            btree_inline.get(key).map(|r| r.epoch)
        }));
    });
    group.bench_function("hashmap_get", |b| {
        b.iter(cycling(&order, |id| hash.get(id).map(|r| r.epoch)));
    });
    group.bench_function("hashmap_get_clone", |b| {
        b.iter(cycling(&order, |id| hash.get(id).cloned()));
    });
    group.bench_function("record_clone", |b| {
        b.iter(|| black_box(&one).clone());
    });
    group.bench_function("rwlock_read", |b| {
        b.iter(|| drop(black_box(&lock).read()));
    });
    group.finish();

    drop(mirror);
    drop(rt);
}

#[path = "../../proto/benches/common/mod.rs"]
mod common;

criterion_group! {
    name = benches;
    config = common::config();
    targets = lookup
}
criterion_main!(benches);
