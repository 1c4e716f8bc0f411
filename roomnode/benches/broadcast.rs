//! Broadcast micro-benchmarks (`cargo bench -p roomnode --bench broadcast`):
//! one member's message encoded once and queued to every member of a room
//! of 1, 50 and 1000 members (queues of 1024 frames), then every queue
//! drained. Throughput counts deliveries: one per member per iteration.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use roomnode::bench::BenchRoom;
use serde_json::value::RawValue;

const QUEUE: usize = 1024;

fn broadcast(c: &mut Criterion) {
    let body = RawValue::from_string(r#"{"text":"hello room, this is a chat message!!"}"#.into())
        .expect("valid JSON");
    let mut group = c.benchmark_group("broadcast");
    for members in [1usize, 50, 1000] {
        let mut room = BenchRoom::new(members, QUEUE);
        group.throughput(Throughput::Elements(members as u64));
        group.bench_function(BenchmarkId::new("send_drain", members), |b| {
            b.iter(|| {
                room.broadcast(black_box(&body));
                let delivered = room.drain();
                debug_assert_eq!(delivered, members);
                delivered
            });
        });
    }
    group.finish();
}

#[path = "../../proto/benches/common/mod.rs"]
mod common;

criterion_group! {
    name = benches;
    config = common::config();
    targets = broadcast
}
criterion_main!(benches);
