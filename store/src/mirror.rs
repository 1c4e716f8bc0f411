//! [`Mirror`]: the records a process needs, in memory, kept current by store
//! watches, so routing decisions never wait on etcd.
//!
//! Two feeds, each loaded in pages and then watched (see [`follow`]): the
//! node registry, and the rooms in [`Scope`]: every room of the cluster for
//! a router, only its own (from the owner index) for a node. Rooms sit in a
//! compact [`table::RoomTable`] behind a std `RwLock` (held only for a
//! lookup, never across `.await`). The node set with its placement table is
//! an immutable snapshot swapped whole on every node change, so readers
//! never lock it. When a watch breaks, the mirror keeps answering from what
//! it has, resumes where it stopped, and says it is stale
//! ([`Mirror::staleness`]) while it has not heard from the store for
//! [`STALE_AFTER`].
//!
//! Layout: [`table`] (the room table), [`follow`] (one feed's load, watch
//! and resume loop).

mod follow;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use proto::keys::Key;
use proto::placement::Placement;
use proto::record::{NodeRecord, RoomRecord};
use proto::{InstanceId, RoomId};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::kv::{KvEvent, PROGRESS_INTERVAL};
use crate::store::Record;
use crate::{Result, Store, StoreError};
use table::RoomTable;

/// A view not confirmed by the store for this long is stale: a live watch
/// hears at least a progress report every [`PROGRESS_INTERVAL`].
pub const STALE_AFTER: Duration = Duration::from_secs(3 * PROGRESS_INTERVAL.as_secs());

/// One change seen by the mirror, with the record before and after.
#[derive(Debug, Clone)]
pub enum Change {
    /// A room was created, moved or deleted (in a node's scope: became its
    /// own, or stopped being its own).
    Room {
        /// The room.
        id: RoomId,
        /// Its record before, if it was in scope.
        before: Option<RoomRecord>,
        /// Its record now, if it is in scope.
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

/// Which rooms a mirror holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every room of the cluster (a router).
    Cluster,
    /// The rooms this node owns (a room node).
    Node(InstanceId),
    /// No rooms, only the node registry (tools that list nodes).
    Registry,
}

impl Scope {
    /// The feeds this scope follows.
    fn feeds(self) -> &'static [Feed] {
        match self {
            Self::Registry => &[Feed::Nodes],
            _ => &[Feed::Nodes, Feed::Rooms],
        }
    }
}

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

/// The two things a mirror follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    Nodes = 0,
    Rooms = 1,
}

impl Feed {
    fn name(self) -> &'static str {
        match self {
            Self::Nodes => "nodes",
            Self::Rooms => "rooms",
        }
    }
}

/// How far one feed has got.
#[derive(Default)]
struct Progress {
    synced: AtomicBool,
    /// The store revision everything up to which is applied.
    applied: AtomicI64,
    /// When the store last confirmed the feed, in ms since the mirror began.
    heard_ms: AtomicU64,
}

struct Shared {
    store: Store,
    scope: Scope,
    rooms: RwLock<RoomTable>,
    nodes: ArcSwap<NodeSet>,
    feeds: [Progress; 2],
    began: Instant,
    changed: Notify,
    hook: Option<Hook>,
}

/// Why a view is not current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    /// The first full read has not finished.
    Loading,
    /// The store has not confirmed the view for [`STALE_AFTER`].
    Stale,
}

impl Staleness {
    /// The error code readiness reports.
    pub fn code(self) -> proto::ErrorCode {
        match self {
            Self::Loading => proto::ErrorCode::StoreViewLoading,
            Self::Stale => proto::ErrorCode::StoreViewStale,
        }
    }
}

/// A watched copy of the store. Clones share it; the watch tasks stop when
/// the last clone is dropped.
#[derive(Clone)]
pub struct Mirror {
    shared: Arc<Shared>,
    _stop: Arc<DropGuard>,
}

impl Mirror {
    /// Starts mirroring `store`'s node registry and the rooms in `scope`;
    /// `hook` sees every change (including those found by a fresh read
    /// after the store's history was compacted).
    pub fn start(store: Store, scope: Scope, hook: Option<Hook>) -> Self {
        let shared = Arc::new(Shared {
            store,
            scope,
            rooms: RwLock::default(),
            nodes: ArcSwap::from_pointee(NodeSet::new(BTreeMap::new())),
            feeds: Default::default(),
            began: Instant::now(),
            changed: Notify::new(),
            hook,
        });
        let stop = CancellationToken::new();
        for &feed in scope.feeds() {
            tokio::spawn(follow::follow(shared.clone(), feed, stop.clone()));
        }
        Self {
            shared,
            _stop: Arc::new(stop.drop_guard()),
        }
    }

