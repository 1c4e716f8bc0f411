//! Live traffic: the clients a test keeps talking in its rooms while the
//! cluster changes under them, to check afterwards that no body was lost or
//! accepted twice. This module starts, watches and collects the clients;
//! `client.rs` is their loop, [`log`] what they record, and
//! [`crate::verdict`] judges the records.
//!
//! Every client ([`LiveClient::spawn`]) sends `{"c": id, "n": k}` with k =
//! 0, 1, 2, … every [`Config::send_every`] until told to stop, and follows
//! README "When is a message accepted?": a body is accepted iff it comes
//! back as a `message`. It follows `moved`, gets back into its room through
//! the routers of [`Shared`] after any other loss, resumes with
//! `since`/`stream`, and once the replay is in sends again the bodies it has
//! not seen. When its room's stream changed (history lost with a failed
//! node) it reads the `history_gap` and joins the new stream from its start
//! (`since=0`). While it runs it publishes its [`Progress`] for the test's
//! waits; told to finish, it returns its [`ClientLog`]: every message it
//! received, per stream, and every body it sent.
//!
//! [`Expect`] says what the run may do to the clients: only planned moves,
//! or faults too; in the first case all that only a fault explains is an
//! anomaly of the client's log.

mod client;
pub mod log;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub use self::log::{ClientLog, Conn, Got, Progress, Segment};
use crate::{WsClient, wait_until};

/// What the run may do to the clients' rooms and connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Only planned moves: a room changes owner by a handoff, announced by
    /// `moved` and a close. Anything else is an anomaly: a connection that
    /// ends without `moved`, a refused rejoin, a rejoin at `/iN/…` welcomed
    /// by another node, a frame after `moved` or no close after it, a new
    /// stream, `history_gap` or `unavailable`.
    Moves,
    /// Faults: connections may be lost, joins refused while a router or
    /// node is down, rooms may fail over to a new stream (with
    /// `history_gap`) and nodes fence themselves (`unavailable`). The
    /// client records these and gets back in.
    Faults,
}

/// How a test's clients behave: its pacing and bounds.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Each client's send pacing: traffic, not synchronisation.
    pub send_every: Duration,
    /// Bound on sending one frame, on a close, and on the frames a client
    /// awaits after `moved` or after a welcome into a new stream.
    pub wait: Duration,
    /// Bound on one join attempt (handshake plus welcome).
    pub join_timeout: Duration,
    /// How long a client keeps trying to get back into its room.
    pub rejoin_limit: Duration,
    /// Longest a client task runs before giving up on being told to finish.
    pub client_limit: Duration,
    /// What the run may do to the clients.
    pub expect: Expect,
}

/// What the clients share with the test: the routers they may join
/// through, by slot (a load balancer's target list, `None` while a slot's
/// router is down), and when to stop sending and to finish.
#[derive(Debug)]
pub struct Shared {
    routers: Mutex<Vec<Option<String>>>,
    stop_sending: AtomicBool,
    finish: AtomicBool,
}

impl Shared {
    /// The routers' WebSocket bases (`ws://host:port`), slot by slot.
    pub fn new(routers: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            routers: Mutex::new(routers.into_iter().map(Some).collect()),
            stop_sending: AtomicBool::new(false),
            finish: AtomicBool::new(false),
        })
    }

    /// The live routers, `home` first.
    fn routers_from(&self, home: usize) -> Vec<(usize, String)> {
        let routers = self.routers.lock().unwrap_or_else(|e| e.into_inner());
        let n = routers.len();
        (0..n)
            .map(|k| (home + k) % n)
            .filter_map(|i| routers[i].clone().map(|url| (i, url)))
            .collect()
    }

    /// Router slot `slot` is now `url` (`None`: down).
    pub fn set_router(&self, slot: usize, url: Option<String>) {
        self.routers.lock().unwrap_or_else(|e| e.into_inner())[slot] = url;
    }

    /// Every client stops sending new bodies (it still resends and reads).
    pub fn stop_sending(&self) {
        self.stop_sending.store(true, Ordering::SeqCst);
    }

    /// Whether the clients were told to finish ([`collect`] tells them).
    pub fn finishing(&self) -> bool {
        self.finish.load(Ordering::SeqCst)
    }
}

/// A running client: its room, its published [`Progress`] and its task.
#[derive(Debug)]
pub struct LiveClient {
    /// Its room.
    pub room: String,
    progress: Arc<Mutex<Progress>>,
    task: tokio::task::JoinHandle<ClientLog>,
}

impl LiveClient {
    /// Starts client `id` of `room` on the connection `first` (joined and
    /// welcomed at seq 0, through router slot `home` of `shared`), which
    /// rejoins through `home` first.
    pub fn spawn(
        id: u64,
        room: String,
        home: usize,
        first: (WsClient, Value),
        shared: Arc<Shared>,
        config: Config,
    ) -> Self {
        let progress = Arc::new(Mutex::new(Progress::default()));
        let client = client::Client::new(id, room.clone(), home, shared, config, progress.clone());
        Self {
            room,
            progress,
            task: tokio::spawn(client.run(first)),
        }
    }

