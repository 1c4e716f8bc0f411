//! `GET /admin/plan`, `POST /admin/operations`, `GET /admin/operations[/{id}]`
//! and `POST /admin/rebalance`.

use super::*;

#[tokio::test]
async fn a_rebalance_is_planned_then_run_with_progress_events_and_audit() {
    let mut cluster = cluster(3).await;
    let first = cluster.router(0).http();
    for i in 0..60 {
        cluster.create_room(&format!("rb{i}")).await;
    }
    cluster.add_node(4, |_| {}).await;
    eventually(WAIT, "the events show i4 joining", async || {
        let e = admin_get(&first, "/admin/events?after=0").await;
        e["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "node_joined" && e["node"] == "i4")
    })
    .await;
    // A router started now counts rooms per node from the whole table, so
    // it tells the moves (not the creations) apart.
    cluster
        .add_router(|c| c.admin_token = Some(ADMIN.parse().unwrap()))
        .await;
    cluster.wait_nodes_seen(4).await;
    let router = cluster.router(1).http();

    let plan = assert_guarded(&router, Method::GET, "/admin/plan", None, 200)
        .await
        .body;
    let moves = plan["moves"].as_u64().unwrap();
    assert!(moves > 0, "{plan}");
    assert_eq!(plan["before"]["i4"], 0);
    assert_eq!(
        plan["after"]["i4"], moves,
        "every move goes to the new node"
    );
    assert!(
        plan["flows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["to"] == "i4")
    );

    let start = json!({"op": "rebalance"});
    let op = assert_guarded(&router, Method::POST, "/admin/operations", Some(start), 202)
        .await
        .body;
    assert_eq!(
        (op["kind"].as_str(), op["by"].as_str()),
        (Some("rebalance"), Some("admin"))
    );
    let id = op["id"].as_u64().unwrap();
    let path = format!("/admin/operations/{id}");
    assert_guarded(&router, Method::GET, &path, None, 200).await;
    let op = finished(&router, id).await;
    assert_eq!(op["state"], "done", "{op}");
    assert_eq!(
        (op["moved"].as_u64(), op["failed"].as_u64()),
        (Some(moves), Some(0))
    );
    assert_eq!(op["total"].as_u64(), Some(moves));
    assert!(op["current"].as_str().unwrap().ends_with("→ i4"), "{op}");
    assert_eq!(admin_get(&router, "/admin/plan").await["moves"], 0);

    let list = assert_guarded(&router, Method::GET, "/admin/operations", None, 200).await;
    assert_eq!(list.body["operations"][0]["id"], id);
    let audit = admin_get(&router, "/admin/audit").await;
    let entries = audit["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|a| a["who"] == "admin"
            && a["action"] == "rebalance"
            && a["result"]
                .as_str()
                .unwrap()
                .starts_with(&format!("done: moved {moves} room(s)"))),
        "{audit}"
    );
    let shown = testkit::wait_until(WAIT, async || {
        let e = admin_get(&router, "/admin/events?after=0").await;
        let events = e["events"].as_array().unwrap().clone();
        events.iter().any(|e| e["kind"] == "operation")
            && events.iter().any(|e| e["kind"] == "rooms_moved")
    })
    .await;
    assert!(
        shown,
        "{}",
        admin_get(&router, "/admin/events?after=0").await
    );
}

#[tokio::test]
async fn drain_and_undrain_run_as_operations() {
    let cluster = cluster(3).await;
    let router = cluster.router(0).http();
    for i in 0..30 {
        cluster.create_room(&format!("dr{i}")).await;
    }
    let start = |op: &str, node: &str| json!({"op": op, "node": node});
    let op = router
        .call(
            Method::POST,
            "/admin/operations",
            Some(ADMIN),
            Some(&start("drain", "i2")),
        )
        .await;
    assert_eq!(op.status, 202, "{}", op.text);
    let op = finished(&router, op.body["id"].as_u64().unwrap()).await;
    assert_eq!(op["state"], "done", "{op}");
    assert_eq!(op["moved"], op["total"]);
    assert!(
        op["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("owns no rooms"))
    );
    let nodes = router.get("/nodes").await.body;
    let i2 = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "i2")
        .unwrap();
    assert_eq!(
        (i2["state"].as_str(), i2["rooms"].as_u64()),
        (Some("draining"), Some(0))
    );

    let op = router
        .call(
            Method::POST,
            "/admin/operations",
            Some(ADMIN),
            Some(&start("undrain", "i2")),
        )
        .await;
    assert_eq!(op.status, 202, "{}", op.text);
    assert_eq!(
        finished(&router, op.body["id"].as_u64().unwrap()).await["state"],
        "done"
    );
    eventually(WAIT, "i2 is active again", async || {
        router
            .get("/nodes")
            .await
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == "i2" && n["state"] == "active")
    })
    .await;

    // Refused at once: an unknown node, a bad body, an API key.
    router
        .call(
            Method::POST,
            "/admin/operations",
            Some(ADMIN),
            Some(&start("drain", "i7")),
        )
        .await
        .assert_error(404, "not_found");
    router
        .call(
            Method::POST,
            "/admin/operations",
            Some(ADMIN),
            Some(&json!({"op": "explode"})),
        )
        .await
        .assert_error(400, "invalid_body");
    router
        .call(
            Method::POST,
            "/admin/operations",
            Some(API_KEY),
            Some(&start("drain", "i1")),
        )
        .await
        .assert_error(403, "forbidden");
    router
        .call(Method::GET, "/admin/operations/999", Some(ADMIN), None)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn the_blocking_rebalance_still_answers_its_plan() {
    let cluster = cluster(2).await;
    let router = cluster.router(0).http();
    let r = assert_guarded(
        &router,
        Method::POST,
        "/admin/rebalance",
        Some(json!({"dry_run": true})),
        200,
    )
    .await;
    assert!(r.body["plan"]["moves"].is_array() && r.body.get("summary").is_none());
}
