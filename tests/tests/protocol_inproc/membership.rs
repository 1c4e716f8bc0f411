//! Joining and leaving: the welcome comes first, presence counts members
//! with their names, and deleting a room closes its members and refuses
//! rejoining.

use serde_json::json;
use testkit::inproc::Cluster;
use testkit::ws::tungstenite::Error;
use testkit::{WsClient, join, next};

use crate::{WAIT, at_node, create, member, next_error, next_message, send, url};

#[tokio::test]
async fn welcome_comes_first_and_presence_counts_members() {
    let cluster = Cluster::start(1, 1).await;
    let path = create(&cluster, "lobby").await;
    let router = cluster.router(0).ws_base();
    let node = at_node(&cluster, &path, "lobby", "").await;

    // Through the router's proxy, with a name.
    let (mut a, wa) = join(&url(&router, &path, "name=alice")).await;
    assert_eq!(wa["room"], "lobby");
    assert_eq!(wa["node"], "i1");
    assert_eq!(wa["members"], 1);
    assert_eq!(wa["seq"], 0);
    let stream = wa["stream"].as_str().expect("stream").to_owned();
    assert!(!stream.is_empty());
    let ma = member(&wa);

    // Straight at the node, with a name.
    let (mut b, wb) = join(&format!("{node}?name=bob")).await;
    assert_eq!(wb["members"], 2);
    assert_eq!(wb["stream"], stream.as_str(), "one room, one stream");
    assert_eq!(wb["seq"], 0);
    let mb = member(&wb);
    assert_ne!(mb, ma);
    let j = next(&mut a, "joined").await;
    assert_eq!(
        j,
        json!({"type": "joined", "member": mb, "name": "bob", "members": 2})
    );

    // Without a name: no `name` field at all.
    let (mut c, wc) = join(&node).await;
    assert_eq!(wc["members"], 3);
    let mc = member(&wc);
    assert!(
        mc != ma && mc != mb,
        "member ids are distinct: {ma} {mb} {mc}"
    );
    for peer in [&mut a, &mut b] {
        let j = next(peer, "joined").await;
        assert_eq!(j, json!({"type": "joined", "member": mc, "members": 3}));
    }

    // Bob leaves: the other two see it, with his name and the new count.
    b.close(1000).await;
    for peer in [&mut a, &mut c] {
        let l = next(peer, "left").await;
        assert_eq!(
            l,
            json!({"type": "left", "member": mb, "name": "bob", "members": 2})
        );
    }

    // The name is echoed on messages too; no name, no field.
    // One after the other: a and c reach the node by different paths.
    send(&mut a, &json!("hi")).await;
    for peer in [&mut a, &mut c] {
        let m1 = next_message(peer, 1, &ma, &json!("hi")).await;
        assert_eq!(m1["name"], "alice");
        assert_eq!(m1["room"], "lobby");
    }
    send(&mut c, &json!("yo")).await;
    for peer in [&mut a, &mut c] {
        let m2 = next_message(peer, 2, &mc, &json!("yo")).await;
        assert!(m2.get("name").is_none(), "no name given, none echoed: {m2}");
    }
}

#[tokio::test]
async fn deleting_a_room_closes_its_members_and_refuses_rejoining() {
    let cluster = Cluster::start(2, 1).await;
    let path = create(&cluster, "doomed").await;
    let node = at_node(&cluster, &path, "doomed", "").await;
    let router = url(&cluster.router(0).ws_base(), &path, "");
    let (mut a, _) = join(&router).await;
    let (mut b, _) = join(&node).await;
    next(&mut a, "joined").await;

    let del = cluster.router(0).http().delete("/rooms/doomed").await;
    assert_eq!(del.status, 204, "DELETE /rooms/doomed: {}", del.text);
    for c in [&mut a, &mut b] {
        next_error(c, "room_closed").await;
        assert_eq!(c.expect_close(WAIT).await, Some(1000));
    }

    match WsClient::connect(&node).await {
        Err(Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 404, "rejoining a deleted room");
            let body = resp.body().as_deref().map(String::from_utf8_lossy);
            assert!(
                body.as_deref().is_some_and(|b| b.contains("unknown_room")),
                "404 body names the reason: {body:?}"
            );
        }
        Ok(_) => panic!("joined a deleted room"),
        Err(e) => panic!("rejoining a deleted room: {e}"),
    }
    let get = cluster.router(0).http().get("/rooms/doomed").await;
    assert_eq!(get.status, 404);
}
