//! Unit tests of [`super::Ownership`] over the in-process store: joins
//! resolved on the store's word, adoptions, releases.

use std::sync::Arc;

use axum::response::IntoResponse;
use proto::handoff::RoomSnapshot;
use proto::record::RoomRecord;
use store::kv::memory::MemoryKv;
use store::{Backend, Mirror, Scope, Store};

use super::*;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::replication::Replication;
use crate::replication::copies::Copies;
use crate::room::limits::RoomLimits;

const ME: &str = "i1";

struct Fixture {
    store: Store,
    view: Mirror,
    ownership: Ownership,
}

fn fixture(auto_create: bool) -> Fixture {
    let me: InstanceId = ME.parse().unwrap();
    let store = Store::new(Backend::Memory(MemoryKv::new()), "/t");
    let limits = RoomLimits::new(&Config::new(me, "http://node".into()));
    let metrics = Arc::new(Metrics::new(me));
    let copies = Copies::new(limits.history, metrics.clone());
    let replication = Replication::new(me, None, copies.clone(), metrics.clone());
    let rooms = Rooms::new(limits, metrics, None, replication);
    let ownership = Ownership::new(me, auto_create, store.clone(), rooms, copies);
    let view = Mirror::start(store.clone(), Scope::Node(me), None);
    Fixture {
        store,
        view,
        ownership,
    }
}

async fn create(store: &Store, room: &str, node: &str) -> RoomRecord {
    let rec = RoomRecord::new(room.parse().unwrap(), node.parse().unwrap(), false, 0);
    store.create_room(&rec).await.unwrap();
    rec
}

fn snapshot(rec: &RoomRecord, epoch: u64, seq: u64) -> RoomSnapshot {
    RoomSnapshot {
        room: rec.id.clone(),
        epoch,
        stream: "s".into(),
        seq,
        history: Vec::new(),
        members: 0,
        published: Vec::new(),
    }
}

#[tokio::test]
async fn a_room_of_this_node_is_served_here_by_one_instance() {
    let f = fixture(false);
    let rec = create(&f.store, "lobby", ME).await;
    let first = f.ownership.resolve(&f.view, &rec.id, None).await.unwrap();
    let again = f.ownership.resolve(&f.view, &rec.id, None).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(first.epoch(), rec.epoch);
}

#[tokio::test]
async fn a_room_of_another_node_is_a_redirect_keeping_the_query() {
    let f = fixture(false);
    let rec = create(&f.store, "lobby", "i2").await;
    let err = f
        .ownership
        .resolve(&f.view, &rec.id, Some("since=4"))
        .await
        .err()
        .unwrap();
    assert_eq!((err.status().as_u16(), err.code()), (307, "moved"));
    let location = err.into_response().headers()["location"].clone();
    assert_eq!(location, "/i2/room/lobby?since=4");
}

#[tokio::test]
async fn an_unknown_room_is_404_unless_this_node_creates_rooms() {
    let room: RoomId = "new".parse().unwrap();
    let f = fixture(false);
    let err = f.ownership.resolve(&f.view, &room, None).await.err();
    assert_eq!(err.unwrap().code(), "unknown_room");

    let f = fixture(true);
    let hosted = f.ownership.resolve(&f.view, &room, None).await.unwrap();
    assert_eq!(hosted.id(), &room);
    let stored = f.store.room(&room).await.unwrap().unwrap();
    assert_eq!(stored.node, ME.parse().unwrap());
}

#[tokio::test]
async fn an_adopted_room_goes_live_with_its_history_at_the_adopted_epoch() {
    let f = fixture(false);
    let rec = create(&f.store, "lobby", ME).await;
    let moved = RoomRecord {
        epoch: rec.epoch + 1,
        ..rec.clone()
    };
    f.ownership.adopt(snapshot(&moved, moved.epoch, 7)).unwrap();
    // Held for another epoch than the store's: a fresh room.
    let fresh = f.ownership.activate(&rec);
    assert_eq!(fresh.freeze(9).unwrap().seq, 0);
    // At the adopted epoch: restored, and the stale instance replaced.
    f.ownership.adopt(snapshot(&moved, moved.epoch, 7)).unwrap();
    let restored = f.ownership.activate(&moved);
    let held = restored.freeze(moved.epoch + 1).unwrap();
    assert_eq!((held.seq, held.stream.as_str()), (7, "s"));
    assert!(!Arc::ptr_eq(&fresh, &restored));
}

#[tokio::test]
async fn an_adoption_not_newer_than_the_live_room_is_refused() {
    let f = fixture(false);
    let rec = create(&f.store, "lobby", ME).await;
    f.ownership.activate(&rec);
    assert!(f.ownership.adopt(snapshot(&rec, rec.epoch, 3)).is_err());
    assert!(f.ownership.adopt(snapshot(&rec, rec.epoch + 1, 3)).is_ok());
}

#[tokio::test]
async fn a_released_room_is_closed_and_no_longer_served() {
    let f = fixture(false);
    let rec = create(&f.store, "lobby", ME).await;
    let room = f.ownership.activate(&rec);
    f.ownership.release(&room, &CloseReason::deleted());
    assert!(f.ownership.shared.rooms.get(&rec.id).is_none());
    assert!(room.freeze(2).is_err(), "a closed room takes nothing");
    let again = f.ownership.activate(&rec);
    assert!(!Arc::ptr_eq(&room, &again));
}
