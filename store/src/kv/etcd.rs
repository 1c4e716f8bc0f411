//! The etcd v3 backend: every call is one etcd request bounded by a timeout,
//! so a store outage turns into [`StoreError::Unavailable`] quickly instead of
//! hanging a request.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KvClient, PutOptions, Txn,
    TxnOp, WatchClient, WatchOptions,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    Cmp, Kv, KvEvent, LeaseId, Op, PROGRESS_INTERVAL, Page, Swap, WATCH_BUFFER, Watch, WatchMsg,
};
use crate::{Result, StoreError};

/// Default bound on one etcd request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest answer the client accepts. Every read of a prefix is paged
/// well below etcd's own 4 MiB default, so this is only a backstop (a
/// transaction's watch events arrive in one message, for instance).
const MAX_MESSAGE: usize = 64 << 20;

/// A connection to an etcd cluster. Clones share the underlying channel.
#[derive(Clone)]
pub struct EtcdKv {
    client: Client,
    kv: KvClient,
    watcher: WatchClient,
    endpoints: Arc<[String]>,
    timeout: Duration,
    /// Revision of the latest write through this handle or its clones.
    last_write: Arc<AtomicI64>,
}

impl EtcdKv {
    /// Connects lazily to `endpoints` (`http://host:2379`, or `host:2379`):
    /// this succeeds while etcd is down, and calls fail until it is up.
    pub async fn connect(endpoints: &[String], timeout: Duration) -> Result<Self> {
        let options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout)
            .with_keep_alive(Duration::from_secs(5), timeout)
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| StoreError::Unavailable(format!("etcd {endpoints:?}: {e}")))?;
        Ok(Self {
            endpoints: endpoints.into(),
            kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE),
            watcher: client.watch_client().max_decoding_message_size(MAX_MESSAGE),
            client,
            timeout,
            last_write: Arc::default(),
        })
    }

    /// A new connection to the same cluster, with its own channel and
    /// background tasks on the runtime that calls this: a runtime kept free
    /// of other work (the node's lease keeper) stays free of it.
    pub async fn reconnect(&self) -> Result<Self> {
        Self::connect(&self.endpoints, self.timeout).await
    }

    async fn bounded<T>(
        &self,
        what: &str,
        f: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r.map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable(format!(
                "etcd {what} timed out after {:?}",
                self.timeout
            ))),
        }
    }
}

impl EtcdKv {
    fn wrote(&self, header: Option<&etcd_client::ResponseHeader>) {
        if let Some(h) = header {
            self.last_write.fetch_max(h.revision(), Ordering::AcqRel);
        }
    }
}

fn put_options(lease: Option<LeaseId>) -> Option<PutOptions> {
    lease.map(|l| PutOptions::new().with_lease(l.0))
}

