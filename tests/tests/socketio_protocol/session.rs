//! A session's start: the same ownership answers as the native join, the
//! CONNECT answer, namespaces, malformed packets, the connect timeout.

use std::time::Duration;

use serde_json::json;
use testkit::inproc::Cluster;

use super::{Sio, json_after, sio_url};

#[tokio::test]
async fn the_handshake_gets_the_native_joins_ownership_answers() {
    let cluster = Cluster::start(2, 1).await;
    let rec = cluster.create_room("own").await;
    let owner = cluster.owner("own").await;
    let other = if owner.id() == "i1" { 2 } else { 1 };
    let query = "?EIO=4&transport=polling&name=ann";
    let path = format!("{}/socket.io/", rec["path"].as_str().unwrap());

    let at_owner = owner.http().get(&format!("{path}{query}")).await;
    assert_eq!(at_owner.status, 200, "{}", at_owner.text);
    assert!(at_owner.text.starts_with("0{"), "{}", at_owner.text);
    let open = json_after(&at_owner.text, "0");
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(
        open["maxPayload"],
        64 * 1024,
        "maxPayload is --max-frame-bytes"
    );

    // The path names the owner; another node says it is not that node.
    let elsewhere = cluster.node(other).http();
    elsewhere
        .get(&format!("{path}{query}"))
        .await
        .assert_error(404, "wrong_instance");

    // The other node's own path: 307 to the owner's Socket.IO path, query kept.
    let own_path = format!("/i{other}/room/own/socket.io/{query}");
    let moved = elsewhere.get(&own_path).await;
    moved.assert_error(307, "moved");
    assert_eq!(
        moved.header("location"),
        Some(format!("{path}{query}").as_str())
    );

    owner
        .http()
        .get(&format!("/{}/room/nobody/socket.io/{query}", owner.id()))
        .await
        .assert_error(404, "unknown_room");
}

#[tokio::test]
async fn connect_answers_the_member_and_pid_for_both_spellings_of_the_room() {
    let cluster = Cluster::start(1, 1).await;
    let url = sio_url(&cluster, "spell").await;

    let (a, main) = Sio::joined(&url, None).await;
    // A WebSocket from the start has nothing to upgrade to.
    assert_eq!(a.open["upgrades"], json!([]));
    assert_eq!(a.open["pingInterval"], 25_000);
    assert_eq!(a.open["pingTimeout"], 20_000);
    let sid = main["sid"].as_str().unwrap();
    assert!(sid.starts_with('m'), "the member id: {main}");
    let pid = main["pid"].as_str().unwrap();
    assert!(
        pid.ends_with(&format!("~{sid}")),
        "pid names the member: {main}"
    );

    let mut b = Sio::open(&url).await;
    let answer = b.connect("/room/spell", Some(&json!({"name": "bo"}))).await;
    let v = json_after(&answer, "0/room/spell,");
    assert_ne!(v["sid"], main["sid"]);
    let stream = |pid: &str| pid.split('~').next().unwrap().to_owned();
    assert_eq!(stream(v["pid"].as_str().unwrap()), stream(pid));
}

#[tokio::test]
async fn other_namespaces_are_refused_and_the_session_stays() {
    let cluster = Cluster::start(1, 1).await;
    let url = sio_url(&cluster, "nsp").await;
    let mut s = Sio::open(&url).await;
    for nsp in ["/random", "/room/other", "/room/nsp/x"] {
        assert_eq!(
            s.connect(nsp, None).await,
            format!(r#"4{nsp},{{"message":"Invalid namespace"}}"#)
        );
    }
    // Still usable: the room's namespace is accepted afterwards.
    assert!(s.connect("", None).await.starts_with("0{"));
    // One namespace per session.
    let again = s.connect("/room/nsp", None).await;
    assert!(again.starts_with("4/room/nsp,"), "{again}");
}

#[tokio::test]
async fn packets_that_do_not_decode_close_the_session() {
    let cluster = Cluster::start(1, 1).await;
    let url = sio_url(&cluster, "bad").await;
    let cases: [&[&str]; 5] = [
        &["4abc"],
        &["0", "2{}"],
        &["0", "2abc[\"x\"]"],
        &["0", "9"],
        // Text where an attachment was due.
        &[
            "0",
            "51-[\"x\",{\"_placeholder\":true,\"num\":0}]",
            "2[\"y\"]",
        ],
    ];
    for packets in cases {
        let mut s = Sio::open(&url).await;
        for p in packets {
            s.send(p).await;
        }
        assert!(s.closes().await, "{packets:?} did not close the session");
    }
    let mut s = Sio::open(&url).await;
    s.send_binary(&[1, 2]).await;
    assert!(s.closes().await, "binary data with no packet for it");
}

#[tokio::test]
async fn a_session_without_connect_is_closed_after_the_connect_timeout() {
    let cluster = Cluster::start_with(1, 1, |c| {
        c.connect_timeout = Duration::from_millis(300);
    })
    .await;
    let url = sio_url(&cluster, "slow").await;
    let mut s = Sio::open(&url).await;
    let opened = tokio::time::Instant::now();
    assert!(s.closes().await);
    assert!(opened.elapsed() >= Duration::from_millis(250));
    // A connected one stays past it.
    let (mut c, _) = Sio::joined(&url, None).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.send("2[\"still\",1]").await;
    let (mut other, _) = Sio::joined(&url, None).await;
    c.send("2[\"here\"]").await;
    let got = other.text().await;
    assert!(got.starts_with("2[\"here\","), "{got}");
}

#[tokio::test]
async fn events_beyond_the_limits_close_the_session() {
    let cluster = Cluster::start_with(1, 1, |c| c.max_frame_bytes = 1024).await;
    let url = sio_url(&cluster, "big").await;

    // More attachments than an event may carry.
    let (mut s, _) = Sio::joined(&url, None).await;
    s.send("565-[\"x\"]").await;
    assert!(s.closes().await, "65 attachments");

    // An event whose attachments together pass --max-frame-bytes, each
    // one below it.
    let (mut s, _) = Sio::joined(&url, None).await;
    let (mut other, _) = Sio::joined(&url, None).await;
    s.send(r#"52-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        .await;
    s.send_binary(&[1; 600]).await;
    s.send_binary(&[2; 600]).await;
    assert!(s.closes().await, "1,200 bytes of attachments");
    // Nothing of it reached the room.
    let (mut third, _) = Sio::joined(&url, None).await;
    third.send(r#"2["after"]"#).await;
    assert_eq!(other.text().await, r#"2["after","1"]"#);
}
