//! The operator dashboard (`/admin`) in the system's headless Chromium
//! (playwright-core, `tests/browser/admin.mjs`), against an in-process
//! cluster with an admin token: a wrong token refused; 3 nodes and the
//! chart; a 4th node started here appears; a rebalance planned and run to
//! done; a node drained; a room searched and its member kicked (the
//! member's own WebSocket sees `kicked` and the close); the events and the
//! audit. What the page showed is checked against the cluster's API.
//! Screenshots: `target/screenshots/admin-*.png` (docs/admin.md shows copies).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::ids::hrw;
use testkit::inproc::Cluster;
use testkit::ws::join;
use testkit::{Proc, wait_until};

const ADMIN: &str = "admin-token-0123456789";
const DRAINED: &str = "i2";

/// `tests/`, where `browser/` lives.
fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Rooms whose owner is the same on 3 and on 4 nodes and is not the node
/// the script drains: their members stay put (until the kick).
fn steady_rooms(prefix: &str) -> impl Iterator<Item = String> {
    (0..1000)
        .map(move |i| format!("{prefix}-{i}"))
        .filter(|r| hrw(&[1, 2, 3], r) == hrw(&[1, 2, 3, 4], r) && hrw(&[1, 2, 3], r) != DRAINED)
}

/// A member of `room` that sends a message every 100 ms, so the nodes'
/// message rates are not zero; stops when aborted.
async fn chatter(cluster: &Cluster, room: &str) -> tokio::task::JoinHandle<()> {
    let rec = cluster.create_room(room).await;
    let owner = cluster.owner(room).await;
    let url = format!(
        "{}{}?name=chatty",
        owner.ws_base(),
        rec["path"].as_str().unwrap()
    );
    let (mut client, _) = join(&url).await;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            client
                .send_json(&json!({"type": "send", "body": {"text": "tick"}}))
                .await;
        }
    })
}

#[tokio::test]
async fn an_operator_watches_and_steers_the_cluster_from_the_dashboard() {
    assert!(
        here().join("browser/node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run scripts/test (it runs npm ci in tests/browser)"
    );
    let mut cluster = Cluster::start(3, 0).await;
    cluster
        .add_router(|c| c.admin_token = Some(ADMIN.parse().unwrap()))
        .await;
    cluster.wait_nodes_seen(3).await;
    for i in 0..45 {
        cluster.create_room(&format!("room-{i:02}")).await;
    }
    let room = steady_rooms("kickme").next().expect("a steady room");
    let chatty = chatter(
        &cluster,
        &steady_rooms("chatty").next().expect("a steady room"),
    )
    .await;
    let rec = cluster.create_room(&room).await;
    let owner = cluster.owner(&room).await;
    let url = format!(
        "{}{}?name=mallory",
        owner.ws_base(),
        rec["path"].as_str().unwrap()
    );
    let (mut member, welcome) = join(&url).await;
    for text in ["first", "second"] {
        member
            .send_json(&json!({"type": "send", "body": {"text": text}}))
            .await;
        member.recv_until("message", Duration::from_secs(10)).await;
    }

    let shots = here().join("../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for view in ["login", "cluster", "rebalance", "drain", "room", "events"] {
        let _ = std::fs::remove_file(shots.join(format!("admin-{view}.png")));
    }
    let (router, port) = (cluster.router(0).http(), cluster.router(0).port);
    let mut browser = Proc::program("admin.mjs", "node")
        .arg(here().join("browser/admin.mjs"))
        .arg(format!("http://127.0.0.1:{port}/admin"))
        .arg(&shots)
        .args([ADMIN, room.as_str(), DRAINED])
        .spawn();
    // The script asks for a 4th node once it has seen 3.
    let asked = wait_until(Duration::from_secs(60), async || {
        browser.log().contains("WAITING_FOR_NODE_4") || browser.try_status().is_some()
    })
    .await;
    assert!(
        asked && browser.try_status().is_none(),
        "the script did not get to the 4th node:\n{}",
        browser.log()
    );
    cluster.add_node(4, |_| {}).await;
    let status = browser
        .wait_exit(Duration::from_secs(120))
        .await
        .expect("the browser script ends");
    chatty.abort();
    let log = browser.log();
    assert!(status.success(), "the browser script failed:\n{log}");
    let result: Value = log
        .lines()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v["ok"] == true)
        })
        .unwrap_or_else(|| panic!("no result line:\n{log}"));

    assert!(
        result["refused"].as_str().unwrap().contains("403"),
        "{result}"
    );
    assert_eq!(result["nodes_before"], json!(["i1", "i2", "i3"]));
    assert_eq!(result["nodes_after"], json!(["i1", "i2", "i3", "i4"]));
    // What the page showed is what the cluster says.
    assert_eq!(result["owner"], rec["node"], "{result}");
    let history = result["history"].to_string();
    assert!(
        history.contains("first") && history.contains("second"),
        "{result}"
    );
    let nodes = router.get("/nodes").await.body;
    let drained = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == DRAINED)
        .unwrap();
    assert_eq!(
        (drained["state"].as_str(), drained["rooms"].as_u64()),
        (Some("draining"), Some(0))
    );
    let i4 = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "i4")
        .unwrap();
    assert!(
        i4["rooms"].as_u64().unwrap() > 0,
        "the rebalance moved rooms to i4: {nodes}"
    );

    // The kicked member heard it from its node.
    assert_eq!(result["kicked"], welcome["member"]);
    let kicked = member.recv_until("error", Duration::from_secs(10)).await;
    assert_eq!(kicked["code"], "kicked");
    assert_eq!(
        member.expect_close(Duration::from_secs(10)).await,
        Some(1008)
    );
    let audit = result["audit"].to_string();
    for action in ["rebalance", &format!("drain {DRAINED}"), "kick"] {
        assert!(
            audit.contains(&format!("admin | {action}")),
            "{action}: {audit}"
        );
    }

    for view in ["login", "cluster", "rebalance", "drain", "room", "events"] {
        let png = std::fs::read(shots.join(format!("admin-{view}.png")))
            .unwrap_or_else(|e| panic!("screenshot {view}: {e}"));
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{view}: not a real screenshot"
        );
    }
}
