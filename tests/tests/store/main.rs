//! The behavioural suite of [`store::Store`] and [`store::Mirror`], run
//! against both backends: the embedded `MemoryKv` and a real etcd started by
//! the test kit. Each case is written once, generic over the backend, and
//! instantiated per backend by `on_both_backends!`; a few cases that only
//! make sense for etcd (outage, the bytes in etcd) follow at the end.
//!
//! Every etcd case gets its own etcd (it starts in well under a second), so
//! cases are independent and run in parallel.
//!
//! Layout: this file holds the fixture and the helpers; `nodes.rs`,
//! `rooms.rs` and `mirror.rs` the cases on both backends, `etcd_only.rs`
//! the cases for etcd alone.

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
use testkit::ids::{iid, rid};
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
/// `etcd::case`, in the module that invokes it (e.g. `nodes::etcd::case`).
macro_rules! on_both_backends {
    ($($case:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::Fixture::memory()).await;
                }
            )+
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::Fixture::etcd().await).await;
                }
            )+
        }
    };
}

mod etcd_only;
mod mirror;
mod nodes;
mod rooms;

// ---------------------------------------------------------------------------
// Helpers.

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
