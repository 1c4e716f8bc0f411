//! Live moves end to end: `router rebalance` after adding a node hands rooms
//! over with their history, and members who follow `moved` lose nothing. A
//! second test holds one handoff half-way (a gate in front of the new node
//! delays the `adopt` call) to show, deterministically, that a send to a
//! frozen room is refused with `room_moving`, never dropped silently, and is
//! accepted once resent to the new owner.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::cluster::COMMAND_TIMEOUT;
use testkit::ids::hrw;
use testkit::ws::tungstenite::Error as WsError;
use testkit::{Cluster, WsClient, join};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// Bound on one frame, connect or close.
const WAIT: Duration = Duration::from_secs(10);
/// Bound on a state the cluster reaches (the adopt call arriving).
const SETTLE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn rebalance_moves_rooms_live_with_their_history() {
    let mut cluster = Cluster::start(1, 1).await;
    let ws = cluster.router(0).ws_base();
    let mut members = Vec::new();
    for i in 0..12 {
        let room = format!("r{i}");
        cluster.create_room(&room).await;
        let (mut c, welcome) = join(&format!("{ws}/room/{room}")).await;
        for n in 1..=3 {
            c.send_json(&json!({"type": "send", "body": n})).await;
            assert_eq!(c.recv_json(WAIT).await["seq"], n);
        }
        members.push((room, c, welcome["stream"].as_str().unwrap().to_owned()));
    }
    cluster.add_node(2, &[]).await;
    cluster.wait_nodes_seen(2).await;

    let dry = cluster.router_ok(&["rebalance", "--dry-run"]).await;
    assert!(dry.contains("dry run: nothing moved"), "{dry}");
    let out = cluster.router_ok(&["rebalance"]).await;
    assert!(out.contains("0 failed"), "{out}");

    let mut moved = 0;
    for (room, c, stream) in &mut members {
        let rec = cluster.record(room).await;
        if rec["node"] == "i1" {
            assert_eq!(rec["epoch"], 1);
            continue;
        }
        moved += 1;
        assert_eq!(rec["epoch"], 2);
        let m = c.recv_json(WAIT).await;
        assert_eq!(m["type"], "moved", "{m}");
        assert_eq!(m["path"], format!("/i2/room/{room}"));
        assert_eq!(c.expect_close(WAIT).await, Some(1000));
        let url = format!(
            "{ws}{}?since=1&stream={stream}",
            m["path"].as_str().unwrap()
        );
        let (mut again, welcome) = join(&url).await;
        assert_eq!(welcome["node"], "i2");
        assert_eq!(welcome["stream"], stream.as_str());
        assert_eq!(welcome["seq"], 3);
        for n in 2..=3 {
            assert_eq!(again.recv_json(WAIT).await["seq"], n);
        }
        again.send_json(&json!({"type": "send", "body": 4})).await;
        assert_eq!(again.recv_json(WAIT).await["seq"], 4);
    }
    assert!(moved > 0, "some rooms moved to i2");
    let again = cluster.router_ok(&["rebalance"]).await;
    assert!(again.contains("0 room(s) to move"), "{again}");
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
        .find(|id| hrw(&[1, 4], id) == "i4")
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
    let dry = cluster.router_ok(&["rebalance", "--dry-run"]).await;
    assert!(dry.contains("plan: 1 room(s) to move"), "{dry}");

    // The rebalance freezes the room, then calls i4's adopt, which the gate
    // holds: the room is frozen until the test says otherwise.
    let args = ["rebalance"];
    let mut rebalance = cluster.router_command(&args);
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
    let (status, out) = rebalance.finish(COMMAND_TIMEOUT).await;
    assert!(status.success(), "router {args:?} exited {status}:\n{out}");
    assert!(
        out.contains(&format!("[1/1] moved {room} i1 -> i4")),
        "{out}"
    );
    assert!(out.contains("moved 1 room(s), "), "{out}");
    assert!(out.contains(" 0 failed"), "{out}");
    let recs = cluster.records().await;
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
