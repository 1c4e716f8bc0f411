//! [`Store`]: the typed operations on node registrations and room
//! assignments, written once over any [`Kv`] backend.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::keys::{Key, Keys};
use proto::record::{NodeRecord, RoomRecord};
use proto::{InstanceId, RoomId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::kv::{Backend, Cmp, Kv, LeaseId, MAX_TXN_OPS, Op, Watch};
use crate::{Result, StoreError};

/// Keys per page when a prefix is read whole: about 1 MB of room records
/// with 64-character ids, well below etcd's 4 MiB answer limit.
pub const PAGE: usize = 5000;

/// A prefix with more keys than this is read by sub-prefixes (see
/// `Store::load_from`).
const SPLIT_ABOVE: u64 = 4 * PAGE as u64;

/// How many characters deep a large prefix is split at most: ids that
/// share a common start (`room-1`, `room-2`, ... or `b00000123456`) are
/// split until each part is small, at up to 94 probes per level; ids that
/// share more than this many characters are paged plainly past it.
const SPLIT_DEPTH: usize = 12;

/// Rooms per transaction when many move at once: each takes one condition
/// and three writes (the record, and the entries in the old and the new
/// owner's index), within etcd's default of [`MAX_TXN_OPS`].
pub const ROOMS_PER_TXN: usize = MAX_TXN_OPS / 3;

/// The outcome of creating a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// This call created it.
    New(RoomRecord),
    /// It existed already (possibly created a moment ago by another router).
    Existing(RoomRecord),
}

impl Created {
    /// The record, whoever created it.
    pub fn record(&self) -> &RoomRecord {
        match self {
            Self::New(r) | Self::Existing(r) => r,
        }
    }
}

/// Typed access to one cluster's records. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    kv: Backend,
    keys: Keys,
}

/// Seconds since the Unix epoch, for `created_at`.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The bytes of a record, as stored. Deterministic (fields in declaration
/// order), so a record read back compares equal to what was written.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialize")
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

impl Store {
    /// The store of the cluster under `prefix` on `kv`.
    pub fn new(kv: Backend, prefix: &str) -> Self {
        Self {
            kv,
            keys: Keys::new(prefix),
        }
    }

    /// The same store over a connection of its own, whose background work
    /// runs on the calling runtime.
    pub async fn reconnect(&self) -> Result<Self> {
        Ok(Self {
            kv: self.kv.reconnect().await?,
            keys: self.keys.clone(),
        })
    }

    /// The key schema in use.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The revision of the latest write through this store.
    pub fn last_write(&self) -> i64 {
        self.kv.last_write()
    }

    /// Whether the backend answers.
    pub async fn ping(&self) -> Result<()> {
        self.kv.ping().await.map(drop)
    }

    /// The store's current revision: every change so far is at or below it.
    pub async fn revision(&self) -> Result<i64> {
        self.kv.ping().await
    }

    /// Registers a node under a new lease of `ttl`. Fails with
    /// [`StoreError::NodeIdTaken`] while another live process holds the id.
    pub async fn register_node(&self, node: &NodeRecord, ttl: Duration) -> Result<LeaseId> {
        let lease = self.kv.grant(ttl).await?;
        let key = self.keys.node(node.id);
        match self.kv.create(&key, encode(node), Some(lease)).await {
            Ok(None) => Ok(lease),
            Ok(Some(_)) => {
                // Best effort: an unused lease expires by itself anyway.
                let _ = self.kv.revoke(lease).await;
                Err(StoreError::NodeIdTaken(node.id))
            }
            Err(e) => {
                let _ = self.kv.revoke(lease).await;
                Err(e)
            }
        }
    }

    /// Rewrites a registered node's record (e.g. to `draining`) under its
    /// lease.
    pub async fn update_node(&self, node: &NodeRecord, lease: LeaseId) -> Result<()> {
        self.kv
            .put(&self.keys.node(node.id), encode(node), Some(lease))
            .await
    }

    /// Renews a registration for another TTL.
    pub async fn renew(&self, lease: LeaseId) -> Result<()> {
        self.kv.keep_alive(lease).await
    }

