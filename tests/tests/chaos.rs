//! Chaos end to end: three nodes and two routers carry live traffic in 30
//! rooms (two members each, on the legacy path `/room/{id}`, one through
//! each router) while faults hit the cluster one after another:
//!
//! 1. etcd is killed and kept down well inside what the nodes ride out
//!    (README "etcd outage": TTL − renewal interval − margin): nothing may
//!    be interrupted.
//! 2. The node hosting the most live rooms is frozen (SIGSTOP) for longer
//!    than its lease, then thawed: its rooms fail over (epoch + 1, a new
//!    stream) while it is frozen, it fences itself once it runs again
//!    (members get `error` `unavailable` and 1012), registers again, and no
//!    room is ever served by two nodes.
//! 3. A router is restarted (SIGTERM, then a new one on a new port): its
//!    members come back through the other router and resume with `since`.
//! 4. A node is flooded: oversized frames (1009), malformed frames
//!    (`bad_frame`), one client sending as fast as it can, and 50 members
//!    that never read while their room gets traffic (cut off, 1008). The
//!    node survives and its memory stays bounded.
//!
//! Every client follows README "When is a message accepted?": a body is
//! accepted iff it comes back as a `message`; after any reconnect it
//! resumes with `since`/`stream`, and once the replay is in, sends again
//! the bodies it has not seen. When its room's stream changed (history
//! lost with a fenced node) it reads the `history_gap` and joins the new
//! stream from its start (`since=0`). At the end every room must hold
//! every body each member sent, each exactly once, in seqs 1..=N seen
//! identically by both members: per stream for the rooms that failed over.
//!
//! Every wait is bounded; the only sleeps let a fault last, and say so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use testkit::cluster::TEST_LEASE_TTL;
use testkit::traffic::{
    self, ClientLog, Config, Expect, Got, LiveClient, Progress, Shared, collect, snapshot,
};
use testkit::verdict;
use testkit::ws::tungstenite::{Error as WsError, Message};
use testkit::{Cluster, Http, WsClient, eventually, wait_until};
use tokio::time::Instant;

/// Rooms with live clients.
const ROOMS: usize = 30;
/// Live clients per room.
const PER_ROOM: usize = 2;
/// Each live client's send pacing: traffic, not synchronisation.
const SEND_EVERY: Duration = Duration::from_millis(50);
/// Bound on one frame, handshake or close.
const WAIT: Duration = Duration::from_secs(10);
/// Bound on one join attempt (handshake plus welcome).
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the cluster reaching a state after a fault.
const SETTLE: Duration = Duration::from_secs(30);
/// How long a client keeps trying to get back into its room.
const REJOIN_LIMIT: Duration = Duration::from_secs(30);
/// Longest a client task runs before giving up on being told to finish.
const CLIENT_LIMIT: Duration = Duration::from_secs(170);
/// Own bodies every client must see accepted before the first fault.
const WARM_UP: u64 = 20;
/// Own bodies every client must see accepted after a fault, to call its
/// room live again.
const AGAIN: u64 = 10;
/// The nodes' lease TTL in test clusters.
const TTL: Duration = Duration::from_secs(TEST_LEASE_TTL);
/// How long etcd stays dead before it is restarted. With its restart
/// (0.7-1 s until it serves reads again) the outage seen by the nodes is
/// about 1.5-1.8 s: below what they ride out with the kit's 3 s lease,
/// TTL − renewal interval − margin = 3 − 0.3 − 0.3 = 2.4 s.
const ETCD_DEAD: Duration = Duration::from_millis(800);
/// The longest etcd outage (kill to serving reads) this test accepts as
/// "shorter than what nodes ride out"; a slower restart makes the test
/// inconclusive, not the product wrong.
const ETCD_OUTAGE_MAX: Duration = Duration::from_millis(2200);
/// How long the frozen node stays frozen: past its lease TTL.
const FROZEN: Duration = Duration::from_secs(6);
/// Signals are delivered at once; a body sent this long after SIGSTOP can
/// only have been read by the frozen node after SIGCONT.
const SIGNAL_SLACK: Duration = Duration::from_millis(100);
/// Members of the flooded room that never read.
const SILENT: usize = 50;
/// Messages the flooding client sends, and the padding of each.
const FLOOD_MESSAGES: u64 = 3000;
const FLOOD_PAD: usize = 8 * 1024;
/// Malformed frames each of two clients sends.
const MALFORMED: usize = 100;
/// Clients sending one oversized frame each.
const OVERSIZED: usize = 5;
/// Memory bounds per node (KiB): after the flood, and growth during it.
const RSS_MAX_KIB: u64 = 300 * 1024;
const RSS_GROWTH_MAX_KIB: u64 = 100 * 1024;
/// The node's log line when it fences itself.
const FENCING: &str = "lease may have expired; fencing";

// ---------------------------------------------------------------------------
// The live clients (testkit::traffic) and the test's waits on them.

/// How the live clients behave: faults are what this test is about.
const CLIENTS: Config = Config {
    send_every: SEND_EVERY,
    wait: WAIT,
    join_timeout: JOIN_TIMEOUT,
    rejoin_limit: REJOIN_LIMIT,
    client_limit: CLIENT_LIMIT,
    expect: Expect::Faults,
};