    /// The store this mirrors.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Whether every feed has loaded once.
    pub fn is_synced(&self) -> bool {
        self.shared
            .followed()
            .all(|f| f.synced.load(Ordering::Acquire))
    }

    /// Why the view is not current, or `None` when it is.
    pub fn staleness(&self) -> Option<Staleness> {
        if !self.is_synced() {
            return Some(Staleness::Loading);
        }
        (self.age() > STALE_AFTER).then_some(Staleness::Stale)
    }

    /// How long since the store last confirmed the less recent feed.
    pub fn age(&self) -> Duration {
        let now = self.shared.began.elapsed().as_millis() as u64;
        let oldest = self
            .shared
            .followed()
            .map(|f| f.heard_ms.load(Ordering::Acquire))
            .min()
            .unwrap_or(0);
        Duration::from_millis(now.saturating_sub(oldest))
    }

    /// Waits until every feed has loaded, at most `limit`.
    pub async fn wait_synced(&self, limit: Duration) -> bool {
        self.wait(limit, || self.is_synced()).await
    }

    /// Waits (at most `limit`) until the mirror reflects every write this
    /// process made through its store, so a client reads its own writes: a
    /// room just created is found, one just deleted is gone. Returns whether
    /// it caught up; if not, answers are merely a moment stale.
    pub async fn catch_up(&self, limit: Duration) -> bool {
        self.reach(self.shared.store.last_write(), limit).await
    }

    /// Waits (at most `limit`) until the rooms reflect every change made
    /// anywhere up to now, e.g. by nodes during a rebalance this process
    /// asked for. Costs one store round trip (and at most a progress
    /// interval when the rooms are quiet).
    pub async fn sync_with_store(&self, limit: Duration) -> bool {
        match self.shared.store.revision().await {
            Ok(revision) => self.reach(revision, limit).await,
            Err(_) => false,
        }
    }

    async fn reach(&self, target: i64, limit: Duration) -> bool {
        self.wait(limit, || self.shared.applied(Feed::Rooms) >= target)
            .await
    }

