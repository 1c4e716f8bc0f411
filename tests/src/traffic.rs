//! Live traffic: the clients a test keeps talking in its rooms while the
//! cluster changes under them, to check afterwards that no body was lost or
//! accepted twice. This module owns the client loop and what it records;
//! the verdicts on the records stay with each test.
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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A raw WebSocket connection, as the traffic clients use them.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

/// A client's state as the test's waits see it.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    /// In its room right now.
    pub connected: bool,
    /// The router slot of the current connection.
    pub via: usize,
    /// The node of the current connection.
    pub node: String,
    /// The stream of the current connection.
    pub stream: String,
    /// The last seq seen in that stream.
    pub last_seq: u64,
    /// Own bodies sent and not yet seen accepted.
    pub pending: usize,
    /// Own bodies seen accepted, in total.
    pub accepted: u64,
    /// Own bodies seen accepted on the current connection.
    pub accepted_here: usize,
    /// Connections made (the first join included).
    pub connections: usize,
    /// The anomalies so far (see [`ClientLog::anomalies`]).
    pub anomalies: Vec<String>,
}

impl Progress {
    /// Connections made after the first join.
    pub fn rejoins(&self) -> usize {
        self.connections.saturating_sub(1)
    }
}

/// One received room message: its seq and the body `{"c","n"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Got {
    /// Its seq in its stream.
    pub seq: u64,
    /// The sending client's id.
    pub c: u64,
    /// The sending client's counter.
    pub n: u64,
}

impl Got {
    /// A `message` frame whose body is `{"c","n"}`, or `None` if `v` is
    /// not one.
    pub fn from_message(v: &Value) -> Option<Self> {
        Some(Self {
            seq: v["seq"].as_u64()?,
            c: v["body"]["c"].as_u64()?,
            n: v["body"]["n"].as_u64()?,
        })
    }
}

/// Messages of one stream, as one client saw them.
#[derive(Debug, Default, Clone)]
pub struct Segment {
    /// The stream.
    pub stream: String,
    /// Every `message` in it, in arrival order.
    pub got: Vec<Got>,
    /// When each of `got` arrived.
    pub arrived: Vec<Instant>,
    /// Nodes that served this client in this stream.
    pub nodes: BTreeSet<String>,
}

/// One connection of a client.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The router slot it went through.
    pub via: usize,
    /// The node that welcomed it.
    pub node: String,
    /// When and how it ended, e.g. `close 1012`, `eof`, `moved /i4/room/x`,
    /// `resync`, `finished`.
    pub ended: Option<(Instant, String)>,
}

/// What a client saw and did, returned when its task ends.
#[derive(Debug, Default)]
pub struct ClientLog {
    /// The client's id, `c` of its bodies.
    pub id: u64,
    /// Its room.
    pub room: String,
    /// What it received, one segment per stream, in order.
    pub segments: Vec<Segment>,
    /// Bodies sent, by `n`: 0..sent.
    pub sent: u64,
    /// When each body was first sent, by `n`.
    pub sent_at: Vec<Instant>,
    /// Bodies sent again because a replay showed them not accepted, in
    /// order.
    pub resent: Vec<u64>,
    /// Its connections, in order.
    pub conns: Vec<Conn>,
    /// Welcomes into another stream than the one before.
    pub stream_changes: usize,
    /// `error` `history_gap` frames.
    pub history_gaps: usize,
    /// `error` `unavailable` frames (a fenced node's goodbye).
    pub unavailable: usize,
    /// `error` `room_moving` answers.
    pub room_moving: usize,
    /// Bodies found unaccepted when a connection ended that no
    /// `room_moving` answered: they crossed `moved` on the wire or sat
    /// unread when the old owner closed. Resent like the refused ones.
    pub unanswered: usize,
    /// Paths of `moved` frames.
    pub moved_to: Vec<String>,
    /// Close codes right after `moved`.
    pub move_closes: Vec<Option<u16>>,
    /// Joins dropped at once to replay a new stream from its start.
    pub resyncs: usize,
    /// Join attempts that failed (router down, node refusing).
    pub join_failures: usize,
    /// Sends that failed on the socket (a connection ending under them).
    pub failed_sends: usize,
    /// Everything that breaks the protocol as README states it, or that
    /// the run's [`Expect`] rules out.
    pub anomalies: Vec<String>,
}

