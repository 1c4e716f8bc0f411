//! Scale-out end to end: three nodes grow to four and `router rebalance`
//! moves rooms live while clients keep talking. Every client follows
//! `moved`, resumes with `since` and `stream`, and resends what the frozen
//! room refused; afterwards every room's sequence must be 1..=N with no gap
//! and no duplicate, identical for both members, holding every body sent
//! exactly once. A second test holds one handoff half-way (an HTTP gate in
//! front of the new node delays the `adopt` call) to show, deterministically,
//! that a send to a frozen room is refused with `room_moving`, never dropped
//! silently, and is accepted once resent to the new owner.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proto::placement::Placement;
use proto::record::RoomRecord;
use proto::{InstanceId, RoomId};
use serde_json::{Value, json};
use testkit::ws::tungstenite::{Error as WsError, Message};
use testkit::{Cluster, Proc, WsClient, eventually, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Bound on one frame, connect or close.
const WAIT: Duration = Duration::from_secs(10);
/// Bound on a state the whole cluster reaches (traffic flowing, drained).
const SETTLE: Duration = Duration::from_secs(30);
/// Bound on one `router` command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Rooms in the cluster.
const ROOMS: usize = 300;
/// Rooms with live clients that the new node's arrival moves, and that it
/// leaves where they are.
const LIVE_MOVERS: usize = 20;
const LIVE_STAYERS: usize = 20;
/// Live clients per room.
const PER_ROOM: usize = 2;
/// Each client's send pacing: traffic, not synchronisation.
const SEND_EVERY: Duration = Duration::from_millis(20);
/// Own messages every client must see accepted before the move starts, and
/// again on its new connection after a move.
const WARM_UP: usize = 25;
/// Longest a client task runs before giving up on being told to finish.
const CLIENT_LIMIT: Duration = Duration::from_secs(120);

fn iid(n: u16) -> InstanceId {
    InstanceId::new(n).expect("valid instance number")
}

fn rid(room: &str) -> RoomId {
    room.parse().expect("valid room id")
}

/// The HRW owner of `room` over the equal nodes `i1..=iN`.
fn hrw_owner(nodes: u16, room: &str) -> String {
    Placement::new((1..=nodes).map(|n| (iid(n), 1.0)))
        .owner(&rid(room))
        .expect("nodes exist")
        .to_string()
}

/// Runs `router <args>` against the cluster's etcd; its output, after
/// asserting it exited 0 within [`COMMAND_TIMEOUT`].
async fn router_cmd(cluster: &Cluster, args: &[&str]) -> String {
    let mut p = spawn_router_cmd(cluster, args);
    finish_router_cmd(&mut p, args).await
}

fn spawn_router_cmd(cluster: &Cluster, args: &[&str]) -> Proc {
    cluster.router_command(args)
}

async fn finish_router_cmd(p: &mut Proc, args: &[&str]) -> String {
    let (status, log) = p.finish(COMMAND_TIMEOUT).await;
    assert!(status.success(), "router {args:?} exited {status}:\n{log}");
    log
}

/// Every room record in etcd, by id.
async fn records(cluster: &Cluster) -> BTreeMap<String, RoomRecord> {
    let store = cluster.etcd.store(&cluster.prefix).await;
    let mut all = BTreeMap::new();
    loop {
        let after = all.keys().next_back().map(|k: &String| rid(k));
        let page = store
            .rooms(after.as_ref(), 1000)
            .await
            .expect("listing rooms in etcd");
        let full = page.len() == 1000;
        for rec in page {
            all.insert(rec.id.to_string(), rec);
        }
        if !full {
            return all;
        }
    }
}

/// `(node, epoch)` of every room record.
fn placement_of(recs: &BTreeMap<String, RoomRecord>) -> BTreeMap<String, (String, u64)> {
    recs.iter()
        .map(|(id, r)| (id.clone(), (r.node.to_string(), r.epoch)))
        .collect()
}

/// Rooms per node as router `i` reports them on `GET /nodes`.
async fn node_counts(cluster: &Cluster, i: usize) -> BTreeMap<String, u64> {
    let r = cluster.router(i).http().get("/nodes").await;
    assert_eq!(r.status, 200, "GET /nodes: {}", r.text);
    r.body
        .as_array()
        .expect("GET /nodes is an array")
        .iter()
        .map(|n| {
            (
                n["id"].as_str().expect("node id").to_owned(),
                n["rooms"].as_u64().expect("node rooms"),
            )
        })
        .collect()
}

/// The tail of every cluster process's log, for failure messages.
fn cluster_logs(cluster: &Cluster) -> String {
    let mut out = String::new();
    for n in &cluster.nodes {
        out.push_str(&format!(
            "\n--- node {} ({}) ---\n{}",
            n.id(),
            n.proc.log_path().display(),
            n.proc.log_tail(30)
        ));
    }
    for r in &cluster.routers {
        out.push_str(&format!(
            "\n--- router :{} ({}) ---\n{}",
            r.port,
            r.proc.log_path().display(),
            r.proc.log_tail(15)
        ));
    }
    out
}

// ---------------------------------------------------------------------------
// A live client for the traffic test.

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects to `url` and reads the welcome.
async fn open(url: &str) -> Result<(Ws, Value), String> {
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| format!("connecting to {url} took more than {WAIT:?}"))?
        .map_err(|e| format!("connecting to {url}: {e}"))?;
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .map_err(|_| format!("no welcome from {url} within {WAIT:?}"))?;
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

/// What a client's task shares while it runs, for the test's waits.
#[derive(Debug, Default, Clone)]
struct Progress {
    last_seq: u64,
    /// Own bodies sent and not yet seen in a `message`.
    pending: usize,
    /// Own bodies seen accepted on the current connection.
    accepted_here: usize,
    /// Rejoins, after `moved` or otherwise.
    rejoins: usize,
    reconnecting: bool,
    anomalies: Vec<String>,
}

/// Tells every client task what to do next.
#[derive(Default)]
struct Control {
    stop_sending: AtomicBool,
    finish: AtomicBool,
}

/// One received room message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    seq: u64,
    /// Sender client id and its counter, from the body `{"c","n"}`.
    c: u64,
    n: u64,
}

