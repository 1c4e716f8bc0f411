//! Events: relayed into the room's stream (one seq each, to every other
//! member, the offset last), acks, binary attachments, native members in
//! the same room, polling members.

use serde_json::{Value, json};
use testkit::inproc::Cluster;
use testkit::next;
use testkit::ws::join;

use super::{Got, Sio, WAIT, json_after, native_url, sio_url};

#[tokio::test]
async fn events_reach_every_other_member_in_seq_order_with_the_offset_last() {
    let cluster = Cluster::start(1, 1).await;
    let url = sio_url(&cluster, "relay").await;
    let (mut a, _) = Sio::joined(&url, None).await;
    let (mut b, _) = Sio::joined(&url, None).await;
    let mut c = Sio::open(&url).await;
    assert!(
        c.connect("/room/relay", None)
            .await
            .starts_with("0/room/relay,{")
    );

    a.send(r#"27["chat",1,"2",{"3":[true]}]"#).await;
    assert_eq!(a.text().await, r#"37[{"seq":1}]"#, "the ack names the seq");
    assert_eq!(b.text().await, r#"2["chat",1,"2",{"3":[true]},"1"]"#);
    assert_eq!(
        c.text().await,
        r#"2/room/relay,["chat",1,"2",{"3":[true]},"1"]"#
    );

    // Without an ack id nothing comes back to the sender; seqs go on.
    for i in 0..50 {
        b.send(&format!(r#"2["n",{i}]"#)).await;
    }
    for i in 0..50 {
        assert_eq!(a.text().await, format!(r#"2["n",{i},"{}"]"#, i + 2));
    }
    a.send(r#"28["last"]"#).await;
    assert_eq!(a.text().await, r#"38[{"seq":52}]"#);
    for i in 0..50 {
        assert_eq!(
            c.text().await,
            format!(r#"2/room/relay,["n",{i},"{}"]"#, i + 2)
        );
    }
    assert_eq!(c.text().await, r#"2/room/relay,["last","52"]"#);
    assert_eq!(b.text().await, r#"2["last","52"]"#);
}

#[tokio::test]
async fn binary_attachments_arrive_byte_for_byte_and_as_base64_for_native_members() {
    let cluster = Cluster::start(1, 1).await;
    let url = sio_url(&cluster, "bin").await;
    let (mut a, _) = Sio::joined(&url, None).await;
    let (mut b, _) = Sio::joined(&url, None).await;
    let (mut native, _) = join(&native_url(&cluster, "bin").await).await;

    a.send(r#"52-9["file",{"_placeholder":true,"num":0},{"meta":{"_placeholder":true,"num":1}}]"#)
        .await;
    a.send_binary(&[0, 1, 2, 255]).await;
    a.send_binary(&[]).await;
    assert_eq!(a.text().await, r#"39[{"seq":1}]"#);
    assert_eq!(
        b.text().await,
        r#"52-["file",{"_placeholder":true,"num":0},{"meta":{"_placeholder":true,"num":1}},"1"]"#
    );
    assert_eq!(b.recv().await, Got::Binary(vec![0, 1, 2, 255]));
    assert_eq!(b.recv().await, Got::Binary(vec![]));

    let m = next(&mut native, "message").await;
    assert_eq!(m["seq"], 1);
    assert_eq!(
        m["body"],
        json!({"event": "file", "args": [{"_binary": "AAEC/w=="}, {"meta": {"_binary": ""}}]})
    );
}

#[tokio::test]
async fn native_and_socketio_members_see_each_others_messages() {
    let cluster = Cluster::start(1, 1).await;
    let url = sio_url(&cluster, "mix").await;
    let (mut s, connected) = Sio::joined(&url, None).await;
    let (mut n, welcome) = join(&native_url(&cluster, "mix").await).await;
    // Presence is native only: the Socket.IO member gets no `joined`.
    let stream = |pid: &Value| pid.as_str().unwrap().split('~').next().unwrap().to_owned();
    assert_eq!(
        stream(&connected["pid"]),
        welcome["stream"].as_str().unwrap()
    );

    // A native body of another shape is the event "message".
    n.send_json(&json!({"type": "send", "body": {"text": "hi"}}))
        .await;
    assert_eq!(s.text().await, r#"2["message",{"text":"hi"},"1"]"#);
    let echo = next(&mut n, "message").await;
    assert_eq!(echo["seq"], 1, "native senders get their own message");

    // An event-shaped native body is that event.
    let body = json!({"event": "chat", "args": ["a", 2]});
    n.send_json(&json!({"type": "send", "body": body})).await;
    assert_eq!(s.text().await, r#"2["chat","a",2,"2"]"#);
    assert_eq!(next(&mut n, "message").await["body"], body);

    // A Socket.IO event reaches the native member as that body, from the
    // Socket.IO member's id.
    s.send(r#"2["chat","back"]"#).await;
    let m = next(&mut n, "message").await;
    assert_eq!(m["seq"], 3);
    assert_eq!(m["from"], connected["sid"]);
    assert_eq!(m["body"], json!({"event": "chat", "args": ["back"]}));
    n.close(1000).await;
    // The native member's `left` never reaches the Socket.IO member: the
    // next thing it gets is the next event.
    let (mut other, _) = Sio::joined(&url, None).await;
    other.send(r#"2["after"]"#).await;
    assert_eq!(s.text().await, r#"2["after","4"]"#);
}

#[tokio::test]
async fn refused_events_get_an_error_ack_and_are_not_relayed() {
    let cluster = Cluster::start_with(1, 1, |c| {
        c.rate = 1;
        c.burst = 2;
    })
    .await;
    let url = sio_url(&cluster, "rate").await;
    let (mut a, _) = Sio::joined(&url, None).await;
    let (mut b, _) = Sio::joined(&url, None).await;
    for id in 1..=3 {
        a.send(&format!(r#"2{id}["x",{id}]"#)).await;
    }
    assert_eq!(a.text().await, r#"31[{"seq":1}]"#);
    assert_eq!(a.text().await, r#"32[{"seq":2}]"#);
    assert_eq!(a.text().await, r#"33[{"error":"rate_limited"}]"#);
    assert_eq!(b.text().await, r#"2["x",1,"1"]"#);
    assert_eq!(b.text().await, r#"2["x",2,"2"]"#);
    // Events to a namespace the session has not joined are ignored.
    b.send(r#"2/room/other,5["y"]"#).await;
    b.send(r#"2["z"]"#).await;
    assert_eq!(a.text().await, r#"2["z","3"]"#);
}

/// A polling session's GET: the packets it returns.
async fn poll(http: &reqwest::Client, url: &str) -> Vec<String> {
    let text = http
        .get(url)
        .timeout(WAIT)
        .send()
        .await
        .expect("poll")
        .text()
        .await
        .expect("poll body");
    text.split('\x1e').map(str::to_owned).collect()
}

async fn post(http: &reqwest::Client, url: &str, body: &str) {
    let r = http
        .post(url)
        .body(body.to_owned())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn polling_members_get_events_and_binary_in_their_polls() {
    let cluster = Cluster::start(1, 1).await;
    let url = sio_url(&cluster, "poll").await;
    let http_url = url.replacen("ws://", "http://", 1);
    let http = reqwest::Client::new();
    let open = poll(&http, &format!("{http_url}?EIO=4&transport=polling")).await;
    let sid = json_after(&open[0], "0")["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = format!("{http_url}?EIO=4&transport=polling&sid={sid}");
    post(&http, &session, "40").await;
    let connected = poll(&http, &session).await;
    assert!(connected[0].starts_with("40{"), "{connected:?}");

    let (mut ws, _) = Sio::joined(&url, None).await;
    ws.send(r#"2["t",1]"#).await;
    ws.send(r#"51-["b",{"_placeholder":true,"num":0}]"#).await;
    ws.send_binary(&[7, 8, 9]).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        got.extend(poll(&http, &session).await.into_iter().filter(|p| p != "2"));
    }
    assert_eq!(
        got,
        [
            r#"42["t",1,"1"]"#,
            r#"451-["b",{"_placeholder":true,"num":0},"2"]"#,
            "bBwgJ"
        ]
    );
    // And the polling member's own events go out with acks.
    post(&http, &session, "423[\"from-poll\"]").await;
    assert_eq!(ws.text().await, r#"2["from-poll","3"]"#);
    let acked = poll(&http, &session).await;
    assert_eq!(acked, [r#"433[{"seq":3}]"#]);
}
