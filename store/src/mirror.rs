//! [`Mirror`]: every node and room record of the cluster in memory, kept
//! current by a store watch, so routing decisions never wait on etcd.
//!
//! Rooms sit in a hash set of records found by id, with their ids in order
//! beside it, behind a std `RwLock` (held only for a lookup, never across
//! `.await`); a lookup returns a copy of the record, which costs no
//! allocation (see [`RoomId`]). The node set with its placement table is an
//! immutable snapshot swapped whole on every node change, so readers never
//! lock it. When the watch breaks, the mirror keeps answering from what it
//! has and takes a fresh snapshot as soon as the store is back.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use proto::placement::Placement;
use proto::record::{NodeRecord, RoomRecord};
use proto::{InstanceId, RoomId};
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::kv::KvEvent;
use crate::store::Record;
use crate::{Result, Store};

/// First and longest pause between attempts to re-establish the watch.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// One change seen by the mirror, with the record before and after.
#[derive(Debug, Clone)]
pub enum Change {
    /// A room was created, moved or deleted.
    Room {
        /// The room.
        id: RoomId,
        /// Its record before, if it existed.
        before: Option<RoomRecord>,
        /// Its record now, if it exists.
        after: Option<RoomRecord>,
    },
    /// A node registered, changed state or disappeared.
    Node {
        /// The node.
        id: InstanceId,
        /// Its record before, if it was registered.
        before: Option<NodeRecord>,
        /// Its record now, if it is registered.
        after: Option<NodeRecord>,
    },
}

/// Called for every change, on the mirror's task: must not block.
pub type Hook = Arc<dyn Fn(&Change) + Send + Sync>;

/// The live nodes and the placement table over the active ones.
pub struct NodeSet {
    /// Live nodes by id.
    pub nodes: BTreeMap<InstanceId, NodeRecord>,
    /// HRW over the `active` nodes.
    pub placement: Placement,
}

impl NodeSet {
    fn new(nodes: BTreeMap<InstanceId, NodeRecord>) -> Self {
        let placement = Placement::active(nodes.values());
        Self { nodes, placement }
    }
}

/// Rooms by id (a hash set of records looked up by id: lookups are the hot
/// path), their ids in order (for pages and scans), and counts per node.
#[derive(Default)]
struct Rooms {
    by_id: HashSet<ById>,
    order: BTreeSet<RoomId>,
    per_node: HashMap<InstanceId, u64>,
}

/// A record in [`Rooms::by_id`], hashed and compared by its id alone, so the
/// set finds it by `RoomId` without a second copy of the id as a map key.
struct ById(RoomRecord);

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

impl Borrow<RoomId> for ById {
    fn borrow(&self) -> &RoomId {
        &self.0.id
    }
}

impl Rooms {
    fn get(&self, id: &RoomId) -> Option<&RoomRecord> {
        self.by_id.get(id).map(|r| &r.0)
    }

    fn insert(&mut self, rec: RoomRecord) -> Option<RoomRecord> {
        *self.per_node.entry(rec.node).or_default() += 1;
        let id = rec.id.clone();
        let before = self.by_id.replace(ById(rec)).map(|b| b.0);
        match &before {
            Some(b) => self.uncount(b.node),
            None => {
                self.order.insert(id);
            }
        }
        before
    }

    fn remove(&mut self, id: &RoomId) -> Option<RoomRecord> {
        let before = self.by_id.take(id).map(|b| b.0);
        if let Some(b) = &before {
            self.order.remove(id);
            self.uncount(b.node);
        }
        before
    }

    /// Records in id order from `start`.
    fn ordered(&self, start: std::ops::Bound<RoomId>) -> impl Iterator<Item = &RoomRecord> {
        self.order
            .range((start, std::ops::Bound::Unbounded))
            .filter_map(|id| self.get(id))
    }

    fn uncount(&mut self, node: InstanceId) {
        if let Some(n) = self.per_node.get_mut(&node) {
            *n -= 1;
            if *n == 0 {
                self.per_node.remove(&node);
            }
        }
    }
}

struct Shared {
    store: Store,
    rooms: RwLock<Rooms>,
    nodes: ArcSwap<NodeSet>,
    synced: AtomicBool,
    synced_notify: Notify,
    /// The store revision everything up to which is applied.
    applied: AtomicI64,
    applied_notify: Notify,
    hook: Option<Hook>,
}

/// A watched copy of the store. Clones share it; the watch task stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct Mirror {
    shared: Arc<Shared>,
    _stop: Arc<DropGuard>,
}

