//! The behavioural suite of [`store::Store`] and [`store::Mirror`], run
//! against both backends: the embedded `MemoryKv` and a real etcd started by
//! the test kit. Each case is written once, generic over the backend, and
//! instantiated per backend by `on_both_backends!`; a few cases that only
//! make sense for etcd (outage, the bytes in etcd) follow at the end.
//!
//! Every etcd case gets its own etcd (it starts in well under a second), so
//! cases are independent and run in parallel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::keys::DEFAULT_PREFIX;
use proto::record::{NodeRecord, NodeState, RoomRecord};
use proto::{InstanceId, RoomId};
use serde_json::Value;
use store::kv::Kv;
use store::kv::memory::MemoryKv;
use store::mirror::Hook;
use store::{Backend, Change, Created, Mirror, Scope, Store, StoreError};
use testkit::{Etcd, always, eventually};
use tokio::sync::Barrier;
use tokio::time::Instant;

/// The cluster prefix of the store under test.
const PREFIX: &str = "/rr-test";
/// A sibling prefix that shares `PREFIX`'s characters: a prefix scan that
/// forgets the trailing `/` would leak its records.
const SIBLING: &str = "/rr-test2";
/// Bound on waiting for a mirror to see a change.
const SETTLE: Duration = Duration::from_secs(10);
/// A short lease, for expiry (etcd's minimum, given the kit's election
/// timeout, is one second).
const SHORT_TTL: Duration = Duration::from_secs(1);
/// A lease long enough that a test never sees it expire by accident.
const LONG_TTL: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Fixture: one backend, and stores on it.

enum Fixture {
    Memory(MemoryKv),
    Etcd(Box<Etcd>),
}

impl Fixture {
    fn memory() -> Self {
        Self::Memory(MemoryKv::new())
    }

    async fn etcd() -> Self {
        Self::Etcd(Box::new(Etcd::start().await))
    }

    /// A store under [`PREFIX`]. On etcd each call is its own connection,
    /// like another router process; in memory it shares the one map.
    async fn store(&self) -> Store {
        self.store_under(PREFIX).await
    }

    async fn store_under(&self, prefix: &str) -> Store {
        match self {
            Self::Memory(kv) => Store::new(Backend::Memory(kv.clone()), prefix),
            Self::Etcd(etcd) => etcd.store(prefix).await,
        }
    }
}

/// Writes each case's two `#[tokio::test]` wrappers, `memory::case` and
/// `etcd::case`.
macro_rules! on_both_backends {
    ($($case:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Fixture::memory()).await;
                }
            )+
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Fixture::etcd().await).await;
                }
            )+
        }
    };
}

on_both_backends!(
    registered_nodes_are_listed_in_id_order,
    a_live_node_id_cannot_be_registered_twice,
    deregister_removes_the_node_at_once,
    an_unrenewed_lease_expires_and_frees_the_id,
    renewing_keeps_a_node_past_its_ttl,
    a_lease_lasts_its_whole_ttl,
    update_node_is_visible_and_stays_leased,
    create_room_creates_once,
    concurrent_creates_agree_on_one_owner,
    rooms_paginate_in_id_order_within_the_prefix,
    a_page_holds_at_most_its_limit,
    delete_room_says_whether_it_existed,
    move_room_is_a_compare_and_swap_on_the_epoch,
    of_two_concurrent_moves_exactly_one_wins,
    mirror_follows_rooms_and_tells_the_hook,
    mirror_follows_nodes_and_places_on_active_ones,
    mirror_counts_and_pages_rooms_by_node,
    mirror_lookup_reads_through,
);

// ---------------------------------------------------------------------------
// Helpers.

fn iid(n: u16) -> InstanceId {
    InstanceId::new(n).expect("valid instance number")
}

fn rid(s: &str) -> RoomId {
    s.parse().expect("valid room id")
}

fn node(n: u16) -> NodeRecord {
    NodeRecord {
        id: iid(n),
        addr: format!("http://127.0.0.1:{}", 9000 + n),
        weight: 1.0,
        state: NodeState::Active,
    }
}

