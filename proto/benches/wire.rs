//! Wire-format micro-benchmarks (`cargo bench -p proto --bench wire`):
//! decoding a client's `send` frame and encoding the `message` frame a node
//! broadcasts, for a typical 64-byte body and a 1 KiB one. Throughput is
//! the frame's bytes (the input frame for decode, the output for encode).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use proto::RoomId;
use proto::wire::{ClientMsg, ServerMsg};
use serde_json::value::RawValue;

/// A JSON object body of exactly `len` bytes: `{"text":"…"}`.
fn body(len: usize) -> String {
    const WRAPPER: usize = r#"{"text":""}"#.len();
    let words = "hello room, this is a chat message with some words in it ";
    let text: String = words.chars().cycle().take(len - WRAPPER).collect();
    let body = format!(r#"{{"text":"{text}"}}"#);
    assert_eq!(body.len(), len);
    body
}

fn wire(c: &mut Criterion) {
    let room: RoomId = "lobby-7f3a9c".parse().expect("valid room id");
    let mut group = c.benchmark_group("wire");
    for (label, len) in [("64B", 64), ("1KiB", 1024)] {
        let body = body(len);
        let frame = format!(r#"{{"type":"send","body":{body}}}"#);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::new("decode_send", label), &frame, |b, f| {
            b.iter(|| ClientMsg::decode(black_box(f)).expect("valid frame"));
        });

        let raw = RawValue::from_string(body).expect("valid JSON");
        let msg = ServerMsg::Message {
            room: &room,
            seq: 123_456,
            from: "m42",
            name: Some("alice"),
            body: &raw,
        };
        group.throughput(Throughput::Bytes(msg.encode().len() as u64));
        group.bench_with_input(BenchmarkId::new("encode_message", label), &msg, |b, m| {
            b.iter(|| black_box(m).encode());
        });
    }
    group.finish();
}

mod common;

criterion_group! {
    name = benches;
    config = common::config();
    targets = wire
}
criterion_main!(benches);