impl Mirror {
    /// Starts mirroring `store`; `hook` sees every change (including those
    /// found by a resynchronisation after a broken watch).
    pub fn start(store: Store, hook: Option<Hook>) -> Self {
        let shared = Arc::new(Shared {
            store,
            rooms: RwLock::default(),
            nodes: ArcSwap::from_pointee(NodeSet::new(BTreeMap::new())),
            synced: AtomicBool::new(false),
            synced_notify: Notify::new(),
            applied: AtomicI64::new(0),
            applied_notify: Notify::new(),
            hook,
        });
        let stop = CancellationToken::new();
        tokio::spawn(run(shared.clone(), stop.clone()));
        Self {
            shared,
            _stop: Arc::new(stop.drop_guard()),
        }
    }

    /// The store this mirrors.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Whether a first snapshot has been loaded.
    pub fn is_synced(&self) -> bool {
        self.shared.synced.load(Ordering::Acquire)
    }

    /// Waits until the first snapshot is loaded, at most `limit`.
    pub async fn wait_synced(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.shared.synced_notify.notified();
                if self.is_synced() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// Waits (at most `limit`) until the mirror reflects every write this
    /// process made through its store, so a client reads its own writes: a
    /// room just created is found, one just deleted is gone. Returns whether
    /// it caught up; if not, answers are merely a moment stale.
    pub async fn catch_up(&self, limit: Duration) -> bool {
        self.reach(self.shared.store.last_write(), limit).await
    }

    /// Waits (at most `limit`) until the mirror reflects every change made
    /// anywhere up to now, e.g. by nodes during a rebalance this process
    /// asked for. Costs one store round trip.
    pub async fn sync_with_store(&self, limit: Duration) -> bool {
        match self.shared.store.revision().await {
            Ok(revision) => self.reach(revision, limit).await,
            Err(_) => false,
        }
    }

    async fn reach(&self, target: i64, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.shared.applied_notify.notified();
                if self.shared.applied.load(Ordering::Acquire) >= target {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// The room's record as last seen.
    pub fn room(&self, id: &RoomId) -> Option<RoomRecord> {
        self.read_rooms().get(id).cloned()
    }

    /// The room's record: from memory, or read through to the store when
    /// memory has none (a room created a moment ago that the watch has not
    /// delivered yet).
    pub async fn lookup(&self, id: &RoomId) -> Result<Option<RoomRecord>> {
        match self.room(id) {
            Some(rec) => Ok(Some(rec)),
            None => self.shared.store.room(id).await,
        }
    }

    /// Up to `limit` rooms with id > `after`, optionally only `node`'s.
    pub fn rooms_page(
        &self,
        node: Option<InstanceId>,
        after: Option<&RoomId>,
        limit: usize,
    ) -> Vec<RoomRecord> {
        use std::ops::Bound::{Excluded, Unbounded};
        let rooms = self.read_rooms();
        let start = after.map_or(Unbounded, |a| Excluded(a.clone()));
        rooms
            .ordered(start)
            .filter(|r| node.is_none_or(|n| r.node == n))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Up to `limit` rooms that `pred` picks, in id order (no copies of the
    /// others).
    pub fn rooms_where(
        &self,
        limit: usize,
        mut pred: impl FnMut(&RoomRecord) -> bool,
    ) -> Vec<RoomRecord> {
        self.read_rooms()
            .ordered(std::ops::Bound::Unbounded)
            .filter(|r| pred(r))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Rooms assigned to each node.
    pub fn room_counts(&self) -> HashMap<InstanceId, u64> {
        self.read_rooms().per_node.clone()
    }

    /// Rooms assigned to `node`.
    pub fn rooms_of(&self, node: InstanceId) -> u64 {
        self.read_rooms().per_node.get(&node).copied().unwrap_or(0)
    }

    /// The live nodes and placement, as one consistent snapshot.
    pub fn nodes(&self) -> Arc<NodeSet> {
        self.shared.nodes.load_full()
    }

    fn read_rooms(&self) -> std::sync::RwLockReadGuard<'_, Rooms> {
        self.shared.rooms.read().unwrap_or_else(|p| p.into_inner())
    }
}

async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut pause = RETRY_MIN;
    loop {
        let attempt = async {
            let mut watch = shared.store.watch().await?;
            shared.load(std::mem::take(&mut watch.snapshot), watch.revision)?;
            Ok::<_, crate::StoreError>(watch)
        };
        let result = tokio::select! {
            r = attempt => r,
            () = stop.cancelled() => return,
        };
        match result {
            Ok(mut watch) => {
                pause = RETRY_MIN;
                loop {
                    let ev = tokio::select! {
                        ev = watch.events.recv() => ev,
                        () = stop.cancelled() => return,
                    };
                    let Some(ev) = ev else { break };
                    let revision = ev.revision();
                    if let Err(e) = shared.apply(ev) {
                        tracing::warn!(error = %e, "ignoring unreadable record");
                    }
                    shared.applied_up_to(revision);
                }
                tracing::warn!("store watch ended; resynchronising");
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch the store; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => return,
        }
        pause = (pause * 2).min(RETRY_MAX);
    }
}

impl Shared {
    fn write_rooms(&self) -> std::sync::RwLockWriteGuard<'_, Rooms> {
        self.rooms.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces everything with a fresh snapshot, reporting the differences.
    fn applied_up_to(&self, revision: i64) {
        self.applied.fetch_max(revision, Ordering::AcqRel);
        self.applied_notify.notify_waiters();
    }

    fn load(&self, snapshot: Vec<(String, Vec<u8>)>, revision: i64) -> Result<()> {
        let mut nodes = BTreeMap::new();
        let mut rooms = Rooms::default();
        for (k, v) in &snapshot {
            match self.store.parse(k, v) {
                Ok(Some(Record::Node(n))) => {
                    nodes.insert(n.id, n);
                }
                Ok(Some(Record::Room(r))) => {
                    rooms.insert(r);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "ignoring unreadable record"),
            }
        }
        let mut changes = Vec::new();
        let old_nodes = self.nodes.load_full();
        diff(
            &old_nodes.nodes,
            &nodes,
            &mut changes,
            |id, before, after| Change::Node { id, before, after },
        );
        self.nodes.store(Arc::new(NodeSet::new(nodes)));
        {
            let mut current = self.write_rooms();
            diff(
                &current.by_id,
                &rooms.by_id,
                &mut changes,
                |id, before, after| Change::Room { id, before, after },
            );
            *current = rooms;
        }
        // The hook hears of the changes before anyone waiting for the
        // snapshot is let go.
        for c in &changes {
            self.tell(c);
        }
        self.synced.store(true, Ordering::Release);
        self.synced_notify.notify_waiters();
        self.applied_up_to(revision);
        Ok(())
    }

    fn apply(&self, ev: KvEvent) -> Result<()> {
        let change = match ev {
            KvEvent::Put {
                key: k, value: v, ..
            } => match self.store.parse(&k, &v)? {
                Some(Record::Node(n)) => {
                    let id = n.id;
                    let before = self.update_nodes(|nodes| nodes.insert(id, n.clone()));
                    Change::Node {
                        id,
                        before,
                        after: Some(n),
                    }
                }
                Some(Record::Room(r)) => {
                    let before = self.write_rooms().insert(r.clone());
                    Change::Room {
                        id: r.id.clone(),
                        before,
                        after: Some(r),
                    }
                }
                None => return Ok(()),
            },
            KvEvent::Delete { key: k, .. } => match self.store.keys().parse(&k) {
                Some(proto::keys::Key::Node(id)) => {
                    let before = self.update_nodes(|nodes| nodes.remove(&id));
                    Change::Node {
                        id,
                        before,
                        after: None,
                    }
                }
                Some(proto::keys::Key::Room(id)) => {
                    let before = self.write_rooms().remove(&id);
                    Change::Room {
                        id,
                        before,
                        after: None,
                    }
                }
                None => return Ok(()),
            },
        };
        self.tell(&change);
        Ok(())
    }

    fn update_nodes(
        &self,
        f: impl FnOnce(&mut BTreeMap<InstanceId, NodeRecord>) -> Option<NodeRecord>,
    ) -> Option<NodeRecord> {
        let mut nodes = self.nodes.load().nodes.clone();
        let before = f(&mut nodes);
        self.nodes.store(Arc::new(NodeSet::new(nodes)));
        before
    }

    fn tell(&self, change: &Change) {
        if let Some(hook) = &self.hook {
            hook(change);
        }
    }
}

/// The two kinds of map the mirror compares.
trait Entries<K: 'static, V: 'static> {
    fn entries(&self) -> impl Iterator<Item = (&K, &V)>;
    fn lookup(&self, key: &K) -> Option<&V>;
}

impl<K: Ord + 'static, V: 'static> Entries<K, V> for BTreeMap<K, V> {
    fn entries(&self) -> impl Iterator<Item = (&K, &V)> {
        self.iter()
    }
    fn lookup(&self, key: &K) -> Option<&V> {
        self.get(key)
    }
}

impl Entries<RoomId, RoomRecord> for HashSet<ById> {
    fn entries(&self) -> impl Iterator<Item = (&RoomId, &RoomRecord)> {
        self.iter().map(|r| (&r.0.id, &r.0))
    }
    fn lookup(&self, key: &RoomId) -> Option<&RoomRecord> {
        self.get(key).map(|r| &r.0)
    }
}

/// Every difference between two maps, as changes.
fn diff<K: Clone + 'static, V: Clone + PartialEq + 'static, M: Entries<K, V>>(
    old: &M,
    new: &M,
    out: &mut Vec<Change>,
    make: impl Fn(K, Option<V>, Option<V>) -> Change,
) {
    for (k, before) in old.entries() {
        match new.lookup(k) {
            Some(after) if after == before => {}
            after => out.push(make(k.clone(), Some(before.clone()), after.cloned())),
        }
    }
    for (k, after) in new.entries() {
        if old.lookup(k).is_none() {
            out.push(make(k.clone(), None, Some(after.clone())));
        }
    }
}