fn room(id: &str, owner: u16) -> RoomRecord {
    RoomRecord {
        id: rid(id),
        node: iid(owner),
        epoch: 0,
        private: false,
        created_at: store::store::unix_now(),
    }
}

async fn node_ids(s: &Store) -> Vec<InstanceId> {
    s.nodes()
        .await
        .expect("list nodes")
        .into_iter()
        .map(|n| n.id)
        .collect()
}

async fn room_ids(s: &Store, after: Option<&str>, limit: usize) -> Vec<String> {
    let after = after.map(rid);
    s.rooms(after.as_ref(), limit)
        .await
        .expect("list rooms")
        .into_iter()
        .map(|r| r.id.to_string())
        .collect()
}

async fn create(s: &Store, rec: &RoomRecord) {
    match s.create_room(rec).await.expect("create room") {
        Created::New(_) => {}
        Created::Existing(e) => panic!("room {} already existed: {e:?}", rec.id),
    }
}

/// A hook that records every change, and the record.
fn recording_hook() -> (Hook, Arc<Mutex<Vec<Change>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let hook: Hook = Arc::new(move |c: &Change| sink.lock().expect("hook lock").push(c.clone()));
    (hook, seen)
}

/// The room changes the hook saw for `id`, as (before, after).
type RoomTransition = (Option<RoomRecord>, Option<RoomRecord>);

fn room_changes(seen: &Mutex<Vec<Change>>, id: &str) -> Vec<RoomTransition> {
    seen.lock()
        .expect("hook lock")
        .iter()
        .filter_map(|c| match c {
            Change::Room {
                id: r,
                before,
                after,
            } if r.as_str() == id => Some((before.clone(), after.clone())),
            _ => None,
        })
        .collect()
}

type NodeTransition = (Option<NodeRecord>, Option<NodeRecord>);

fn node_changes(seen: &Mutex<Vec<Change>>, id: InstanceId) -> Vec<NodeTransition> {
    seen.lock()
        .expect("hook lock")
        .iter()
        .filter_map(|c| match c {
            Change::Node {
                id: n,
                before,
                after,
            } if *n == id => Some((before.clone(), after.clone())),
            _ => None,
        })
        .collect()
}

async fn synced_mirror(s: &Store) -> (Mirror, Arc<Mutex<Vec<Change>>>) {
    let (hook, seen) = recording_hook();
    let mirror = Mirror::start(s.clone(), Scope::Cluster, Some(hook));
    assert!(
        mirror.wait_synced(SETTLE).await,
        "mirror did not load its first snapshot within {SETTLE:?}"
    );
    (mirror, seen)
}

// ---------------------------------------------------------------------------
// Nodes.

async fn registered_nodes_are_listed_in_id_order(f: Fixture) {
    let s = f.store().await;
    assert!(s.nodes().await.expect("list nodes").is_empty());
    // Key order would be i1, i10, i2; id order is numeric.
    for n in [10, 2, 1] {
        s.register_node(&node(n), LONG_TTL).await.expect("register");
    }
    assert_eq!(
        s.nodes().await.expect("list nodes"),
        vec![node(1), node(2), node(10)]
    );
    // Another cluster's store does not see them.
    let other = f.store_under(SIBLING).await;
    assert!(node_ids(&other).await.is_empty());
}

async fn a_live_node_id_cannot_be_registered_twice(f: Fixture) {
    let s = f.store().await;
    let first = s.register_node(&node(4), LONG_TTL).await.expect("register");
    let mut impostor = node(4);
    impostor.addr = "http://127.0.0.1:1".into();
    for store in [s.clone(), f.store().await] {
        match store.register_node(&impostor, LONG_TTL).await {
            Err(e @ StoreError::NodeIdTaken(id)) => {
                assert_eq!(id, iid(4));
                assert!(e.to_string().contains("i4"), "message names no id: {e}");
            }
            other => panic!("second registration of i4: {other:?}"),
        }
    }
    // The first registration is untouched and still renewable.
    assert_eq!(s.nodes().await.expect("list nodes"), vec![node(4)]);
    s.renew(first).await.expect("renew the first registration");
    // Once it is gone, the id is free.
    s.deregister(first).await.expect("deregister");
    s.register_node(&impostor, LONG_TTL)
        .await
        .expect("register a freed id");
    assert_eq!(s.nodes().await.expect("list nodes"), vec![impostor]);
}

