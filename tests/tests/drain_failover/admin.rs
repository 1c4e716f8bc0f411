//! `POST /admin/rebalance`: refused without its token, a dry run plans the
//! moves onto a new node and changes nothing, the real run moves exactly
//! the plan, counted on the nodes that gave the rooms.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use testkit::ids::hrw;
use testkit::{Cluster, eventually, join, metrics};

use super::{ADMIN, WAIT, admin_rebalance, moves};

#[tokio::test]
async fn admin_rebalance_needs_its_token_plans_and_moves() {
    let mut cluster = Cluster::start(2, 1).await;
    let router = cluster.router(0).http();
    let (status, refused) = admin_rebalance(router.base(), Some(ADMIN), &json!({})).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"], "admin_disabled", "{refused}");

    let mut before = BTreeMap::new();
    for i in 0..30 {
        let room = format!("a{i:02}");
        let rec = cluster.create_room(&room).await;
        before.insert(room, rec["node"].as_str().expect("node").to_owned());
    }
    cluster.add_node(3, &[]).await;
    cluster.add_router(&["--admin-token", ADMIN]).await;
    cluster.wait_nodes_seen(3).await;
    let admin = cluster.router(1).http().base().to_owned();

    let (status, refused) = admin_rebalance(&admin, None, &json!({"dry_run": true})).await;
    assert_eq!(status, 401, "no bearer: {refused}");
    let (status, refused) = admin_rebalance(
        &admin,
        Some("wrong-token-0123456789"),
        &json!({"dry_run": true}),
    )
    .await;
    assert_eq!(status, 403, "wrong bearer: {refused}");

    // A dry run plans moves onto i3 only and changes nothing.
    let (status, dry) = admin_rebalance(&admin, Some(ADMIN), &json!({"dry_run": true})).await;
    assert_eq!(status, 200, "{dry}");
    assert!(dry.get("summary").is_none(), "{dry}");
    let plan = moves(&dry);
    assert!(!plan.is_empty(), "adding i3 gives it rooms: {dry}");
    let expected: BTreeSet<String> = before
        .iter()
        .filter(|(r, _)| hrw(&[1, 2, 3], r) == "i3")
        .map(|(r, _)| r.clone())
        .collect();
    assert_eq!(
        plan.iter().map(|m| m.0.clone()).collect::<BTreeSet<_>>(),
        expected,
        "{dry}"
    );
    for (room, from, to, epoch) in &plan {
        assert_eq!(to, "i3");
        assert_eq!(from, &before[room]);
        assert_eq!(*epoch, 1);
    }
    assert_eq!(dry["plan"]["before"]["i3"], 0, "{dry}");
    assert_eq!(dry["plan"]["after"]["i3"], plan.len(), "{dry}");
    for (room, node) in &before {
        let rec = cluster.record(room).await;
        assert_eq!(rec["node"], node.as_str(), "dry run moved {room}: {rec}");
        assert_eq!(rec["epoch"], 1, "{rec}");
    }
    let from_i1 = plan.iter().filter(|m| m.1 == "i1").count() as f64;
    let from_i2 = plan.iter().filter(|m| m.1 == "i2").count() as f64;
    for (n, node) in [(1, "i1"), (2, "i2")] {
        let m = metrics::scrape(&cluster.node(n).http()).await;
        assert_eq!(
            metrics::value(&m, "roomnode_rooms_moved_total", &[("node", node)]),
            0.0,
            "{m}"
        );
    }

    // The real run moves exactly the plan.
    let (status, run) = admin_rebalance(&admin, Some(ADMIN), &json!({})).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["summary"]["moved"], plan.len(), "{run}");
    assert_eq!(run["summary"]["failed"], json!([]), "{run}");
    // The nodes wrote the moves; routers see them through their watch.
    for (room, from, _, _) in &plan {
        eventually(
            WAIT,
            &format!("router 0 has {room} on i3 at epoch 2"),
            async || {
                let rec = cluster.record(room).await;
                rec["node"] == "i3" && rec["epoch"] == 2
            },
        )
        .await;
        let (_, welcome) = join(&format!("{}/room/{room}", cluster.router(0).ws_base())).await;
        assert_eq!(welcome["node"], "i3", "{room} was on {from}: {welcome}");
    }
    for (room, node) in &before {
        if !plan.iter().any(|m| &m.0 == room) {
            let rec = cluster.record(room).await;
            assert_eq!(rec["node"], node.as_str(), "{room} was not planned: {rec}");
            assert_eq!(rec["epoch"], 1, "{rec}");
        }
    }

    // A second dry run plans nothing more (bounded wait: the admin router
    // learns of the nodes' writes through its watch, see the report).
    let mut dry = Value::Null;
    eventually(WAIT, "a second dry run plans no move", async || {
        let (status, answer) =
            admin_rebalance(&admin, Some(ADMIN), &json!({"dry_run": true})).await;
        assert_eq!(status, 200, "{answer}");
        dry = answer;
        moves(&dry).is_empty()
    })
    .await;
    assert_eq!(dry["plan"]["before"]["i3"], plan.len(), "{dry}");
    assert_eq!(dry["plan"]["after"]["i3"], plan.len(), "{dry}");

    let m1 = metrics::scrape(&cluster.node(1).http()).await;
    assert_eq!(
        metrics::value(&m1, "roomnode_rooms_moved_total", &[("node", "i1")]),
        from_i1,
        "{m1}"
    );
    let m2 = metrics::scrape(&cluster.node(2).http()).await;
    assert_eq!(
        metrics::value(&m2, "roomnode_rooms_moved_total", &[("node", "i2")]),
        from_i2,
        "{m2}"
    );
    for m in [&m1, &m2] {
        assert_eq!(
            metrics::value(m, "roomnode_moves_failed_total", &[]),
            0.0,
            "{m}"
        );
    }
}