impl ClientLog {
    /// How the connections ended, e.g. `close 1012`, `eof`.
    pub fn ends(&self) -> Vec<&str> {
        self.conns
            .iter()
            .filter_map(|c| c.ended.as_ref().map(|(_, why)| why.as_str()))
            .collect()
    }

    /// Every `message` received, in arrival order, across streams.
    pub fn got(&self) -> Vec<Got> {
        self.segments
            .iter()
            .flat_map(|s| s.got.iter().copied())
            .collect()
    }

    /// The streams it was in, in order.
    pub fn streams(&self) -> Vec<&str> {
        self.segments.iter().map(|s| s.stream.as_str()).collect()
    }
}

/// Joins `url` and reads the welcome, each within `timeout`.
pub async fn open(url: &str, timeout: Duration) -> Result<(Ws, Value), String> {
    let joined = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| format!("joining {url} took more than {timeout:?}"))?;
    let (mut ws, _) = joined.map_err(|e| match e {
        WsError::Http(resp) => format!(
            "joining {url}: HTTP {} {}",
            resp.status(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default())
        ),
        e => format!("joining {url}: {e}"),
    })?;
    loop {
        let frame = tokio::time::timeout(timeout, ws.next())
            .await
            .map_err(|_| format!("no welcome from {url} within {timeout:?}"))?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                let v: Value = serde_json::from_str(&text)
                    .map_err(|e| format!("first frame from {url} is not JSON ({e}): {text}"))?;
                if v["type"] != "welcome" {
                    return Err(format!("first frame from {url} is not a welcome: {v}"));
                }
                return Ok((ws, v));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => return Err(format!("{url} answered the join with {other:?}")),
        }
    }
}