async fn deregister_removes_the_node_at_once(f: Fixture) {
    let s = f.store().await;
    let a = s.register_node(&node(1), LONG_TTL).await.expect("register");
    s.register_node(&node(2), LONG_TTL).await.expect("register");
    s.deregister(a).await.expect("deregister");
    assert_eq!(node_ids(&s).await, vec![iid(2)]);
    // A revoked lease stays dead.
    assert!(matches!(s.renew(a).await, Err(StoreError::LeaseExpired)));
    assert!(matches!(
        s.update_node(&node(1), a).await,
        Err(StoreError::LeaseExpired)
    ));
    assert_eq!(node_ids(&s).await, vec![iid(2)]);
    // Deregistering twice is harmless.
    s.deregister(a).await.expect("deregister again");
}

async fn an_unrenewed_lease_expires_and_frees_the_id(f: Fixture) {
    let s = f.store().await;
    let lease = s
        .register_node(&node(3), SHORT_TTL)
        .await
        .expect("register");
    let kept = s.register_node(&node(5), LONG_TTL).await.expect("register");
    assert_eq!(node_ids(&s).await, vec![iid(3), iid(5)]);
    eventually(
        SHORT_TTL + Duration::from_secs(5),
        "the unrenewed node i3 disappears",
        async || node_ids(&s).await == vec![iid(5)],
    )
    .await;
    assert!(
        matches!(s.renew(lease).await, Err(StoreError::LeaseExpired)),
        "renewing an expired lease must say so"
    );
    s.renew(kept).await.expect("the other lease is alive");
    s.register_node(&node(3), LONG_TTL)
        .await
        .expect("an expired node's id is free again");
}

async fn renewing_keeps_a_node_past_its_ttl(f: Fixture) {
    let s = f.store().await;
    let ttl = Duration::from_secs(2);
    let lease = s.register_node(&node(7), ttl).await.expect("register");
    // Renew every TTL/5 for twice the TTL: the node must never go.
    let renewer = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl / 5);
            loop {
                tick.tick().await;
                if let Err(e) = s.renew(lease).await {
                    return e;
                }
            }
        })
    };
    always(ttl * 2, "renewed node i7 stays registered", async || {
        !renewer.is_finished() && node_ids(&s).await == vec![iid(7)]
    })
    .await;
    renewer.abort();
    s.renew(lease).await.expect("the lease is still alive");
}

async fn a_lease_lasts_its_whole_ttl(f: Fixture) {
    // A node counts on its registration lasting the TTL it asked for (SPEC
    // "Store outage": it serves until TTL after its last renewal), so a
    // lease must never be shorter than asked, fractions of seconds included.
    let s = f.store().await;
    let ttl = Duration::from_millis(2900);
    let start = Instant::now();
    s.register_node(&node(8), ttl).await.expect("register");
    let margin = Duration::from_millis(200);
    always(
        (ttl - margin).saturating_sub(start.elapsed()),
        "node i8 stays registered within its 2.9 s TTL",
        async || node_ids(&s).await == vec![iid(8)],
    )
    .await;
}

async fn update_node_is_visible_and_stays_leased(f: Fixture) {
    let s = f.store().await;
    let lease = s.register_node(&node(2), LONG_TTL).await.expect("register");
    let draining = NodeRecord {
        state: NodeState::Draining,
        weight: 3.0,
        ..node(2)
    };
    s.update_node(&draining, lease).await.expect("update");
    assert_eq!(s.nodes().await.expect("list nodes"), vec![draining]);
    // Still bound to the lease: ending it removes the updated record.
    s.deregister(lease).await.expect("deregister");
    assert!(s.nodes().await.expect("list nodes").is_empty());
}

