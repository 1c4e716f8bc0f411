//! [`Store`]: the typed operations on node registrations and room
//! assignments, written once over any [`Kv`] backend.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::keys::{Key, Keys};
use proto::record::{NodeRecord, RoomRecord};
use proto::{InstanceId, RoomId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::kv::{Backend, Kv, LeaseId, Swap, Watch};
use crate::{Result, StoreError};

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

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
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
        let prefix = self.keys.nodes();
        let mut out = Vec::new();
        for (k, v) in self.kv.range(&prefix, None, usize::MAX >> 1).await? {
            out.push(decode(&k, &v)?);
        }
        out.sort_by_key(|n: &NodeRecord| n.id);
        Ok(out)
    }

    /// Creates `room` if absent, in one transaction: of two routers creating
    /// one id at once, both get the same owner back.
    pub async fn create_room(&self, room: &RoomRecord) -> Result<Created> {
        let key = self.keys.room(&room.id);
        match self.kv.create(&key, encode(room), None).await? {
            None => Ok(Created::New(room.clone())),
            Some(existing) => Ok(Created::Existing(decode(&key, &existing)?)),
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

    /// Up to `limit` rooms with id > `after`, in id order.
    pub async fn rooms(&self, after: Option<&RoomId>, limit: usize) -> Result<Vec<RoomRecord>> {
        let after = after.map(|a| self.keys.room(a));
        let page = self
            .kv
            .range(&self.keys.rooms(), after.as_deref(), limit)
            .await?;
        page.iter().map(|(k, v)| decode(k, v)).collect()
    }

    /// Deletes a room's assignment; whether it existed.
    pub async fn delete_room(&self, id: &RoomId) -> Result<bool> {
        self.kv.delete(&self.keys.room(id)).await
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
        let next = RoomRecord {
            node: to,
            epoch: epoch + 1,
            ..current
        };
        match self.kv.swap(&key, &raw, encode(&next)).await? {
            Swap::Done => Ok(next),
            Swap::Changed(_) => Err(StoreError::Conflict(format!(
                "room {room} changed while moving it"
            ))),
        }
    }

    /// Watches every record of the cluster (see [`crate::Mirror`]).
    pub(crate) async fn watch(&self) -> Result<Watch> {
        self.kv.watch(&self.keys.all()).await
    }

    /// Parses one watched pair into a record.
    pub(crate) fn parse(&self, key: &str, value: &[u8]) -> Result<Option<Record>> {
        Ok(match self.keys.parse(key) {
            Some(Key::Node(_)) => Some(Record::Node(decode(key, value)?)),
            Some(Key::Room(_)) => Some(Record::Room(decode(key, value)?)),
            None => None,
        })
    }
}

/// A parsed record.
pub(crate) enum Record {
    Node(NodeRecord),
    Room(RoomRecord),
}