/// What a client saw and did, returned when its task ends.
#[derive(Debug, Default)]
struct ClientLog {
    id: u64,
    room: String,
    stream: String,
    /// Every `message`, in arrival order, across connections.
    got: Vec<Got>,
    /// Bodies sent, by `n`: 0..sent.
    sent: u64,
    /// Bodies sent again after a reconnect because they were not accepted.
    resent: Vec<u64>,
    /// `error` `room_moving` answers.
    room_moving: usize,
    /// Bodies found unaccepted after a move that no `room_moving` answered:
    /// they crossed `moved` on the wire or sat unread when the old owner
    /// closed. Resent like the refused ones.
    unanswered: usize,
    /// Paths of `moved` frames.
    moved_to: Vec<String>,
    /// Close codes right after `moved`.
    move_closes: Vec<Option<u16>>,
    /// Failed join attempts before a reconnect succeeded.
    reconnect_retries: usize,
    /// Sends that failed on the socket (a connection ending under them).
    failed_sends: usize,
    /// Everything that breaks the protocol as README states it.
    anomalies: Vec<String>,
}

/// How one connection ended.
enum Ended {
    Moved(String),
    Unexpected(String),
    Finished,
}

struct Client {
    log: ClientLog,
    progress: Arc<Mutex<Progress>>,
    pending: BTreeSet<u64>,
    last_seq: u64,
    accepted_here: usize,
    rejoins: usize,
    /// `room_moving` answers on the current connection.
    refused_here: usize,
}

