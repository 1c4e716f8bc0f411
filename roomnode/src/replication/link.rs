//! The owner's side of one replica node: the items its rooms queue for it,
//! sent as one [`Batch`] per round trip by one task, and the answers taken
//! back to the rooms.
//!
//! Batches go on the link's [`Stream`], a WebSocket kept open to the
//! replica. At most one batch is in flight, so whatever the rooms accept
//! during a round trip goes in the next one: under load a batch carries many
//! messages, and the cost per message is a few hundred bytes of JSON, not
//! a request. A batch whose answer is lost (an error, a timeout) is sent
//! again as it is (a replica that had applied it answers `missing`, and
//! the room sends a copy). A replica silent for `--replica-timeout` makes the
//! link "down": its rooms refuse their pending and new messages with
//! `not_accepted` and queue a full copy, sent once it answers again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use proto::handoff::RoomSnapshot;
use proto::replication::{Ack, Refused};
use proto::{InstanceId, RoomId};
use service::client::InternalClient;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::room::Room;

use super::stream::Stream;

/// Longest wait for a replica's answer: past it the batch is sent again
/// (on a new connection).
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(2);
/// Waits between attempts at a replica that does not answer.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(1));
/// Most items waiting for one replica; beyond, messages are refused with
/// `not_accepted` rather than held without bound.
const MAX_QUEUED: usize = 100_000;
/// Bytes of items one batch carries at most (a copy may exceed it alone).
const BATCH_BYTES: usize = 4 << 20;

/// One item for the replica, with the room that waits for its answer.
pub(crate) struct Outgoing {
    pub(crate) room: Weak<Room>,
    pub(crate) id: RoomId,
    /// The seq the answer confirms: a message's, or a copy's latest.
    pub(crate) seq: u64,
    pub(crate) item: Payload,
}

/// What an [`Outgoing`] carries.
pub(crate) enum Payload {
    Append {
        epoch: u64,
        members: u64,
        key: Option<String>,
        frame: Utf8Bytes,
    },
    Copy(Box<RoomSnapshot>),
    Forget {
        epoch: u64,
    },
}

/// How this node reaches its replicas.
#[derive(Clone)]
pub(crate) struct Outbound {
    /// Opens the streams, with the cluster key.
    pub(crate) client: InternalClient,
    /// `--replica-timeout`: how long a replica may go without answering
    /// before its rooms refuse messages (`not_accepted`) rather than hold
    /// them; they go on refusing until it answers again or the node set
    /// names another runner-up (its lease expired). A partitioned owner
    /// never accepts what a failover would lose.
    pub(crate) replica_wait: Duration,
}

/// The queue is full: the message is not accepted.
#[derive(Debug)]
pub(crate) struct Full;

