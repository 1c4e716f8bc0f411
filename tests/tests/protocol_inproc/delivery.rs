//! How the node writes to members: one that never reads is cut off and no
//! one else suffers; back-to-back messages are not held back by Nagle's
//! algorithm, straight from the node or through the router.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::inproc::Cluster;
use testkit::ws::tungstenite::Message;
use testkit::{WsClient, eventually, join, next};

use crate::{WAIT, at_node, body, create, member, send, url};

/// Reads `c`'s frames until it has seen message `upto`: messages must come
/// in order from `from` with body `{"i": seq, ..}`; the only other frame
/// allowed is `slow`'s `left`, whose arrival is recorded in `left`.
async fn read_firehose(
    c: &mut WsClient,
    who: &str,
    seen: &mut u64,
    upto: u64,
    from: &str,
    slow: &str,
    left: &mut bool,
) {
    while *seen < upto {
        let v = c.recv_json(WAIT).await;
        match v["type"].as_str() {
            Some("message") => {
                *seen += 1;
                assert_eq!(v["seq"], *seen, "{who}: seqs in order, no gap: {v}");
                assert_eq!(v["from"], from, "{who}: sender of {v}");
                assert_eq!(v["body"]["i"], *seen, "{who}: body intact");
            }
            Some("left") if !*left => {
                assert_eq!(v["member"], slow, "{who}: only the slow one leaves: {v}");
                assert_eq!(v["members"], 2, "{who}: {v}");
                *left = true;
            }
            _ => panic!("{who}: unexpected frame {v}"),
        }
    }
}