impl Client {
    fn publish(&self, reconnecting: bool) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        p.last_seq = self.last_seq;
        p.pending = self.pending.len();
        p.accepted_here = self.accepted_here;
        p.rejoins = self.rejoins;
        p.reconnecting = reconnecting;
        if p.anomalies.len() != self.log.anomalies.len() {
            p.anomalies.clone_from(&self.log.anomalies);
        }
    }

    async fn send_body(&mut self, ws: &mut Ws, n: u64) {
        let frame = json!({"type": "send", "body": {"c": self.log.id, "n": n}}).to_string();
        match tokio::time::timeout(WAIT, ws.send(Message::text(frame))).await {
            Ok(Ok(())) => {}
            // The connection is ending (a move): the body stays pending and
            // is resolved after the reconnect's replay.
            Ok(Err(_)) => self.log.failed_sends += 1,
            Err(_) => self
                .log
                .anomalies
                .push(format!("sending n={n} blocked for {WAIT:?}")),
        }
    }

    /// After a reconnect's replay: every own body still unseen was not
    /// accepted by the old owner (it was frozen, then closed), so it is
    /// sent again, once.
    async fn resend_pending(&mut self, ws: &mut Ws) {
        let again: Vec<u64> = self.pending.iter().copied().collect();
        for n in again {
            self.log.resent.push(n);
            self.send_body(ws, n).await;
        }
    }

    /// Handles one text frame; `Some` when the connection is over.
    async fn on_text(
        &mut self,
        ws: &mut Ws,
        text: &str,
        replay_until: &mut Option<u64>,
    ) -> Option<Ended> {
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
                let (Some(seq), Some(c), Some(n)) = (
                    v["seq"].as_u64(),
                    v["body"]["c"].as_u64(),
                    v["body"]["n"].as_u64(),
                ) else {
                    self.log.anomalies.push(format!("malformed message {v}"));
                    return None;
                };
                if seq != self.last_seq + 1 {
                    self.log.anomalies.push(format!(
                        "seq {seq} after {} (room {})",
                        self.last_seq, self.log.room
                    ));
                }
                self.last_seq = self.last_seq.max(seq);
                self.log.got.push(Got { seq, c, n });
                if c == self.log.id {
                    if self.pending.remove(&n) {
                        self.accepted_here += 1;
                    } else {
                        self.log
                            .anomalies
                            .push(format!("own body n={n} delivered again at seq {seq}"));
                    }
                }
                if *replay_until == Some(seq) {
                    *replay_until = None;
                    self.resend_pending(ws).await;
                }
            }
            Some("error") if v["code"] == "room_moving" => {
                self.log.room_moving += 1;
                self.refused_here += 1;
            }
            Some("error") => self.log.anomalies.push(format!("error frame {v}")),
            Some("moved") => {
                let path = v["path"].as_str().unwrap_or_default().to_owned();
                return Some(Ended::Moved(path));
            }
            Some("joined" | "left") => {}
            _ => self.log.anomalies.push(format!("unexpected frame {v}")),
        }
        None
    }

    /// Serves one connection until it ends.
    async fn connection(
        &mut self,
        ws: &mut Ws,
        ctl: &Control,
        tick: &mut tokio::time::Interval,
        deadline: Instant,
        mut replay_until: Option<u64>,
    ) -> Ended {
        loop {
            self.publish(false);
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(end) = self.on_text(ws, &text, &mut replay_until).await {
                            return end;
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Binary(_))) => self.log.anomalies.push("binary frame".into()),
                    Some(Ok(Message::Close(f))) => {
                        return Ended::Unexpected(format!("closed without moved: {f:?}"));
                    }
                    Some(Err(e)) => return Ended::Unexpected(format!("transport error: {e}")),
                    None => return Ended::Unexpected("stream ended without moved".into()),
                },
                _ = tick.tick() => {
                    if ctl.finish.load(Ordering::SeqCst) {
                        return Ended::Finished;
                    }
                    if Instant::now() > deadline {
                        self.log.anomalies.push(format!("never told to finish within {CLIENT_LIMIT:?}"));
                        return Ended::Finished;
                    }
                    if !ctl.stop_sending.load(Ordering::SeqCst) && replay_until.is_none() {
                        let n = self.log.sent;
                        self.log.sent += 1;
                        self.pending.insert(n);
                        self.send_body(ws, n).await;
                    }
                }
            }
        }
    }

    /// Joins `url` again, retrying refusals for at most [`WAIT`].
    async fn rejoin(&mut self, url: &str) -> Option<(Ws, Value)> {
        let give_up = Instant::now() + WAIT;
        loop {
            match open(url).await {
                Ok(joined) => return Some(joined),
                Err(e) if Instant::now() < give_up => {
                    self.log.reconnect_retries += 1;
                    if self.log.reconnect_retries == 1 {
                        self.log
                            .anomalies
                            .push(format!("first rejoin refused: {e}"));
                    }
                    // Back-off between attempts of a client, not a wait for
                    // a state: the bound above ends it.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    self.log.anomalies.push(format!("cannot rejoin: {e}"));
                    return None;
                }
            }
        }
    }
}

