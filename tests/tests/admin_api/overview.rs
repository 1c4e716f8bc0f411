//! `GET /admin/overview`: credentials, live figures, silent nodes, bounds.

use super::*;

#[tokio::test]
async fn overview_needs_the_admin_token_and_shows_live_figures() {
    let cluster = cluster(3).await;
    let router = cluster.router(0).http();
    for i in 0..9 {
        cluster.create_room(&format!("o{i}")).await;
    }
    let rec = cluster.record("o0").await;
    let owner = cluster.owner("o0").await;
    let url = format!("{}{}", owner.ws_base(), rec["path"].as_str().unwrap());
    let (mut member, _) = join(&url).await;
    member
        .send_json(&json!({"type": "send", "body": "hi"}))
        .await;
    let r = assert_guarded(&router, Method::GET, "/admin/overview", None, 200).await;
    router
        .call(Method::GET, "/admin/overview", Some(API_KEY), None)
        .await
        .assert_error(403, "forbidden");
    assert_eq!(r.body["nodes"].as_array().unwrap().len(), 3);
    eventually(
        WAIT,
        "the owner's live figures show the member",
        async || {
            let o = admin_get(&router, "/admin/overview").await;
            let row = o["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["id"] == rec["node"])
                .cloned()
                .unwrap();
            row["live"]["status"] == "ok"
                && row["live"]["connections"] == 1.0
                && row["live"]["messages_received_total"] == 1.0
                && row["live"]["rooms"].as_f64() == row["rooms"].as_f64()
                && row["live"]["rooms_without_replica"] == 0.0
                && o["router"]["rooms"] == 9
                // The one hosted room has its copy on its runner-up.
                && o["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|n| n["live"]["replica_rooms"].as_f64())
                    .sum::<f64>()
                    == 1.0
        },
    )
    .await;
    let o = admin_get(&router, "/admin/overview").await;
    assert_eq!(o["imbalance"]["total_rooms"], 9);
    assert_eq!(o["imbalance"]["over"], false, "under 100 rooms: {o}");
    assert!(o["imbalance"]["rule"].as_str().unwrap().contains("1.5"));

    // A registered node that does not answer shows as such.
    let ghost = NodeRecord {
        id: iid(9),
        addr: "http://127.0.0.1:9".into(),
        weight: 1.0,
        state: NodeState::Active,
    };
    cluster
        .store()
        .register_node(&ghost, Duration::from_secs(30))
        .await
        .unwrap();
    eventually(WAIT, "the silent node shows as not answering", async || {
        let o = admin_get(&router, "/admin/overview").await;
        o["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == "i9" && n["live"]["status"] == "no_answer")
    })
    .await;
}

#[tokio::test]
async fn the_overview_of_a_thousand_silent_nodes_is_bounded() {
    let cluster = cluster(1).await;
    let router = cluster.router(0).http();
    // Registered, but at an address nothing answers from (no route, or a
    // connection that never completes): each scrape waits for its timeout.
    for n in 2..=1000 {
        let ghost = NodeRecord {
            id: iid(n),
            addr: format!("http://10.255.{}.{}:9", n / 250, n % 250 + 1),
            weight: 1.0,
            state: NodeState::Draining,
        };
        cluster
            .store()
            .register_node(&ghost, Duration::from_secs(60))
            .await
            .unwrap();
    }
    eventually(WAIT, "the router sees 1000 nodes", async || {
        router.get("/nodes").await.body.as_array().map(Vec::len) == Some(1000)
    })
    .await;
    let began = std::time::Instant::now();
    let o = admin_get(&router, "/admin/overview").await;
    let took = began.elapsed();
    let nodes = o["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1000);
    assert_eq!(nodes[0]["live"]["status"], "ok", "i1 answers: {}", nodes[0]);
    assert!(
        nodes[1..]
            .iter()
            .all(|n| n["live"]["status"] == "no_answer")
    );
    // One round is bounded (3 s) whatever the number of silent nodes.
    assert!(took < Duration::from_secs(6), "the overview took {took:?}");
}
