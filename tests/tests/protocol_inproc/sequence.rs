//! One order for everyone: interleaved senders get one gapless sequence,
//! bodies byte for byte; resume (`since`, `stream`) replays exactly what was
//! missed, and what cannot be replayed is a `history_gap`.

use testkit::inproc::Cluster;
use testkit::{join, next};

use crate::{WAIT, at_node, body, create, member, next_error, next_message, next_raw, send, url};

#[tokio::test]
async fn interleaved_senders_give_everyone_one_gapless_order() {
    const PER_SENDER: u64 = 100;
    let cluster = Cluster::start(1, 1).await;
    let path = create(&cluster, "busy").await;
    let node = at_node(&cluster, &path, "busy", "").await;
    let router = url(&cluster.router(0).ws_base(), &path, "");

    let (mut obs, _) = join(&router).await;
    let (mut a, wa) = join(&node).await;
    let (mut b, wb) = join(&router).await;
    let (ma, mb) = (member(&wa), member(&wb));
    // Presence first, so that afterwards only messages are expected.
    next(&mut obs, "joined").await;
    next(&mut obs, "joined").await;
    next(&mut a, "joined").await;

    // Bodies in odd formatting: they must come back byte for byte.
    let raw_body =
        |who: &str, i: u64| format!("{{ \"who\" : \"{who}\",\"i\":{i} , \"u\":\"\\u00e9 ✓\" }}");
    for i in 0..PER_SENDER {
        a.send_text(format!(
            "{{\"type\":\"send\",\"body\":{}}}",
            raw_body("a", i)
        ))
        .await;
        b.send_text(format!(
            "{{\"type\":\"send\",\"body\":{}}}",
            raw_body("b", i)
        ))
        .await;
    }

    let total = 2 * PER_SENDER;
    let mut seen: Vec<Vec<(u64, String, String)>> = Vec::new();
    for client in [&mut obs, &mut a, &mut b] {
        let mut next_i = [0u64, 0u64];
        let mut got = Vec::new();
        for expect_seq in 1..=total {
            let (raw, v) = next_raw(client).await;
            assert_eq!(v["type"], "message", "only messages now: {v}");
            assert_eq!(v["seq"], expect_seq, "seqs go up by exactly one: {v}");
            let from = v["from"].as_str().expect("from").to_owned();
            let (who, k) = if from == ma {
                ("a", 0)
            } else if from == mb {
                ("b", 1)
            } else {
                panic!("message from a stranger: {v}")
            };
            assert_eq!(v["body"]["who"], who, "sender and body agree: {v}");
            assert_eq!(v["body"]["i"], next_i[k], "each sender's order kept: {v}");
            let body = raw_body(who, next_i[k]);
            assert!(
                raw.contains(&format!("\"body\":{body}")),
                "body not passed through byte for byte: sent {body}, got {raw}"
            );
            next_i[k] += 1;
            got.push((expect_seq, from, body));
        }
        assert_eq!(next_i, [PER_SENDER, PER_SENDER]);
        seen.push(got);
    }
    assert_eq!(seen[0], seen[1], "observer and sender a saw the same order");
    assert_eq!(seen[0], seen[2], "observer and sender b saw the same order");
}

