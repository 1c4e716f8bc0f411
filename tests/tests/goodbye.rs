//! The node's goodbye is prompt. After a member's last frame (`moved`, the
//! `room_closed` error of a delete) its close frame follows at once, and
//! once the client has answered it the connection ends at once: a client
//! (a browser's `close` event, tungstenite's end of stream) sees the
//! WebSocket closed only when the TCP connection ends, which the server
//! does first. The node's 2 s close timeout bounds only its wait for a
//! client that does not answer.

use std::time::Duration;

use serde_json::Value;
use testkit::ws::tungstenite::Message;
use testkit::{Cluster, WsClient, join, next};
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(10);

/// Well under the node's 2 s close timeout: a goodbye that waits for the
/// timeout ends the connection 2 s after the last frame.
const PROMPT: Duration = Duration::from_secs(1);

/// One member's goodbye as the client sees it.
struct Goodbye {
    /// The last frame, JSON.
    last: Value,
    /// The close frame's code.
    code: Option<u16>,
    /// From the last frame to the close frame.
    close: Duration,
    /// From the last frame to the end of the connection (the client
    /// answers the close frame as it reads on).
    end: Duration,
}

/// Reads a member's goodbye as it comes.
async fn goodbye(c: &mut WsClient) -> Goodbye {
    let last = match c.recv_message(WAIT).await {
        Some(Message::Text(text)) => serde_json::from_str(&text).expect("a JSON frame"),
        other => panic!("expected the last JSON frame, got {other:?}"),
    };
    let at = Instant::now();
    let code = c.expect_close(WAIT).await;
    let close = at.elapsed();
    ends(c).await;
    Goodbye {
        last,
        code,
        close,
        end: at.elapsed(),
    }
}

/// Reads on after the close frame (which answers it), to the end of the
/// connection; panics on anything else.
async fn ends(c: &mut WsClient) {
    match c.next_frame(WAIT).await {
        Some(None) => {}
        Some(Some(frame)) => panic!("after the close frame: {frame:?}, not the end"),
        None => panic!("the connection did not end within {WAIT:?} of the close frame"),
    }
}

/// Checks one member's goodbye: the last frame has `field` = `value`, a
/// 1000 close follows, and both the close and the end come promptly.
fn check(who: &str, g: &Goodbye, (field, value): (&str, &str)) {
    assert_eq!(g.last[field], value, "{who}: {}", g.last);
    assert_eq!(g.code, Some(1000), "{who}: close code after {value}");
    for (what, took) in [("close frame", g.close), ("end of the connection", g.end)] {
        assert!(
            took < PROMPT,
            "{who}: the {what} came {took:?} after {value} (want < {PROMPT:?})"
        );
    }
}

/// A member straight at the node and one through the router, in `room`
/// (created here); the second has been seen joining by the first.
async fn members(cluster: &Cluster, room: &str) -> (WsClient, WsClient) {
    let rec = cluster.create_room(room).await;
    let path = rec["path"].as_str().expect("path in the room record");
    let node = cluster.owner(room).await.ws_base();
    let (mut direct, _) = join(&format!("{node}{path}")).await;
    let (proxied, _) = join(&format!("{}{path}", cluster.router(0).ws_base())).await;
    next(&mut direct, "joined").await;
    (direct, proxied)
}

#[tokio::test]
async fn deleting_a_room_closes_its_members_at_once() {
    let cluster = Cluster::start(1, 1).await;
    let (mut direct, mut proxied) = members(&cluster, "doomed").await;

    // Both members are read while the delete runs, so each goodbye is
    // timed from its own last frame.
    let router = cluster.router(0).http();
    let (del, a, b) = tokio::join!(
        router.delete("/rooms/doomed"),
        goodbye(&mut direct),
        goodbye(&mut proxied),
    );
    assert_eq!(del.status, 204, "DELETE /rooms/doomed: {}", del.text);
    check("direct", &a, ("code", "room_closed"));
    check("proxied", &b, ("code", "room_closed"));
}

#[tokio::test]
async fn moving_a_room_closes_its_members_at_once() {
    let cluster = Cluster::start(2, 1).await;
    let (mut direct, mut proxied) = members(&cluster, "mover").await;
    let from = cluster.owner("mover").await.id();

    // Draining the owner moves the room live.
    let mut drain = cluster.router_command(&["drain", &from]);
    let (a, b) = tokio::join!(goodbye(&mut direct), goodbye(&mut proxied));
    let (status, out) = drain.finish(WAIT).await;
    assert!(
        status.success(),
        "router drain {from} exited {status}:\n{out}"
    );
    check("direct", &a, ("type", "moved"));
    check("proxied", &b, ("type", "moved"));
}

#[tokio::test]
async fn an_oversized_frame_closes_its_sender_at_once() {
    // The node cannot read past the oversized frame, so it cannot see the
    // client's close reply: it ends its side of the connection instead.
    let cluster = Cluster::start_with(1, 1, &["--max-frame-bytes", "1024"]).await;
    let (mut direct, mut proxied) = members(&cluster, "big").await;
    let frame = format!(r#"{{"type":"send","body":"{}"}}"#, "x".repeat(2000));
    for (c, who) in [(&mut direct, "direct"), (&mut proxied, "proxied")] {
        c.send_text(frame.clone()).await;
        let at = Instant::now();
        assert_eq!(c.expect_close(WAIT).await, Some(1009), "{who}");
        ends(c).await;
        let took = at.elapsed();
        assert!(
            took < PROMPT,
            "{who}: the connection ended {took:?} after the oversized frame (want < {PROMPT:?})"
        );
    }
}
