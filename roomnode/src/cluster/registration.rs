//! The node's registration: a record under a lease, renewed every tenth of
//! the TTL (at most every second), and the fence that stops the node serving anything once its
//! lease may have expired.
//!
//! The renewals run on a thread of their own with its own runtime and its
//! own store connection ([`spawn_keeper`]): however busy the rooms keep
//! the node's workers (a join storm, a huge fan-out), the lease is renewed
//! on time, so a crowded room can never make its node fence itself.
//!
//! The node cannot know when etcd expires its lease, only when it last got
//! a renewal through. It counts the TTL from the moment it *sent* that
//! renewal, on its own monotonic clock, minus a margin: past that deadline
//! another node may legitimately own its rooms, so it fences itself (closes
//! every room with 1012, refuses joins), registers again, and only then
//! serves again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::Histogram;
use proto::record::{NodeRecord, NodeState};
use store::{LeaseId, Store, StoreError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Pause between attempts to register again after a fence.
const REREGISTER_MIN: Duration = Duration::from_millis(250);
const REREGISTER_MAX: Duration = Duration::from_secs(2);

/// How often the lease is renewed: often, because the longest store outage
/// a node rides out is TTL − interval − margin (8 s of the default 10 s).
/// A renewal is one small request.
pub(crate) fn renew_interval(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_millis(250), Duration::from_secs(1))
}

/// What the node takes off the TTL for clock drift and request latency.
pub(crate) fn margin(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_millis(200), Duration::from_secs(2))
}

/// The live registration, shared with the HTTP side.
#[derive(Clone)]
pub(crate) struct Registration {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    /// The record as registered; re-registration writes it again.
    record: Mutex<NodeRecord>,
    ttl: Duration,
    lease: Mutex<LeaseId>,
    fenced: AtomicBool,
    /// Until when the lease is certainly valid. Checked where messages and
    /// members are let in, so a node that was frozen (or starved) past it
    /// accepts nothing even before the renewal task gets to run.
    valid_until: Mutex<Instant>,
}

impl Registration {
    /// Registers `record`; fails if its id is held by another live node.
    /// A registration with the same id *and address* is this node's previous
    /// life (a crash, a restarted pod): its lease expires within one TTL, so
    /// that one is waited out instead.
    pub(crate) async fn register(
        store: Store,
        record: NodeRecord,
        ttl: Duration,
    ) -> Result<Self, StoreError> {
        let give_up = Instant::now() + ttl + ttl / 2;
        let (sent, lease) = loop {
            let sent = Instant::now();
            match store.register_node(&record, ttl).await {
                Ok(lease) => break (sent, lease),
                Err(StoreError::NodeIdTaken(id)) if Instant::now() < give_up => {
                    let holder = store.node(id).await?;
                    if holder.is_some_and(|h| h.addr != record.addr) {
                        return Err(StoreError::NodeIdTaken(id));
                    }
                    tracing::warn!(node = %id, "a previous registration with this id and address is still live; waiting for its lease to expire");
                    tokio::time::sleep(REREGISTER_MAX).await;
                }
                Err(e) => return Err(e),
            }
        };
        let reg = Self {
            shared: Arc::new(Shared {
                store,
                record: Mutex::new(record),
                ttl,
                lease: Mutex::new(lease),
                fenced: AtomicBool::new(false),
                valid_until: Mutex::new(sent + ttl - margin(ttl)),
            }),
        };
        Ok(reg)
    }

    /// Whether the node must refuse joins.
    pub(crate) fn is_fenced(&self) -> bool {
        self.shared.fenced.load(Ordering::Acquire) || Instant::now() >= self.valid_until()
    }