    /// Ends a registration now: the node disappears at once, not after TTL.
    pub async fn deregister(&self, lease: LeaseId) -> Result<()> {
        self.kv.revoke(lease).await
    }

    /// One live node's record.
    pub async fn node(&self, id: InstanceId) -> Result<Option<NodeRecord>> {
        let key = self.keys.node(id);
        self.kv
            .get(&key)
            .await?
            .map(|v| decode(&key, &v))
            .transpose()
    }

    /// Every live node, in id order.
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        let mut out = Vec::new();
        self.load(&self.keys.nodes(), |page| {
            for (k, v) in page {
                out.push(decode(&k, &v)?);
            }
            Ok(())
        })
        .await?;
        out.sort_by_key(|n: &NodeRecord| n.id);
        Ok(out)
    }

    /// Reads everything under `prefix` in pages of [`PAGE`] keys, all at the
    /// revision of the first page, so the pages together are one consistent
    /// snapshot however large the prefix; `each` sees every page in key
    /// order. Returns the snapshot's revision. A snapshot whose revision is
    /// compacted away mid-way is [`StoreError::Compacted`]: read again.
    pub async fn load(
        &self,
        prefix: &str,
        mut each: impl FnMut(Vec<(String, Vec<u8>)>) -> Result<()> + Send,
    ) -> Result<i64> {
        let first = self.kv.range_at(prefix, None, PAGE, None).await?;
        let revision = first.revision;
        self.load_from(prefix, first, SPLIT_DEPTH, &mut each)
            .await?;
        Ok(revision)
    }

    /// Hands `each` every key under `prefix`, of which `first` is the first
    /// page, at `first`'s revision. etcd 3.4 walks every key from a page's
    /// start to the end of the range for each page it answers (to count
    /// them), so paging a million keys costs half a billion steps: a large
    /// prefix is read as the sub-prefixes of each next character instead
    /// (`depth` levels at most), each walking only its own keys; only parts
    /// still over [`SPLIT_ABOVE`] keys are split further.
    fn load_from<'a>(
        &'a self,
        prefix: &'a str,
        first: crate::kv::Page,
        depth: usize,
        each: &'a mut (dyn FnMut(Vec<(String, Vec<u8>)>) -> Result<()> + Send),
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let revision = Some(first.revision);
            if depth > 0 && first.more && first.count > SPLIT_ABOVE {
                // The prefix itself as a key sorts before all of its
                // sub-prefixes.
                let own: Vec<_> = first
                    .pairs
                    .into_iter()
                    .filter(|(k, _)| k == prefix)
                    .collect();
                if !own.is_empty() {
                    each(own)?;
                }
                for c in (b'!'..=b'~').map(char::from) {
                    let sub = format!("{prefix}{c}");
                    let page = self.kv.range_at(&sub, None, PAGE, revision).await?;
                    if !page.pairs.is_empty() {
                        self.load_from(&sub, page, depth - 1, each).await?;
                    }
                }
                return Ok(());
            }
            let mut page = first;
            loop {
                let after = page.pairs.last().map(|(k, _)| k.clone());
                let more = page.more && after.is_some();
                each(page.pairs)?;
                if !more {
                    return Ok(());
                }
                page = self
                    .kv
                    .range_at(prefix, after.as_deref(), PAGE, revision)
                    .await?;
            }
        })
    }

    /// Every change under `prefix` after `revision`.
    pub(crate) async fn watch(&self, prefix: &str, revision: i64) -> Result<Watch> {
        self.kv.watch(prefix, revision).await
    }

    /// Creates `room` if absent, in one transaction with its owner's index
    /// entry: of two routers creating one id at once, both get the same
    /// owner back.
    pub async fn create_room(&self, room: &RoomRecord) -> Result<Created> {
        let key = self.keys.room(&room.id);
        let value = encode(room);
        loop {
            let created = self
                .kv
                .txn(
                    vec![Cmp::Absent(key.clone())],
                    vec![
                        Op::Put(key.clone(), value.clone()),
                        Op::Put(self.keys.owned(room.node, &room.id), value.clone()),
                    ],
                )
                .await?;
            if created {
                return Ok(Created::New(room.clone()));
            }
            // Deleted again between the two calls: try once more.
            if let Some(existing) = self.room(&room.id).await? {
                return Ok(Created::Existing(existing));
            }
        }
    }

    /// A room's record.
    pub async fn room(&self, id: &RoomId) -> Result<Option<RoomRecord>> {
        let key = self.keys.room(id);
        self.kv
            .get(&key)
            .await?
            .map(|v| decode(&key, &v))
            .transpose()
    }

    /// Every room (or, with `of`, that node's, from its index) in id order,
    /// read as one consistent snapshot (see [`Store::load`]).
    pub async fn all_rooms(&self, of: Option<InstanceId>) -> Result<Vec<RoomRecord>> {
        let prefix = match of {
            Some(node) => self.keys.owned_by(node),
            None => self.keys.rooms(),
        };
        let mut rooms = Vec::new();
        self.load(&prefix, |page| {
            for (k, v) in page {
                rooms.push(decode(&k, &v)?);
            }
            Ok(())
        })
        .await?;
        Ok(rooms)
    }

    /// Up to `limit` rooms with id > `after`, in id order.
    pub async fn rooms(&self, after: Option<&RoomId>, limit: usize) -> Result<Vec<RoomRecord>> {
        let after = after.map(|a| self.keys.room(a));
        self.page(&self.keys.rooms(), after, limit).await
    }

    /// Up to `limit` of `node`'s rooms with id > `after`, in id order (from
    /// the owner index).
    pub async fn rooms_of(
        &self,
        node: InstanceId,
        after: Option<&RoomId>,
        limit: usize,
    ) -> Result<Vec<RoomRecord>> {
        let after = after.map(|a| self.keys.owned(node, a));
        self.page(&self.keys.owned_by(node), after, limit).await
    }

    async fn page(
        &self,
        prefix: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<RoomRecord>> {
        let page = self
            .kv
            .range_at(prefix, after.as_deref(), limit, None)
            .await?;
        page.pairs.iter().map(|(k, v)| decode(k, v)).collect()
    }

    /// Deletes a room's assignment (and its index entry); whether it existed.
    pub async fn delete_room(&self, id: &RoomId) -> Result<bool> {
        let key = self.keys.room(id);
        loop {
            let Some(raw) = self.kv.get(&key).await? else {
                return Ok(false);
            };
            let rec: RoomRecord = decode(&key, &raw)?;
            let then = vec![
                Op::Delete(key.clone()),
                Op::Delete(self.keys.owned(rec.node, id)),
            ];
            if self
                .kv
                .txn(vec![Cmp::Equals(key.clone(), raw)], then)
                .await?
            {
                return Ok(true);
            }
            // Moved meanwhile: delete what it is now.
        }
    }

    /// Gives `room` to `to` if its epoch is still `epoch`: the new record has
    /// epoch + 1. A lost race is [`StoreError::Conflict`]; nothing changes.
    pub async fn move_room(&self, room: &RoomId, epoch: u64, to: InstanceId) -> Result<RoomRecord> {
        let key = self.keys.room(room);
        let Some(raw) = self.kv.get(&key).await? else {
            return Err(StoreError::Conflict(format!(
                "room {room} no longer exists"
            )));
        };
        let current: RoomRecord = decode(&key, &raw)?;
        if current.epoch != epoch {
            return Err(StoreError::Conflict(format!(
                "room {room} is at epoch {}, not {epoch}",
                current.epoch
            )));
        }
        let (when, then, next) = self.move_ops(current, raw, to);
        if self.kv.txn(vec![when], then).await? {
            Ok(next)
        } else {
            Err(StoreError::Conflict(format!(
                "room {room} changed while moving it"
            )))
        }
    }

    /// Moves many rooms, each from the record given (its current one as the
    /// caller saw it) to its target, in transactions of [`ROOMS_PER_TXN`]
    /// rooms. A transaction that loses a race (one of its rooms changed) is
    /// redone room by room, so one stale record costs only its own move.
    /// Answers one outcome per room, in order.
    pub async fn move_rooms(
        &self,
        moves: Vec<(RoomRecord, InstanceId)>,
    ) -> Vec<Result<RoomRecord>> {
        let mut out = Vec::with_capacity(moves.len());
        for chunk in moves.chunks(ROOMS_PER_TXN) {
            let mut when = Vec::with_capacity(chunk.len());
            let mut then = Vec::with_capacity(chunk.len() * 3);
            let mut next = Vec::with_capacity(chunk.len());
            for (rec, to) in chunk {
                let raw = encode(rec);
                let (w, t, n) = self.move_ops(rec.clone(), raw, *to);
                when.push(w);
                then.extend(t);
                next.push(n);
            }
            match self.kv.txn(when, then).await {
                Ok(true) => out.extend(next.into_iter().map(Ok)),
                Ok(false) => {
                    for (rec, to) in chunk {
                        out.push(self.move_room(&rec.id, rec.epoch, *to).await);
                    }
                }
                Err(e) => {
                    let reason = e.to_string();
                    out.extend(
                        chunk
                            .iter()
                            .map(|_| Err(StoreError::Unavailable(reason.clone()))),
                    );
                }
            }
        }
        out
    }

    /// The condition and writes that move `current` (stored as `raw`) to
    /// `to`, and the record after.
    fn move_ops(
        &self,
        current: RoomRecord,
        raw: Vec<u8>,
        to: InstanceId,
    ) -> (Cmp, Vec<Op>, RoomRecord) {
        let key = self.keys.room(&current.id);
        let then_old = Op::Delete(self.keys.owned(current.node, &current.id));
        let next = RoomRecord {
            node: to,
            epoch: current.epoch + 1,
            ..current
        };
        let value = encode(&next);
        let then = vec![
            then_old,
            Op::Put(key.clone(), value.clone()),
            Op::Put(self.keys.owned(to, &next.id), value),
        ];
        (Cmp::Equals(key, raw), then, next)
    }

    /// Whether the store is at this layout, owner index included (a router
    /// of this version has migrated it). Until then, a node's rooms can be
    /// listed only from the room records.
    pub async fn indexed(&self) -> Result<bool> {
        let version = self
            .kv
            .get(&self.keys.schema())
            .await?
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(&v).ok())
            .and_then(|v| v["version"].as_u64());
        Ok(version.is_some_and(|v| v >= u64::from(proto::keys::SCHEMA_VERSION)))
    }

    /// Brings a store written before the owner index (schema 1) to this
    /// version: every room gets its index entry, in transactions that check
    /// the record is unchanged. Idempotent, and cheap once done (one read of
    /// the schema key). Returns how many rooms it indexed.
    pub async fn migrate(&self) -> Result<u64> {
        if self.indexed().await? {
            return Ok(0);
        }
        let schema = self.keys.schema();
        let mut indexed = 0;
        let mut start: Option<String> = None;
        loop {
            let page = self
                .kv
                .range_at(&self.keys.rooms(), start.as_deref(), MAX_TXN_OPS, None)
                .await?;
            let mut when = Vec::new();
            let mut then = Vec::new();
            for (k, v) in &page.pairs {
                let rec: RoomRecord = decode(k, v)?;
                when.push(Cmp::Equals(k.clone(), v.clone()));
                then.push(Op::Put(self.keys.owned(rec.node, &rec.id), v.clone()));
            }
            // A room that changed meanwhile was indexed by its writer (this
            // version's writers keep the index): read the page again.
            if !self.kv.txn(when, then).await? {
                continue;
            }
            indexed += page.pairs.len() as u64;
            match page.pairs.last() {
                Some((k, _)) if page.more => start = Some(k.clone()),
                _ => break,
            }
        }
        let version = serde_json::json!({ "version": proto::keys::SCHEMA_VERSION });
        self.kv.put(&schema, encode(&version), None).await?;
        Ok(indexed)
    }

    /// Parses one watched pair into a record.
    pub(crate) fn parse(&self, key: &str, value: &[u8]) -> Result<Option<Record>> {
        Ok(match self.keys.parse(key) {
            Some(Key::Node(_)) => Some(Record::Node(decode(key, value)?)),
            Some(Key::Room(_) | Key::Owned(..)) => Some(Record::Room(decode(key, value)?)),
            None => None,
        })
    }
}

/// A parsed record.
pub(crate) enum Record {
    Node(NodeRecord),
    Room(RoomRecord),
}