    /// Its progress right now.
    pub fn progress(&self) -> Progress {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Joins `per_room` clients to each of `rooms` on the legacy path
/// `/room/{id}`, client k of the r-th room through router slot (r + k) mod
/// the number of slots of `shared`, all before any of them sends (so each
/// sees its room from seq 1), and then starts them, with ids 0, 1, … in
/// that order. `welcomed(room, welcome)` checks each welcome. Panics if a
/// join fails.
pub async fn start(
    shared: &Arc<Shared>,
    rooms: &[String],
    per_room: usize,
    config: Config,
    welcomed: impl Fn(&str, &Value),
) -> Vec<LiveClient> {
    let bases: Vec<String> = shared
        .routers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|url| url.clone().expect("every router slot is up at the start"))
        .collect();
    let mut joined = Vec::new();
    for (r, room) in rooms.iter().enumerate() {
        for k in 0..per_room {
            let home = (r + k) % bases.len();
            let url = format!("{}/room/{room}", bases[home]);
            let (ws, welcome) = WsClient::try_join(&url, config.join_timeout)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            welcomed(room, &welcome);
            joined.push((room.clone(), home, ws, welcome));
        }
    }
    joined
        .into_iter()
        .enumerate()
        .map(|(i, (room, home, ws, welcome))| {
            LiveClient::spawn(i as u64, room, home, (ws, welcome), shared.clone(), config)
        })
        .collect()
}

/// Every client's progress right now, in order.
pub fn snapshot(clients: &[LiveClient]) -> Vec<Progress> {
    clients.iter().map(LiveClient::progress).collect()
}

/// Tells every client to finish and collects their logs by room, each
/// within `timeout`.
pub async fn collect(
    shared: &Shared,
    clients: Vec<LiveClient>,
    timeout: Duration,
) -> BTreeMap<String, Vec<ClientLog>> {
    shared.finish.store(true, Ordering::SeqCst);
    let mut logs: BTreeMap<String, Vec<ClientLog>> = BTreeMap::new();
    for c in clients {
        let log = tokio::time::timeout(timeout, c.task)
            .await
            .unwrap_or_else(|_| panic!("a client of {} did not finish within {timeout:?}", c.room))
            .expect("client task");
        logs.entry(c.room).or_default().push(log);
    }
    logs
}

/// Waits until every client is connected, has seen `more` more of its own
/// bodies accepted than in `base` (a [`snapshot`] taken before), and
/// `also` holds for it; panics after `bound` naming `what` and the clients
/// behind.
pub async fn wait_flowing(
    clients: &[LiveClient],
    base: &[Progress],
    more: u64,
    bound: Duration,
    what: &str,
    also: impl Fn(&LiveClient, &Progress) -> bool,
) {
    let flowing = |(p, b): (&Progress, &Progress), c: &LiveClient| {
        p.connected && p.accepted >= b.accepted + more && also(c, p)
    };
    let ok = wait_until(bound, async || {
        snapshot(clients)
            .iter()
            .zip(base)
            .zip(clients)
            .all(|(pb, c)| flowing(pb, c))
    })
    .await;
    if !ok {
        let stuck: Vec<String> = snapshot(clients)
            .iter()
            .zip(base)
            .zip(clients)
            .filter(|(pb, c)| !flowing(*pb, c))
            .map(|((p, b), c)| format!("{}: {p:?} (was {} accepted)", c.room, b.accepted))
            .collect();
        panic!(
            "{what}: not every room flowed within {bound:?}; {} client(s) behind:\n{}",
            stuck.len(),
            stuck.join("\n")
        );
    }
}

/// Whether the traffic has drained (after [`Shared::stop_sending`]): every
/// client is in its room with no body pending, and the clients of each
/// room are at one stream and last seq.
pub fn drained(clients: &[LiveClient]) -> bool {
    let snap = snapshot(clients);
    let mut last: BTreeMap<&str, BTreeSet<(&str, u64)>> = BTreeMap::new();
    for (p, c) in snap.iter().zip(clients) {
        last.entry(c.room.as_str())
            .or_default()
            .insert((p.stream.as_str(), p.last_seq));
    }
    snap.iter().all(|p| p.connected && p.pending == 0) && last.values().all(|s| s.len() == 1)
}

/// The clients that keep [`drained`] from holding, for its failure message.
pub fn undrained(clients: &[LiveClient]) -> Vec<String> {
    snapshot(clients)
        .iter()
        .zip(clients)
        .filter(|(p, _)| !p.connected || p.pending > 0)
        .map(|(p, c)| format!("{}: {p:?}", c.room))
        .collect()
}