/// The link to one replica node. Dropping the last handle ends its task.
pub(crate) struct Link {
    peer: InstanceId,
    addr: Mutex<String>,
    queue: Mutex<Vec<Outgoing>>,
    /// The replica has not answered for `--replica-timeout`: messages are
    /// refused; only copies wait.
    down: AtomicBool,
    /// An empty batch is wanted, to learn the replica's incarnation.
    probe: AtomicBool,
    /// The replica's incarnation in its last answer (0: none yet).
    incarnation: AtomicU64,
    /// The replica answered with another incarnation than before: it
    /// restarted, and its copies are gone.
    restarted: AtomicBool,
    wake: Arc<Notify>,
    stop: CancellationToken,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Link {
    /// A link to `peer` at `addr`, its task started: it gives up on a
    /// replica silent for `replica_wait` (`--replica-timeout`).
    pub(crate) fn start(
        me: InstanceId,
        peer: InstanceId,
        addr: String,
        outbound: &Outbound,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let link = Arc::new(Self::new(peer, addr));
        let task = Sender {
            me,
            link: Arc::downgrade(&link),
            wake: link.wake.clone(),
            stop: link.stop.clone(),
            stream: Stream::new(outbound.client.clone()),
            replica_wait: outbound.replica_wait,
            metrics,
        };
        tokio::spawn(task.run());
        link
    }

    /// A link to `peer` at `addr`, up, with nothing queued and no task.
    fn new(peer: InstanceId, addr: String) -> Self {
        Self {
            peer,
            addr: Mutex::new(addr),
            queue: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
            probe: AtomicBool::new(false),
            incarnation: AtomicU64::new(0),
            restarted: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
            stop: CancellationToken::new(),
        }
    }

    pub(crate) fn peer(&self) -> InstanceId {
        self.peer
    }

    /// Follows the replica to a new address (it registered again).
    pub(crate) fn set_addr(&self, addr: &str) {
        let mut a = self.addr.lock().unwrap_or_else(|p| p.into_inner());
        if *a != addr {
            *a = addr.to_owned();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Outgoing>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Release);
    }

    /// Whether the replica has not answered for `--replica-timeout`.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Asks the replica for its incarnation with an empty batch, if nothing
    /// else goes (the node set changed: the replica may have restarted in
    /// between).
    pub(crate) fn probe(&self) {
        self.probe.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Notes the incarnation in the replica's answer.
    pub(super) fn answered_by(&self, incarnation: u64) {
        let before = self.incarnation.swap(incarnation, Ordering::AcqRel);
        if before != 0 && before != incarnation {
            tracing::info!(replica = %self.peer, "the replica restarted: its rooms send it full copies");
            self.restarted.store(true, Ordering::Release);
        }
    }

    /// Whether the replica restarted since the last call.
    pub(crate) fn take_restarted(&self) -> bool {
        self.restarted.swap(false, Ordering::AcqRel)
    }

    /// Queues an item. A message is refused beyond [`MAX_QUEUED`] and while
    /// the link is down; a copy or a forget always goes (a room has at most
    /// one copy on its way).
    pub(crate) fn push(&self, out: Outgoing) -> Result<(), Full> {
        let mut q = self.lock();
        if matches!(out.item, Payload::Append { .. }) && (q.len() >= MAX_QUEUED || self.is_down()) {
            return Err(Full);
        }
        let was_empty = q.is_empty();
        q.push(out);
        drop(q);
        if was_empty {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// A link whose batches nobody sends: a test takes them
    /// ([`Link::take`]) and answers them itself.
    #[cfg(test)]
    pub(crate) fn detached(peer: InstanceId) -> Arc<Self> {
        Arc::new(Self::new(peer, String::new()))
    }

    /// The next batch, as the sender would take it.
    #[cfg(test)]
    pub(crate) fn take(&self) -> Vec<Outgoing> {
        take_batch(&mut self.lock())
    }

    /// Puts `batch` back in front of the queue, as the sender keeps a
    /// batch it has to send again.
    #[cfg(test)]
    pub(crate) fn put_back(&self, batch: Vec<Outgoing>) {
        let mut q = self.lock();
        let rest = std::mem::take(&mut *q);
        q.extend(batch);
        q.extend(rest);
    }

    /// Items waiting (not yet sent).
    pub(crate) fn queued(&self) -> usize {
        self.lock().len()
    }
}

/// The task that sends one link's batches.
struct Sender {
    me: InstanceId,
    /// Weak: the link's last handle going away ends the task.
    link: Weak<Link>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    stream: Stream,
    replica_wait: Duration,
    metrics: Arc<Metrics>,
}

impl Sender {
    /// A short `--replica-timeout` gets at least two attempts before the
    /// rooms refuse messages.
    fn round_trip_timeout(&self) -> Duration {
        ROUND_TRIP_TIMEOUT.min(self.replica_wait / 2)
    }

    async fn run(mut self) {
        let mut backoff = BACKOFF.0;
        // A batch whose answer was lost goes again as it is: a replica that
        // had applied it refuses its messages as `missing` and gets a copy.
        let mut retry: Option<(u64, Vec<Outgoing>)> = None;
        let mut failing_since: Option<Instant> = None;
        loop {
            let Some(link) = self.link.upgrade() else {
                return;
            };
            let notified = self.wake.notified();
            // An empty batch goes as a probe, and again until answered.
            let probe = link.probe.swap(false, Ordering::AcqRel) || retry.is_some();
            let (number, batch) = match retry.take() {
                Some(b) => b,
                None => (next_number(), take_batch(&mut link.lock())),
            };
            if batch.is_empty() && !probe {
                drop(link);
                tokio::select! {
                    () = notified => continue,
                    () = self.stop.cancelled() => return,
                }
            }
            let addr = link.addr.lock().unwrap_or_else(|p| p.into_inner()).clone();
            drop(link);
            let body = encode(self.me, number, &batch);
            let began = Instant::now();
            let answer = tokio::select! {
                a = self.stream.round_trip(&addr, number, body, self.round_trip_timeout()) => a,
                () = self.stop.cancelled() => return,
            };
            let Some(link) = self.link.upgrade() else {
                return;
            };
            match answer {
                Ok(ack) if !ack.stale => {
                    self.metrics
                        .replication_round_trip
                        .observe(began.elapsed().as_secs_f64());
                    if failing_since.take().is_some() {
                        tracing::info!(replica = %link.peer, "replica answers again");
                    }
                    link.set_down(false);
                    link.answered_by(ack.replica);
                    answered(&link, batch, &ack);
                    backoff = BACKOFF.0;
                }
                failed => {
                    let why = match failed {
                        Err(e) => e,
                        Ok(_) => "the replica has a later batch of this node".to_owned(),
                    };
                    self.metrics.replication_failures.inc();
                    let since = *failing_since.get_or_insert(began);
                    if since.elapsed() < self.replica_wait || link.is_down() {
                        tracing::warn!(replica = %link.peer, error = %why, items = batch.len(), "replication batch got no answer; sending it again");
                        retry = Some((number, batch));
                    } else {
                        tracing::error!(replica = %link.peer, error = %why, waited = ?since.elapsed(), "replica unreachable: its rooms refuse messages (not_accepted) until it answers or another node replaces it");
                        retry = Some((next_number(), give_up(&link, batch)));
                    }
                    drop(link);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
    }
}

/// The replica did not answer for `--replica-timeout`: the link is down (new
/// messages are refused until it answers), the rooms of `batch` and of the
/// queue refuse what they hold pending, and each sends a full copy, which
/// is all that goes to the replica once it answers again. The batch to
/// send next: the copies.
pub(super) fn give_up(link: &Link, batch: Vec<Outgoing>) -> Vec<Outgoing> {
    link.set_down(true);
    let queued = std::mem::take(&mut *link.lock());
    let mut seen = HashSet::new();
    for o in batch.into_iter().chain(queued) {
        if matches!(o.item, Payload::Forget { .. }) || !seen.insert(o.id) {
            continue;
        }
        if let Some(room) = o.room.upgrade() {
            room.replica_unreachable(link);
        }
    }
    take_batch(&mut link.lock())
}

/// The next batch number of this process: batches of one owner are
/// numbered in the order they are made, and a restarted process starts
/// above the numbers of its earlier life (the clock's nanoseconds).
pub(super) fn next_number() -> u64 {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    NEXT.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2));
        AtomicU64::new(now)
    })
    .fetch_add(1, Ordering::Relaxed)
}

/// The next batch: queued items up to [`BATCH_BYTES`] (at least one).
fn take_batch(queue: &mut Vec<Outgoing>) -> Vec<Outgoing> {
    let mut bytes = 0;
    let n = queue
        .iter()
        .position(|o| {
            bytes += match &o.item {
                Payload::Append { frame, .. } => frame.len() + 64,
                Payload::Copy(s) => s.history.iter().map(String::len).sum::<usize>() + 256,
                Payload::Forget { .. } => 64,
            };
            bytes > BATCH_BYTES
        })
        .map_or(queue.len(), |i| i.max(1));
    queue.drain(..n).collect()
}

/// The batch as the replica reads it ([`proto::replication::Batch`]). The
/// frames are JSON already and go in verbatim.
pub(super) fn encode(me: InstanceId, number: u64, batch: &[Outgoing]) -> String {
    let mut out = String::with_capacity(64 + batch.len() * 256);
    out.push_str(r#"{"from":"#);
    out.push_str(&serde_json::to_string(&me).expect("ids serialize"));
    out.push_str(&format!(r#","batch":{number},"items":["#));
    for (i, o) in batch.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let room = serde_json::to_string(&o.id).expect("ids serialize");
        match &o.item {
            Payload::Append {
                epoch,
                members,
                key,
                frame,
            } => {
                out.push_str(&format!(
                    r#"{{"append":{{"room":{room},"epoch":{epoch},"seq":{},"members":{members},"#,
                    o.seq
                ));
                if let Some(k) = key {
                    out.push_str(r#""key":"#);
                    out.push_str(&serde_json::to_string(k).expect("strings serialize"));
                    out.push(',');
                }
                out.push_str(r#""frame":"#);
                out.push_str(frame.as_str());
                out.push_str("}}");
            }
            Payload::Copy(s) => {
                out.push_str(r#"{"copy":"#);
                out.push_str(&serde_json::to_string(s).expect("snapshots serialize"));
                out.push('}');
            }
            Payload::Forget { epoch } => {
                out.push_str(&format!(
                    r#"{{"forget":{{"room":{room},"epoch":{epoch}}}}}"#
                ));
            }
        }
    }
    out.push_str("]}");
    out
}

/// The replica answered: each room hears once up to which seq the replica
/// holds it (its items apply in order, so everything before its first
/// refused item), and of that refusal.
pub(super) fn answered(link: &Link, batch: Vec<Outgoing>, ack: &Ack) {
    struct Answer {
        room: Weak<Room>,
        held: Option<u64>,
        refused: Option<(u64, Refused)>,
    }
    let mut rooms: HashMap<RoomId, Answer> = HashMap::new();
    for o in batch {
        if matches!(o.item, Payload::Forget { .. }) {
            continue;
        }
        let refusal = ack
            .refused
            .iter()
            .find(|r| r.room == o.id && r.seq == o.seq)
            .map(|r| r.reason);
        let a = rooms.entry(o.id).or_insert_with(|| Answer {
            room: o.room,
            held: None,
            refused: None,
        });
        match (refusal, a.refused) {
            (_, Some(_)) => {}
            (None, None) => a.held = Some(o.seq),
            (Some(reason), None) => a.refused = Some((o.seq, reason)),
        }
    }
    for a in rooms.into_values() {
        let Some(room) = a.room.upgrade() else {
            continue;
        };
        if let Some(seq) = a.held {
            room.replicated(link, seq);
        }
        match a.refused {
            None => {}
            Some((seq, Refused::Missing)) => room.replica_missing(link, seq),
            Some((_, Refused::Fenced)) => room.replica_fenced(link),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::replication::{Batch, Item};

    #[test]
    fn a_batch_encodes_as_the_replica_reads_it() {
        let id: RoomId = "r".parse().unwrap();
        let frame = r#"{"type":"message","room":"r","seq":5,"from":"m1","body":"a\"b"}"#;
        let items = vec![
            Outgoing {
                room: Weak::new(),
                id: id.clone(),
                seq: 5,
                item: Payload::Append {
                    epoch: 2,
                    members: 3,
                    key: Some("k\"1".into()),
                    frame: frame.into(),
                },
            },
            Outgoing {
                room: Weak::new(),
                id: id.clone(),
                seq: 0,
                item: Payload::Forget { epoch: 2 },
            },
        ];
        let body = encode(InstanceId::new(4).unwrap(), 7, &items);
        let batch: Batch<'_> = serde_json::from_str(&body).unwrap();
        assert_eq!((batch.from, batch.batch), (InstanceId::new(4).unwrap(), 7));
        let Item::Append(a) = &batch.items[0] else {
            panic!("{:?}", batch.items[0])
        };
        assert_eq!((a.seq, a.epoch, a.members), (5, 2, 3));
        assert_eq!((a.key.as_deref(), a.frame.get()), (Some("k\"1"), frame));
        assert!(matches!(&batch.items[1], Item::Forget { room, epoch: 2 } if *room == id));
    }

    #[test]
    fn a_new_incarnation_of_the_replica_is_a_restart() {
        let link = Link::detached(InstanceId::new(2).unwrap());
        link.answered_by(7);
        link.answered_by(7);
        assert!(
            !link.take_restarted(),
            "the first answer and the same process"
        );
        link.answered_by(8);
        assert!(link.take_restarted());
        assert!(!link.take_restarted(), "reported once");
    }

    #[test]
    fn a_batch_takes_at_least_one_item_and_stops_at_its_bytes() {
        let big = "x".repeat(BATCH_BYTES / 3);
        let out = |seq| Outgoing {
            room: Weak::new(),
            id: "r".parse().unwrap(),
            seq,
            item: Payload::Append {
                epoch: 1,
                members: 0,
                key: None,
                frame: format!("\"{big}\"").into(),
            },
        };
        let mut q: Vec<_> = (1..=5).map(out).collect();
        assert_eq!(take_batch(&mut q).len(), 2);
        assert_eq!(q.len(), 3);
    }
}
