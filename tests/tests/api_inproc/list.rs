//! `GET /rooms` (pages in id order, the node filter, refused queries) and
//! `GET /rooms/{id}` refusals.

use std::collections::BTreeSet;

use testkit::eventually;
use testkit::inproc::Cluster;

use crate::{ROOM_ID_RULE, WAIT, assert_error, list_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_list_pages_through_every_room_in_id_order() {
    let cluster = Cluster::start(3, 2).await;
    let http = cluster.router(0).http();
    // Created in reverse so that id order is not creation order.
    let ids: Vec<String> = (0..25).rev().map(|i| format!("pg-{i:02}")).collect();
    for id in &ids {
        cluster.create_room(id).await;
    }
    let expected: Vec<String> = ids.iter().rev().cloned().collect();
    eventually(WAIT, "the router lists all 25 rooms", async || {
        http.get("/rooms?limit=1000").await.body["rooms"]
            .as_array()
            .map(Vec::len)
            == Some(25)
    })
    .await;

    let first = http.get("/rooms?limit=10").await;
    assert_eq!(first.status, 200, "{}", first.text);
    let first_ids: Vec<&str> = first.body["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(first_ids, expected[..10]);
    assert_eq!(first.body["next"], "pg-09");
    let room = &first.body["rooms"][0];
    assert_eq!(
        room["path"],
        format!("/{}/room/pg-00", room["node"].as_str().unwrap())
    );
    assert_eq!(room["epoch"], 1);

    let all = list_all(&http, None, 10).await;
    let all_ids: Vec<&str> = all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(all_ids, expected, "pages in order, no gap, no duplicate");
    let last = http.get("/rooms?limit=10&after=pg-19").await;
    assert_eq!(last.body["rooms"].as_array().unwrap().len(), 5);
    assert!(
        last.body.get("next").is_none(),
        "last page has no next: {}",
        last.text
    );

    let mut union = BTreeSet::new();
    for n in 1..=3 {
        let node = format!("i{n}");
        let owned: BTreeSet<&str> = all
            .iter()
            .filter(|r| r["node"] == node.as_str())
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        let listed = list_all(&http, Some(&node), 4).await;
        let listed: BTreeSet<String> = listed
            .iter()
            .map(|r| {
                assert_eq!(r["node"], node.as_str(), "node filter leaks {r}");
                r["id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(listed, owned.iter().map(|s| s.to_string()).collect());
        union.extend(listed);
    }
    assert_eq!(union.len(), 25);

    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "node=bad",
        "node=i0",
        "after=a%20b",
    ] {
        let r = http.get(&format!("/rooms?{bad}")).await;
        assert_eq!(r.status, 400, "GET /rooms?{bad}: {}", r.text);
        assert!(r.body["error"].is_string(), "{bad}: {}", r.text);
    }
    assert_eq!(http.get("/rooms?limit=1000").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_room_refuses_unknown_and_bad_ids() {
    let cluster = Cluster::start(3, 2).await;
    let http = cluster.router(1).http();
    assert_error(&http.get("/rooms/nobody-here").await, 404, "unknown_room");
    let r = http.get("/rooms/bad%20id").await;
    assert_error(&r, 400, "invalid_room_id");
    assert!(r.body["message"].as_str().unwrap().contains(ROOM_ID_RULE));
    assert_error(
        &http.delete("/rooms/bad%20id").await,
        400,
        "invalid_room_id",
    );
    assert_error(
        &http.delete("/rooms/nobody-here").await,
        404,
        "unknown_room",
    );
}