// ---------------------------------------------------------------------------
// Rooms.

async fn create_room_creates_once(f: Fixture) {
    let s = f.store().await;
    let first = room("lobby", 1);
    assert_eq!(
        s.create_room(&first).await.expect("create"),
        Created::New(first.clone())
    );
    let second = RoomRecord {
        private: true,
        ..room("lobby", 2)
    };
    let again = s.create_room(&second).await.expect("create again");
    assert_eq!(again, Created::Existing(first.clone()));
    assert_eq!(again.record(), &first);
    assert_eq!(s.room(&rid("lobby")).await.expect("read"), Some(first));
    assert_eq!(s.room(&rid("nowhere")).await.expect("read"), None);
}

async fn concurrent_creates_agree_on_one_owner(f: Fixture) {
    // Two separately connected stores (two routers) race on each of 20 ids.
    let stores = [f.store().await, f.store().await];
    let barrier = Arc::new(Barrier::new(2));
    let tasks = stores.iter().enumerate().map(|(i, s)| {
        let (s, barrier) = (s.clone(), barrier.clone());
        tokio::spawn(async move {
            let mut out = Vec::new();
            for r in 0..20 {
                let rec = room(&format!("race-{r}"), 1 + i as u16);
                barrier.wait().await;
                out.push(s.create_room(&rec).await.expect("create"));
            }
            out
        })
    });
    let results: Vec<Vec<Created>> = join_all(tasks).await;
    for (r, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        let news = [a, b]
            .iter()
            .filter(|c| matches!(c, Created::New(_)))
            .count();
        assert_eq!(news, 1, "race-{r}: {a:?} / {b:?}");
        assert_eq!(a.record(), b.record(), "race-{r}: two owners");
        let stored = stores[0].room(&rid(&format!("race-{r}"))).await;
        assert_eq!(stored.expect("read").as_ref(), Some(a.record()));
    }
}

async fn join_all<T: Send + 'static>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks.collect::<Vec<_>>() {
        out.push(t.await.expect("task panicked"));
    }
    out
}

async fn rooms_paginate_in_id_order_within_the_prefix(f: Fixture) {
    let s = f.store().await;
    // Byte order: '-' < digits < upper case < '_' < lower case.
    let ids = ["m", "A", "_x", "-a", "z9", "b", "0", "mm"];
    let mut records = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let rec = room(id, 1 + i as u16 % 3);
        create(&s, &rec).await;
        records.insert(id.to_string(), rec);
    }
    // Records of another cluster, one of them under a prefix that shares
    // this one's characters, and a node of this cluster.
    for prefix in [SIBLING, "/other"] {
        create(&f.store_under(prefix).await, &room("aa", 1)).await;
    }
    s.register_node(&node(1), LONG_TTL).await.expect("register");

    let mut sorted: Vec<RoomId> = ids.iter().map(|i| rid(i)).collect();
    sorted.sort();
    let sorted: Vec<String> = sorted.iter().map(ToString::to_string).collect();
    assert_eq!(room_ids(&s, None, 100).await, sorted);

    // Page by page, three at a time.
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = room_ids(&s, after.as_deref(), 3).await;
        assert!(page.len() <= 3, "page larger than its limit: {page:?}");
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        pages.push(page);
        assert!(pages.len() <= ids.len(), "pagination does not end");
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), sorted);

    // `after` need not exist: the page starts at the next id.
    assert_eq!(room_ids(&s, Some("ma"), 2).await, vec!["mm", "z9"]);
    assert_eq!(room_ids(&s, Some("z9"), 2).await, Vec::<String>::new());
    // Full records come back.
    let page = s.rooms(Some(&rid("A")), 2).await.expect("list rooms");
    assert_eq!(page, vec![records["_x"].clone(), records["b"].clone()]);
}