/// The next text frame as JSON within `timeout`, skipping pings.
async fn next_json(ws: &mut Ws, timeout: Duration) -> Result<Value, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(format!("nothing within {timeout:?}")),
            Ok(Some(Ok(Message::Text(t)))) => {
                return serde_json::from_str(&t).map_err(|e| format!("not JSON ({e}): {t}"));
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => return Err(format!("{other:?}")),
        }
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
        first: (Ws, Value),
        shared: Arc<Shared>,
        config: Config,
    ) -> Self {
        let progress = Arc::new(Mutex::new(Progress::default()));
        let client = Client {
            config,
            shared,
            progress: progress.clone(),
            home,
            log: ClientLog {
                id,
                room: room.clone(),
                ..ClientLog::default()
            },
            pending: BTreeSet::new(),
            last_seq: 0,
            stream: String::new(),
            accepted: 0,
            accepted_here: 0,
            room_moving_here: 0,
            next_path: None,
            deadline: Instant::now() + config.client_limit,
        };
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
            let (ws, welcome) = open(&url, config.join_timeout)
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

/// How one connection ended.
enum End {
    Finished,
    Lost(String),
    Moved(String),
    Resync,
}

struct Client {
    config: Config,
    shared: Arc<Shared>,
    progress: Arc<Mutex<Progress>>,
    home: usize,
    log: ClientLog,
    pending: BTreeSet<u64>,
    last_seq: u64,
    /// The stream of the current segment.
    stream: String,
    accepted: u64,
    accepted_here: usize,
    /// `room_moving` answers on the current connection.
    room_moving_here: usize,
    /// A `moved` path to try first on the next join.
    next_path: Option<String>,
    deadline: Instant,
}

impl Client {
    /// Records `anomaly` unless the run expects faults, which explain it.
    fn unless_faults(&mut self, anomaly: String) {
        if self.config.expect == Expect::Moves {
            self.log.anomalies.push(anomaly);
        }
    }

    fn publish(&self, connected: bool) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        p.connected = connected;
        if let Some(c) = self.log.conns.last() {
            p.via = c.via;
            p.node.clone_from(&c.node);
        }
        p.stream.clone_from(&self.stream);
        p.last_seq = self.last_seq;
        p.pending = self.pending.len();
        p.accepted = self.accepted;
        p.accepted_here = self.accepted_here;
        p.connections = self.log.conns.len();
        if p.anomalies.len() != self.log.anomalies.len() {
            p.anomalies.clone_from(&self.log.anomalies);
        }
    }

    fn segment(&mut self) -> &mut Segment {
        self.log
            .segments
            .last_mut()
            .expect("a segment after the first join")
    }

    fn end_conn(&mut self, why: &str) {
        if let Some(c) = self.log.conns.last_mut() {
            c.ended = Some((Instant::now(), why.to_owned()));
        }
    }

    /// A connection ended with bodies pending: those no `room_moving`
    /// answered were left unanswered.
    fn count_unanswered(&mut self) {
        self.log.unanswered += self.pending.len().saturating_sub(self.room_moving_here);
    }

    /// Sends body `n`; false if the connection is gone (the body stays
    /// pending and is settled by the next replay).
    async fn send_body(&mut self, ws: &mut Ws, n: u64) -> bool {
        let frame = json!({"type": "send", "body": {"c": self.log.id, "n": n}}).to_string();
        let wait = self.config.wait;
        match tokio::time::timeout(wait, ws.send(Message::text(frame))).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => {
                self.log.failed_sends += 1;
                false
            }
            Err(_) => {
                self.log
                    .anomalies
                    .push(format!("sending n={n} blocked for {wait:?}"));
                false
            }
        }
    }

    /// After a replay: every own body still unseen was not accepted, so it
    /// is sent again.
    async fn resend_pending(&mut self, ws: &mut Ws) {
        let again: Vec<u64> = self.pending.iter().copied().collect();
        for n in again {
            self.log.resent.push(n);
            if !self.send_body(ws, n).await {
                return;
            }
        }
    }

    /// Joins the room through a live router (home first), the `moved` path
    /// first, with `since`/`stream` once it has a stream, retrying with
    /// back-off until [`Config::rejoin_limit`].
    async fn connect(&mut self) -> Option<(Ws, Value, usize)> {
        let limit = self.config.rejoin_limit;
        let give_up = Instant::now() + limit;
        let mut pause = Duration::from_millis(50);
        let mut last = String::new();
        loop {
            let query = if self.stream.is_empty() {
                String::new()
            } else {
                format!("?since={}&stream={}", self.last_seq, self.stream)
            };
            let mut paths: Vec<String> = self.next_path.iter().cloned().collect();
            paths.push(format!("/room/{}", self.log.room));
            for (slot, base) in self.shared.routers_from(self.home) {
                for path in &paths {
                    match open(&format!("{base}{path}{query}"), self.config.join_timeout).await {
                        Ok((ws, welcome)) => {
                            if let Some(node) =
                                path.strip_prefix('/').and_then(|p| p.split('/').next())
                                && path.starts_with("/i")
                                && welcome["node"] != node
                            {
                                self.unless_faults(format!(
                                    "rejoined {path} but the welcome says {welcome}"
                                ));
                            }
                            self.next_path = None;
                            return Some((ws, welcome, slot));
                        }
                        Err(e) => {
                            self.log.join_failures += 1;
                            if self.log.join_failures == 1 {
                                self.unless_faults(format!("first rejoin refused: {e}"));
                            }
                            last = e;
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= give_up || self.shared.finishing() {
                self.log
                    .anomalies
                    .push(format!("could not rejoin within {limit:?}; last: {last}"));
                return None;
            }
            // Back-off between a client's attempts, not a wait for a
            // state: the bound above ends it.
            tokio::time::sleep(pause.min(give_up - now)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Reads what follows `moved` up to the close, at most
    /// [`Config::wait`]: its code.
    async fn close_after_moved(&mut self, ws: &mut Ws) -> Option<u16> {
        let deadline = Instant::now() + self.config.wait;
        loop {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => {
                    self.unless_faults("no close after moved".into());
                    return None;
                }
                Ok(Some(Ok(Message::Close(f)))) => return f.map(|f| u16::from(f.code)),
                Ok(Some(Ok(Message::Text(t)))) => {
                    self.unless_faults(format!("frame after moved: {t}"));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return None,
            }
        }
    }

    /// Sends and reads on `first` and every connection after it until told
    /// to finish, or until it cannot get back in.
    async fn run(mut self, first: (Ws, Value)) -> ClientLog {
        let mut tick = tokio::time::interval(self.config.send_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut ws, mut welcome) = first;
        let mut via = self.home;
        loop {
            let end = self.serve(&mut ws, &welcome, via, &mut tick).await;
            self.publish(false);
            match end {
                End::Finished => {
                    self.end_conn("finished");
                    let _ = tokio::time::timeout(self.config.wait, ws.close(None)).await;
                    return self.log;
                }
                End::Moved(path) => {
                    // `moved` is the last frame: a close (1000) follows.
                    let code = self.close_after_moved(&mut ws).await;
                    self.log.moved_to.push(path.clone());
                    self.log.move_closes.push(code);
                    self.end_conn(&format!("moved {path}"));
                    self.count_unanswered();
                    self.next_path = Some(path);
                }
                End::Lost(why) => {
                    self.unless_faults(format!("connection ended without moved: {why}"));
                    self.end_conn(&why);
                    self.count_unanswered();
                }
                End::Resync => {}
            }
            let Some((again, w, slot)) = self.connect().await else {
                return self.log;
            };
            (ws, welcome, via) = (again, w, slot);
        }
    }

    /// Serves one connection until it ends.
    async fn serve(
        &mut self,
        ws: &mut Ws,
        welcome: &Value,
        via: usize,
        tick: &mut tokio::time::Interval,
    ) -> End {
        let node = welcome["node"].as_str().unwrap_or_default().to_owned();
        let stream = welcome["stream"].as_str().unwrap_or_default().to_owned();
        let latest = welcome["seq"].as_u64().unwrap_or(0);
        self.log.conns.push(Conn {
            via,
            node: node.clone(),
            ended: None,
        });
        self.accepted_here = 0;
        self.room_moving_here = 0;
        let mut expect_gap = false;
        if self.stream.is_empty() {
            if latest != 0 {
                self.log
                    .anomalies
                    .push(format!("first welcome is not at seq 0: {welcome}"));
            }
            self.stream.clone_from(&stream);
            self.log.segments.push(Segment {
                stream: stream.clone(),
                ..Segment::default()
            });
        } else if stream != self.stream {
            // History lost (the room failed over): a new stream from seq 1.
            self.unless_faults(format!("stream changed across the move: {welcome}"));
            self.log.stream_changes += 1;
            self.stream.clone_from(&stream);
            self.last_seq = 0;
            self.log.segments.push(Segment {
                stream: stream.clone(),
                ..Segment::default()
            });
            expect_gap = true;
            if latest > 0 {
                // Messages 1..=latest of the new stream came before this
                // join: read the gap, then join again with since=0 to have
                // them replayed.
                match next_json(ws, self.config.wait).await {
                    Ok(v) if v["type"] == "error" && v["code"] == "history_gap" => {
                        self.log.history_gaps += 1;
                    }
                    other => self.log.anomalies.push(format!(
                        "stream changed to {stream} but no history_gap followed the welcome: {other:?}"
                    )),
                }
                let _ = tokio::time::timeout(self.config.wait, ws.close(None)).await;
                self.segment().nodes.insert(node);
                self.log.resyncs += 1;
                self.end_conn("resync");
                return End::Resync;
            }
        }
        self.segment().nodes.insert(node);
        if latest < self.last_seq {
            self.log.anomalies.push(format!(
                "welcome at seq {latest}, behind the {} already seen: {welcome}",
                self.last_seq
            ));
        }
        let mut replay_until = if latest > self.last_seq {
            Some(latest)
        } else {
            self.resend_pending(ws).await;
            None
        };
        loop {
            self.publish(true);
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(end) = self
                            .on_text(ws, &text, &mut replay_until, &mut expect_gap)
                            .await
                        {
                            return end;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        self.log.anomalies.push("binary frame".into());
                    }
                    Some(Ok(Message::Close(f))) => {
                        return End::Lost(match f {
                            Some(f) => format!("close {}", u16::from(f.code)),
                            None => "close without code".into(),
                        });
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return End::Lost(format!("transport error: {e}")),
                    None => return End::Lost("eof".into()),
                },
                _ = tick.tick() => {
                    if self.shared.finishing() {
                        return End::Finished;
                    }
                    if Instant::now() > self.deadline {
                        let limit = self.config.client_limit;
                        self.log
                            .anomalies
                            .push(format!("never told to finish within {limit:?}"));
                        return End::Finished;
                    }
                    if !self.shared.stop_sending.load(Ordering::SeqCst) && replay_until.is_none() {
                        let n = self.log.sent;
                        self.log.sent += 1;
                        self.log.sent_at.push(Instant::now());
                        self.pending.insert(n);
                        // Pending before it is on the wire, so the test's
                        // drain never sees a body in flight as settled.
                        self.publish(true);
                        if !self.send_body(ws, n).await {
                            // The read side says how it ended.
                            continue;
                        }
                    }
                }
            }
        }
    }

    /// Handles one text frame; `Some` when the connection is over.
    async fn on_text(
        &mut self,
        ws: &mut Ws,
        text: &str,
        replay_until: &mut Option<u64>,
        expect_gap: &mut bool,
    ) -> Option<End> {
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.log
                    .anomalies
                    .push(format!("non-JSON frame ({e}): {text}"));
                return None;
            }
        };
        match v["type"].as_str() {
            Some("message") => {
                let Some(got @ Got { seq, c, n }) = Got::from_message(&v) else {
                    self.log.anomalies.push(format!("malformed message {v}"));
                    return None;
                };
                if seq != self.last_seq + 1 {
                    self.log.anomalies.push(format!(
                        "seq {seq} after {} in stream {} (room {})",
                        self.last_seq, self.stream, self.log.room
                    ));
                }
                self.last_seq = self.last_seq.max(seq);
                let segment = self.segment();
                segment.got.push(got);
                segment.arrived.push(Instant::now());
                if c == self.log.id {
                    if self.pending.remove(&n) {
                        self.accepted += 1;
                        self.accepted_here += 1;
                    } else {
                        self.log
                            .anomalies
                            .push(format!("own body n={n} delivered again at seq {seq}"));
                    }
                }
                if replay_until.is_some_and(|until| seq >= until) {
                    *replay_until = None;
                    self.resend_pending(ws).await;
                }
            }
            Some("error") if v["code"] == "history_gap" => {
                self.log.history_gaps += 1;
                if !std::mem::take(expect_gap) {
                    self.log
                        .anomalies
                        .push(format!("history_gap without a stream change: {v}"));
                }
            }
            Some("error") if v["code"] == "unavailable" => {
                self.log.unavailable += 1;
                self.unless_faults(format!("error frame {v}"));
            }
            Some("error") if v["code"] == "room_moving" => {
                self.log.room_moving += 1;
                self.room_moving_here += 1;
            }
            Some("error") => self.log.anomalies.push(format!("error frame {v}")),
            // `moved` is the last frame; the close follows.
            Some("moved") => {
                return Some(End::Moved(
                    v["path"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            Some("joined" | "left") => {}
            _ => self.log.anomalies.push(format!("unexpected frame {v}")),
        }
        None
    }
}
