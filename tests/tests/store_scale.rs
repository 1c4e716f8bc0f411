//! The store past the sizes where defaults bite, and through what a long
//! life brings: a room table larger than etcd's 4 MiB answer, compaction of
//! the history under a watch, an etcd restart, a table written by the
//! previous layout, many rooms moved at once. Real etcd throughout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::RoomId;
use proto::keys::Keys;
use proto::record::RoomRecord;
use store::kv::memory::MemoryKv;
use store::kv::{Kv, WatchMsg};
use store::mirror::Hook;
use store::store::encode;
use store::{Backend, Change, Created, Mirror, Scope, Staleness, Store, StoreError};
use testkit::ids::iid;
use testkit::{Etcd, bulk, eventually};

const PREFIX: &str = "/rr-scale";
/// Bound on a mirror loading or following what the test wrote.
const SETTLE: Duration = Duration::from_secs(30);

fn room(id: &str, owner: u16) -> RoomRecord {
    RoomRecord {
        id: id.parse().expect("valid room id"),
        node: iid(owner),
        epoch: 1,
        private: false,
        created_at: 1_700_000_000,
    }
}

async fn create(s: &Store, rec: &RoomRecord) {
    assert!(matches!(
        s.create_room(rec).await.expect("create room"),
        Created::New(_)
    ));
}

