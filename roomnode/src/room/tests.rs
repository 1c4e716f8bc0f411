//! Unit tests of [`super::Room`]: joins, resume, fan-out, slow consumers,
//! moves.

use serde_json::Value;

use super::*;
use crate::member::outlet::{Outlet, OutletConfig};
use crate::room::history::HistoryLimits;

/// Room `r`, held by `node` at `epoch`.
fn record(node: &str, epoch: u64) -> RoomRecord {
    RoomRecord {
        id: "r".parse().unwrap(),
        node: node.parse().unwrap(),
        epoch,
        private: false,
        created_at: 0,
    }
}

fn limits(history: usize, members: usize) -> RoomLimits {
    RoomLimits {
        history: HistoryLimits {
            count: history,
            bytes: usize::MAX,
        },
        members,
        presence: usize::MAX,
        join_rate: u32::MAX,
        join_burst: u32::MAX,
        flush_window: None,
    }
}

/// Room `r` on i1, for up to `members` members.
fn room_of(history: usize, members: usize) -> Arc<Room> {
    let rec = record("i1", 1);
    Room::new(
        &rec,
        limits(history, members),
        Arc::new(Metrics::new(rec.node)),
    )
}

fn room(history: usize) -> Arc<Room> {
    room_of(history, 100)
}

/// A member without a socket: what the room sends it stays queued.
struct Joined {
    key: u64,
    outlet: Arc<Outlet>,
    /// welcome, then the replay or `history_gap`.
    first: Vec<Value>,
}

fn join_with_queue(
    room: &Room,
    since: Option<u64>,
    stream: Option<&str>,
    max_queue: usize,
) -> Joined {
    let outlet = outlet(room, max_queue);
    let req = JoinRequest {
        name: None,
        since,
        stream,
    };
    let key = room.join(req, &outlet).unwrap();
    let first = drain(&outlet);
    Joined { key, outlet, first }
}

fn join(room: &Room, since: Option<u64>, stream: Option<&str>) -> Joined {
    join_with_queue(room, since, stream, 16)
}

fn outlet(room: &Room, max_queue: usize) -> Arc<Outlet> {
    let config = OutletConfig {
        max_queue,
        direct: true,
    };
    Arc::new(Outlet::new(None, config, room.metrics.clone()))
}

fn anyone() -> JoinRequest<'static> {
    JoinRequest {
        name: None,
        since: None,
        stream: None,
    }
}

/// Everything queued for a member right now, as JSON.
fn drain(outlet: &Outlet) -> Vec<Value> {
    outlet
        .take_texts()
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect()
}

fn body(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.into()).unwrap()
}

#[test]
fn broadcasts_share_one_encoding_and_count_seq_by_one() {
    let room = room(10);
    let a = join(&room, None, None);
    let b = join(&room, None, None);
    assert_eq!(a.first[0]["members"], 1);
    assert_eq!(b.first[0]["members"], 2);
    assert_eq!(drain(&a.outlet)[0]["type"], "joined");
    for i in 0..3 {
        room.send(a.key, &body(&i.to_string())).unwrap();
    }
    let (fa, fb) = (drain(&a.outlet), drain(&b.outlet));
    assert_eq!(fa, fb);
    let seqs: Vec<_> = fa.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(fa[2]["body"], 2);
    assert_eq!(fa[0]["from"], a.first[0]["member"]);
}

#[test]
fn resume_replays_exactly_the_missed_messages_then_gaps() {
    let room = room(3);
    let a = join(&room, None, None);
    for _ in 0..5 {
        room.send(a.key, &body("0")).unwrap();
    }
    let stream = a.first[0]["stream"].as_str().unwrap().to_owned();
    let b = join(&room, Some(3), Some(&stream));
    let seqs: Vec<_> = b.first[1..]
        .iter()
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(b.first[0]["seq"], 5);
    assert_eq!(seqs, [4, 5]);
    for (since, stream) in [(1, Some(stream.as_str())), (3, Some("other")), (9, None)] {
        let c = join(&room, Some(since), stream);
        assert_eq!(c.first.len(), 2);
        assert_eq!(c.first[1]["code"], "history_gap");
    }
}

#[test]
fn a_slow_member_is_dropped_and_the_others_keep_everything() {
    let room = room(10);
    let slow = join_with_queue(&room, None, None, 4);
    let fast = join(&room, None, None);
    for _ in 0..10 {
        room.send(fast.key, &body("1")).unwrap();
        drain(&fast.outlet);
    }
    assert_eq!(
        slow.outlet.ending().unwrap().code,
        proto::wire::close::POLICY
    );
    assert_eq!(room.metrics.slow_consumers.get(), 1);
    // Fast saw "left" for the slow member once, and every message.
    room.send(fast.key, &body("2")).unwrap();
    let last = drain(&fast.outlet);
    assert_eq!(last[0]["seq"], 11);
    assert_eq!(room.lock().members.len(), 1);
}

#[test]
fn a_frozen_room_refuses_sends_and_its_snapshot_restores_it_elsewhere() {
    let old = room(3);
    let a = join(&old, None, None);
    for i in 0..5 {
        old.send(a.key, &body(&i.to_string())).unwrap();
    }
    let snap = old.freeze(2).unwrap();
    assert!(matches!(old.send(a.key, &body("9")), Err(Refused::Moving)));
    assert_eq!((snap.seq, snap.history.len(), snap.epoch), (5, 3, 2));
    let new = Room::restore(
        &record("i2", 2),
        snap.clone(),
        limits(3, 100),
        old.metrics.clone(),
    );
    let b = join(&new, Some(3), Some(&snap.stream));
    assert_eq!(b.first[0]["seq"], 5);
    assert_eq!(
        b.first[0]["member"], "m2",
        "member ids go on from the old owner's (m1 moved with the room)"
    );
    assert_eq!(b.first[0]["stream"], snap.stream.as_str());
    let replay: Vec<_> = b.first[1..]
        .iter()
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(replay, [4, 5]);
    new.send(b.key, &body("6")).unwrap();
    old.unfreeze();
    old.send(a.key, &body("7")).unwrap();
}

#[test]
fn a_full_room_refuses_joins() {
    let room = room_of(1, 2);
    let _a = join(&room, None, None);
    let b = join(&room, None, None);
    assert!(room.is_full());
    assert_eq!(room.join(anyone(), &outlet(&room, 1)), Err(Refused::Full));
    room.leave(b.key);
    assert!(!room.is_full());
}

#[test]
fn closing_tells_everyone_and_refuses_joins() {
    let room = room(10);
    let a = join(&room, None, None);
    let b = join(&room, None, None);
    room.close(&CloseReason::deleted());
    assert_eq!(a.outlet.ending().unwrap().code, proto::wire::close::NORMAL);
    assert_eq!(drain(&a.outlet).last().unwrap()["type"], "joined");
    assert_eq!(b.outlet.ending().unwrap().code, proto::wire::close::NORMAL);
    assert_eq!(room.join(anyone(), &outlet(&room, 1)), Err(Refused::Closed));
    assert!(room.send(a.key, &body("1")).is_err());
}