async fn a_page_holds_at_most_its_limit(f: Fixture) {
    let s = f.store().await;
    for id in ["a", "b"] {
        create(&s, &room(id, 1)).await;
    }
    assert_eq!(room_ids(&s, None, 1).await, vec!["a"]);
    assert_eq!(room_ids(&s, None, usize::MAX).await, vec!["a", "b"]);
    assert_eq!(
        room_ids(&s, None, 0).await,
        Vec::<String>::new(),
        "rooms(limit = 0) must return at most 0 rooms"
    );
}

async fn delete_room_says_whether_it_existed(f: Fixture) {
    let s = f.store().await;
    create(&s, &room("gone", 1)).await;
    create(&s, &room("kept", 1)).await;
    assert!(s.delete_room(&rid("gone")).await.expect("delete"));
    assert_eq!(s.room(&rid("gone")).await.expect("read"), None);
    assert!(!s.delete_room(&rid("gone")).await.expect("delete again"));
    assert!(!s.delete_room(&rid("never")).await.expect("delete unknown"));
    assert_eq!(room_ids(&s, None, 10).await, vec!["kept"]);
    // The id can be created afresh.
    create(&s, &room("gone", 2)).await;
}

async fn move_room_is_a_compare_and_swap_on_the_epoch(f: Fixture) {
    let s = f.store().await;
    let original = RoomRecord {
        private: true,
        created_at: 1_700_000_000,
        ..room("r", 1)
    };
    create(&s, &original).await;

    let moved = s.move_room(&rid("r"), 0, iid(2)).await.expect("move");
    let expected = RoomRecord {
        node: iid(2),
        epoch: 1,
        ..original.clone()
    };
    assert_eq!(moved, expected);
    assert_eq!(
        s.room(&rid("r")).await.expect("read"),
        Some(expected.clone())
    );

    // A stale or invented epoch changes nothing.
    for epoch in [0, 2, 7] {
        match s.move_room(&rid("r"), epoch, iid(3)).await {
            Err(StoreError::Conflict(why)) => assert!(why.contains('r'), "{why}"),
            other => panic!("move from epoch {epoch} of a room at epoch 1: {other:?}"),
        }
        assert_eq!(
            s.room(&rid("r")).await.expect("read"),
            Some(expected.clone())
        );
    }

    // Moving a room that does not exist is a conflict too, and creates
    // nothing.
    assert!(matches!(
        s.move_room(&rid("absent"), 0, iid(2)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.room(&rid("absent")).await.expect("read"), None);

    // Epochs keep counting.
    let again = s.move_room(&rid("r"), 1, iid(1)).await.expect("move back");
    assert_eq!((again.node, again.epoch), (iid(1), 2));
}

async fn of_two_concurrent_moves_exactly_one_wins(f: Fixture) {
    let stores = [f.store().await, f.store().await];
    for r in 0..10 {
        create(&stores[0], &room(&format!("m{r}"), 1)).await;
    }
    let barrier = Arc::new(Barrier::new(2));
    let tasks = stores.iter().enumerate().map(|(i, s)| {
        let (s, barrier) = (s.clone(), barrier.clone());
        tokio::spawn(async move {
            let mut out = Vec::new();
            for r in 0..10 {
                barrier.wait().await;
                out.push(
                    s.move_room(&rid(&format!("m{r}")), 0, iid(2 + i as u16))
                        .await,
                );
            }
            out
        })
    });
    let results = join_all(tasks).await;
    for (r, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        let outcomes = [a, b];
        let winners: Vec<&RoomRecord> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "m{r}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .any(|o| matches!(o, Err(StoreError::Conflict(_)))),
            "m{r}: the loser must see a conflict: {outcomes:?}"
        );
        let stored = stores[1].room(&rid(&format!("m{r}"))).await.expect("read");
        assert_eq!(stored.as_ref(), Some(winners[0]));
        assert_eq!(winners[0].epoch, 1);
    }
}

// ---------------------------------------------------------------------------
// Mirror.

async fn mirror_follows_rooms_and_tells_the_hook(f: Fixture) {
    let s = f.store().await;
    let before_start = room("early", 1);
    create(&s, &before_start).await;
    let (mirror, seen) = synced_mirror(&s).await;

    // The snapshot counts as changes from nothing.
    assert_eq!(mirror.room(&rid("early")), Some(before_start.clone()));
    assert_eq!(
        room_changes(&seen, "early"),
        vec![(None, Some(before_start))]
    );

    // Changes made through another connection arrive by the watch.
    let writer = f.store().await;
    let created = room("live", 1);
    create(&writer, &created).await;
    eventually(SETTLE, "the mirror sees the created room", async || {
        mirror.room(&rid("live")).is_some()
    })
    .await;
    assert_eq!(mirror.room(&rid("live")), Some(created.clone()));

    let moved = writer
        .move_room(&rid("live"), 0, iid(2))
        .await
        .expect("move");
    eventually(SETTLE, "the mirror sees the move", async || {
        mirror.room(&rid("live")).map(|r| r.epoch) == Some(1)
    })
    .await;
    assert_eq!(mirror.room(&rid("live")), Some(moved.clone()));

    assert!(writer.delete_room(&rid("live")).await.expect("delete"));
    eventually(SETTLE, "the mirror sees the deletion", async || {
        mirror.room(&rid("live")).is_none()
    })
    .await;

    assert_eq!(
        room_changes(&seen, "live"),
        vec![
            (None, Some(created.clone())),
            (Some(created), Some(moved.clone())),
            (Some(moved), None),
        ]
    );

    // Other clusters' rooms never show up.
    create(&f.store_under(SIBLING).await, &room("foreign", 1)).await;
    create(&writer, &room("marker", 1)).await;
    eventually(SETTLE, "the mirror sees the marker room", async || {
        mirror.room(&rid("marker")).is_some()
    })
    .await;
    assert_eq!(mirror.room(&rid("foreign")), None);
    assert!(room_changes(&seen, "foreign").is_empty());
}

async fn mirror_follows_nodes_and_places_on_active_ones(f: Fixture) {
    let s = f.store().await;
    let (mirror, seen) = synced_mirror(&s).await;
    assert!(mirror.nodes().nodes.is_empty());
    assert!(mirror.nodes().placement.is_empty());

    let lease1 = s.register_node(&node(1), LONG_TTL).await.expect("register");
    let draining = NodeRecord {
        state: NodeState::Draining,
        ..node(2)
    };
    let lease2 = s
        .register_node(&draining, LONG_TTL)
        .await
        .expect("register");
    eventually(SETTLE, "the mirror sees both nodes", async || {
        mirror.nodes().nodes.len() == 2
    })
    .await;
    let set = mirror.nodes();
    assert_eq!(set.nodes.get(&iid(2)), Some(&draining));
    assert_eq!(set.placement.len(), 1, "draining nodes take no new rooms");
    for r in 0..50 {
        assert_eq!(set.placement.owner(&rid(&format!("p{r}"))), Some(iid(1)));
    }

    s.update_node(&node(2), lease2).await.expect("activate");
    eventually(
        SETTLE,
        "placement includes the activated node",
        async || mirror.nodes().placement.len() == 2,
    )
    .await;

    s.deregister(lease1).await.expect("deregister");
    eventually(
        SETTLE,
        "the mirror drops the deregistered node",
        async || !mirror.nodes().nodes.contains_key(&iid(1)),
    )
    .await;
    let set = mirror.nodes();
    assert_eq!(set.placement.len(), 1);
    assert_eq!(set.placement.owner(&rid("any")), Some(iid(2)));

    assert_eq!(
        node_changes(&seen, iid(1)),
        vec![(None, Some(node(1))), (Some(node(1)), None)]
    );
    assert_eq!(
        node_changes(&seen, iid(2)),
        vec![
            (None, Some(draining.clone())),
            (Some(draining), Some(node(2)))
        ]
    );
}

async fn mirror_counts_and_pages_rooms_by_node(f: Fixture) {
    let s = f.store().await;
    let (mirror, _seen) = synced_mirror(&s).await;
    for (id, owner) in [("a", 1), ("b", 2), ("c", 1), ("d", 2), ("e", 1)] {
        create(&s, &room(id, owner)).await;
    }
    let counts = |pairs: &[(u16, u64)]| -> HashMap<InstanceId, u64> {
        pairs.iter().map(|&(n, c)| (iid(n), c)).collect()
    };
    eventually(SETTLE, "the mirror counts 3 + 2 rooms", async || {
        mirror.room_counts() == counts(&[(1, 3), (2, 2)])
    })
    .await;
    assert_eq!(mirror.rooms_of(iid(1)), 3);
    assert_eq!(mirror.rooms_of(iid(9)), 0);

    // Pages by owner come from the store's owner index, in id order.
    let ids = |page: Vec<RoomRecord>| -> Vec<String> {
        page.into_iter().map(|r| r.id.to_string()).collect()
    };
    let of = async |n: u16, after: Option<&str>, limit: usize| -> Vec<String> {
        let after = after.map(rid);
        ids(s
            .rooms_of(iid(n), after.as_ref(), limit)
            .await
            .expect("list a node's rooms"))
    };
    assert_eq!(of(1, None, 2).await, ["a", "c"]);
    assert_eq!(of(1, Some("c"), 2).await, ["e"]);
    assert_eq!(of(2, Some("a"), 10).await, ["b", "d"]);
    assert_eq!(of(9, None, 10).await, Vec::<String>::new());
    // The index holds the same records as the rooms themselves.
    let mut indexed = s.rooms_of(iid(1), None, 10).await.expect("index");
    indexed.extend(s.rooms_of(iid(2), None, 10).await.expect("index"));
    indexed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(indexed, s.rooms(None, 10).await.expect("list rooms"));

    s.move_room(&rid("a"), 0, iid(2)).await.expect("move");
    s.delete_room(&rid("c")).await.expect("delete");
    s.delete_room(&rid("e")).await.expect("delete");
    eventually(
        SETTLE,
        "the mirror recounts after a move and deletes",
        async || mirror.room_counts() == counts(&[(2, 3)]),
    )
    .await;
    assert_eq!(mirror.rooms_of(iid(1)), 0, "a node with no rooms counts 0");
    assert_eq!(of(2, None, 10).await, ["a", "b", "d"]);
    assert_eq!(
        of(1, None, 10).await,
        Vec::<String>::new(),
        "moves and deletes leave no index entry behind"
    );
}

async fn mirror_lookup_reads_through(f: Fixture) {
    let s = f.store().await;
    let (mirror, _seen) = synced_mirror(&s).await;
    // Rooms created by another router: asked for right away, before the
    // watch may have delivered them, lookup still finds each one.
    let writer = f.store().await;
    for r in 0..20 {
        let rec = room(&format!("fresh-{r}"), 1);
        create(&writer, &rec).await;
        assert_eq!(
            mirror.lookup(&rec.id).await.expect("lookup"),
            Some(rec),
            "a room that exists in the store must be found"
        );
    }
    assert_eq!(mirror.lookup(&rid("nowhere")).await.expect("lookup"), None);
}

// ---------------------------------------------------------------------------
// etcd only.

mod etcd_only {
    use super::*;

    /// What SPEC "etcd layout" promises: plain JSON at `{prefix}/nodes/{iN}`
    /// and `{prefix}/rooms/{room}`, readable by any etcd client.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_are_plain_json_at_the_spec_keys() {
        let etcd = Etcd::start().await;
        let s = etcd.store(DEFAULT_PREFIX).await;
        let lease = s
            .register_node(
                &NodeRecord {
                    weight: 2.5,
                    ..node(3)
                },
                LONG_TTL,
            )
            .await
            .expect("register");
        let rec = RoomRecord {
            private: true,
            ..room("lobby", 3)
        };
        create(&s, &rec).await;
        s.move_room(&rid("lobby"), 0, iid(4)).await.expect("move");

        let kv = etcd.kv(Duration::from_secs(3)).await;
        let read = async |key: &str| -> Value {
            let raw = kv
                .get(key)
                .await
                .expect("etcd get")
                .unwrap_or_else(|| panic!("{key} absent"));
            serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{key} is not JSON: {e}"))
        };
        let n = read("/roomrouter/nodes/i3").await;
        assert_eq!(
            n,
            serde_json::json!({
                "id": "i3",
                "addr": "http://127.0.0.1:9003",
                "weight": 2.5,
                "state": "active",
            })
        );
        let r = read("/roomrouter/rooms/lobby").await;
        assert_eq!(
            r,
            serde_json::json!({
                "id": "lobby",
                "node": "i4",
                "epoch": 1,
                "private": true,
                "created_at": rec.created_at,
            })
        );

        // The node key is bound to the lease; the room key is durable.
        s.deregister(lease).await.expect("deregister");
        assert_eq!(
            kv.get("/roomrouter/nodes/i3").await.expect("etcd get"),
            None
        );
        assert!(
            kv.get("/roomrouter/rooms/lobby")
                .await
                .expect("etcd get")
                .is_some()
        );
    }

    /// SPEC "Store outage": calls fail fast as `Unavailable` while etcd is
    /// down, the mirror keeps answering from memory, and once etcd is back
    /// everything works again and the mirror catches up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outage_is_unavailable_and_the_mirror_resynchronises() {
        let op_timeout = Duration::from_secs(1);
        let mut etcd = Etcd::start().await;
        let s = etcd.store_with_timeout(PREFIX, op_timeout).await;
        s.ping().await.expect("ping a running etcd");
        let kept = room("kept", 1);
        let doomed = room("doomed", 1);
        create(&s, &kept).await;
        create(&s, &doomed).await;
        let lease = s.register_node(&node(1), LONG_TTL).await.expect("register");
        let (mirror, seen) = synced_mirror(&s).await;

        etcd.stop().await;
        let bound = op_timeout + Duration::from_secs(1);
        let started = Instant::now();
        match s.ping().await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("ping with etcd down: {other:?}"),
        }
        assert!(
            started.elapsed() <= bound,
            "ping took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        match s.create_room(&room("during", 1)).await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("create_room with etcd down: {other:?}"),
        }
        assert!(
            started.elapsed() <= bound,
            "create_room took {:?}",
            started.elapsed()
        );
        // A node must be able to tell "cannot reach etcd" from "lease lost".
        match s.renew(lease).await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("renew with etcd down: {other:?}"),
        }
        // The mirror answers from memory meanwhile.
        assert_eq!(mirror.room(&rid("kept")), Some(kept.clone()));
        assert!(mirror.is_synced());

        etcd.restart().await;
        eventually(
            SETTLE,
            "the store answers again after restart",
            async || s.ping().await.is_ok(),
        )
        .await;
        assert_eq!(s.room(&rid("during")).await.expect("read"), None);
        // An outage shorter than the TTL costs no registration.
        s.renew(lease).await.expect("renew after the outage");
        assert_eq!(node_ids(&s).await, vec![iid(1)]);

        // Changes after the restart, from another connection, reach the
        // mirror whether through the old watch's replacement or its snapshot.
        let writer = etcd.store(PREFIX).await;
        let fresh = room("fresh", 2);
        create(&writer, &fresh).await;
        assert!(writer.delete_room(&rid("doomed")).await.expect("delete"));
        eventually(
            SETTLE,
            "the mirror resynchronises after the outage",
            async || mirror.room(&rid("fresh")).is_some() && mirror.room(&rid("doomed")).is_none(),
        )
        .await;
        assert_eq!(mirror.room(&rid("fresh")), Some(fresh.clone()));
        assert_eq!(mirror.room(&rid("kept")), Some(kept));
        assert_eq!(room_changes(&seen, "fresh"), vec![(None, Some(fresh))]);
        assert_eq!(
            room_changes(&seen, "doomed"),
            vec![(None, Some(doomed.clone())), (Some(doomed), None)]
        );
    }
}
