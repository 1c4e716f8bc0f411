//! What one anonymous client could do to a node before (issue 11), each now
//! a test against real processes: a join storm on one room, a flood of
//! large messages into history, and a join token outliving its room.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use testkit::ws::tungstenite::Error;
use testkit::{Cluster, WsClient, eventually, join, metrics};

/// Bound on any one frame or state change.
const WAIT: Duration = Duration::from_secs(20);

/// Connections opened on the crowded room.
const STORM: usize = 5000;

/// Joins `url`, waiting as long as a 503's `Retry-After` says each time, as a
/// well-behaved client does.
async fn join_retrying(url: &str, i: usize) -> WsClient {
    loop {
        match WsClient::connect(url).await {
            Ok(c) => return c,
            Err(Error::Http(resp)) if resp.status() == 503 => {
                let secs: u64 = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or_else(|| panic!("a 503 without Retry-After for join {i}"));
                tokio::time::sleep(Duration::from_secs(secs)).await;
            }
            Err(e) => panic!("join {i} of the storm: {e}"),
        }
    }
}

/// A process's resident memory, bytes.
fn rss(pid: u32) -> usize {
    let kib = testkit::process::rss_kib(pid).expect("VmRSS");
    usize::try_from(kib).expect("fits") * 1024
}

/// The next `message` frame, skipping presence frames.
async fn next_message(c: &mut WsClient) -> Value {
    loop {
        let v = c.recv_json(WAIT).await;
        match v["type"].as_str() {
            Some("joined" | "left" | "members") => {}
            _ => return v,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_storm_on_one_room_leaves_the_node_registered_and_other_rooms_untouched() {
    // Admission lets 1,000 joins a second into a room: the storm is
    // admitted in about five seconds, its clients retrying as told.
    let cluster = Cluster::start_with(
        1,
        1,
        &["--room-join-rate", "1000", "--room-join-burst", "1000"],
    )
    .await;
    cluster.create_room("quiet").await;
    cluster.create_room("crowded").await;
    let base = cluster.node(1).ws_base();
    let (mut talker, welcome) = join(&format!("{base}/i1/room/quiet")).await;
    let stream = welcome["stream"].clone();
    let (mut listener, _) = join(&format!("{base}/i1/room/quiet")).await;

    // The quiet room talks all through the storm.
    let (storm_over, mut over) = tokio::sync::watch::channel(false);
    let talk = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        while !*over.borrow_and_update() {
            tick.tick().await;
            sent += 1;
            talker
                .send_json(&json!({"type": "send", "body": {"n": sent}}))
                .await;
            let echo = next_message(&mut talker).await;
            assert_eq!(echo["type"], "message", "the talker was cut off: {echo}");
            assert_eq!(echo["body"]["n"], sent, "{echo}");
        }
        (talker, sent)
    });

    let url = format!("{base}/i1/room/crowded");
    let crowd: Vec<WsClient> = futures_util::stream::iter(0..STORM)
        .map(|i| {
            let url = url.clone();
            async move { join_retrying(&url, i).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(crowd.len(), STORM);
    storm_over.send(true).expect("the talker listens");
    let (_talker, sent) = talk.await.expect("the talker ran");
    assert!(sent > 10, "the quiet room talked during the storm");
    for n in 1..=sent {
        let m = next_message(&mut listener).await;
        assert_eq!(m["body"]["n"], n, "the listener missed or reordered: {m}");
    }
    let (_late, again) = join(&format!("{base}/i1/room/quiet")).await;
    assert_eq!(again["stream"], stream, "the quiet room kept its stream");
    assert_eq!(again["seq"], sent, "{again}");

    // The crowded room works, and counts its members instead of naming
    // each arrival.
    let mut crowd = crowd;
    let mut first = crowd.pop().expect("a member");
    let mut second = crowd.pop().expect("a member");
    let welcome = first.recv_json(WAIT).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    first
        .send_json(&json!({"type": "send", "body": "still here"}))
        .await;
    assert_eq!(second.recv_json(WAIT).await["type"], "welcome");
    let m = next_message(&mut second).await;
    assert_eq!(m["body"], "still here", "{m}");
    let mut counted = false;
    while !counted {
        let v = first.recv_json(WAIT).await;
        counted = v["type"] == "members" && v["members"].as_u64() >= Some(STORM as u64 - 10);
        assert_ne!(v["type"], "joined", "a crowded room names no arrivals: {v}");
    }

    let node = cluster.node(1);
    assert!(
        !node.proc.log().contains("fencing"),
        "the node fenced itself:\n{}",
        node.proc.log_tail(30)
    );
    let nodes = cluster.router(0).http().get("/nodes").await;
    assert_eq!(nodes.body[0]["id"], "i1", "{}", nodes.text);
    let text = node.http().get("/metrics").await.text;
    assert!(
        metrics::sum(&text, "roomnode_lease_renewal_seconds_count") > Some(0.0),
        "renewals are measured"
    );
    assert_eq!(
        metrics::sum(&text, "roomnode_slow_consumers_total"),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_beyond_a_rooms_join_rate_are_told_when_to_come_back() {
    let cluster =
        Cluster::start_with(1, 1, &["--room-join-rate", "1", "--room-join-burst", "2"]).await;
    cluster.create_room("door").await;
    let url = format!("{}/i1/room/door", cluster.node(1).ws_base());
    let _first = join(&url).await;
    let _second = join(&url).await;
    match WsClient::connect(&url).await {
        Err(Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            assert_eq!(
                resp.headers().get("retry-after").map(|v| v.as_bytes()),
                Some(&b"1"[..])
            );
        }
        Ok(_) => panic!("a third join within the second was admitted"),
        Err(e) => panic!("{e}"),
    }
    let text = cluster.node(1).http().get("/metrics").await.text;
    assert_eq!(
        metrics::sum_with(&text, "roomnode_rejected_total", &[("reason", "join_rate")]),
        Some(1.0),
        "counted as join_rate:\n{text}"
    );
    // Other rooms are not affected.
    cluster.create_room("other").await;
    join(&format!("{}/i1/room/other", cluster.node(1).ws_base())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_large_messages_keeps_history_within_its_byte_bound_and_idle_rooms_drop_it() {
    const ROOMS: usize = 4;
    const BOUND: usize = 1 << 20;
    let cluster = Cluster::start_with(
        1,
        1,
        &["--history-bytes", &BOUND.to_string(), "--history-idle", "2"],
    )
    .await;
    let base = cluster.node(1).ws_base();
    let pid = cluster.node(1).proc.pid().expect("the node runs");
    let rss_before = rss(pid);
    let members = flood(&cluster, &base, ROOMS).await;
    let http = cluster.node(1).http();
    let held = metrics::sum(&http.get("/metrics").await.text, "roomnode_history_bytes")
        .expect("roomnode_history_bytes");
    // 100 messages of 60 KB per room would be 6 MB each without the bound.
    assert!(held > 0.0, "history is kept");
    assert!(
        held <= (ROOMS * BOUND) as f64,
        "{held} bytes held, more than {ROOMS} rooms x {BOUND}"
    );
    // The process as a whole: what the formula allows for history, plus
    // slack for buffers the allocator keeps (without the bound: 24 MB more).
    let grown = rss(pid).saturating_sub(rss_before);
    eprintln!("node RSS grew {grown} bytes; history holds {held}");
    assert!(
        grown <= ROOMS * BOUND + (8 << 20),
        "the node grew {grown} bytes for {held} bytes of history"
    );
    drop(members);
    eventually(WAIT, "rooms nobody is in drop their history", async || {
        metrics::sum(&http.get("/metrics").await.text, "roomnode_history_bytes") == Some(0.0)
    })
    .await;
}

/// A member in each of `rooms` new rooms on node i1 that sent 100 messages
/// of 60 KB.
async fn flood(cluster: &Cluster, base: &str, rooms: usize) -> Vec<WsClient> {
    let body = "x".repeat(60_000);
    let mut members = Vec::new();
    for r in 0..rooms {
        let room = format!("flood-{r}");
        cluster.create_room(&room).await;
        let (mut c, _) = join(&format!("{base}/i1/room/{room}")).await;
        for _ in 0..100 {
            c.send_json(&json!({"type": "send", "body": body})).await;
            assert_eq!(next_message(&mut c).await["type"], "message");
        }
        members.push(c);
    }
    members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_nobody_is_in_are_dropped_longest_idle_first_beyond_the_history_budget() {
    const BOUND: usize = 1 << 20;
    let cluster = Cluster::start_with(
        1,
        1,
        &[
            "--history-bytes",
            &BOUND.to_string(),
            "--history-budget",
            &(2 * BOUND).to_string(),
            "--history-idle",
            "0",
        ],
    )
    .await;
    let base = cluster.node(1).ws_base();
    let members = flood(&cluster, &base, 4).await;
    let http = cluster.node(1).http();
    let held = async || metrics::sum(&http.get("/metrics").await.text, "roomnode_history_bytes");
    assert!(
        held().await > Some((3 * BOUND) as f64),
        "rooms in use keep theirs"
    );
    // They leave in order, each seen by the node before the next goes.
    let active = async || metrics::sum(&http.get("/metrics").await.text, "roomnode_active_rooms");
    for (left, member) in members.into_iter().enumerate() {
        drop(member);
        let still = (3 - left) as f64;
        eventually(WAIT, "the node sees the member leave", async || {
            active().await == Some(still)
        })
        .await;
    }
    eventually(WAIT, "idle rooms fit the budget", async || {
        held().await <= Some((2 * BOUND) as f64)
    })
    .await;
    // The last two to empty kept their history: a resume there works.
    let (_c, welcome) = join(&format!("{base}/i1/room/flood-3?since=99")).await;
    assert_eq!(
        welcome["seq"], 100,
        "the newest idle room was kept: {welcome}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_a_deleted_room_does_not_open_the_room_created_again() {
    let cluster = Cluster::start(1, 1).await;
    let http = cluster.router(0).http();
    let first = http
        .post_json("/rooms", &json!({"id": "again", "private": true}))
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let old = first.body["token"].as_str().expect("a token").to_owned();
    let created = store::store::unix_now();
    assert_eq!(http.delete("/rooms/again").await.status, 204);
    // created_at counts seconds: the next incarnation must be another one.
    eventually(WAIT, "the clock moves to the next second", async || {
        store::store::unix_now() > created
    })
    .await;
    let second = http
        .post_json("/rooms", &json!({"id": "again", "private": true}))
        .await;
    assert_eq!(second.status, 201, "{}", second.text);
    let url = format!("{}/i1/room/again", cluster.node(1).ws_base());
    let refused = WsClient::connect(&format!("{url}?token={old}")).await;
    assert_eq!(
        testkit::ws::refusal(refused, &url),
        (403, Some("token_revoked".to_owned()))
    );
    let fresh = second.body["token"].as_str().expect("a token");
    join(&format!("{url}?token={fresh}")).await;
}

/// Sends `POST path` with a 120 MB `Content-Length` and no body to `addr`;
/// the answer that comes before any of the body, then up to 16 MB of the
/// body (ignored or refused by the server).
async fn answer_before_body(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        120 << 20
    );
    tcp.write_all(head.as_bytes()).await.expect("send the head");
    let started = tokio::time::Instant::now();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("no answer to {path} before its body"))
        .expect("read");
    eprintln!(
        "{path} answered {:?} after the head, before any of the body",
        started.elapsed()
    );
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..16 {
        if tcp.write_all(&chunk).await.is_err() {
            break;
        }
    }
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_internal_call_is_refused_before_its_body_is_read() {
    let cluster = Cluster::start(1, 1).await;
    let node = cluster.node(1);
    let pid = node.proc.pid().expect("the node runs");
    let before = rss(pid);
    let addr = node.http().base().trim_start_matches("http://").to_owned();
    // The old node read and parsed the body first, then said 401.
    for _ in 0..6 {
        let text = answer_before_body(&addr, "/internal/adopt").await;
        assert!(text.starts_with("HTTP/1.1 401"), "{text}");
        assert!(text.contains("\"unauthorized\""), "{text}");
        assert!(!text.contains("snapshot"), "no schema is echoed: {text}");
    }
    let grown = rss(pid).saturating_sub(before);
    assert!(grown < 16 << 20, "the node grew {grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_of_the_router_refuse_before_the_body_is_read() {
    let mut cluster = Cluster::start(1, 0).await;
    cluster
        .add_router(&["--admin-token", "admin-token-0123456789"])
        .await;
    let addr = cluster
        .router(0)
        .http()
        .base()
        .trim_start_matches("http://")
        .to_owned();
    cluster.create_room("guarded").await;
    for path in ["/rooms/guarded/tokens", "/admin/rebalance"] {
        let text = answer_before_body(&addr, path).await;
        assert!(text.starts_with("HTTP/1.1 401"), "{path}: {text}");
        assert!(!text.contains("ttl_secs"), "no schema is echoed: {text}");
    }
}

/// The replication stream between nodes (`GET /internal/replicate`): an
/// upgrade without the cluster key is refused with 401 before it becomes
/// a WebSocket; with the key, a valid batch is answered with its number
/// and the replica's incarnation, and a frame that is not a batch closes
/// the stream with 1007 (a binary one with 1003), naming why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replication_stream_needs_the_key_and_refuses_what_is_not_a_batch() {
    use futures_util::SinkExt;
    use testkit::ws::tungstenite::Message;
    use testkit::ws::tungstenite::client::IntoClientRequest;
    use testkit::ws::tungstenite::protocol::frame::coding::CloseCode;

    let cluster = Cluster::start(1, 0).await;
    let url = format!("{}/internal/replicate", cluster.node(1).ws_base());
    for key in [None, Some("not-the-key")] {
        let mut req = url.as_str().into_client_request().unwrap();
        if let Some(k) = key {
            req.headers_mut()
                .insert("authorization", format!("Bearer {k}").parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Err(Error::Http(resp)) => assert_eq!(resp.status(), 401, "key {key:?}"),
            other => panic!("key {key:?}: {:?}", other.map(|_| "a stream")),
        }
    }
    let secret = testkit::cluster::TEST_SECRET.parse().unwrap();
    let key = proto::handoff::internal_key(&secret);
    let open = async || {
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
        tokio_tungstenite::connect_async(req)
            .await
            .expect("a stream")
            .0
    };

    let mut ws = open().await;
    ws.send(Message::text(r#"{"from":"i9","batch":5,"items":[]}"#))
        .await
        .unwrap();
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("no answer to a valid batch")
    };
    let ack: Value = serde_json::from_str(t.as_str()).unwrap();
    assert_eq!(ack["batch"], 5, "{ack}");
    assert!(ack["replica"].as_u64().is_some_and(|n| n > 0), "{ack}");

    for (frame, code) in [
        (Message::text(r#"{"not":"a batch"}"#), CloseCode::Invalid),
        (Message::binary(vec![1, 2, 3]), CloseCode::Unsupported),
    ] {
        let mut ws = open().await;
        ws.send(frame).await.unwrap();
        match ws.next().await {
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(f.code, code, "{}", f.reason);
                assert!(!f.reason.is_empty(), "the close names why");
            }
            other => panic!("expected a close {code}, got {other:?}"),
        }
    }
}