    async fn wait(&self, limit: Duration, done: impl Fn() -> bool) -> bool {
        let wait = async {
            loop {
                let notified = self.shared.changed.notified();
                if done() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// The room's record as last seen.
    pub fn room(&self, id: &RoomId) -> Option<RoomRecord> {
        self.shared.read_rooms().get(id)
    }

    /// The room's record: from memory, or read through to the store when
    /// memory has none (a room created a moment ago that the watch has not
    /// delivered yet, or another node's room in a node's scope).
    pub async fn lookup(&self, id: &RoomId) -> Result<Option<RoomRecord>> {
        match self.room(id) {
            Some(rec) => Ok(Some(rec)),
            None => self.shared.store.room(id).await,
        }
    }

    /// Up to `limit` rooms that `pred` picks, in no particular order.
    pub fn rooms_where(
        &self,
        limit: usize,
        mut pred: impl FnMut(&RoomRecord) -> bool,
    ) -> Vec<RoomRecord> {
        self.shared
            .read_rooms()
            .records()
            .filter(|r| pred(r))
            .take(limit)
            .collect()
    }

    /// Rooms held, in all.
    pub fn room_count(&self) -> usize {
        self.shared.read_rooms().len()
    }

    /// Rooms assigned to each node.
    pub fn room_counts(&self) -> HashMap<InstanceId, u64> {
        self.shared.read_rooms().per_node().clone()
    }

    /// Rooms assigned to `node`.
    pub fn rooms_of(&self, node: InstanceId) -> u64 {
        self.shared
            .read_rooms()
            .per_node()
            .get(&node)
            .copied()
            .unwrap_or(0)
    }

    /// The live nodes and placement, as one consistent snapshot.
    pub fn nodes(&self) -> Arc<NodeSet> {
        self.shared.nodes.load_full()
    }
}

impl Shared {
    fn read_rooms(&self) -> std::sync::RwLockReadGuard<'_, RoomTable> {
        self.rooms.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_rooms(&self) -> std::sync::RwLockWriteGuard<'_, RoomTable> {
        self.rooms.write().unwrap_or_else(|p| p.into_inner())
    }

    fn followed(&self) -> impl Iterator<Item = &Progress> {
        self.scope.feeds().iter().map(|&f| &self.feeds[f as usize])
    }

    fn prefix(&self, feed: Feed) -> String {
        let keys = self.store.keys();
        match (feed, self.scope) {
            (Feed::Nodes, _) => keys.nodes(),
            (Feed::Rooms, Scope::Node(id)) => keys.owned_by(id),
            (Feed::Rooms, _) => keys.rooms(),
        }
    }

    fn applied(&self, feed: Feed) -> i64 {
        self.feeds[feed as usize].applied.load(Ordering::Acquire)
    }

    /// The store confirmed `feed` up to `revision`.
    fn reached(&self, feed: Feed, revision: i64) {
        let p = &self.feeds[feed as usize];
        p.applied.fetch_max(revision, Ordering::AcqRel);
        p.heard_ms
            .store(self.began.elapsed().as_millis() as u64, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Reads `feed`'s prefix whole, in pages at one revision, replaces what
    /// is held, and tells the hook every difference. Returns the revision.
    async fn reload(&self, feed: Feed, prefix: &str) -> Result<i64> {
        let mut nodes = BTreeMap::new();
        let mut rooms = RoomTable::default();
        let revision = self
            .store
            .load(prefix, |page| {
                for (k, v) in page {
                    match self.store.parse(&k, &v) {
                        Ok(Some(Record::Node(n))) => {
                            nodes.insert(n.id, n);
                        }
                        Ok(Some(Record::Room(r))) => {
                            rooms.insert(&r);
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "ignoring unreadable record"),
                    }
                }
                Ok::<_, StoreError>(())
            })
            .await?;
        let mut changes = Vec::new();
        match feed {
            Feed::Nodes => {
                let old = self.nodes.load_full();
                for (id, before) in &old.nodes {
                    match nodes.get(id) {
                        Some(after) if after == before => {}
                        after => changes.push(Change::Node {
                            id: *id,
                            before: Some(before.clone()),
                            after: after.cloned(),
                        }),
                    }
                }
                for (id, after) in &nodes {
                    if !old.nodes.contains_key(id) {
                        changes.push(Change::Node {
                            id: *id,
                            before: None,
                            after: Some(after.clone()),
                        });
                    }
                }
                self.nodes.store(Arc::new(NodeSet::new(nodes)));
            }
            Feed::Rooms => {
                let mut current = self.write_rooms();
                // Without a hook nobody needs the differences: a router's
                // table of a million rooms is swapped without comparing.
                if self.hook.is_some() {
                    changes.extend(
                        rooms
                            .diff(&current)
                            .into_iter()
                            .map(|(id, before, after)| Change::Room { id, before, after }),
                    );
                }
                *current = rooms;
            }
        }
        // The hook hears of the changes before anyone waiting for the
        // snapshot is let go.
        for c in &changes {
            self.tell(c);
        }
        self.feeds[feed as usize]
            .synced
            .store(true, Ordering::Release);
        tracing::debug!(feed = feed.name(), revision, "store view loaded");
        self.reached(feed, revision);
        Ok(revision)
    }

    /// Applies one watched change.
    fn apply(&self, feed: Feed, ev: KvEvent) {
        let revision = ev.revision();
        match self.change(ev) {
            Ok(Some(change)) => self.tell(&change),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "ignoring unreadable record"),
        }
        self.reached(feed, revision);
    }

    fn change(&self, ev: KvEvent) -> Result<Option<Change>> {
        Ok(Some(match ev {
            KvEvent::Put { key, value, .. } => match self.store.parse(&key, &value)? {
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
                    let before = self.write_rooms().insert(&r);
                    Change::Room {
                        id: r.id.clone(),
                        before,
                        after: Some(r),
                    }
                }
                None => return Ok(None),
            },
            KvEvent::Delete { key, .. } => match self.store.keys().parse(&key) {
                Some(Key::Node(id)) => {
                    let before = self.update_nodes(|nodes| nodes.remove(&id));
                    Change::Node {
                        id,
                        before,
                        after: None,
                    }
                }
                Some(Key::Room(id) | Key::Owned(_, id)) => {
                    let before = self.write_rooms().remove(&id);
                    Change::Room {
                        id,
                        before,
                        after: None,
                    }
                }
                None => return Ok(None),
            },
        }))
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
