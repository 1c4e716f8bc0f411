//! The admin API behind the operator dashboard (SPEC "Operator dashboard",
//! docs/admin.md), in process: every endpoint the page calls refuses a
//! missing or wrong credential and answers the admin token; the overview's
//! live figures and imbalance; a rebalance and a drain run as operations
//! with progress, events and audit entries; kicks and deletions audited.

use std::time::Duration;

use proto::record::{NodeRecord, NodeState};
use reqwest::Method;
use serde_json::{Value, json};
use testkit::ids::iid;
use testkit::inproc::Cluster;
use testkit::ws::join;
use testkit::{Http, Reply, eventually};

const ADMIN: &str = "admin-token-0123456789";
const API_KEY: &str = "api-key-0123456789abc";
const WAIT: Duration = Duration::from_secs(15);

/// `nodes` nodes and one router with an admin token and an API key.
async fn cluster(nodes: u16) -> Cluster {
    let mut cluster = Cluster::start(nodes, 0).await;
    cluster
        .add_router(|c| {
            c.admin_token = Some(ADMIN.parse().unwrap());
            c.api_keys = vec![API_KEY.parse().unwrap()];
        })
        .await;
    cluster.wait_nodes_seen(nodes as usize).await;
    cluster
}

/// A request with `Authorization: Bearer <token>` when given.
async fn call(
    router: &Http,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    let body = body.map(Value::to_string);
    router
        .raw(
            method,
            path,
            &headers,
            body.as_deref(),
            Duration::from_secs(10),
        )
        .await
}

async fn admin_get(router: &Http, path: &str) -> Value {
    let r = call(router, Method::GET, path, Some(ADMIN), None).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text);
    r.body
}

/// No credential: 401; a wrong one: 403; `also_refused` (e.g. an API key
/// where only the admin token will do): 403; the admin token: `ok`.
async fn assert_guarded(
    router: &Http,
    method: Method,
    path: &str,
    body: Option<Value>,
    ok: u16,
) -> Reply {
    let b = body.as_ref();
    call(router, method.clone(), path, None, b)
        .await
        .assert_error(401, "unauthorized");
    call(router, method.clone(), path, Some("wrong-0123456789"), b)
        .await
        .assert_error(403, "forbidden");
    let r = call(router, method.clone(), path, Some(ADMIN), b).await;
    assert_eq!(
        r.status, ok,
        "{method} {path} with the admin token: {}",
        r.text
    );
    r
}

/// Waits until operation `id` has ended; it, as the API shows it.
async fn finished(router: &Http, id: u64) -> Value {
    let path = format!("/admin/operations/{id}");
    let mut op = Value::Null;
    eventually(WAIT, "the operation ends", async || {
        op = admin_get(router, &path).await;
        op["state"] != "running"
    })
    .await;
    op
}

#[tokio::test]
async fn the_page_and_its_assets_load_without_a_credential() {
    let cluster = cluster(1).await;
    let router = cluster.router(0).http();
    let page = router.get("/admin").await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text.contains(r#"<script src="/admin/admin.js">"#));
    for (path, kind) in [
        ("/admin/admin.js", "text/javascript"),
        ("/admin/admin.css", "text/css"),
    ] {
        let r = router.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with(kind),
            "{path}"
        );
    }
    // The page keeps the token out of URLs: it sends a header.
    let script = router.get("/admin/admin.js").await.text;
    assert!(script.contains("sessionStorage") && script.contains("authorization"));
}

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
    call(&router, Method::GET, "/admin/overview", Some(API_KEY), None)
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
                && o["router"]["rooms"] == 9
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
async fn events_and_audit_need_the_admin_token() {
    let cluster = cluster(1).await;
    let router = cluster.router(0).http();
    let r = assert_guarded(&router, Method::GET, "/admin/events?after=0", None, 200).await;
    assert!(r.body["events"].is_array() && r.body["last"].is_u64());
    let r = assert_guarded(&router, Method::GET, "/admin/audit", None, 200).await;
    assert!(r.body["entries"].is_array());
    call(
        &router,
        Method::GET,
        "/admin/events?after=x",
        Some(ADMIN),
        None,
    )
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
            let r = call(
                &router,
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
    let op = call(
        &router,
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

    let op = call(
        &router,
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
    call(
        &router,
        Method::POST,
        "/admin/operations",
        Some(ADMIN),
        Some(&start("drain", "i7")),
    )
    .await
    .assert_error(404, "not_found");
    call(
        &router,
        Method::POST,
        "/admin/operations",
        Some(ADMIN),
        Some(&json!({"op": "explode"})),
    )
    .await
    .assert_error(400, "invalid_body");
    call(
        &router,
        Method::POST,
        "/admin/operations",
        Some(API_KEY),
        Some(&start("drain", "i1")),
    )
    .await
    .assert_error(403, "forbidden");
    call(
        &router,
        Method::GET,
        "/admin/operations/999",
        Some(ADMIN),
        None,
    )
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

#[tokio::test]
async fn without_an_admin_token_the_page_loads_and_its_api_is_refused() {
    let cluster = Cluster::start(1, 1).await;
    let router = cluster.router(0).http();
    assert_eq!(router.get("/admin").await.status, 200);
    for path in [
        "/admin/overview",
        "/admin/events",
        "/admin/audit",
        "/admin/plan",
        "/admin/operations",
        "/admin/operations/1",
    ] {
        router.get(path).await.assert_error(403, "admin_disabled");
    }
    router
        .post_json("/admin/operations", &json!({"op": "rebalance"}))
        .await
        .assert_error(403, "admin_disabled");
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
