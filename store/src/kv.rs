//! The key-value contract the store is written against. Both backends give
//! the same answers to the same calls; `tests/tests/store.rs` runs one suite
//! against each.
//!
//! Semantics, as etcd v3 defines them: keys are strings, values bytes; a
//! lease expires `ttl` after its last renewal and takes its keys with it;
//! `create`, `swap` and `txn` are single transactions; a prefix is read
//! whole in pages at one revision ([`Kv::range_at`]), so no single answer
//! grows with the table, and [`Kv::watch`] then delivers every change after
//! that revision, in order. A watch that breaks (store down, leader change,
//! consumer too slow) closes its channel, and the consumer resumes from the
//! last revision it applied; a watch whose start was compacted away says
//! [`WatchMsg::Compacted`], and the consumer reads the prefix again.

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

/// How often a quiet watch asks the store to confirm how far it has got
/// (etcd's progress request), so a consumer can tell a quiet prefix from a
/// stalled watch.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// What a watch delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMsg {
    /// A change, in revision order.
    Event(KvEvent),
    /// Every change up to this revision has been delivered.
    Progress(i64),
    /// The revisions after the start are compacted away: read the prefix
    /// again. The channel closes after this.
    Compacted,
}

/// A prefix watch: every change after a revision; closes when it breaks.
pub type Watch = mpsc::Receiver<WatchMsg>;

/// One page of a consistent read of a prefix.
#[derive(Debug, Default)]
pub struct Page {
    /// Pairs in key order.
    pub pairs: Vec<(String, Vec<u8>)>,
    /// The revision the page was read at (the store's current one when none
    /// was asked for).
    pub revision: i64,
    /// Whether more keys follow the last one.
    pub more: bool,
    /// Keys in the whole range read (from its start, not only this page).
    pub count: u64,
}

/// A condition of a [`Kv::txn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmp {
    /// The key holds exactly these bytes.
    Equals(String, Vec<u8>),
    /// The key does not exist.
    Absent(String),
}

/// A write of a [`Kv::txn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Writes the value (without a lease).
    Put(String, Vec<u8>),
    /// Deletes the key if it exists.
    Delete(String),
}

/// Most conditions, and most writes, in one transaction: etcd's default
/// `--max-txn-ops`, so the product runs on an etcd left at its defaults.
pub const MAX_TXN_OPS: usize = 128;

/// What the store needs from a key-value backend.
pub trait Kv: Clone + Send + Sync + 'static {
    /// Checks that the backend answers; its current revision.
    fn ping(&self) -> impl Future<Output = Result<i64>> + Send;
    /// The value at `key`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Up to `limit` pairs under `prefix` with key > `after`, in key order,
    /// as of `revision` (the current one if `None`); a revision that is
    /// compacted away is [`crate::StoreError::Compacted`].
    fn range_at(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> impl Future<Output = Result<Page>> + Send;
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
    /// Applies every `then` if every `when` holds, all in one step; whether
    /// it did. At most [`MAX_TXN_OPS`] of each.
    fn txn(&self, when: Vec<Cmp>, then: Vec<Op>) -> impl Future<Output = Result<bool>> + Send;
    /// Deletes `key`; whether it existed.
    fn delete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;
    /// A new lease of `ttl`.
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<LeaseId>> + Send;
    /// Renews a lease for another full TTL; [`crate::StoreError::LeaseExpired`]
    /// if it is gone.
    fn keep_alive(&self, lease: LeaseId) -> impl Future<Output = Result<()>> + Send;
    /// Ends a lease now, deleting its keys.
    fn revoke(&self, lease: LeaseId) -> impl Future<Output = Result<()>> + Send;
    /// Watches `prefix` for every change after `revision`, with a
    /// [`WatchMsg::Progress`] at least every [`PROGRESS_INTERVAL`] while it
    /// is quiet.
    fn watch(&self, prefix: &str, revision: i64) -> impl Future<Output = Result<Watch>> + Send;
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

impl Backend {
    /// The same store over a connection of its own (see
    /// [`etcd::EtcdKv::reconnect`]); the in-process store is shared.
    pub async fn reconnect(&self) -> Result<Self> {
        Ok(match self {
            Self::Etcd(kv) => Self::Etcd(Box::new(kv.reconnect().await?)),
            Self::Memory(kv) => Self::Memory(kv.clone()),
        })
    }
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
    async fn range_at(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> Result<Page> {
        dispatch!(self, kv => kv.range_at(prefix, after, limit, revision))
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
    async fn txn(&self, when: Vec<Cmp>, then: Vec<Op>) -> Result<bool> {
        dispatch!(self, kv => kv.txn(when, then))
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
    async fn watch(&self, prefix: &str, revision: i64) -> Result<Watch> {
        dispatch!(self, kv => kv.watch(prefix, revision))
    }
    fn last_write(&self) -> i64 {
        match self {
            Backend::Etcd(kv) => kv.last_write(),
            Backend::Memory(kv) => kv.last_write(),
        }
    }
}