#[tokio::test]
async fn a_reader_that_never_reads_is_cut_off_and_no_one_else_suffers() {
    /// Messages per round. The queue (16) counts frames, not bytes, so a
    /// burst larger than it would overflow even a member that reads: each
    /// round is read back by both readers before the next.
    const BATCH: u64 = 8;
    /// About 4 KiB per message: the node's send buffer to the silent member
    /// plus its receive buffer (a few MiB on loopback) fill within about a
    /// hundred rounds. (Each round costs a delayed ACK while the node's
    /// sockets keep Nagle on; see `back_to_back_messages_are_not_held_back`.)
    const PAD: usize = 4 * 1024;
    /// Upper bound on messages sent before the slow member must be gone.
    const LIMIT: u64 = 8_000;
    /// Rounds sent after the slow member is gone.
    const AFTER: u64 = 4;

    let cluster = Cluster::start_with(1, 1, |c| c.max_queue = 16).await;
    let path = create(&cluster, "firehose").await;
    let node = at_node(&cluster, &path, "firehose", "").await;
    let (mut obs, _) = join(&node).await;
    let (mut fast, wf) = join(&node).await;
    let mf = member(&wf);
    let (mut slow, wslow) = join(&node).await;
    let mslow = member(&wslow);
    next(&mut obs, "joined").await;
    next(&mut obs, "joined").await;
    next(&mut fast, "joined").await;

    let pad = "z".repeat(PAD);
    let (mut sent, mut got_fast, mut got_obs) = (0u64, 0u64, 0u64);
    let (mut left_fast, mut left_obs) = (false, false);
    let mut rounds_after = 0;
    while rounds_after < AFTER {
        assert!(
            sent < LIMIT,
            "the member that never reads was still in the room after {LIMIT} messages"
        );
        if left_fast && left_obs {
            rounds_after += 1;
        }
        for _ in 0..BATCH {
            sent += 1;
            send(&mut fast, &json!({"i": sent, "pad": pad})).await;
        }
        read_firehose(
            &mut fast,
            "sender",
            &mut got_fast,
            sent,
            &mf,
            &mslow,
            &mut left_fast,
        )
        .await;
        read_firehose(
            &mut obs,
            "observer",
            &mut got_obs,
            sent,
            &mf,
            &mslow,
            &mut left_obs,
        )
        .await;
    }

    // The silent member: whatever was buffered, then close 1008, or, if not
    // even the close frame fit into its buffers, the end of the connection.
    let code = slow.expect_close(WAIT).await;
    assert!(
        code.is_none() || code == Some(1008),
        "slow consumer closed with {code:?}, expected 1008"
    );

    let http = cluster.owner("firehose").await.http();
    eventually(WAIT, "roomnode_slow_consumers_total is 1", async || {
        http.get("/metrics")
            .await
            .text
            .lines()
            .any(|l| l == r#"roomnode_slow_consumers_total{node="i1"} 1"#)
    })
    .await;
}

/// Two messages sent back to back come back without waiting for a delayed
/// ACK, straight from the node and through the router. Browsers send
/// WebSocket frames with TCP_NODELAY, so both frames can reach the node in
/// one read; if a socket on the way back keeps Nagle's algorithm on, the
/// second echo is held until the client acknowledges the first (40 ms on
/// Linux, up to 200 ms elsewhere), which a real-time room cannot afford.
#[tokio::test]
async fn back_to_back_messages_are_not_held_back() {
    const ROUNDS: u64 = 50;
    // A round takes well under a millisecond on loopback; 10 ms a round
    // leaves room for a loaded machine and is a quarter of a delayed ACK.
    const BOUND: Duration = Duration::from_millis(10 * ROUNDS);
    let cluster = Cluster::start(1, 1).await;
    let path = create(&cluster, "burst").await;
    let direct = at_node(&cluster, &path, "burst", "").await;
    let proxied = url(&cluster.router(0).ws_base(), &path, "");
    let mut slow = Vec::new();
    let mut seq = 0;
    for (how, at) in [
        ("straight from the node", direct),
        ("through the router", proxied),
    ] {
        let mut a = BrowserLike::join(&at).await;
        let started = std::time::Instant::now();
        for _ in 0..ROUNDS {
            a.send(&body(seq + 1)).await;
            a.send(&body(seq + 2)).await;
            for _ in 0..2 {
                seq += 1;
                let v = a.recv().await;
                assert_eq!(v["type"], "message", "{v}");
                assert_eq!(v["seq"], seq, "{v}");
                assert_eq!(v["body"], body(seq), "{v}");
            }
        }
        let took = started.elapsed();
        if took >= BOUND {
            slow.push(format!("{how}: {took:?}"));
        }
    }
    assert!(
        slow.is_empty(),
        "{ROUNDS} rounds of two back-to-back messages took longer than {BOUND:?} ({}): \
         the second echo waits for a delayed ACK (TCP_NODELAY not set on accepted sockets?)",
        slow.join("; ")
    );
}

/// A WebSocket client with TCP_NODELAY on its side, as browsers have (the
/// kit's client keeps Nagle's algorithm, which hides the node's).
struct BrowserLike {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl BrowserLike {
    /// Joins at `url` and reads the welcome.
    async fn join(url: &str) -> Self {
        let connect = tokio_tungstenite::connect_async_with_config(url, None, true);
        let (ws, _) = tokio::time::timeout(WAIT, connect)
            .await
            .unwrap_or_else(|_| panic!("joining {url} took more than {WAIT:?}"))
            .unwrap_or_else(|e| panic!("joining {url}: {e}"));
        let mut c = Self { ws };
        let welcome = c.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        c
    }

    /// Sends `body` in a `send` frame.
    async fn send(&mut self, body: &Value) {
        use futures_util::SinkExt;
        let frame = json!({"type": "send", "body": body}).to_string();
        tokio::time::timeout(WAIT, self.ws.send(Message::text(frame)))
            .await
            .expect("sending in time")
            .expect("sending");
    }

    /// The next text frame as JSON.
    async fn recv(&mut self) -> Value {
        use futures_util::StreamExt;
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {WAIT:?}"))
                .expect("the connection ended")
                .expect("reading a frame");
            if let Message::Text(text) = frame {
                return serde_json::from_str(&text).expect("a JSON frame");
            }
        }
    }
}
