//! The embedded, in-process backend: etcd's semantics (leases that expire and
//! take their keys, single-step transactions, ordered watches) in a map
//! behind a mutex. It exists so that `router up` runs a whole cluster in one
//! process; it is never shared between processes or hosts.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    Cmp, Kv, KvEvent, LeaseId, Op, PROGRESS_INTERVAL, Page, Swap, WATCH_BUFFER, Watch, WatchMsg,
};
use crate::{Result, StoreError};

/// How often expired leases are swept (their keys deleted and watchers told).
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// The in-process store. Clones share one map.
#[derive(Clone, Default)]
pub struct MemoryKv {
    shared: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Incremented by every change, like etcd's revision.
    revision: i64,
    kv: BTreeMap<String, Entry>,
    leases: HashMap<i64, Lease>,
    next_lease: i64,
    watchers: Vec<Watcher>,
    /// The latest changes, so a watch can resume from a recent revision;
    /// older revisions count as compacted.
    history: VecDeque<KvEvent>,
    /// Inside a transaction: the one revision all its writes share, as in
    /// etcd.
    txn_revision: Option<i64>,
}

/// Changes kept for resuming watches.
const HISTORY: usize = WATCH_BUFFER;

struct Entry {
    value: Vec<u8>,
    lease: Option<i64>,
}

struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: HashSet<String>,
}

struct Watcher {
    prefix: String,
    tx: mpsc::Sender<WatchMsg>,
}

impl MemoryKv {
    /// A new, empty store. Must be called inside a tokio runtime: it starts
    /// the task that expires leases, which ends when the last clone drops.
    pub fn new() -> Self {
        let kv = Self::default();
        tokio::spawn(sweep(Arc::downgrade(&kv.shared)));
        kv
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Tells a watcher the current revision every [`PROGRESS_INTERVAL`], as
/// etcd answers progress requests, until it goes away.
async fn report_progress(shared: Weak<Mutex<State>>, tx: mpsc::Sender<WatchMsg>) {
    let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = tx.closed() => return,
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let revision = shared.lock().unwrap_or_else(|p| p.into_inner()).revision;
        // Sent outside the lock: a full channel drops the watcher anyway.
        if tx.try_send(WatchMsg::Progress(revision)).is_err() && tx.is_closed() {
            return;
        }
    }
}

async fn sweep(shared: Weak<Mutex<State>>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let expired: Vec<i64> = state
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            state.end_lease(id);
        }
    }
}

impl State {
    fn notify(&mut self, event: KvEvent) {
        let key = event.key();
        // A watcher that cannot keep up is dropped; its consumer sees the
        // channel close and resumes, as with a broken etcd watch.
        self.watchers.retain(|w| {
            !key.starts_with(&w.prefix) || w.tx.try_send(WatchMsg::Event(event.clone())).is_ok()
        });
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(event);
    }

    /// Whether every condition holds.
    fn holds(&self, cmp: &Cmp) -> bool {
        match cmp {
            Cmp::Equals(k, v) => self.kv.get(k).is_some_and(|e| &e.value == v),
            Cmp::Absent(k) => !self.kv.contains_key(k),
        }
    }

    fn live_lease(&self, lease: Option<LeaseId>) -> Result<Option<i64>> {
        match lease {
            None => Ok(None),
            Some(LeaseId(id)) => match self.leases.get(&id) {
                Some(l) if l.deadline > Instant::now() => Ok(Some(id)),
                _ => Err(StoreError::LeaseExpired),
            },
        }
    }

    fn write(&mut self, key: &str, value: Vec<u8>, lease: Option<i64>) {
        if let Some(old) = self.kv.get(key).and_then(|e| e.lease)
            && let Some(l) = self.leases.get_mut(&old)
        {
            l.keys.remove(key);
        }
        if let Some(id) = lease
            && let Some(l) = self.leases.get_mut(&id)
        {
            l.keys.insert(key.to_owned());
        }
        self.kv.insert(
            key.to_owned(),
            Entry {
                value: value.clone(),
                lease,
            },
        );
        let revision = self.next_revision();
        self.notify(KvEvent::Put {
            key: key.to_owned(),
            value,
            revision,
        });
    }

    fn remove(&mut self, key: &str) -> bool {
        let Some(entry) = self.kv.remove(key) else {
            return false;
        };
        if let Some(l) = entry.lease.and_then(|id| self.leases.get_mut(&id)) {
            l.keys.remove(key);
        }
        let revision = self.next_revision();
        self.notify(KvEvent::Delete {
            key: key.to_owned(),
            revision,
        });
        true
    }