#[tokio::test]
async fn resume_replays_exactly_what_was_missed_then_goes_live() {
    let cluster = Cluster::start(1, 1).await;
    let path = create(&cluster, "resume").await;
    let node = at_node(&cluster, &path, "resume", "").await;
    let router_base = cluster.router(0).ws_base();

    let (mut sender, ws) = join(&node).await;
    let ms = member(&ws);
    let (mut a, wa) = join(&url(&router_base, &path, "")).await;
    let stream = wa["stream"].as_str().expect("stream").to_owned();
    next(&mut sender, "joined").await;
    for i in 1..=10 {
        send(&mut sender, &body(i)).await;
    }
    for i in 1..=10 {
        next_message(&mut a, i, &ms, &body(i)).await;
        next_message(&mut sender, i, &ms, &body(i)).await;
    }
    a.close(1000).await;
    next(&mut sender, "left").await;

    // Missed while away; the sender's own copies prove the node took them.
    for i in 11..=15 {
        send(&mut sender, &body(i)).await;
    }
    for i in 11..=15 {
        next_message(&mut sender, i, &ms, &body(i)).await;
    }

    // Back, through the router: welcome, 11..=15 in order, then live.
    let (mut a, wa) = join(&url(
        &router_base,
        &path,
        &format!("since=10&stream={stream}"),
    ))
    .await;
    assert_eq!(wa["seq"], 15);
    assert_eq!(wa["stream"], stream.as_str());
    for i in 11..=15 {
        next_message(&mut a, i, &ms, &body(i)).await;
    }
    // Up to date: nothing replayed, no error.
    let (mut current, wc) = join(&format!("{node}?since=15&stream={stream}")).await;
    assert_eq!(wc["seq"], 15);
    // Without `stream`, `since` refers to the current stream.
    let (mut nostream, wn) = join(&format!("{node}?since=13")).await;
    assert_eq!(wn["seq"], 15);
    next_message(&mut nostream, 14, &ms, &body(14)).await;
    next_message(&mut nostream, 15, &ms, &body(15)).await;
    next(&mut a, "joined").await;
    next(&mut a, "joined").await;
    next(&mut current, "joined").await;

    send(&mut sender, &body(16)).await;
    next_message(&mut a, 16, &ms, &body(16)).await;
    next_message(&mut current, 16, &ms, &body(16)).await;
    next_message(&mut nostream, 16, &ms, &body(16)).await;
}

#[tokio::test]
async fn foreign_stream_or_future_seq_is_a_history_gap() {
    let cluster = Cluster::start(1, 1).await;
    let path = create(&cluster, "gap").await;
    let node = at_node(&cluster, &path, "gap", "").await;
    let (mut sender, ws) = join(&node).await;
    let ms = member(&ws);
    let stream = ws["stream"].as_str().expect("stream").to_owned();
    assert_ne!(stream, "deadbeef");
    for i in 1..=3 {
        send(&mut sender, &body(i)).await;
    }
    for i in 1..=3 {
        next_message(&mut sender, i, &ms, &body(i)).await;
    }

    // Another stream: welcome, history_gap, then live traffic.
    let (mut foreign, wf) = join(&format!("{node}?since=3&stream=deadbeef")).await;
    assert_eq!(wf["seq"], 3);
    assert_eq!(wf["stream"], stream.as_str());
    next_error(&mut foreign, "history_gap").await;

    // A seq the room has not reached yet.
    let (mut future, wfu) = join(&format!("{node}?since=99&stream={stream}")).await;
    assert_eq!(wfu["seq"], 3);
    next_error(&mut future, "history_gap").await;

    next(&mut foreign, "joined").await;
    send(&mut sender, &body(4)).await;
    next_message(&mut foreign, 4, &ms, &body(4)).await;
    next_message(&mut future, 4, &ms, &body(4)).await;
}

#[tokio::test]
async fn since_older_than_the_history_is_a_gap_within_it_a_replay() {
    let cluster = Cluster::start_with(1, 1, |c| c.history = 5).await;
    let path = create(&cluster, "short").await;
    let node = at_node(&cluster, &path, "short", "").await;
    let (mut sender, ws) = join(&node).await;
    let ms = member(&ws);
    let stream = ws["stream"].as_str().expect("stream").to_owned();
    for i in 1..=20 {
        send(&mut sender, &body(i)).await;
    }
    for i in 1..=20 {
        next_message(&mut sender, i, &ms, &body(i)).await;
    }

    let (mut old, wo) = join(&format!("{node}?since=2&stream={stream}")).await;
    assert_eq!(wo["seq"], 20);
    next_error(&mut old, "history_gap").await;
    // 15..=20 is six messages; only five are kept.
    let (mut edge, _) = join(&format!("{node}?since=14&stream={stream}")).await;
    next_error(&mut edge, "history_gap").await;

    let (mut recent, wr) = join(&format!("{node}?since=15&stream={stream}")).await;
    assert_eq!(wr["seq"], 20);
    for i in 16..=20 {
        next_message(&mut recent, i, &ms, &body(i)).await;
    }
    send(&mut sender, &body(21)).await;
    for c in [&mut old, &mut edge, &mut recent] {
        let m = c.recv_until("message", WAIT).await;
        assert_eq!(m["seq"], 21, "live traffic after the gap or replay: {m}");
        assert_eq!(m["body"], body(21));
    }
}
