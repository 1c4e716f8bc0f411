//! The clients of a flood ([`super::flood`]): one sending padded bodies as
//! fast as the socket takes them while reading everything back, senders of
//! malformed and of oversized frames, and members that never read.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Flood, Plan};
use crate::WsClient;
use crate::ws::tungstenite::Message;

/// Frames the flooder feeds before it flushes.
const FLUSH_EVERY: u64 = 32;

/// A frame over the node's 64 KiB frame limit.
const OVERSIZED_BODY: usize = 70_000;

/// What the flooding client saw.
#[derive(Debug, Default)]
pub(super) struct FloodReport {
    /// Its bodies that came back as `message`.
    pub(super) accepted: u64,
    /// Its bodies refused with `rate_limited`.
    pub(super) rate_limited: u64,
    /// From its join to its close.
    pub(super) took: Duration,
    /// Everything that should not have happened.
    pub(super) problems: Vec<String>,
}

/// Joins `url` and sends [`Flood::messages`] bodies padded to
/// [`Flood::pad`] as fast as the socket takes them, while reading
/// everything that comes back: every body must be accepted in order or
/// refused as `rate_limited`.
pub(super) async fn flooder(url: &str, flood: &Flood, plan: &Plan) -> FloodReport {
    let (wait, settle, messages) = (plan.clients.wait, plan.settle, flood.messages);
    let started = Instant::now();
    let (ws, welcome) = WsClient::try_join(url, plan.clients.join_timeout)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let me = welcome["member"].as_str().unwrap_or_default().to_owned();
    let first_seq = welcome["seq"].as_u64().unwrap_or(0);
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        let mut r = FloodReport::default();
        let mut seq = first_seq;
        let mut next_f = 0;
        while r.accepted + r.rate_limited < messages {
            let frame = match tokio::time::timeout(wait, rx.next()).await {
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
    let pad = "p".repeat(flood.pad);
    let writing = async {
        for f in 0..messages {
            let frame = json!({"type": "send", "body": {"f": f, "pad": pad}}).to_string();
            tx.feed(Message::text(frame)).await?;
            if f % FLUSH_EVERY == FLUSH_EVERY - 1 {
                tx.flush().await?;
            }
        }
        tx.flush().await
    };
    let written = tokio::time::timeout(settle, writing).await;
    let (rx, mut report) = tokio::time::timeout(settle, reader)
        .await
        .expect("the flooder's reader ends within the bound")
        .expect("flooder reader task");
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => report.problems.push(format!("flooder send failed: {e}")),
        Err(_) => report
            .problems
            .push(format!("flooder could not send within {settle:?}")),
    }
    if let Ok(mut ws) = tx.reunite(rx) {
        let _ = tokio::time::timeout(wait, ws.close(None)).await;
    }
    report.took = started.elapsed();
    report
}

/// Joins `url`, sends `count` malformed frames (not JSON, unknown type,
/// missing fields, binary), then a good one with body `marker`; the number
/// of `bad_frame` answers before the good one came back.
pub(super) async fn malformed(
    url: &str,
    marker: &str,
    count: usize,
    wait: Duration,
) -> Result<usize, String> {
    let mut c = WsClient::connect(url)
        .await
        .map_err(|e| format!("joining {url}: {e}"))?;
    let w = c.recv_json(wait).await;
    assert_eq!(w["type"], "welcome", "{w}");
    let kinds = [
        "not json",
        r#"{"type":"shout"}"#,
        r#"{"type":"send"}"#,
        r#"{"body":1}"#,
        "[1,2]",
    ];
    for i in 0..count {
        if i % 6 == 5 {
            c.send(Message::binary(vec![0u8, 1, 2, 3])).await;
        } else {
            c.send_text(kinds[i % 6]).await;
        }
    }
    c.send_json(&json!({"type": "send", "body": marker})).await;
    let mut bad = 0;
    loop {
        let v = c.recv_json(wait).await;
        match v["type"].as_str() {
            Some("error") if v["code"] == "bad_frame" => bad += 1,
            Some("message") if v["body"] == marker => return Ok(bad),
            Some("message" | "joined" | "left") => {}
            _ => return Err(format!("{url}: unexpected {v}")),
        }
    }
}

/// Joins `url` and sends one frame over 64 KiB; the close code.
pub(super) async fn oversized(url: &str, wait: Duration) -> Option<u16> {
    let mut c = WsClient::connect(url)
        .await
        .unwrap_or_else(|e| panic!("joining {url}: {e}"));
    let w = c.recv_json(wait).await;
    assert_eq!(w["type"], "welcome", "{w}");
    let body = "x".repeat(OVERSIZED_BODY);
    c.send_text(json!({"type": "send", "body": body}).to_string())
        .await;
    c.expect_close(wait).await
}

/// A member that joins `url` and then never reads.
pub(super) async fn silent_member(url: &str) -> WsClient {
    WsClient::connect(url)
        .await
        .unwrap_or_else(|e| panic!("joining {url}: {e}"))
}

/// How a silent member's connection ends once the node cuts it off, within
/// `wait`: its close code (`Ok(None)` without a close frame, `Err` if it
/// is still open), and the frames it had buffered before.
pub(super) async fn silent_end(
    mut ws: WsClient,
    wait: Duration,
) -> (Result<Option<u16>, tokio::time::error::Elapsed>, usize) {
    let mut frames = 0usize;
    let end = tokio::time::timeout(wait, async {
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
}