/// One live client: sends `{"c": id, "n": k}` every [`SEND_EVERY`] until
/// told to stop, follows moves, and returns what it saw when told to finish.
async fn run_client(
    id: u64,
    room: String,
    router_ws: String,
    mut ws: Ws,
    welcome: Value,
    progress: Arc<Mutex<Progress>>,
    ctl: Arc<Control>,
) -> ClientLog {
    let stream = welcome["stream"].as_str().unwrap_or_default().to_owned();
    let mut me = Client {
        log: ClientLog {
            id,
            room: room.clone(),
            stream: stream.clone(),
            ..ClientLog::default()
        },
        progress,
        pending: BTreeSet::new(),
        last_seq: 0,
        accepted_here: 0,
        rejoins: 0,
        refused_here: 0,
    };
    if welcome["seq"] != 0 {
        me.log
            .anomalies
            .push(format!("first welcome is not at seq 0: {welcome}"));
    }
    let deadline = Instant::now() + CLIENT_LIMIT;
    let mut tick = tokio::time::interval(SEND_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut replay_until = None;
    loop {
        let ended = me
            .connection(&mut ws, &ctl, &mut tick, deadline, replay_until)
            .await;
        me.publish(true);
        let path = match ended {
            Ended::Finished => {
                let _ = tokio::time::timeout(WAIT, ws.close(None)).await;
                return me.log;
            }
            Ended::Moved(path) => {
                // `moved` is the last frame: a close (1000) follows.
                let code = loop {
                    match tokio::time::timeout(WAIT, ws.next()).await {
                        Err(_) => {
                            me.log.anomalies.push("no close after moved".into());
                            break None;
                        }
                        Ok(Some(Ok(Message::Close(f)))) => break f.map(|f| u16::from(f.code)),
                        Ok(Some(Ok(Message::Text(t)))) => {
                            me.log.anomalies.push(format!("frame after moved: {t}"));
                        }
                        Ok(Some(Ok(_))) => {}
                        Ok(Some(Err(_)) | None) => break None,
                    }
                };
                me.log.moved_to.push(path.clone());
                me.log.move_closes.push(code);
                path
            }
            Ended::Unexpected(why) => {
                // Not the protocol: recorded, then recovered through the
                // router so the rest of the run still says what happened.
                me.log.anomalies.push(why);
                format!("/room/{room}")
            }
        };
        me.accepted_here = 0;
        me.log.unanswered += me.pending.len().saturating_sub(me.refused_here);
        me.refused_here = 0;
        let url = format!("{router_ws}{path}?since={}&stream={stream}", me.last_seq);
        let Some((again, welcome)) = me.rejoin(&url).await else {
            me.publish(false);
            return me.log;
        };
        ws = again;
        me.rejoins += 1;
        if welcome["stream"] != stream.as_str() {
            me.log
                .anomalies
                .push(format!("stream changed across the move: {welcome}"));
        }
        if let Some(node) = path.strip_prefix('/').and_then(|p| p.split('/').next())
            && path.starts_with("/i")
            && welcome["node"] != node
        {
            me.log
                .anomalies
                .push(format!("rejoined {path} but the welcome says {welcome}"));
        }
        let latest = welcome["seq"].as_u64().unwrap_or(0);
        if latest < me.last_seq {
            me.log.anomalies.push(format!(
                "welcome at seq {latest}, behind the {} already seen",
                me.last_seq
            ));
        }
        replay_until = if latest > me.last_seq {
            Some(latest)
        } else {
            me.resend_pending(&mut ws).await;
            None
        };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_from_three_to_four_nodes_loses_and_duplicates_nothing() {
    let mut cluster = Cluster::start(3, 2).await;

    // 300 rooms through the API, alternating routers; HRW over i1..i3 places
    // them.
    let ids: Vec<String> = (0..ROOMS).map(|i| format!("scale-{i:03}")).collect();
    let created: Vec<Value> = futures_util::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| {
            let http = cluster.router(i % 2).http();
            async move {
                let r = http.post_json("/rooms", &json!({"id": id})).await;
                assert_eq!(r.status, 201, "POST /rooms {id}: {}", r.text);
                r.body
            }
        })
        .buffered(16)
        .collect()
        .await;
    let mut before: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for (id, body) in ids.iter().zip(&created) {
        assert_eq!(body["id"], id.as_str(), "{body}");
        assert_eq!(body["epoch"], 1, "{body}");
        let node = body["node"].as_str().expect("node").to_owned();
        assert_eq!(
            node,
            hrw_owner(3, id),
            "room {id} placed by HRW over i1..i3"
        );
        before.insert(id.clone(), (node, 1));
    }
    assert_eq!(placement_of(&records(&cluster).await), before);

    // Which rooms a fourth node takes: exactly those whose HRW owner over
    // i1..i4 is i4 (the plan `router rebalance` must follow).
    let movers: BTreeSet<String> = ids
        .iter()
        .filter(|id| hrw_owner(4, id) == "i4")
        .cloned()
        .collect();
    let live: Vec<String> = ids
        .iter()
        .filter(|id| movers.contains(*id))
        .take(LIVE_MOVERS)
        .chain(
            ids.iter()
                .filter(|id| !movers.contains(*id))
                .take(LIVE_STAYERS),
        )
        .cloned()
        .collect();
    assert_eq!(live.len(), LIVE_MOVERS + LIVE_STAYERS);

    // Two clients per live room, on the legacy path, spread over both
    // routers; all joined before anyone sends, so each sees seq 1 onwards.
    let ctl = Arc::new(Control::default());
    let mut joined = Vec::new();
    for (r, room) in live.iter().enumerate() {
        for k in 0..PER_ROOM {
            let router_ws = cluster.router((r + k) % 2).ws_base();
            let (ws, welcome) = open(&format!("{router_ws}/room/{room}"))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(welcome["node"], before[room].0.as_str(), "{welcome}");
            joined.push((room.clone(), router_ws, ws, welcome));
        }
    }
    let mut clients = Vec::new();
    for (i, (room, router_ws, ws, welcome)) in joined.into_iter().enumerate() {
        let progress = Arc::new(Mutex::new(Progress::default()));
        let task = tokio::spawn(run_client(
            i as u64,
            room.clone(),
            router_ws,
            ws,
            welcome,
            progress.clone(),
            ctl.clone(),
        ));
        clients.push((room, progress, task));
    }
    let snapshot = |clients: &[(String, Arc<Mutex<Progress>>, _)]| -> Vec<(String, Progress)> {
        clients
            .iter()
            .map(|(room, p, _)| (room.clone(), p.lock().unwrap().clone()))
            .collect()
    };
    let all_warm = wait_until(SETTLE, async || {
        snapshot(&clients)
            .iter()
            .all(|(_, p)| p.accepted_here >= WARM_UP)
    })
    .await;
    assert!(
        all_warm,
        "traffic did not flow in every live room: {:?}{}",
        snapshot(&clients),
        cluster_logs(&cluster)
    );

    // The fourth node arrives: nothing moves by itself, nor on a dry run.
    cluster.add_node(4, &[]).await;
    cluster.wait_nodes_seen(4).await;
    let dry = router_cmd(&cluster, &["rebalance", "--dry-run"]).await;
    assert!(dry.contains("dry run: nothing moved"), "{dry}");
    assert!(
        dry.contains(&format!("plan: {} room(s) to move", movers.len())),
        "expected {} moves planned:\n{dry}",
        movers.len()
    );
    assert_eq!(
        placement_of(&records(&cluster).await),
        before,
        "a dry run changed room records"
    );

    // The real thing, while every live client keeps sending.
    let started = Instant::now();
    let out = router_cmd(&cluster, &["rebalance"]).await;
    let rebalance_took = started.elapsed();
    let live_movers = live.iter().filter(|r| movers.contains(*r)).count();
    assert!(
        out.contains(&format!("moved {} room(s), ", movers.len())) && out.contains(" 0 failed"),
        "rebalance summary:\n{out}"
    );
    assert!(out.contains("now: 0 room(s) to move"), "{out}");

    // Every client of a moved room rejoined and talks on the new owner.
    // (Whether each did so for the right reason is checked at the end.)
    let settled = wait_until(SETTLE, async || {
        snapshot(&clients).iter().all(|(room, p)| {
            !p.reconnecting
                && (!movers.contains(room) || (p.rejoins >= 1 && p.accepted_here >= WARM_UP))
        })
    })
    .await;
    let unsettled: Vec<(String, Progress)> = snapshot(&clients)
        .into_iter()
        .filter(|(room, p)| {
            p.reconnecting
                || (movers.contains(room) && (p.rejoins == 0 || p.accepted_here < WARM_UP))
        })
        .collect();

    // Stop sending and let every room drain: no body pending anywhere, both
    // members at the same last seq.
    ctl.stop_sending.store(true, Ordering::SeqCst);
    let drained = wait_until(SETTLE, async || {
        let snap = snapshot(&clients);
        let mut last: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
        for (room, p) in &snap {
            last.entry(room).or_default().insert(p.last_seq);
        }
        snap.iter().all(|(_, p)| p.pending == 0 && !p.reconnecting)
            && last.values().all(|seqs| seqs.len() == 1)
    })
    .await;
    ctl.finish.store(true, Ordering::SeqCst);
    let mut logs: BTreeMap<String, Vec<ClientLog>> = BTreeMap::new();
    for (room, _, task) in clients {
        let log = tokio::time::timeout(WAIT, task)
            .await
            .unwrap_or_else(|_| panic!("a client of {room} did not finish within {WAIT:?}"))
            .expect("client task");
        logs.entry(room).or_default().push(log);
    }

    // Per room: 1..=N once each, identical for both members, every body
    // sent present exactly once.
    let mut room_moving = 0;
    let mut unanswered = 0;
    let mut resent = 0;
    let mut messages = 0;
    let mut problems = Vec::new();
    for (room, members) in &logs {
        assert_eq!(members.len(), PER_ROOM);
        let moved = movers.contains(room);
        for c in members {
            room_moving += c.room_moving;
            unanswered += c.unanswered;
            resent += c.resent.len();
            if !c.anomalies.is_empty() {
                problems.push(format!("{room} client {}: {:?}", c.id, c.anomalies));
            }
            let seqs: Vec<u64> = c.got.iter().map(|g| g.seq).collect();
            let want: Vec<u64> = (1..=seqs.len() as u64).collect();
            if seqs != want {
                problems.push(format!(
                    "{room} client {}: seqs are not 1..={}: {seqs:?}",
                    c.id,
                    seqs.len()
                ));
            }
            let want_moves: Vec<String> = if moved {
                vec![format!("/i4/room/{room}")]
            } else {
                Vec::new()
            };
            if c.moved_to != want_moves {
                problems.push(format!(
                    "{room} client {}: moved to {:?}, expected {want_moves:?}",
                    c.id, c.moved_to
                ));
            }
            if c.move_closes.iter().any(|code| *code != Some(1000)) {
                problems.push(format!(
                    "{room} client {}: closes after moved {:?}, expected 1000",
                    c.id, c.move_closes
                ));
            }
            if !moved && (c.room_moving > 0 || !c.resent.is_empty()) {
                problems.push(format!(
                    "{room} client {} was refused in a room that did not move",
                    c.id
                ));
            }
        }
        let (a, b) = (&members[0], &members[1]);
        if a.got != b.got {
            let at = a.got.iter().zip(&b.got).position(|(x, y)| x != y);
            problems.push(format!(
                "{room}: the members saw different sequences ({} vs {} messages, first difference at index {at:?})",
                a.got.len(),
                b.got.len()
            ));
        }
        if a.stream != b.stream {
            problems.push(format!("{room}: two streams {} {}", a.stream, b.stream));
        }
        let mut count: BTreeMap<(u64, u64), usize> = BTreeMap::new();
        for g in &a.got {
            *count.entry((g.c, g.n)).or_default() += 1;
        }
        for c in members {
            assert!(
                c.sent >= WARM_UP as u64,
                "{room} client {} sent {}",
                c.id,
                c.sent
            );
            let lost: Vec<u64> = (0..c.sent)
                .filter(|n| !count.contains_key(&(c.id, *n)))
                .collect();
            if !lost.is_empty() {
                problems.push(format!(
                    "{room} client {}: {} of {} bodies never accepted: {lost:?} (resent {:?})",
                    c.id,
                    lost.len(),
                    c.sent,
                    c.resent
                ));
            }
        }
        let dup: Vec<_> = count.iter().filter(|(_, k)| **k > 1).collect();
        if !dup.is_empty() {
            problems.push(format!("{room}: bodies accepted more than once: {dup:?}"));
        }
        let strangers: Vec<_> = count
            .keys()
            .filter(|(c, n)| !members.iter().any(|m| m.id == *c && *n < m.sent))
            .collect();
        if !strangers.is_empty() {
            problems.push(format!("{room}: bodies nobody here sent: {strangers:?}"));
        }
        messages += a.got.len();
    }
    assert!(
        problems.is_empty() && settled && drained,
        "settled after the move: {settled} (not: {unsettled:?}); drained: {drained}; {} problem(s):\n{}{}",
        problems.len(),
        problems.join("\n"),
        cluster_logs(&cluster)
    );

    // Globally: a quarter-ish moved, all of them to i4, epochs say so.
    let after = placement_of(&records(&cluster).await);
    assert_eq!(after.len(), ROOMS);
    let moved: BTreeSet<String> = after
        .iter()
        .filter(|(id, now)| before[*id].0 != now.0)
        .map(|(id, _)| id.clone())
        .collect();
    let fraction = moved.len() as f64 / ROOMS as f64;
    assert!(
        (0.15..=0.35).contains(&fraction),
        "{} of {ROOMS} rooms moved ({fraction:.3})",
        moved.len()
    );
    assert_eq!(moved, movers, "the rooms that moved are the HRW plan's");
    for (id, (node, epoch)) in &after {
        if moved.contains(id) {
            assert_eq!(
                (node.as_str(), *epoch),
                ("i4", 2),
                "moved room {id} (was on {})",
                before[id].0
            );
        } else {
            assert_eq!((node, *epoch), (&before[id].0, 1), "unmoved room {id}");
        }
    }
    let mut want_counts: BTreeMap<String, u64> = (1..=4).map(|n| (format!("i{n}"), 0)).collect();
    for (node, _) in after.values() {
        *want_counts.get_mut(node).expect("a known node") += 1;
    }
    assert_eq!(want_counts.values().sum::<u64>(), ROOMS as u64);
    for i in 0..cluster.routers.len() {
        eventually(
            SETTLE,
            "GET /nodes counts every room where it is",
            async || node_counts(&cluster, i).await == want_counts,
        )
        .await;
    }

    // A second run finds nothing to do and changes nothing.
    let again = router_cmd(&cluster, &["rebalance"]).await;
    assert!(again.contains("plan: 0 room(s) to move"), "{again}");
    assert!(
        again.contains("moved 0 room(s), 0 member(s) told to reconnect, 0 failed"),
        "{again}"
    );
    assert_eq!(placement_of(&records(&cluster).await), after);

    let told = format!(
        "moved {} room(s), {} member(s) told to reconnect, 0 failed",
        movers.len(),
        live_movers * PER_ROOM
    );
    eprintln!(
        "scale-out: {} of {ROOMS} rooms moved ({:.1}%) in {rebalance_took:?}; {} live rooms, {messages} messages in the live rooms; {room_moving} room_moving refusal(s), {unanswered} body(ies) neither accepted nor refused, {resent} resent after a move",
        moved.len(),
        fraction * 100.0,
        live.len()
    );

    // Last, as it is only a count: every live member of a moved room was
    // told to reconnect (each followed its `moved`, checked above), and the
    // summary says so.
    assert!(
        out.contains(&told),
        "expected {told:?} in the summary:\n{out}{}",
        cluster_logs(&cluster)
    );
}

// ---------------------------------------------------------------------------
// A gate in front of a node that holds its `adopt` calls.

/// A TCP forwarder for a node's advertised address. It passes everything
/// through, except that a connection whose first request is
/// `POST /internal/rooms/{id}/adopt` waits until the test releases it: the
/// old owner has frozen the room by then, so the room stays frozen for as
/// long as the test needs.
struct AdoptGate {
    port: u16,
    target: Arc<OnceLock<u16>>,
    arrivals: mpsc::UnboundedReceiver<(String, oneshot::Sender<()>)>,
    task: tokio::task::JoinHandle<()>,
}

impl AdoptGate {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the gate");
        let port = listener.local_addr().expect("gate address").port();
        let target = Arc::new(OnceLock::new());
        let (tx, arrivals) = mpsc::unbounded_channel();
        let to = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(gate_connection(conn, to.clone(), tx.clone()));
            }
        });
        Self {
            port,
            target,
            arrivals,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for AdoptGate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn gate_connection(
    mut inbound: TcpStream,
    target: Arc<OnceLock<u16>>,
    arrivals: mpsc::UnboundedSender<(String, oneshot::Sender<()>)>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(WAIT, inbound.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 && head.len() < 1 << 16 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    if line.starts_with("POST /internal/rooms/") && line.contains("/adopt ") {
        let (release, released) = oneshot::channel();
        if arrivals.send((line, release)).is_ok() {
            // Bounded: the test releases it (or drops the sender) well
            // before this.
            let _ = tokio::time::timeout(Duration::from_secs(60), released).await;
        }
    }
    let Some(port) = target.get().copied() else {
        return;
    };
    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    if outbound.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}

async fn join(url: &str) -> (WsClient, Value) {
    let mut c = WsClient::connect(url)
        .await
        .unwrap_or_else(|e| panic!("joining {url}: {e}"));
    let welcome = c.recv_json(WAIT).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (c, welcome)
}

async fn send(c: &mut WsClient, body: &str) {
    c.send_json(&json!({"type": "send", "body": body})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_during_a_move_is_refused_not_dropped() {
    let mut cluster = Cluster::start(1, 1).await;
    let ws = cluster.router(0).ws_base();
    // A room that a second node, i4, takes over.
    let room = (0..)
        .map(|k| format!("frozen-{k}"))
        .find(|id| Placement::new([(iid(1), 1.0), (iid(4), 1.0)]).owner(&rid(id)) == Some(iid(4)))
        .expect("some id hashes to i4");
    let rec = cluster.create_room(&room).await;
    assert_eq!(rec["node"], "i1", "{rec}");

    let (mut a, welcome) = join(&format!("{ws}/room/{room}")).await;
    let stream = welcome["stream"].as_str().expect("stream").to_owned();
    let (mut b, _) = join(&format!("{ws}/room/{room}")).await;
    assert_eq!(a.recv_json(WAIT).await["type"], "joined");
    send(&mut a, "before").await;
    for c in [&mut a, &mut b] {
        let m = c.recv_json(WAIT).await;
        assert_eq!(
            (&m["type"], &m["seq"], &m["body"]),
            (&json!("message"), &json!(1), &json!("before")),
            "{m}"
        );
    }

    // i4 joins, advertised behind the gate.
    let mut gate = AdoptGate::start().await;
    let port = cluster
        .add_node(4, &["--advertise", &gate.url()])
        .await
        .port;
    gate.target.set(port).expect("target set once");
    cluster.wait_nodes_seen(2).await;
    let dry = router_cmd(&cluster, &["rebalance", "--dry-run"]).await;
    assert!(dry.contains("plan: 1 room(s) to move"), "{dry}");

    // The rebalance freezes the room, then calls i4's adopt, which the gate
    // holds: the room is frozen until the test says otherwise.
    let args = ["rebalance"];
    let mut rebalance = spawn_router_cmd(&cluster, &args);
    let (line, release) = match tokio::time::timeout(SETTLE, gate.arrivals.recv()).await {
        Ok(Some(arrival)) => arrival,
        _ => panic!(
            "no adopt call reached i4 within {SETTLE:?}\n--- rebalance ---\n{}{}",
            rebalance.log(),
            cluster_logs(&cluster)
        ),
    };
    assert!(
        line.contains(&format!("/internal/rooms/{room}/adopt")),
        "{line}"
    );

    // A send now is refused, with the connection kept open.
    send(&mut a, "during").await;
    let refused = a.recv_json(WAIT).await;
    assert_eq!(
        (&refused["type"], &refused["code"]),
        (&json!("error"), &json!("room_moving")),
        "{refused}"
    );
    // A join now is refused too (503), not let into a room about to go.
    match WsClient::connect(&format!("{ws}/room/{room}")).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 503),
        Err(e) => panic!("joining a frozen room: {e}"),
        Ok(_) => panic!("joined a frozen room"),
    }

    // Let the handoff go on: both members learn the new path, and B never
    // saw the refused body (it would have come before `moved`).
    release.send(()).expect("the gate waits for the release");
    for c in [&mut a, &mut b] {
        let m = c.recv_json(WAIT).await;
        assert_eq!(
            m,
            json!({"type": "moved", "path": format!("/i4/room/{room}")})
        );
        assert_eq!(c.expect_close(WAIT).await, Some(1000));
    }
    let out = finish_router_cmd(&mut rebalance, &args).await;
    assert!(
        out.contains(&format!("[1/1] moved {room} i1 -> i4")),
        "{out}"
    );
    assert!(out.contains("moved 1 room(s), "), "{out}");
    assert!(out.contains(" 0 failed"), "{out}");
    let recs = records(&cluster).await;
    assert_eq!(
        (recs[&room].node.to_string(), recs[&room].epoch),
        ("i4".to_owned(), 2)
    );

    // Resuming on the new owner: same stream, seq still 1 (the refused body
    // was not accepted), and the resent body is accepted once, for both.
    let resume = format!("{ws}/i4/room/{room}?since=1&stream={stream}");
    let (mut a, wa) = join(&resume).await;
    let (mut b, wb) = join(&resume).await;
    for w in [&wa, &wb] {
        assert_eq!((&w["node"], &w["seq"]), (&json!("i4"), &json!(1)), "{w}");
        assert_eq!(w["stream"], stream.as_str(), "{w}");
    }
    assert_eq!(a.recv_json(WAIT).await["type"], "joined");
    send(&mut a, "during").await;
    send(&mut b, "after").await;
    let mut seen = Vec::new();
    for c in [&mut a, &mut b] {
        let got: Vec<(Value, Value)> = [c.recv_json(WAIT).await, c.recv_json(WAIT).await]
            .into_iter()
            .map(|m| (m["seq"].clone(), m["body"].clone()))
            .collect();
        seen.push(got);
    }
    assert_eq!(seen[0], seen[1], "both members see one order");
    let mut bodies: Vec<&Value> = seen[0].iter().map(|(_, b)| b).collect();
    bodies.sort_by_key(|b| b.as_str());
    assert_eq!(bodies, [&json!("after"), &json!("during")]);
    assert_eq!(
        seen[0].iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
        [json!(2), json!(3)]
    );
}
