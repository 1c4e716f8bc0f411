//! `GET /admin/events` and `GET /admin/audit`, and the kicks and deletions
//! the audit list records.

use super::*;

#[tokio::test]
async fn events_and_audit_need_the_admin_token() {
    let cluster = cluster(1).await;
    let router = cluster.router(0).http();
    let r = assert_guarded(&router, Method::GET, "/admin/events?after=0", None, 200).await;
    assert!(r.body["events"].is_array() && r.body["last"].is_u64());
    let r = assert_guarded(&router, Method::GET, "/admin/audit", None, 200).await;
    assert!(r.body["entries"].is_array());
    router
        .call(Method::GET, "/admin/events?after=x", Some(ADMIN), None)
        .await
        .assert_error(400, "invalid_query");
}

/// Waits until `router`'s events hold one of `kind` that `pred` accepts.
async fn event(router: &Http, kind: &str, pred: impl Fn(&Value) -> bool) {
    eventually(WAIT, &format!("an event {kind}"), async || {
        let e = admin_get(router, "/admin/events?after=0").await;
        e["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == kind && pred(e))
    })
    .await;
}

#[tokio::test]
async fn events_tell_of_nodes_leaving_and_slow_consumers_cut_off() {
    let mut cluster = Cluster::start_with(2, 0, |c| c.max_queue = 4).await;
    cluster
        .add_router(|c| c.admin_token = Some(ADMIN.parse().unwrap()))
        .await;
    cluster.wait_nodes_seen(2).await;
    let router = cluster.router(0).http();
    cluster.stop_node(2).await.unwrap();
    event(&router, "node_left", |e| e["node"] == "i2").await;

    // A member that never reads, and the server publishing into its room.
    let rec = cluster.create_room("firehose").await;
    let url = format!(
        "{}{}",
        cluster.node(1).ws_base(),
        rec["path"].as_str().unwrap()
    );
    let (_silent, _) = join(&url).await;
    admin_get(&router, "/admin/overview").await;
    let body = json!({"body": {"pad": "z".repeat(16 * 1024)}});
    let metrics = cluster.node(1).http();
    let mut cut_off = false;
    for _ in 0..100 {
        for _ in 0..20 {
            let r = router
                .call(
                    Method::POST,
                    "/rooms/firehose/messages",
                    Some(ADMIN),
                    Some(&body),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
        }
        let text = metrics.get("/metrics").await.text;
        if text
            .lines()
            .any(|l| l.starts_with("roomnode_slow_consumers_total") && !l.ends_with(" 0"))
        {
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "the silent member was never cut off");
    eventually(WAIT, "the overview samples the node again", async || {
        admin_get(&router, "/admin/overview").await["nodes"][0]["live"]["slow_consumers_total"]
            == 1.0
    })
    .await;
    event(&router, "slow_consumers", |e| e["node"] == "i1").await;
}

#[tokio::test]
async fn the_room_views_endpoints_and_kick_and_delete_are_audited() {
    let cluster = cluster(2).await;
    let router = cluster.router(0).http();
    let rec = cluster.create_room("audited").await;
    let owner = cluster.owner("audited").await;
    let url = format!(
        "{}{}?name=zed",
        owner.ws_base(),
        rec["path"].as_str().unwrap()
    );
    let (mut member, welcome) = join(&url).await;
    let m = welcome["member"].as_str().unwrap().to_owned();
    member
        .send_json(&json!({"type": "send", "body": {"text": "hello"}}))
        .await;
    member.recv_until("message", WAIT).await;

    // Public reads the page uses.
    assert_eq!(router.get("/rooms/audited").await.status, 200);
    let page = router
        .get(&format!(
            "/rooms?node={}&limit=50",
            rec["node"].as_str().unwrap()
        ))
        .await;
    assert_eq!(page.body["rooms"][0]["id"], "audited");
    // Guarded ones.
    let members = assert_guarded(&router, Method::GET, "/rooms/audited/members", None, 200).await;
    assert_eq!(members.body["members"][0]["name"], "zed");
    let history = assert_guarded(
        &router,
        Method::GET,
        "/rooms/audited/history?limit=1000",
        None,
        200,
    )
    .await;
    assert_eq!(history.body["messages"][0]["body"]["text"], "hello");
    let kick = format!("/rooms/audited/members/{m}");
    assert_guarded(&router, Method::DELETE, &kick, None, 204).await;
    let kicked = member.recv_until("error", WAIT).await;
    assert_eq!(kicked["code"], "kicked");
    assert_eq!(member.expect_close(WAIT).await, Some(1008));
    assert_guarded(&router, Method::DELETE, "/rooms/audited", None, 204).await;
    assert_eq!(router.get("/rooms/audited").await.status, 404);

    let audit = admin_get(&router, "/admin/audit").await;
    let has = |who: &str, action: &str, result: &str| {
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["who"] == who && a["action"] == action && a["result"] == result)
    };
    assert!(has("admin", &format!("kick audited/{m}"), "204"), "{audit}");
    assert!(
        has(
            "no credential",
            &format!("kick audited/{m}"),
            "refused: 401"
        ),
        "{audit}"
    );
    assert!(
        has("wrong credential", "delete room audited", "refused: 403"),
        "{audit}"
    );
    assert!(has("admin", "delete room audited", "204"), "{audit}");
}