    fn record(&self) -> NodeRecord {
        self.shared
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes the node's state (`draining` takes it out of placement).
    pub(crate) async fn set_state(&self, state: NodeState) -> Result<(), StoreError> {
        let record = {
            let mut r = self.shared.record.lock().unwrap_or_else(|p| p.into_inner());
            r.state = state;
            r.clone()
        };
        self.shared.store.update_node(&record, self.lease()).await
    }

    fn lease(&self) -> LeaseId {
        *self.shared.lease.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn valid_until(&self) -> Instant {
        *self
            .shared
            .valid_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn set_valid_until(&self, deadline: Instant) {
        *self
            .shared
            .valid_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = deadline;
    }

    /// The deadline after a renewal sent at `sent`.
    fn deadline(&self, sent: Instant) -> Instant {
        sent + self.shared.ttl - margin(self.shared.ttl)
    }

    /// Renews through `store` until `stop`, observing each renewal's
    /// latency in `latency`; `fence` runs whenever the deadline passes
    /// (before re-registering). Returns when stopped.
    async fn keep(
        self,
        store: Store,
        stop: CancellationToken,
        latency: Histogram,
        fence: impl Fn(),
    ) {
        let interval = renew_interval(self.shared.ttl);
        let retry = (interval / 2).max(Duration::from_millis(100));
        let mut next = Instant::now() + interval;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next.min(self.valid_until())) => {}
                () = stop.cancelled() => return,
            }
            if Instant::now() >= self.valid_until() {
                self.shared.fenced.store(true, Ordering::Release);
                tracing::error!(node = %self.record().id, "lease may have expired; fencing: closing every room until registered again");
                fence();
                let Some(sent) = self.register_again(&store, &stop).await else {
                    return;
                };
                self.set_valid_until(self.deadline(sent));
                self.shared.fenced.store(false, Ordering::Release);
                tracing::info!(node = %self.record().id, "registered again; serving");
                next = Instant::now() + interval;
                continue;
            }
            let sent = Instant::now();
            let renewal = store.renew(self.lease());
            let result = tokio::time::timeout_at(self.valid_until(), renewal).await;
            latency.observe(sent.elapsed().as_secs_f64());
            match result {
                Ok(Ok(())) => {
                    self.set_valid_until(self.deadline(sent));
                    next = sent + interval;
                }
                Ok(Err(StoreError::LeaseExpired)) => self.set_valid_until(Instant::now()),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "lease renewal failed; retrying");
                    next = Instant::now() + retry;
                }
                Err(_) => {}
            }
        }
    }

    /// Registers under a new lease, retrying until it works or `stop`. The
    /// old lease comes first: if it somehow survived, the record is still
    /// ours and renewing it is all it takes.
    async fn register_again(&self, store: &Store, stop: &CancellationToken) -> Option<Instant> {
        let mut pause = REREGISTER_MIN;
        loop {
            let sent = Instant::now();
            if store.renew(self.lease()).await.is_ok() {
                return Some(sent);
            }
            match store.register_node(&self.record(), self.shared.ttl).await {
                Ok(lease) => {
                    *self.shared.lease.lock().unwrap_or_else(|p| p.into_inner()) = lease;
                    return Some(sent);
                }
                Err(e) => tracing::warn!(error = %e, "cannot register again yet"),
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stop.cancelled() => return None,
            }
            pause = (pause * 2).min(REREGISTER_MAX);
        }
    }

    /// Ends the registration now (graceful shutdown): routers see the node
    /// gone at once instead of after the TTL.
    pub(crate) async fn deregister(&self) {
        if let Err(e) = self.shared.store.deregister(self.lease()).await {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
    }
}

/// Runs [`Registration`]'s renewals on a thread of its own, with a
/// single-threaded runtime and a store connection of its own (an etcd
/// connection's tasks run where it was made), until `stop`. Join the handle
/// to wait for it.
pub(crate) fn spawn_keeper(
    registration: Registration,
    stop: CancellationToken,
    latency: Histogram,
    fence: impl Fn() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("lease-keeper".into())
        .spawn(move || {
            runtime.block_on(async move {
                let store = match registration.shared.store.reconnect().await {
                    Ok(own) => own,
                    Err(e) => {
                        tracing::warn!(error = %e, "no store connection of its own for the lease keeper; sharing the node's");
                        registration.shared.store.clone()
                    }
                };
                registration.keep(store, stop, latency, fence).await;
            });
        })
}
