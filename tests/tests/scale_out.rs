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
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use proto::placement::Placement;
use proto::record::RoomRecord;
use proto::{InstanceId, RoomId};
use serde_json::{Value, json};
use testkit::traffic::{self, Config, Expect, LiveClient, Progress, Shared, collect};
use testkit::verdict::{self, Tally};
use testkit::ws::tungstenite::Error as WsError;
use testkit::{Cluster, Proc, WsClient, eventually, join, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

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

// ---------------------------------------------------------------------------
// The live clients of the traffic test (testkit::traffic).

/// How the live clients behave: the run only moves rooms, nothing fails.
const CLIENTS: Config = Config {
    send_every: SEND_EVERY,
    wait: WAIT,
    join_timeout: WAIT,
    rejoin_limit: WAIT,
    client_limit: CLIENT_LIMIT,
    expect: Expect::Moves,
};

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
    let shared = Shared::new(vec![
        cluster.router(0).ws_base(),
        cluster.router(1).ws_base(),
    ]);
    let clients = traffic::start(&shared, &live, PER_ROOM, CLIENTS, |room, welcome| {
        assert_eq!(welcome["node"], before[room].0.as_str(), "{welcome}");
    })
    .await;
    let snapshot = |clients: &[LiveClient]| -> Vec<(String, Progress)> {
        clients
            .iter()
            .map(|c| (c.room.clone(), c.progress()))
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
        cluster.log_tails(30, 15)
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
            p.connected
                && (!movers.contains(room) || (p.rejoins() >= 1 && p.accepted_here >= WARM_UP))
        })
    })
    .await;
    let unsettled: Vec<(String, Progress)> = snapshot(&clients)
        .into_iter()
        .filter(|(room, p)| {
            !p.connected
                || (movers.contains(room) && (p.rejoins() == 0 || p.accepted_here < WARM_UP))
        })
        .collect();

    // Stop sending and let every room drain: no body pending anywhere, both
    // members at the same last seq.
    shared.stop_sending();
    let drained = wait_until(SETTLE, async || traffic::drained(&clients)).await;
    let undrained = traffic::undrained(&clients);
    let logs = collect(&shared, clients, WAIT).await;

    // Per room: 1..=N once each, identical for both members, every body
    // sent present exactly once; moved exactly when the plan says, with a
    // close 1000 after `moved`, and refused only in a room that moved.
    let mut problems = Vec::new();
    for (room, members) in &logs {
        assert_eq!(members.len(), PER_ROOM);
        problems.extend(verdict::room(room, members, 1));
        let moved = movers.contains(room);
        for c in members {
            assert!(
                c.sent >= WARM_UP as u64,
                "{room} client {} sent {}",
                c.id,
                c.sent
            );
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
    }
    let tally = Tally::of(&logs);
    assert!(
        problems.is_empty() && settled && drained,
        "settled after the move: {settled} (not: {unsettled:?}); drained: {drained} (not: {undrained:?}); {} problem(s):\n{}{}",
        problems.len(),
        problems.join("\n"),
        cluster.log_tails(30, 15)
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
        "scale-out: {} of {ROOMS} rooms moved ({:.1}%) in {rebalance_took:?}; {} live rooms, {} messages in the live rooms; {} room_moving refusal(s), {} body(ies) neither accepted nor refused, {} resent after a move",
        moved.len(),
        fraction * 100.0,
        live.len(),
        tally.total(),
        tally.room_moving,
        tally.unanswered,
        tally.resent
    );

    // Last, as it is only a count: every live member of a moved room was
    // told to reconnect (each followed its `moved`, checked above), and the
    // summary says so.
    assert!(
        out.contains(&told),
        "expected {told:?} in the summary:\n{out}{}",
        cluster.log_tails(30, 15)
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
            cluster.log_tails(30, 15)
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