/// Waits until every client is connected, has seen `more` more of its own
/// bodies accepted than in `base`, and `also` holds for it.
async fn wait_flowing(
    clients: &[LiveClient],
    base: &[Progress],
    more: u64,
    what: &str,
    also: impl Fn(&LiveClient, &Progress) -> bool,
) {
    let ok = wait_until(SETTLE, async || {
        snapshot(clients)
            .iter()
            .zip(base)
            .zip(clients)
            .all(|((p, b), c)| p.connected && p.accepted >= b.accepted + more && also(c, p))
    })
    .await;
    if !ok {
        let stuck: Vec<String> = snapshot(clients)
            .iter()
            .zip(base)
            .zip(clients)
            .filter(|((p, b), c)| !(p.connected && p.accepted >= b.accepted + more && also(c, p)))
            .map(|((p, b), c)| format!("{}: {p:?} (was {} accepted)", c.room, b.accepted))
            .collect();
        panic!(
            "{what}: not every room flowed within {SETTLE:?}; {} client(s) behind:\n{}",
            stuck.len(),
            stuck.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// Observers: a member that joins a failed-over room at its new owner while
// the old owner is frozen, and reads.

#[derive(Debug, Default)]
struct ObserverLog {
    node: String,
    stream: String,
    welcome_seq: u64,
    got: Vec<Got>,
    end: String,
    anomalies: Vec<String>,
}

async fn observe(
    mut ws: WsClient,
    welcome: Value,
    shared: Arc<Shared>,
    last: Arc<Mutex<u64>>,
) -> ObserverLog {
    let mut log = ObserverLog {
        node: welcome["node"].as_str().unwrap_or_default().to_owned(),
        stream: welcome["stream"].as_str().unwrap_or_default().to_owned(),
        welcome_seq: welcome["seq"].as_u64().unwrap_or(0),
        ..ObserverLog::default()
    };
    let mut seq = log.welcome_seq;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let deadline = Instant::now() + CLIENT_LIMIT;
    loop {
        *last.lock().unwrap_or_else(|e| e.into_inner()) = seq;
        tokio::select! {
            frame = ws.read_frame() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    match v["type"].as_str() {
                        Some("message") => {
                            let Some(got) = Got::from_message(&v) else {
                                log.anomalies.push(format!("malformed message {v}"));
                                continue;
                            };
                            if got.seq != seq + 1 {
                                log.anomalies.push(format!("seq {} after {seq}", got.seq));
                            }
                            seq = seq.max(got.seq);
                            log.got.push(got);
                        }
                        Some("joined" | "left") => {}
                        _ => log.anomalies.push(format!("unexpected frame {t}")),
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    log.end = format!("closed {f:?}");
                    return log;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    log.end = format!("transport error {e}");
                    return log;
                }
                None => {
                    log.end = "eof".into();
                    return log;
                }
            },
            _ = tick.tick() => {
                if shared.finishing() || Instant::now() > deadline {
                    log.end = "finished".into();
                    ws.hang_up(WAIT).await;
                    return log;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Cluster helpers.

/// `(node, epoch)` of every room record in etcd.
async fn records(cluster: &Cluster) -> BTreeMap<String, (String, u64)> {
    let store = cluster.etcd.store(&cluster.prefix).await;
    let page = store
        .rooms(None, 1000)
        .await
        .expect("listing rooms in etcd");
    assert!(page.len() < 1000, "more rooms than one page");
    page.into_iter()
        .map(|r| (r.id.to_string(), (r.node.to_string(), r.epoch)))
        .collect()
}

/// The sum of every series of metric `name` in a `/metrics` text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

async fn metrics_of(http: &Http) -> String {
    http.send(reqwest::Method::GET, "/metrics", None)
        .await
        .map(|r| r.text)
        .unwrap_or_default()
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn fencings(cluster: &Cluster, id: &str) -> usize {
    let node = cluster
        .nodes
        .iter()
        .find(|n| n.id() == id)
        .expect("a node of the cluster");
    node.proc.log().matches(FENCING).count()
}

/// Lines of `log` containing any of `needles`, at most `max`.
fn grep(log: &str, needles: &[&str], max: usize) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .collect();
    lines[lines.len().saturating_sub(max)..].join("\n")
}

/// For every room, a join directly at every node other than its owner
/// must be refused (307 to the owner, or 404), and a join at the owner
/// welcomed by it: no room is served by two nodes.
async fn one_owner_each(cluster: &Cluster, rooms: &[String]) -> Vec<String> {
    let recs = records(cluster).await;
    let mut problems = Vec::new();
    for room in rooms {
        let Some((owner, _)) = recs.get(room) else {
            problems.push(format!("{room}: no record"));
            continue;
        };
        for node in &cluster.nodes {
            let id = node.id();
            let url = format!("{}/{id}/room/{room}", node.ws_base());
            match (WsClient::connect(&url).await, &id == owner) {
                (Ok(mut c), true) => {
                    let w = c.recv_json(WAIT).await;
                    if w["type"] != "welcome" || w["node"] != id.as_str() {
                        problems.push(format!("{room}: its owner {id} answered a join with {w}"));
                    }
                }
                (Err(e), true) => {
                    problems.push(format!("{room}: its owner {id} refused a join: {e}"))
                }
                (Ok(mut c), false) => {
                    let w = c.recv_json(WAIT).await;
                    problems.push(format!(
                        "{room} is owned by {owner}, but {id} welcomed a join too: {w}"
                    ));
                }
                (Err(WsError::Http(resp)), false) => {
                    let status = resp.status().as_u16();
                    let location = resp
                        .headers()
                        .get("location")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let to_owner = location.starts_with(&format!("/{owner}/room/{room}"));
                    if !(status == 404 || (status == 307 && to_owner)) {
                        problems.push(format!(
                            "{room} (owner {owner}): {id} answered {status} {location:?}"
                        ));
                    }
                }
                (Err(e), false) => problems.push(format!("{room}: joining at {id}: {e}")),
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// The flood.

/// A member that joins and then never reads.
async fn silent_member(url: &str) -> WsClient {
    WsClient::connect(url)
        .await
        .unwrap_or_else(|e| panic!("joining {url}: {e}"))
}

/// What the flooding client saw.
#[derive(Debug, Default)]
struct FloodReport {
    accepted: u64,
    rate_limited: u64,
    took: Duration,
    problems: Vec<String>,
}

/// Sends [`FLOOD_MESSAGES`] padded bodies as fast as the socket takes them
/// while reading everything that comes back.
async fn flood(url: &str) -> FloodReport {
    let started = Instant::now();
    let (ws, welcome) = WsClient::try_join(url, JOIN_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let me = welcome["member"].as_str().unwrap_or_default().to_owned();
    let first_seq = welcome["seq"].as_u64().unwrap_or(0);
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        let mut r = FloodReport::default();
        let mut seq = first_seq;
        let mut next_f = 0;
        while r.accepted + r.rate_limited < FLOOD_MESSAGES {
            let frame = match tokio::time::timeout(WAIT, rx.next()).await {
                Ok(Some(Ok(frame))) => frame,
                other => {
                    r.problems
                        .push(format!("flooder: after {} accepted: {other:?}", r.accepted));
                    break;
                }
            };
            let Message::Text(t) = frame else {
                if let Message::Close(f) = frame {
                    r.problems.push(format!("flooder closed: {f:?}"));
                    break;
                }
                continue;
            };
            let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
            match v["type"].as_str() {
                Some("message") => {
                    let s = v["seq"].as_u64().unwrap_or(0);
                    let f = v["body"]["f"].as_u64().unwrap_or(u64::MAX);
                    if s != seq + 1 || v["from"] != me.as_str() || f < next_f {
                        r.problems.push(format!(
                            "flooder: seq {s} after {seq}, body {f} after {next_f}, from {}",
                            v["from"]
                        ));
                    }
                    seq = s;
                    next_f = f + 1;
                    r.accepted += 1;
                }
                Some("error") if v["code"] == "rate_limited" => r.rate_limited += 1,
                Some("joined" | "left") => {}
                _ => r.problems.push(format!("flooder got {v}")),
            }
        }
        (rx, r)
    });
    let pad = "p".repeat(FLOOD_PAD);
    let writing = async {
        for f in 0..FLOOD_MESSAGES {
            let frame = json!({"type": "send", "body": {"f": f, "pad": pad}}).to_string();
            tx.feed(Message::text(frame)).await?;
            if f % 32 == 31 {
                tx.flush().await?;
            }
        }
        tx.flush().await
    };
    let written = tokio::time::timeout(SETTLE, writing).await;
    let (rx, mut report) = tokio::time::timeout(SETTLE, reader)
        .await
        .expect("the flooder's reader ends within the bound")
        .expect("flooder reader task");
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => report.problems.push(format!("flooder send failed: {e}")),
        Err(_) => report
            .problems
            .push(format!("flooder could not send within {SETTLE:?}")),
    }
    if let Ok(mut ws) = tx.reunite(rx) {
        let _ = tokio::time::timeout(WAIT, ws.close(None)).await;
    }
    report.took = started.elapsed();
    report
}

/// Sends [`MALFORMED`] bad frames, then one good one; the number of
/// `bad_frame` answers before the good one came back.
async fn malformed(url: &str, marker: &str) -> Result<usize, String> {
    let mut c = WsClient::connect(url)
        .await
        .map_err(|e| format!("joining {url}: {e}"))?;
    let w = c.recv_json(WAIT).await;
    assert_eq!(w["type"], "welcome", "{w}");
    let kinds = [
        "not json",
        r#"{"type":"shout"}"#,
        r#"{"type":"send"}"#,
        r#"{"body":1}"#,
        "[1,2]",
    ];
    for i in 0..MALFORMED {
        if i % 6 == 5 {
            c.send(Message::binary(vec![0u8, 1, 2, 3])).await;
        } else {
            c.send_text(kinds[i % 6]).await;
        }
    }
    c.send_json(&json!({"type": "send", "body": marker})).await;
    let mut bad = 0;
    loop {
        let v = c.recv_json(WAIT).await;
        match v["type"].as_str() {
            Some("error") if v["code"] == "bad_frame" => bad += 1,
            Some("message") if v["body"] == marker => return Ok(bad),
            Some("message" | "joined" | "left") => {}
            _ => return Err(format!("{url}: unexpected {v}")),
        }
    }
}

/// Joins, sends one frame over 64 KiB; the close code.
async fn oversized(url: &str) -> Option<u16> {
    let mut c = WsClient::connect(url)
        .await
        .unwrap_or_else(|e| panic!("joining {url}: {e}"));
    let w = c.recv_json(WAIT).await;
    assert_eq!(w["type"], "welcome", "{w}");
    let body = "x".repeat(70_000);
    c.send_text(json!({"type": "send", "body": body}).to_string())
        .await;
    c.expect_close(WAIT).await
}

/// Creates rooms `{prefix}-0`, `{prefix}-1`, … through `http` until one
/// lands on `node`.
async fn room_on(http: &Http, prefix: &str, node: &str) -> String {
    for k in 0..64 {
        let id = format!("{prefix}-{k}");
        let r = http.post_json("/rooms", &json!({"id": id})).await;
        assert!(
            r.status == 201 || r.status == 200,
            "POST /rooms: {}",
            r.text
        );
        if r.body["node"] == node {
            return id;
        }
    }
    panic!("no room of 64 landed on {node}")
}

// ---------------------------------------------------------------------------
// Verification.

/// Every problem with one room's record of traffic. `victim`: the room's
/// node, frozen from SIGSTOP to SIGCONT (the instants given), so the room
/// failed over and has two streams; `observer` joined its new owner while
/// the old one was frozen.
fn check_room(
    room: &str,
    members: &[ClientLog],
    victim: Option<(&str, Instant, Instant)>,
    observer: Option<&ObserverLog>,
) -> Vec<String> {
    let mut problems = verdict::room(room, members, if victim.is_some() { 2 } else { 1 });
    if problems.iter().any(|p| p.contains("stream(s)")) {
        return problems;
    }
    let a = &members[0];
    if let Some((victim, frozen_at, thawed_at)) = victim {
        let old = &a.segments[0];
        let new = &a.segments[1];
        if old.nodes.len() != 1 || !old.nodes.contains(victim) {
            problems.push(format!(
                "{room}: first stream served by {:?}, expected {victim}",
                old.nodes
            ));
        }
        if new.nodes.contains(victim) || new.stream == old.stream {
            problems.push(format!(
                "{room}: after failover still on {victim} or the old stream: {:?} {}",
                new.nodes, new.stream
            ));
        }
        // The frozen node read nothing while frozen: what it accepted of
        // bodies sent after SIGSTOP, it accepted after SIGCONT, seconds past
        // its lease deadline, in a room that had another owner by then.
        for c in members {
            // What this client saw accepted in the old stream of its own
            // bodies sent after SIGSTOP: (seq, n, sent after SIGSTOP, echo
            // arrived after SIGCONT).
            let late: Vec<(u64, u64, Duration, Duration)> = old
                .got
                .iter()
                .zip(&c.segments[0].arrived)
                .filter(|(g, _)| g.c == c.id)
                .filter_map(|(g, at)| {
                    let sent = *c.sent_at.get(g.n as usize)?;
                    (sent > frozen_at + SIGNAL_SLACK).then(|| {
                        (
                            g.seq,
                            g.n,
                            sent - frozen_at,
                            at.saturating_duration_since(thawed_at),
                        )
                    })
                })
                .collect();
            if !late.is_empty() {
                let (first, last) = (&late[0], &late[late.len() - 1]);
                problems.push(format!(
                    "{room} client {}: {victim} accepted {} of its bodies that were sent after SIGSTOP, i.e. read after SIGCONT, at least {:?} after its last lease renewal (TTL {TTL:?}), when the room had already failed over to another node: seqs {}..={} of the old stream (bodies n={}..={}, sent {:?}..{:?} after SIGSTOP, their echoes arrived {:?}..{:?} after SIGCONT)",
                    c.id,
                    late.len(),
                    FROZEN,
                    first.0,
                    last.0,
                    first.1,
                    last.1,
                    first.2,
                    last.2,
                    first.3,
                    last.3
                ));
            }
            let fenced = c.unavailable > 0 || c.ends().contains(&"close 1012");
            let moved = c.ends().iter().any(|e| e.starts_with("moved "));
            if !fenced && !moved {
                problems.push(format!(
                    "{room} client {}: neither 1012/unavailable nor moved from {victim}; connections ended {:?}",
                    c.id,
                    c.ends()
                ));
            }
        }
        match observer {
            None => problems.push(format!("{room}: no observer")),
            Some(o) => {
                let want: Vec<Got> = new
                    .got
                    .iter()
                    .filter(|g| g.seq > o.welcome_seq)
                    .copied()
                    .collect();
                if o.stream != new.stream || o.got != want || !o.anomalies.is_empty() {
                    problems.push(format!(
                        "{room}: the observer on {} (stream {}, from seq {}) saw {} message(s), the members {} in stream {}; anomalies {:?}, end {}",
                        o.node,
                        o.stream,
                        o.welcome_seq,
                        o.got.len(),
                        want.len(),
                        new.stream,
                        o.anomalies,
                        o.end
                    ));
                }
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_survives_etcd_outage_frozen_node_router_restart_and_flood() {
    let test_started = Instant::now();
    let mut cluster = Cluster::start(3, 2).await;
    // Slot k of the clients' router list is cluster.routers[router_at[k]].
    let mut router_at = [0usize, 1];
    let shared = Shared::new(vec![
        cluster.router(0).ws_base(),
        cluster.router(1).ws_base(),
    ]);

    // 30 rooms through the API, alternating routers.
    let rooms: Vec<String> = (0..ROOMS).map(|i| format!("chaos-{i:02}")).collect();
    for (i, room) in rooms.iter().enumerate() {
        let r = cluster
            .router(i % 2)
            .http()
            .post_json("/rooms", &json!({"id": room}))
            .await;
        assert_eq!(r.status, 201, "POST /rooms {room}: {}", r.text);
        assert_eq!(r.body["epoch"], 1, "{}", r.text);
    }
    let recs_start = records(&cluster).await;

    // Two clients per room on the legacy path, one through each router,
    // all joined before anyone sends.
    let clients = traffic::start(&shared, &rooms, PER_ROOM, CLIENTS, |room, welcome| {
        assert_eq!(welcome["node"], recs_start[room].0.as_str(), "{welcome}");
    })
    .await;
    let zero = vec![Progress::default(); clients.len()];
    wait_flowing(&clients, &zero, WARM_UP, "warm-up", |_, _| true).await;
    let mut report = vec![format!(
        "cluster up and traffic flowing in {ROOMS} rooms after {:?}",
        test_started.elapsed()
    )];

    // ---------------------------------------------------------------------
    // Fault 1: etcd dies and comes back well inside what nodes ride out.
    let before = snapshot(&clients);
    let fenced_before: Vec<usize> = cluster
        .nodes
        .iter()
        .map(|n| fencings(&cluster, &n.id()))
        .collect();
    cluster.etcd.kill().await;
    let down = Instant::now();
    // Deliberate: the outage is the fault. etcd stays dead for ETCD_DEAD.
    tokio::time::sleep_until(down + ETCD_DEAD).await;
    let during = snapshot(&clients);
    cluster.etcd.restart().await;
    let outage = down.elapsed();
    assert!(
        outage < ETCD_OUTAGE_MAX,
        "etcd took {outage:?} from kill to serving reads, longer than this test plans ({ETCD_OUTAGE_MAX:?}): inconclusive"
    );
    for r in &cluster.routers {
        let http = r.http();
        eventually(WAIT, "routers are ready again after etcd", async || {
            http.send(reqwest::Method::GET, "/readyz", None)
                .await
                .is_ok_and(|r| r.status == 200)
        })
        .await;
    }
    let after_etcd = snapshot(&clients);
    wait_flowing(
        &clients,
        &after_etcd,
        AGAIN,
        "after the etcd outage",
        |_, _| true,
    )
    .await;
    let settled = snapshot(&clients);
    let mut problems = Vec::new();
    for ((b, d), (s, c)) in before.iter().zip(&during).zip(settled.iter().zip(&clients)) {
        if s.connections != b.connections {
            problems.push(format!(
                "{}: a client reconnected across a {outage:?} etcd outage ({} -> {} connections)",
                c.room, b.connections, s.connections
            ));
        }
        if d.accepted < b.accepted + 5 {
            problems.push(format!(
                "{}: {} own bodies accepted during the first {ETCD_DEAD:?} of the etcd outage",
                c.room,
                d.accepted - b.accepted
            ));
        }
    }
    for (n, was) in cluster.nodes.iter().zip(&fenced_before) {
        let now = fencings(&cluster, &n.id());
        if now != *was {
            problems.push(format!(
                "{} fenced itself during a {outage:?} etcd outage:\n{}",
                n.id(),
                grep(&n.proc.log(), &["fenc", "renew", "lease"], 12)
            ));
        }
    }
    if records(&cluster).await != recs_start {
        problems.push("room records changed across the etcd outage".into());
    }
    assert!(
        problems.is_empty(),
        "etcd outage of {outage:?} (TTL {TTL:?}) interrupted traffic:\n{}{}",
        problems.join("\n"),
        cluster.log_tails(25, 10)
    );
    report.push(format!(
        "etcd outage: {outage:?} from SIGKILL to serving reads; no reconnect, no fencing, no record changed"
    ));

    // ---------------------------------------------------------------------
    // Fault 2: the node with the most live rooms is frozen past its TTL.
    let recs = records(&cluster).await;
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for room in &rooms {
        *per_node.entry(recs[room].0.clone()).or_default() += 1;
    }
    let victim = per_node
        .iter()
        .max_by_key(|(_, k)| **k)
        .map(|(id, _)| id.clone())
        .expect("rooms have owners");
    let victim_rooms: BTreeSet<String> = rooms
        .iter()
        .filter(|r| recs[*r].0 == victim)
        .cloned()
        .collect();
    let old_streams: BTreeMap<String, String> = clients
        .iter()
        .zip(snapshot(&clients))
        .map(|(c, p)| (c.room.clone(), p.stream))
        .collect();
    let victim_fenced_before = fencings(&cluster, &victim);
    let victim_idx = cluster
        .nodes
        .iter()
        .position(|n| n.id() == victim)
        .expect("victim node");
    let before_freeze = snapshot(&clients);
    assert!(cluster.nodes[victim_idx].proc.signal(Signal::SIGSTOP));
    let frozen_at = Instant::now();
    // Its rooms fail over while it is frozen: epoch + 1 on a live node.
    let failover_bound = TTL + Duration::from_secs(5);
    let failed_over = wait_until(failover_bound, async || {
        let now = records(&cluster).await;
        victim_rooms
            .iter()
            .all(|r| now[r].0 != victim && now[r].1 == recs[r].1 + 1)
    })
    .await;
    let failover_took = frozen_at.elapsed();
    if !failed_over {
        let now = records(&cluster).await;
        let _ = cluster.nodes[victim_idx].proc.signal(Signal::SIGCONT);
        panic!(
            "{victim}'s rooms were not failed over within {failover_bound:?} of SIGSTOP: {:?}{}",
            victim_rooms
                .iter()
                .map(|r| (r, &now[r]))
                .collect::<Vec<_>>(),
            cluster.log_tails(25, 10)
        );
    }
    let recs_failed = records(&cluster).await;
    // An observer joins each failed-over room at its new owner while the
    // old one is still frozen: a member the old owner cannot know of.
    let mut observers = Vec::new();
    for room in &victim_rooms {
        // Straight at the new owner, so later faults (a router restart)
        // do not touch it.
        let owner = &recs_failed[room].0;
        let node = cluster
            .nodes
            .iter()
            .find(|n| &n.id() == owner)
            .expect("the new owner is a node of the cluster");
        let url = format!("{}/{owner}/room/{room}", node.ws_base());
        let (ws, welcome) = WsClient::try_join(&url, JOIN_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("observer: {e}"));
        assert_eq!(
            welcome["node"],
            recs_failed[room].0.as_str(),
            "the observer of {room} joins its new owner: {welcome}"
        );
        assert_ne!(
            welcome["stream"],
            old_streams[room].as_str(),
            "{room} failed over with its history lost: a new stream: {welcome}"
        );
        let last = Arc::new(Mutex::new(0));
        let task = tokio::spawn(observe(ws, welcome, shared.clone(), last.clone()));
        observers.push((room.clone(), last, task));
    }
    // Deliberate: the node stays frozen for FROZEN, past its lease TTL.
    tokio::time::sleep_until(frozen_at + FROZEN).await;
    assert!(cluster.nodes[victim_idx].proc.signal(Signal::SIGCONT));
    let thawed_at = Instant::now();
    let victim_http = cluster.nodes[victim_idx].http();
    eventually(
        WAIT,
        &format!("{victim} logs that it fenced itself"),
        async || fencings(&cluster, &victim) > victim_fenced_before,
    )
    .await;
    eventually(
        Duration::from_secs(15),
        &format!("{victim} is ready again"),
        async || {
            victim_http
                .send(reqwest::Method::GET, "/readyz", None)
                .await
                .is_ok_and(|r| r.status == 200)
        },
    )
    .await;
    let reregistered = thawed_at.elapsed();
    cluster.wait_nodes_seen(3).await;
    let thawed = snapshot(&clients);
    wait_flowing(
        &clients,
        &thawed,
        AGAIN,
        "after the frozen node came back",
        |c, p| {
            !victim_rooms.contains(&c.room)
                || (p.node != victim && p.stream != old_streams[&c.room])
        },
    )
    .await;
    let after_freeze = snapshot(&clients);
    let recs_after_freeze = records(&cluster).await;
    let mut problems = Vec::new();
    for room in &rooms {
        let (was, now) = (&recs[room], &recs_after_freeze[room]);
        if victim_rooms.contains(room) {
            if now.0 == victim || now.1 != was.1 + 1 {
                problems.push(format!("{room}: {was:?} -> {now:?} after {victim} froze"));
            }
        } else if now != was {
            problems.push(format!(
                "{room} was not on {victim} but changed: {was:?} -> {now:?}"
            ));
        }
    }
    for ((b, a), c) in before_freeze.iter().zip(&after_freeze).zip(&clients) {
        if !victim_rooms.contains(&c.room) && a.connections != b.connections {
            problems.push(format!(
                "{}: not on {victim}, yet its client reconnected while {victim} was frozen",
                c.room
            ));
        }
    }
    for (n, was) in cluster.nodes.iter().zip(&fenced_before) {
        if n.id() != victim && fencings(&cluster, &n.id()) != *was {
            problems.push(format!(
                "{} fenced itself, but only {victim} was frozen",
                n.id()
            ));
        }
    }
    problems.extend(one_owner_each(&cluster, &rooms).await);
    assert!(
        problems.is_empty(),
        "after freezing {victim} for {FROZEN:?}:\n{}{}",
        problems.join("\n"),
        cluster.log_tails(25, 10)
    );
    let mut failovers = 0.0;
    for r in &cluster.routers {
        failovers += metric(&metrics_of(&r.http()).await, "router_failovers_total");
    }
    report.push(format!(
        "frozen node: {victim} (hosting {} of {ROOMS} live rooms) SIGSTOPped for {FROZEN:?}; its rooms failed over {failover_took:?} after SIGSTOP (routers count {failovers} failover(s)); it fenced itself and was ready again {reregistered:?} after SIGCONT",
        victim_rooms.len()
    ));

    // ---------------------------------------------------------------------
    // Fault 3: router slot 0 restarts on a new port.
    let before_restart = snapshot(&clients);
    shared.set_router(0, None);
    let old = router_at[0];
    let old_port = cluster.routers[old].port;
    assert!(cluster.routers[old].proc.signal_term());
    let Some(exit) = cluster.routers[old]
        .proc
        .wait_exit(Duration::from_secs(15))
        .await
    else {
        cluster.routers[old]
            .proc
            .fail("still running 15 s after SIGTERM");
    };
    assert!(exit.success(), "router exited with {exit} after SIGTERM");
    let new_port = cluster.add_router(&[]).await.port;
    router_at[0] = cluster.routers.len() - 1;
    shared.set_router(0, Some(cluster.routers[router_at[0]].ws_base()));
    wait_flowing(
        &clients,
        &before_restart,
        AGAIN,
        "after the router restart",
        |_, p| p.connected,
    )
    .await;
    let restart_base = snapshot(&clients);
    wait_flowing(
        &clients,
        &restart_base,
        AGAIN,
        "after the router restart",
        |_, _| true,
    )
    .await;
    let after_restart = snapshot(&clients);
    let mut problems = Vec::new();
    let mut rejoined_via_router = 0;
    for ((b, a), c) in before_restart.iter().zip(&after_restart).zip(&clients) {
        match (b.via, a.connections > b.connections) {
            (0, false) => problems.push(format!(
                "{}: its client on the stopped router never reconnected",
                c.room
            )),
            (0, true) => rejoined_via_router += 1,
            (_, true) => problems.push(format!(
                "{}: its client on the other router reconnected too",
                c.room
            )),
            (_, false) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "router restart:\n{}{}",
        problems.join("\n"),
        cluster.log_tails(25, 10)
    );
    report.push(format!(
        "router restart: :{old_port} stopped (SIGTERM, exit {exit}), :{new_port} started; {rejoined_via_router} client(s) came back through the other router"
    ));

    // ---------------------------------------------------------------------
    // Fault 4: flood the node hosting the most live rooms.
    let recs = records(&cluster).await;
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for room in &rooms {
        *per_node.entry(recs[room].0.clone()).or_default() += 1;
    }
    let target = per_node
        .iter()
        .max_by_key(|(_, k)| **k)
        .map(|(id, _)| id.clone())
        .expect("rooms have owners");
    let target_idx = cluster
        .nodes
        .iter()
        .position(|n| n.id() == target)
        .expect("target node");
    let target_http = cluster.nodes[target_idx].http();
    let router_http = cluster.routers[router_at[1]].http();
    let flood_room = room_on(&router_http, "flood", &target).await;
    let junk_room = room_on(&router_http, "junk", &target).await;
    let pids: Vec<(String, u32)> = cluster
        .nodes
        .iter()
        .map(|n| (n.id(), n.proc.pid().expect("node running")))
        .collect();
    let rss_before: BTreeMap<String, u64> = pids
        .iter()
        .map(|(id, pid)| (id.clone(), rss_kib(*pid).expect("VmRSS")))
        .collect();
    let peak = Arc::new(Mutex::new(rss_before.clone()));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pids) = (peak.clone(), sampling.clone(), pids.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while sampling.load(Ordering::SeqCst) {
                tick.tick().await;
                let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
                for (id, pid) in &pids {
                    if let Some(kib) = rss_kib(*pid) {
                        let e = p.entry(id.clone()).or_default();
                        *e = (*e).max(kib);
                    }
                }
            }
        })
    };
    let target_metrics = metrics_of(&target_http).await;
    let slow_before = metric(&target_metrics, "roomnode_slow_consumers_total");
    let connections_before = metric(&target_metrics, "roomnode_connections");
    let before_flood = snapshot(&clients);

    let flood_path = format!("/{target}/room/{flood_room}");
    let junk_path = format!("/{target}/room/{junk_room}");
    let node_ws = cluster.nodes[target_idx].ws_base();
    let mut silent = Vec::new();
    for _ in 0..SILENT {
        silent.push(silent_member(&format!("{node_ws}{flood_path}")).await);
    }
    let via = [
        cluster.routers[router_at[0]].ws_base(),
        cluster.routers[router_at[1]].ws_base(),
    ];
    let junk_urls = [
        format!("{node_ws}{junk_path}"),
        format!("{}{junk_path}", via[0]),
    ];
    let big_urls: Vec<String> = (0..OVERSIZED)
        .map(|k| match k {
            0 => format!("{}/room/{junk_room}", via[0]),
            1 => format!("{}{junk_path}", via[1]),
            _ => format!("{node_ws}{junk_path}"),
        })
        .collect();
    let flood_url = format!("{node_ws}{flood_path}");
    let flood_started = Instant::now();
    let (flooded, bad, big) = tokio::join!(
        flood(&flood_url),
        futures_util::future::join_all(
            junk_urls
                .iter()
                .enumerate()
                .map(|(k, u)| malformed(u, if k == 0 { "good-0" } else { "good-1" }))
        ),
        futures_util::future::join_all(big_urls.iter().map(|u| oversized(u))),
    );
    let flood_took = flood_started.elapsed();
    let mut problems = flooded.problems.clone();
    if flooded.accepted + flooded.rate_limited != FLOOD_MESSAGES {
        problems.push(format!(
            "flooder: {} accepted + {} rate_limited of {FLOOD_MESSAGES}",
            flooded.accepted, flooded.rate_limited
        ));
    }
    for (u, b) in junk_urls.iter().zip(&bad) {
        if b.as_ref().ok() != Some(&MALFORMED) {
            problems.push(format!(
                "{u}: {b:?} bad_frame answer(s) to {MALFORMED} malformed frames"
            ));
        }
    }
    for (u, code) in big_urls.iter().zip(&big) {
        if *code != Some(1009) {
            problems.push(format!(
                "{u}: an oversized frame closed with {code:?}, expected 1009"
            ));
        }
    }
    // Every silent member is cut off: counted, and its connection ends.
    let cut = wait_until(WAIT, async || {
        metric(
            &metrics_of(&target_http).await,
            "roomnode_slow_consumers_total",
        ) >= slow_before + SILENT as f64
    })
    .await;
    let slow_after = metric(
        &metrics_of(&target_http).await,
        "roomnode_slow_consumers_total",
    );
    if !cut {
        problems.push(format!(
            "roomnode_slow_consumers_total went from {slow_before} to {slow_after}, expected +{SILENT}"
        ));
    }
    let silent_ends = futures_util::future::join_all(silent.into_iter().map(|mut ws| async move {
        let mut frames = 0usize;
        let end = tokio::time::timeout(WAIT, async {
            loop {
                match ws.read_frame().await {
                    Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => frames += 1,
                    Some(Err(_)) | None => break None,
                }
            }
        })
        .await;
        (end, frames)
    }))
    .await;
    let mut silent_codes: BTreeMap<String, usize> = BTreeMap::new();
    for (end, _) in &silent_ends {
        let key = match end {
            Ok(Some(code)) => code.to_string(),
            Ok(None) => "no close frame".into(),
            Err(_) => "still open".into(),
        };
        *silent_codes.entry(key).or_default() += 1;
    }
    for (code, k) in &silent_codes {
        if code != "1008" && code != "no close frame" {
            problems.push(format!(
                "{k} silent member(s) ended with {code}, expected 1008 (or no close frame, if not even that fit)"
            ));
        }
    }
    let silent_frames: usize = silent_ends.iter().map(|(_, f)| *f).sum();
    sampling.store(false, Ordering::SeqCst);
    let _ = tokio::time::timeout(WAIT, sampler).await;
    let peak = peak.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let rss_after: BTreeMap<String, u64> = pids
        .iter()
        .map(|(id, pid)| (id.clone(), rss_kib(*pid).unwrap_or(u64::MAX)))
        .collect();
    for (id, after) in &rss_after {
        let before = rss_before[id];
        if *after > RSS_MAX_KIB || after.saturating_sub(before) > RSS_GROWTH_MAX_KIB {
            problems.push(format!(
                "{id}: VmRSS {before} KiB before the flood, {after} KiB after (peak {} KiB): over {RSS_MAX_KIB} KiB or grew more than {RSS_GROWTH_MAX_KIB} KiB",
                peak[id]
            ));
        }
    }
    // The flood's connections are gone again; the node still answers.
    let connections_back = wait_until(WAIT, async || {
        metric(&metrics_of(&target_http).await, "roomnode_connections") <= connections_before
    })
    .await;
    if !connections_back {
        problems.push(format!(
            "roomnode_connections on {target}: {connections_before} before the flood, {} after it ended",
            metric(&metrics_of(&target_http).await, "roomnode_connections")
        ));
    }
    wait_flowing(
        &clients,
        &before_flood,
        AGAIN,
        "during the flood",
        |_, _| true,
    )
    .await;
    let after_flood = snapshot(&clients);
    for ((b, a), c) in before_flood.iter().zip(&after_flood).zip(&clients) {
        if a.connections != b.connections {
            problems.push(format!(
                "{}: a live client reconnected during the flood",
                c.room
            ));
        }
    }
    if let Some(status) = cluster.nodes[target_idx].proc.try_status() {
        problems.push(format!("{target} exited during the flood: {status}"));
    }
    assert!(
        problems.is_empty(),
        "flooding {target}:\n{}\n{}",
        problems.join("\n"),
        grep(
            &cluster.nodes[target_idx].proc.log(),
            &["ERROR", "WARN", "panic"],
            20
        )
    );
    report.push(format!(
        "flood of {target} in {flood_took:?}: {} of {FLOOD_MESSAGES} padded messages accepted ({} rate_limited) in {:?}; {MALFORMED} bad_frame answers to each of {} malformed senders; {OVERSIZED} oversized frames closed 1009; {SILENT} silent members cut off (slow consumers {slow_before} -> {slow_after}; their ends {silent_codes:?} after {silent_frames} buffered frames)",
        flooded.accepted,
        flooded.rate_limited,
        flooded.took,
        junk_urls.len()
    ));
    report.push(format!(
        "VmRSS KiB before flood {rss_before:?}, peak {peak:?}, after {rss_after:?}"
    ));

    // ---------------------------------------------------------------------
    // Drain: stop sending, let every body come back, then collect.
    shared.stop_sending();
    let drained = wait_until(SETTLE, async || {
        let snap = snapshot(&clients);
        let mut last: BTreeMap<&str, BTreeSet<(String, u64)>> = BTreeMap::new();
        for (p, c) in snap.iter().zip(&clients) {
            last.entry(c.room.as_str())
                .or_default()
                .insert((p.stream.clone(), p.last_seq));
        }
        let observers_caught_up = observers.iter().all(|(room, seen, _)| {
            let seen = *seen.lock().unwrap_or_else(|e| e.into_inner());
            last[room.as_str()].iter().all(|(_, s)| *s == seen)
        });
        snap.iter().all(|p| p.connected && p.pending == 0)
            && last.values().all(|s| s.len() == 1)
            && observers_caught_up
    })
    .await;
    let undrained: Vec<String> = snapshot(&clients)
        .iter()
        .zip(&clients)
        .filter(|(p, _)| !p.connected || p.pending > 0)
        .map(|(p, c)| format!("{}: {p:?}", c.room))
        .collect();
    let logs = collect(&shared, clients, WAIT).await;
    let mut observed: BTreeMap<String, ObserverLog> = BTreeMap::new();
    for (room, _, task) in observers {
        let log = tokio::time::timeout(WAIT, task)
            .await
            .unwrap_or_else(|_| panic!("the observer of {room} did not finish"))
            .expect("observer task");
        observed.insert(room, log);
    }

    // ---------------------------------------------------------------------
    // Afterwards: nothing crashed, every room is reachable and has one
    // owner, and every room's traffic is whole.
    let mut problems = Vec::new();
    if !drained {
        problems.push(format!(
            "traffic did not drain within {SETTLE:?}: {undrained:?}"
        ));
    }
    for n in &mut cluster.nodes {
        if let Some(status) = n.proc.try_status() {
            problems.push(format!("node {} exited: {status}", n.id()));
        }
    }
    for (slot, i) in router_at.iter().enumerate() {
        if let Some(status) = cluster.routers[*i].proc.try_status() {
            problems.push(format!("router in slot {slot} exited: {status}"));
        }
    }
    if !cluster.etcd.is_running() {
        problems.push("etcd is not running".into());
    }
    let mut all_rooms = rooms.clone();
    all_rooms.push(flood_room.clone());
    all_rooms.push(junk_room.clone());
    for (k, room) in all_rooms.iter().enumerate() {
        let base = cluster.routers[router_at[k % 2]].ws_base();
        if let Err(e) = WsClient::try_join(&format!("{base}/room/{room}"), JOIN_TIMEOUT).await {
            problems.push(format!("{room} is not reachable: {e}"));
        }
    }
    problems.extend(one_owner_each(&cluster, &all_rooms).await);

    let mut messages: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let (mut reconnects, mut resent, mut join_failures, mut changes, mut gaps) = (0, 0, 0, 0, 0);
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    for (room, members) in &logs {
        assert_eq!(members.len(), PER_ROOM);
        let victim_of =
            victim_rooms
                .contains(room)
                .then_some((victim.as_str(), frozen_at, thawed_at));
        problems.extend(check_room(room, members, victim_of, observed.get(room)));
        messages.insert(
            room.clone(),
            members[0].segments.iter().map(|s| s.got.len()).collect(),
        );
        for c in members {
            reconnects += c.conns.len() - 1;
            resent += c.resent.len();
            join_failures += c.join_failures;
            changes += c.stream_changes;
            gaps += c.history_gaps;
            for e in c.ends() {
                let key = if e.starts_with("transport error") {
                    "transport error"
                } else {
                    e
                };
                *ends.entry(key.to_owned()).or_default() += 1;
            }
        }
    }
    // When the bodies the frozen node accepted were sent, relative to
    // SIGSTOP, and what became of those sent while it was frozen (the
    // check itself is in check_room).
    let rel = |t: Instant| {
        if t >= frozen_at {
            (t - frozen_at).as_secs_f64()
        } else {
            -(frozen_at - t).as_secs_f64()
        }
    };
    let mut last_old = f64::NEG_INFINITY;
    let (mut sent_frozen, mut frozen_old, mut frozen_new, mut unavailable) = (0, 0, 0, 0);
    let mut read_after_thaw = 0;
    for room in &victim_rooms {
        for c in &logs[room] {
            unavailable += c.unavailable;
            let frozen: BTreeSet<u64> = (0..c.sent)
                .filter(|n| {
                    let t = c.sent_at[*n as usize];
                    t > frozen_at && t < thawed_at
                })
                .collect();
            sent_frozen += frozen.len();
            for (i, seg) in c.segments.iter().enumerate() {
                for g in seg.got.iter().filter(|g| g.c == c.id) {
                    if i == 0 {
                        last_old = last_old.max(rel(c.sent_at[g.n as usize]));
                        frozen_old += usize::from(frozen.contains(&g.n));
                        read_after_thaw +=
                            usize::from(c.sent_at[g.n as usize] > frozen_at + SIGNAL_SLACK);
                    } else {
                        frozen_new += usize::from(frozen.contains(&g.n));
                    }
                }
            }
        }
    }
    report.push(format!(
        "frozen node's rooms: {unavailable} `unavailable` errors; the last body the frozen node accepted was sent {last_old:+.3} s from SIGSTOP; of {sent_frozen} bodies sent while it was frozen, {frozen_old} were accepted by it ({read_after_thaw} of them sent more than {SIGNAL_SLACK:?} after SIGSTOP, so read after SIGCONT) and {frozen_new} by the new owners after being resent"
    ));
    let fenced_total: usize = cluster
        .nodes
        .iter()
        .map(|n| fencings(&cluster, &n.id()))
        .sum();
    report.push(format!(
        "fencings logged: {fenced_total}; failovers: {failovers} (router_failovers_total after the freeze)"
    ));
    let total: usize = messages.values().flatten().sum();
    let (least, most) = messages
        .values()
        .map(|m| m.iter().sum::<usize>())
        .fold((usize::MAX, 0), |(lo, hi), k| (lo.min(k), hi.max(k)));
    report.push(format!(
        "{total} messages in {ROOMS} live rooms ({least}..={most} per room; per stream in the failed-over rooms: {:?}); {reconnects} reconnects ({join_failures} failed join attempts), connections ended {ends:?}; {changes} stream changes, {gaps} history_gaps; {resent} bodies resent after a replay",
        messages
            .iter()
            .filter(|(r, _)| victim_rooms.contains(*r))
            .map(|(r, m)| format!("{r} {m:?}"))
            .collect::<Vec<_>>()
    ));
    report.push(format!("took {:?}", test_started.elapsed()));
    eprintln!("chaos:\n  {}", report.join("\n  "));
    if !problems.is_empty() {
        let victim_log = &cluster.nodes[victim_idx].proc;
        panic!(
            "{} problem(s):\n{}\n--- {victim} around its fencing ({}) ---\n{}\n{}",
            problems.len(),
            problems.join("\n"),
            victim_log.log_path().display(),
            grep(
                &victim_log.log(),
                &["fenc", "registered again", "closing it", "ERROR"],
                20
            ),
            cluster.log_tails(25, 10)
        );
    }
}
