//! How memberships end: the client's DISCONNECT, a private room's token,
//! a deleted room (DISCONNECT: the client does not come back), a node
//! shutting down (the transport only: the client reconnects).

use serde_json::json;
use testkit::inproc::Cluster;

use testkit::ws::join;

use super::{Got, Sio, WAIT, native_url, sio_url};

#[tokio::test]
async fn disconnect_leaves_the_room_and_keeps_the_session() {
    let cluster = Cluster::start(1, 1).await;
    let url = sio_url(&cluster, "leave").await;
    let (mut native, _) = join(&native_url(&cluster, "leave").await).await;
    let (mut a, first) = Sio::joined(&url, None).await;
    let (mut b, _) = Sio::joined(&url, None).await;
    a.send("1").await;
    let left = native.recv_until("left", WAIT).await;
    assert_eq!(left["member"], first["sid"], "{left}");
    b.send(r#"2["gone?"]"#).await;
    // a left the room: it gets nothing; it can connect again.
    let answer = a.connect("/room/leave", None).await;
    assert!(answer.starts_with("0/room/leave,{"), "{answer}");
    b.send(r#"2["back"]"#).await;
    assert_eq!(a.text().await, r#"2/room/leave,["back","2"]"#);
}

#[tokio::test]
async fn private_rooms_take_the_token_from_auth_and_refuse_with_connect_error() {
    let cluster = Cluster::start(1, 1).await;
    let rec = cluster
        .router(0)
        .http()
        .post_json("/rooms", &json!({"id": "vip", "private": true}))
        .await;
    assert_eq!(rec.status, 201, "{}", rec.text);
    let token = rec.body["token"].as_str().expect("a join token").to_owned();
    let path = rec.body["path"].as_str().unwrap();
    let url = format!("{}{path}/socket.io/", cluster.owner("vip").await.ws_base());

    let mut s = Sio::open(&url).await;
    let missing = s.connect("", None).await;
    let v: serde_json::Value = serde_json::from_str(missing.strip_prefix('4').unwrap()).unwrap();
    assert_eq!(v["data"]["code"], "token_required", "{missing}");
    assert!(
        v["message"].as_str().unwrap().contains("token"),
        "{missing}"
    );

    let mut tampered = token.clone();
    tampered.replace_range(token.len() - 2.., "xx");
    let bad = s.connect("", Some(&json!({"token": tampered}))).await;
    let v: serde_json::Value = serde_json::from_str(bad.strip_prefix('4').unwrap()).unwrap();
    assert_eq!(v["data"]["code"], "invalid_token", "{bad}");

    let good = s
        .connect("", Some(&json!({"token": token, "name": "vi"})))
        .await;
    assert!(good.starts_with("0{"), "{good}");
}

#[tokio::test]
async fn a_deleted_room_sends_disconnect_and_a_stopping_node_only_drops_the_transport() {
    let mut cluster = Cluster::start(1, 1).await;
    let url = sio_url(&cluster, "bye").await;
    let (mut a, _) = Sio::joined(&url, None).await;
    let mut b = Sio::open(&url).await;
    assert!(
        b.connect("/room/bye", None)
            .await
            .starts_with("0/room/bye,")
    );
    let del = cluster
        .router(0)
        .http()
        .send(reqwest::Method::DELETE, "/rooms/bye", None)
        .await
        .unwrap();
    assert_eq!(del.status, 204, "{}", del.text);
    assert_eq!(a.recv().await, Got::Text("1".into()), "DISCONNECT to /");
    assert_eq!(b.recv().await, Got::Text("1/room/bye,".into()));
    assert!(a.closes().await);

    let url = sio_url(&cluster, "stop").await;
    let (mut c, _) = Sio::joined(&url, None).await;
    cluster.stop_node(1).await.expect("the node stops");
    // No DISCONNECT: the transport ends, so the client reconnects.
    assert_eq!(c.recv().await, Got::Closed);
}

#[tokio::test]
async fn the_server_api_publishes_events_and_kicks_with_disconnect() {
    let cluster = Cluster::start(1, 1).await;
    let url = sio_url(&cluster, "srv").await;
    let (mut a, first) = Sio::joined(&url, None).await;
    let router = cluster.router(0).http();
    let published = router
        .post_json(
            "/rooms/srv/messages",
            &json!({"body": {"text": "hi"}, "event": "notice"}),
        )
        .await;
    assert_eq!(published.status, 201, "{}", published.text);
    assert_eq!(a.text().await, r#"2["notice",{"text":"hi"},"1"]"#);
    let plain = router
        .post_json("/rooms/srv/messages", &json!({"body": [1, 2]}))
        .await;
    assert_eq!(plain.status, 201, "{}", plain.text);
    assert_eq!(a.text().await, r#"2["message",[1,2],"2"]"#);

    let members = router.get("/rooms/srv/members").await;
    assert_eq!(members.body["members"][0]["member"], first["sid"]);
    assert_eq!(
        members.body["members"][0]["transport"],
        "socketio-websocket"
    );

    let kick = router
        .send(
            reqwest::Method::DELETE,
            &format!("/rooms/srv/members/{}", first["sid"].as_str().unwrap()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(kick.status, 204, "{}", kick.text);
    assert_eq!(
        a.recv().await,
        Got::Text("1".into()),
        "DISCONNECT: do not come back"
    );
    assert!(a.closes().await);
}