    /// The revision of a write: a new one, or the transaction's.
    fn next_revision(&mut self) -> i64 {
        match self.txn_revision {
            Some(r) => {
                self.revision = r;
                r
            }
            None => {
                self.revision += 1;
                self.revision
            }
        }
    }

    fn end_lease(&mut self, id: i64) {
        if let Some(lease) = self.leases.remove(&id) {
            for key in lease.keys {
                self.remove(&key);
            }
        }
    }
}

impl Kv for MemoryKv {
    async fn ping(&self) -> Result<i64> {
        Ok(self.lock().revision)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().kv.get(key).map(|e| e.value.clone()))
    }

    async fn range_at(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> Result<Page> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let state = self.lock();
        // No older versions are kept: a past revision is compacted.
        if revision.is_some_and(|r| r != state.revision) {
            return Err(StoreError::Compacted);
        }
        let start = match after {
            Some(a) if a >= prefix => Excluded(a.to_owned()),
            _ => Included(prefix.to_owned()),
        };
        let mut keys = state
            .kv
            .range((start, Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix));
        let pairs: Vec<_> = keys
            .by_ref()
            .take(limit)
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect();
        let rest = keys.count() as u64;
        Ok(Page {
            more: rest > 0,
            count: pairs.len() as u64 + rest,
            pairs,
            revision: state.revision,
        })
    }

    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Option<Vec<u8>>> {
        let mut state = self.lock();
        if let Some(existing) = state.kv.get(key) {
            return Ok(Some(existing.value.clone()));
        }
        let lease = state.live_lease(lease)?;
        state.write(key, value, lease);
        Ok(None)
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<()> {
        let mut state = self.lock();
        let lease = state.live_lease(lease)?;
        state.write(key, value, lease);
        Ok(())
    }

    async fn swap(&self, key: &str, expected: &[u8], value: Vec<u8>) -> Result<Swap> {
        let mut state = self.lock();
        let (current, lease) = match state.kv.get(key) {
            Some(e) => (Some(e.value.clone()), e.lease),
            None => (None, None),
        };
        if current.as_deref() != Some(expected) {
            return Ok(Swap::Changed(current));
        }
        state.write(key, value, lease);
        Ok(Swap::Done)
    }

    async fn txn(&self, when: Vec<Cmp>, then: Vec<Op>) -> Result<bool> {
        let mut state = self.lock();
        if !when.iter().all(|c| state.holds(c)) {
            return Ok(false);
        }
        state.txn_revision = Some(state.revision + 1);
        for op in then {
            match op {
                Op::Put(k, v) => state.write(&k, v, None),
                Op::Delete(k) => {
                    state.remove(&k);
                }
            }
        }
        state.txn_revision = None;
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.lock().remove(key))
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId> {
        let mut state = self.lock();
        state.next_lease += 1;
        let id = state.next_lease;
        let deadline = Instant::now() + ttl;
        state.leases.insert(
            id,
            Lease {
                ttl,
                deadline,
                keys: HashSet::new(),
            },
        );
        Ok(LeaseId(id))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        let mut state = self.lock();
        let now = Instant::now();
        match state.leases.get_mut(&lease.0) {
            Some(l) if l.deadline > now => {
                l.deadline = now + l.ttl;
                Ok(())
            }
            Some(_) => {
                state.end_lease(lease.0);
                Err(StoreError::LeaseExpired)
            }
            None => Err(StoreError::LeaseExpired),
        }
    }

    async fn revoke(&self, lease: LeaseId) -> Result<()> {
        self.lock().end_lease(lease.0);
        Ok(())
    }

    async fn watch(&self, prefix: &str, revision: i64) -> Result<Watch> {
        let mut state = self.lock();
        let kept_from = state
            .history
            .front()
            .map_or(state.revision + 1, KvEvent::revision);
        if revision + 1 < kept_from && revision < state.revision {
            return Err(StoreError::Compacted);
        }
        let (tx, events) = mpsc::channel(WATCH_BUFFER);
        for ev in state.history.iter().filter(|e| e.revision() > revision) {
            if ev.key().starts_with(prefix) && tx.try_send(WatchMsg::Event(ev.clone())).is_err() {
                return Err(StoreError::Compacted);
            }
        }
        state.watchers.push(Watcher {
            prefix: prefix.to_owned(),
            tx: tx.clone(),
        });
        drop(state);
        tokio::spawn(report_progress(Arc::downgrade(&self.shared), tx));
        Ok(events)
    }

    fn last_write(&self) -> i64 {
        // One map for every clone: its revision is at least every write
        // made through any of them.
        self.lock().revision
    }
}
