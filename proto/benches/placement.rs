//! Placement micro-benchmarks (`cargo bench -p proto --bench placement`):
//! what one routing decision costs (`owner` over 10, 100 and 1000 equal
//! nodes) and what a change of the node set costs (`Placement::new` over
//! 1000 nodes).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use proto::placement::Placement;
use proto::{InstanceId, RoomId};

fn nodes(n: u16) -> Vec<(InstanceId, f64)> {
    (1..=n)
        .map(|i| (InstanceId::new(i).expect("valid instance"), 1.0))
        .collect()
}

fn placement(c: &mut Criterion) {
    let room: RoomId = "lobby-7f3a9c".parse().expect("valid room id");
    let mut group = c.benchmark_group("placement");
    group.throughput(Throughput::Elements(1));
    for n in [10u16, 100, 1000] {
        let table = Placement::new(nodes(n));
        group.bench_with_input(BenchmarkId::new("owner", n), &table, |b, table| {
            b.iter(|| table.owner(black_box(&room)));
        });
    }
    let thousand = nodes(1000);
    group.bench_function(BenchmarkId::new("new", 1000), |b| {
        b.iter(|| Placement::new(black_box(&thousand).iter().copied()));
    });
    group.finish();
}

mod common;

criterion_group! {
    name = benches;
    config = common::config();
    targets = placement
}
criterion_main!(benches);