fn to_string(key: Vec<u8>) -> String {
    String::from_utf8_lossy(&key).into_owned()
}

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Kv for EtcdKv {
    async fn ping(&self) -> Result<i64> {
        let mut c = self.client.clone();
        let status = self.bounded("status", c.status()).await?;
        Ok(status.header().map_or(0, |h| h.revision()))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut c = self.client.clone();
        let mut resp = self.bounded("get", c.get(key, None)).await?;
        Ok(resp.take_kvs().pop().map(|kv| kv.into_key_value().1))
    }

    async fn range_at(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> Result<Page> {
        if limit == 0 {
            // etcd reads a limit of 0 as "no limit".
            return Ok(Page::default());
        }
        let start = match after {
            // The smallest key greater than `after`.
            Some(a) if a >= prefix => format!("{a}\0"),
            _ => prefix.to_owned(),
        };
        let mut options = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_limit(limit as i64);
        if let Some(r) = revision {
            options = options.with_revision(r);
        }
        let mut c = self.kv.clone();
        let mut resp = self.bounded("range", c.get(start, Some(options))).await?;
        Ok(Page {
            revision: resp.header().map_or(0, |h| h.revision()),
            more: resp.more(),
            count: u64::try_from(resp.count()).unwrap_or(0),
            pairs: resp
                .take_kvs()
                .into_iter()
                .map(|kv| {
                    let (k, v) = kv.into_key_value();
                    (to_string(k), v)
                })
                .collect(),
        })
    }

    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Option<Vec<u8>>> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, put_options(lease))])
            .or_else([TxnOp::get(key, None)]);
        let mut c = self.client.clone();
        let resp = self.bounded("create", c.txn(txn)).await?;
        if resp.succeeded() {
            self.wrote(resp.header());
            return Ok(None);
        }
        let existing = resp.op_responses().into_iter().find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(mut g) => g.take_kvs().pop(),
            _ => None,
        });
        // Deleted between the compare and the read of the same transaction
        // cannot happen; an empty answer means a broken server.
        existing
            .map(|kv| Some(kv.into_key_value().1))
            .ok_or_else(|| StoreError::Unavailable(format!("etcd create {key}: empty answer")))
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<()> {
        let mut c = self.client.clone();
        let put = c.put(key, value, put_options(lease));
        match self.bounded("put", put).await {
            Err(StoreError::Unavailable(e)) if e.contains("requested lease not found") => {
                Err(StoreError::LeaseExpired)
            }
            other => other.map(|resp| self.wrote(resp.header())),
        }
    }

    async fn swap(&self, key: &str, expected: &[u8], value: Vec<u8>) -> Result<Swap> {
        // The new value keeps no lease: only durable room records are swapped.
        let txn = Txn::new()
            .when([Compare::value(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, None)]);
        let mut c = self.client.clone();
        let resp = self.bounded("swap", c.txn(txn)).await?;
        if resp.succeeded() {
            self.wrote(resp.header());
            return Ok(Swap::Done);
        }
        let current = resp.op_responses().into_iter().find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(mut g) => g.take_kvs().pop(),
            _ => None,
        });
        Ok(Swap::Changed(current.map(|kv| kv.into_key_value().1)))
    }

    async fn txn(&self, when: Vec<Cmp>, then: Vec<Op>) -> Result<bool> {
        let when: Vec<Compare> = when
            .into_iter()
            .map(|c| match c {
                Cmp::Equals(k, v) => Compare::value(k, CompareOp::Equal, v),
                Cmp::Absent(k) => Compare::create_revision(k, CompareOp::Equal, 0),
            })
            .collect();
        let then: Vec<TxnOp> = then
            .into_iter()
            .map(|o| match o {
                Op::Put(k, v) => TxnOp::put(k, v, None),
                Op::Delete(k) => TxnOp::delete(k, None),
            })
            .collect();
        let mut c = self.kv.clone();
        let resp = self
            .bounded("txn", c.txn(Txn::new().when(when).and_then(then)))
            .await?;
        if resp.succeeded() {
            self.wrote(resp.header());
        }
        Ok(resp.succeeded())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let mut c = self.client.clone();
        let resp = self.bounded("delete", c.delete(key, None)).await?;
        self.wrote(resp.header());
        Ok(resp.deleted() > 0)
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId> {
        let mut c = self.client.clone();
        // etcd counts whole seconds; rounding up never lets the lease end
        // before the TTL the node counts on.
        let secs = ttl.as_secs_f64().ceil().max(1.0) as i64;
        let resp = self
            .bounded("lease grant", c.lease_grant(secs, None))
            .await?;
        Ok(LeaseId(resp.id()))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        let mut c = self.client.clone();
        let renew = async move {
            let (mut keeper, mut stream) = c.lease_keep_alive(lease.0).await?;
            keeper.keep_alive().await?;
            stream.message().await
        };
        match self.bounded("lease keep-alive", renew).await? {
            Some(resp) if resp.ttl() > 0 => Ok(()),
            Some(_) => Err(StoreError::LeaseExpired),
            None => Err(StoreError::Unavailable(
                "etcd closed the keep-alive stream".into(),
            )),
        }
    }

    async fn revoke(&self, lease: LeaseId) -> Result<()> {
        let mut c = self.client.clone();
        match self.bounded("lease revoke", c.lease_revoke(lease.0)).await {
            Err(StoreError::Unavailable(e)) if e.contains("requested lease not found") => Ok(()),
            other => other.map(drop),
        }
    }

    async fn watch(&self, prefix: &str, revision: i64) -> Result<Watch> {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut c = self.watcher.clone();
        let stream = self.bounded("watch", c.watch(prefix, Some(opts))).await?;
        let (tx, events) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(forward(stream, tx));
        Ok(events)
    }

    fn last_write(&self) -> i64 {
        self.last_write.load(Ordering::Acquire)
    }
}

/// Copies etcd watch events into the channel until either side ends, and
/// asks etcd for a progress report whenever nothing came for
/// [`PROGRESS_INTERVAL`]. Any error or cancellation closes the channel,
/// which is the consumer's cue to resume from where it got; a cancellation
/// for compaction first says [`WatchMsg::Compacted`].
async fn forward(mut stream: etcd_client::WatchStream, tx: mpsc::Sender<WatchMsg>) {
    let mut heard = Instant::now();
    loop {
        let quiet = tokio::time::sleep_until(heard + PROGRESS_INTERVAL);
        let msg = tokio::select! {
            msg = stream.message() => msg,
            () = quiet => {
                heard = Instant::now();
                if stream.request_progress().await.is_err() {
                    return;
                }
                continue;
            }
            () = tx.closed() => return,
        };
        heard = Instant::now();
        let resp = match msg {
            Ok(Some(resp)) if !resp.canceled() => resp,
            Ok(Some(resp)) => {
                if resp.compact_revision() > 0 {
                    tracing::info!(
                        compacted = resp.compact_revision(),
                        "etcd watch start compacted away; reloading"
                    );
                    let _ = tx.send(WatchMsg::Compacted).await;
                } else {
                    tracing::warn!(reason = resp.cancel_reason(), "etcd watch cancelled");
                }
                return;
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "etcd watch broke");
                return;
            }
        };
        if resp.events().is_empty() {
            // A progress report, or the watch's creation: everything up to
            // the header's revision has been delivered.
            if !resp.created()
                && let Some(h) = resp.header()
                && tx.send(WatchMsg::Progress(h.revision())).await.is_err()
            {
                return;
            }
            continue;
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let revision = kv.mod_revision();
            let ev = match event.event_type() {
                EventType::Put => KvEvent::Put {
                    key,
                    value: kv.value().to_vec(),
                    revision,
                },
                EventType::Delete => KvEvent::Delete { key, revision },
            };
            if tx.send(WatchMsg::Event(ev)).await.is_err() {
                return;
            }
        }
    }
}
