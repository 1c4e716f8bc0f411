//! The key-value contract the store is written against. Both backends give
//! the same answers to the same calls; `tests/tests/store.rs` runs one suite
//! against each.
//!
//! Semantics, as etcd v3 defines them: keys are strings, values bytes; a
//! lease expires `ttl` after its last renewal and takes its keys with it;
//! `create` and `swap` are single transactions; a [`Watch`] starts with a
//! consistent snapshot of a prefix and then delivers every later change in
//! order. A watch that breaks (store down, events compacted, consumer too
//! slow) closes its channel, and the consumer takes a new one.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::Result;

pub mod etcd;
pub mod memory;

/// A lease handle, as etcd numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(pub i64);

/// One change seen by a watch, with the store revision that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvEvent {
    /// The key now holds this value.
    Put {
        /// The key.
        key: String,
        /// Its new value.
        value: Vec<u8>,
        /// The revision of the write.
        revision: i64,
    },
    /// The key is gone (deleted or its lease expired).
    Delete {
        /// The key.
        key: String,
        /// The revision of the deletion.
        revision: i64,
    },
}

impl KvEvent {
    /// The key changed.
    pub fn key(&self) -> &str {
        match self {
            Self::Put { key, .. } | Self::Delete { key, .. } => key,
        }
    }

    /// The revision of the change.
    pub fn revision(&self) -> i64 {
        match self {
            Self::Put { revision, .. } | Self::Delete { revision, .. } => *revision,
        }
    }
}

/// The outcome of a compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The value was the expected one and is now replaced.
    Done,
    /// The value was something else (or absent): nothing changed.
    Changed(Option<Vec<u8>>),
}

/// How many watch events may wait for a slow consumer before the watch is
/// dropped and the consumer resynchronises from a fresh snapshot.
pub const WATCH_BUFFER: usize = 4096;

/// A prefix watch: a snapshot, then every change after it.
#[derive(Debug)]
pub struct Watch {
    /// Every key under the prefix at the start, in key order.
    pub snapshot: Vec<(String, Vec<u8>)>,
    /// The store revision of the snapshot.
    pub revision: i64,
    /// Changes after the snapshot, in order; closes when the watch breaks.
    pub events: mpsc::Receiver<KvEvent>,
}

/// What the store needs from a key-value backend.
pub trait Kv: Clone + Send + Sync + 'static {
    /// Checks that the backend answers; its current revision.
    fn ping(&self) -> impl Future<Output = Result<i64>> + Send;
    /// The value at `key`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Up to `limit` pairs under `prefix` with key > `after`, in key order.
    fn range(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>>> + Send;
    /// Writes `value` only if `key` is absent; otherwise returns what is there.
    fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Writes unconditionally.
    fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Replaces the value only if it is still exactly `expected`.
    fn swap(
        &self,
        key: &str,
        expected: &[u8],
        value: Vec<u8>,
    ) -> impl Future<Output = Result<Swap>> + Send;
    /// Deletes `key`; whether it existed.
    fn delete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;
    /// A new lease of `ttl`.
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<LeaseId>> + Send;
    /// Renews a lease for another full TTL; [`crate::StoreError::LeaseExpired`]
    /// if it is gone.
    fn keep_alive(&self, lease: LeaseId) -> impl Future<Output = Result<()>> + Send;
    /// Ends a lease now, deleting its keys.
    fn revoke(&self, lease: LeaseId) -> impl Future<Output = Result<()>> + Send;
    /// Watches `prefix`.
    fn watch(&self, prefix: &str) -> impl Future<Output = Result<Watch>> + Send;
    /// The revision of the latest write made through this handle (or its
    /// clones): a reader waits for its watch to reach it to read its own
    /// writes.
    fn last_write(&self) -> i64;
}

/// The backend chosen at start-up: etcd for every real deployment, memory
/// for the single-process `router up`.
#[derive(Clone)]
pub enum Backend {
    /// A real etcd v3 cluster.
    Etcd(Box<etcd::EtcdKv>),
    /// The in-process store.
    Memory(memory::MemoryKv),
}

macro_rules! dispatch {
    ($self:ident, $kv:ident => $call:expr) => {
        match $self {
            Backend::Etcd($kv) => $call.await,
            Backend::Memory($kv) => $call.await,
        }
    };
}

impl Kv for Backend {
    async fn ping(&self) -> Result<i64> {
        dispatch!(self, kv => kv.ping())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        dispatch!(self, kv => kv.get(key))
    }
    async fn range(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        dispatch!(self, kv => kv.range(prefix, after, limit))
    }
    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Option<Vec<u8>>> {
        dispatch!(self, kv => kv.create(key, value, lease))
    }
    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<()> {
        dispatch!(self, kv => kv.put(key, value, lease))
    }
    async fn swap(&self, key: &str, expected: &[u8], value: Vec<u8>) -> Result<Swap> {
        dispatch!(self, kv => kv.swap(key, expected, value))
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        dispatch!(self, kv => kv.delete(key))
    }
    async fn grant(&self, ttl: Duration) -> Result<LeaseId> {
        dispatch!(self, kv => kv.grant(ttl))
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        dispatch!(self, kv => kv.keep_alive(lease))
    }
    async fn revoke(&self, lease: LeaseId) -> Result<()> {
        dispatch!(self, kv => kv.revoke(lease))
    }
    async fn watch(&self, prefix: &str) -> Result<Watch> {
        dispatch!(self, kv => kv.watch(prefix))
    }
    fn last_write(&self) -> i64 {
        match self {
            Backend::Etcd(kv) => kv.last_write(),
            Backend::Memory(kv) => kv.last_write(),
        }
    }
}