async fn synced(s: &Store, scope: Scope, hook: Option<Hook>) -> Mirror {
    let mirror = Mirror::start(s.clone(), scope, hook);
    assert!(
        mirror.wait_synced(SETTLE).await,
        "the mirror did not load within {SETTLE:?}"
    );
    mirror
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_past_etcds_answer_limit_loads_in_pages_in_every_scope() {
    let etcd = Etcd::start().await;
    let nodes = [iid(1), iid(2), iid(3)];
    let rooms = bulk::records((0..40_000).map(|n| bulk::long_id(n, 64)), &nodes);
    bulk::write_rooms(&etcd.kv(SETTLE).await, PREFIX, &rooms).await;
    let keys = Keys::new(PREFIX);
    let bytes: usize = rooms
        .iter()
        .map(|r| keys.room(&r.id).len() + encode(r).len())
        .sum();
    assert!(
        bytes > 4 << 20,
        "the table must exceed one 4 MiB etcd answer, it is {bytes} bytes"
    );

    let s = etcd.store(PREFIX).await;
    let cluster = synced(&s, Scope::Cluster, None).await;
    assert_eq!(cluster.room_count(), rooms.len());
    assert_eq!(cluster.staleness(), None, "a loaded view is current");
    for n in &nodes {
        let expected = rooms.iter().filter(|r| r.node == *n).count() as u64;
        assert_eq!(cluster.rooms_of(*n), expected, "rooms of {n}");
    }
    assert_eq!(cluster.room(&rooms[12_345].id), Some(rooms[12_345].clone()));

    // A node holds its own rooms only, from the owner index.
    let own = synced(&s, Scope::Node(iid(2)), None).await;
    assert_eq!(own.room_count() as u64, cluster.rooms_of(iid(2)));
    assert_eq!(
        own.room(&rooms[1].id),
        Some(rooms[1].clone()),
        "room 1 is on i2"
    );
    assert_eq!(
        own.room(&rooms[0].id),
        None,
        "room 0 is on i1, not held by i2"
    );

    // The paged listing of a node's rooms walks the whole index in order.
    let mut listed = 0;
    let mut after: Option<RoomId> = None;
    loop {
        let page = s
            .rooms_of(iid(3), after.as_ref(), 5000)
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        assert!(
            after.as_ref().is_none_or(|a| &page[0].id > a),
            "pages move forward"
        );
        after = Some(last.id.clone());
        listed += page.len() as u64;
    }
    assert_eq!(listed, cluster.rooms_of(iid(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_compacted_history_says_so() {
    let etcd = Etcd::start().await;
    let s = etcd.store(PREFIX).await;
    create(&s, &room("a", 1)).await;
    create(&s, &room("b", 1)).await;
    let now = s.revision().await.expect("revision");
    etcd.compact(now).await;
    let kv = etcd.kv(SETTLE).await;
    let mut watch = kv.watch(PREFIX, 1).await.expect("open a watch");
    let first = tokio::time::timeout(SETTLE, watch.recv())
        .await
        .expect("an answer");
    assert_eq!(first, Some(WatchMsg::Compacted));
    // From the compacted revision on, the watch is fine.
    let mut watch = kv.watch(PREFIX, now).await.expect("open a watch");
    create(&s, &room("c", 1)).await;
    loop {
        match tokio::time::timeout(SETTLE, watch.recv())
            .await
            .expect("an event")
        {
            Some(WatchMsg::Event(ev)) => {
                assert!(ev.key().ends_with("/c"), "only c is new: {ev:?}");
                break;
            }
            Some(WatchMsg::Progress(_)) => {}
            other => panic!("expected c's event, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_keeps_a_bounded_history_too() {
    let kv = MemoryKv::new();
    let s = Store::new(Backend::Memory(kv.clone()), PREFIX);
    let start = s.revision().await.expect("revision");
    for n in 0..5000 {
        create(&s, &room(&format!("m{n}"), 1)).await;
    }
    assert!(matches!(
        kv.watch(PREFIX, start).await,
        Err(StoreError::Compacted)
    ));
    let recent = s.revision().await.expect("revision") - 10;
    let mut watch = kv.watch(PREFIX, recent).await.expect("a recent start");
    let mut replayed = 0;
    while let Ok(Some(WatchMsg::Event(_))) =
        tokio::time::timeout(Duration::from_millis(200), watch.recv()).await
    {
        replayed += 1;
    }
    assert_eq!(
        replayed, 20,
        "the last ten creations are replayed, a record and its index entry each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_survives_compaction_and_an_etcd_restart_and_says_when_it_is_stale() {
    let mut etcd = Etcd::start().await;
    let s = etcd.store(PREFIX).await;
    create(&s, &room("before", 1)).await;
    let mirror = synced(&s, Scope::Cluster, None).await;

    create(&s, &room("compacted", 1)).await;
    etcd.compact(s.revision().await.expect("revision")).await;
    create(&s, &room("after", 1)).await;
    eventually(SETTLE, "the mirror follows past a compaction", async || {
        mirror.room(&"after".parse().unwrap()).is_some()
    })
    .await;

    etcd.stop().await;
    eventually(SETTLE, "the mirror says its view is stale", async || {
        mirror.staleness() == Some(Staleness::Stale)
    })
    .await;
    assert!(
        mirror.room(&"before".parse().unwrap()).is_some(),
        "a stale view still answers"
    );
    etcd.restart().await;
    // Written and compacted right away: the mirror resumes from where it
    // was, or reads everything again if that is compacted already.
    let writer = etcd.store(PREFIX).await;
    eventually(SETTLE, "etcd answers after the restart", async || {
        writer.ping().await.is_ok()
    })
    .await;
    create(&writer, &room("restarted", 2)).await;
    assert!(
        writer
            .delete_room(&"before".parse().unwrap())
            .await
            .expect("delete")
    );
    etcd.compact(writer.revision().await.expect("revision"))
        .await;
    eventually(
        SETTLE,
        "the mirror catches up after the restart",
        async || {
            mirror.room(&"restarted".parse().unwrap()).is_some()
                && mirror.room(&"before".parse().unwrap()).is_none()
                && mirror.staleness().is_none()
        },
    )
    .await;
    assert_eq!(mirror.room_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_indexes_a_table_written_without_the_index() {
    let etcd = Etcd::start().await;
    let kv = etcd.kv(SETTLE).await;
    let keys = Keys::new(PREFIX);
    // The previous layout: room records only.
    for n in 0..300 {
        let rec = room(&format!("old-{n:03}"), 1 + (n % 2) as u16);
        kv.put(&keys.room(&rec.id), encode(&rec), None)
            .await
            .expect("put");
    }
    let s = etcd.store(PREFIX).await;
    assert!(s.rooms_of(iid(1), None, 10).await.expect("page").is_empty());
    assert_eq!(s.migrate().await.expect("migrate"), 300);
    assert_eq!(
        s.rooms_of(iid(1), None, 1000).await.expect("page").len(),
        150
    );
    assert_eq!(
        s.rooms_of(iid(2), None, 1000).await.expect("page").len(),
        150
    );
    assert_eq!(s.migrate().await.expect("migrate again"), 0, "done once");
    // Moves and deletes keep the migrated index right.
    s.move_room(&"old-000".parse().unwrap(), 1, iid(2))
        .await
        .expect("move");
    assert!(
        s.delete_room(&"old-001".parse().unwrap())
            .await
            .expect("delete")
    );
    assert_eq!(
        s.rooms_of(iid(1), None, 1000).await.expect("page").len(),
        149
    );
    assert_eq!(
        s.rooms_of(iid(2), None, 1000).await.expect("page").len(),
        150
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_rooms_moves_a_batch_and_redoes_a_lost_transaction_room_by_room() {
    let etcd = Etcd::start().await;
    let s = etcd.store(PREFIX).await;
    let rooms: Vec<RoomRecord> = (0..100).map(|n| room(&format!("b{n:03}"), 1)).collect();
    for r in &rooms {
        create(&s, r).await;
    }
    // Another router moves one of them first: the batch's record is stale.
    let other = etcd.store(PREFIX).await;
    other
        .move_room(&rooms[50].id, 1, iid(3))
        .await
        .expect("move");

    let outcomes = s
        .move_rooms(rooms.iter().map(|r| (r.clone(), iid(2))).collect())
        .await;
    assert_eq!(outcomes.len(), 100);
    for (i, o) in outcomes.iter().enumerate() {
        match (i, o) {
            (50, Err(StoreError::Conflict(_))) => {}
            (50, other) => panic!("the stale room must be refused, got {other:?}"),
            (_, Ok(rec)) => assert_eq!((rec.node, rec.epoch), (iid(2), 2)),
            (_, Err(e)) => panic!("room {i}: {e}"),
        }
    }
    assert_eq!(
        s.rooms_of(iid(2), None, 1000).await.expect("page").len(),
        99
    );
    assert_eq!(s.rooms_of(iid(3), None, 1000).await.expect("page").len(), 1);
    assert!(
        s.rooms_of(iid(1), None, 1000)
            .await
            .expect("page")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_mirror_hears_its_rooms_come_and_go() {
    let etcd = Etcd::start().await;
    let s = etcd.store(PREFIX).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let hook: Hook = Arc::new(move |c: &Change| {
        if let Change::Room { id, before, after } = c {
            let side = |r: &Option<RoomRecord>| r.as_ref().map(|r| r.node);
            sink.lock()
                .unwrap()
                .push((id.to_string(), side(before), side(after)));
        }
    });
    let mine = synced(&s, Scope::Node(iid(1)), Some(hook)).await;
    create(&s, &room("here", 1)).await;
    create(&s, &room("elsewhere", 2)).await;
    s.move_room(&"here".parse().unwrap(), 1, iid(2))
        .await
        .expect("move");
    eventually(
        SETTLE,
        "the node hears its room arrive and leave",
        async || seen.lock().unwrap().len() == 2,
    )
    .await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("here".to_owned(), None, Some(iid(1))),
            ("here".to_owned(), Some(iid(1)), None),
        ],
        "another node's rooms are never seen"
    );
    assert_eq!(mine.room_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_says_so_and_still_deletes() {
    // etcd refuses writes past its space quota (the NOSPACE alarm).
    let etcd = Etcd::start_with(&["--quota-backend-bytes=4194304"]).await;
    let s = etcd.store(PREFIX).await;
    let kv = etcd.kv(SETTLE).await;
    let big = vec![b'x'; 100_000];
    let mut n = 0;
    let refusal = loop {
        match kv
            .put(&format!("{PREFIX}/filler/{n}"), big.clone(), None)
            .await
        {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 1000, "4 MiB of quota never filled");
    };
    assert!(
        matches!(refusal, StoreError::NoSpace(_)),
        "a write past the quota is NoSpace, got {refusal:?}"
    );
    match s.create_room(&room("late", 1)).await {
        Err(StoreError::NoSpace(_)) => {}
        other => panic!("creating a room in a full store: {other:?}"),
    }
    assert_eq!(s.room(&"late".parse().unwrap()).await.expect("read"), None);
    // Deleting still works (it is how an operator makes room).
    assert!(
        kv.delete(&format!("{PREFIX}/filler/0"))
            .await
            .expect("delete")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_store_keeps_every_view_current() {
    // Nothing changes for longer than STALE_AFTER: etcd's progress reports
    // alone keep the views confirmed (and their watches are not restarted).
    let etcd = Etcd::start().await;
    let s = etcd.store(PREFIX).await;
    create(&s, &room("still", 1)).await;
    let cluster = synced(&s, Scope::Cluster, None).await;
    let own = synced(&s, Scope::Node(iid(1)), None).await;
    testkit::always(
        store::mirror::STALE_AFTER + Duration::from_secs(3),
        "views of a quiet store stay current",
        async || cluster.staleness().is_none() && own.staleness().is_none(),
    )
    .await;
    assert!(cluster.age() < store::mirror::STALE_AFTER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_prefix_is_read_by_sub_prefixes_whole_and_in_key_order() {
    // More rooms than one read is split above, with ids spread over the
    // alphabet and some sharing a long start: every one comes back, once,
    // in id order.
    let kv = MemoryKv::new();
    let s = Store::new(Backend::Memory(kv.clone()), PREFIX);
    let alphabet: Vec<char> = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
        .chars()
        .collect();
    let mut ids: Vec<String> = (0..30_000)
        .map(|n| format!("{}{n}", alphabet[n % alphabet.len()]))
        .chain((0..25_000).map(|n| format!("room-{n}")))
        .collect();
    let rooms = bulk::records(ids.iter().map(|i| i.parse().unwrap()), &[iid(1), iid(2)]);
    bulk::write_rooms(&kv, PREFIX, &rooms).await;
    let all = s.all_rooms(None).await.expect("read every room");
    ids.sort();
    let got: Vec<String> = all.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(got.len(), ids.len());
    assert_eq!(got, ids, "every room, once, in id order");
    let mine = s.all_rooms(Some(iid(2))).await.expect("read i2's rooms");
    assert_eq!(
        mine.len(),
        rooms.iter().filter(|r| r.node == iid(2)).count()
    );
}
