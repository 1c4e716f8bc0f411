//! The cluster over a room table well past etcd's 4 MiB answer (60,000
//! rooms with 64-character ids, about 9 MB with their owner index), with
//! real processes: a router and nodes started afterwards load it and are
//! ready and correct; etcd restarted under them costs nothing; a rebalance
//! and the failover of a killed node complete.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::Signal;
use proto::InstanceId;
use proto::placement::Placement;
use proto::record::{NodeRecord, NodeState};
use testkit::cluster::TEST_LEASE_TTL;
use testkit::{Cluster, Http, bulk, eventually, join, metrics};

const ROOMS: usize = 60_000;
/// Bound on loading, catching up and failing over at this size.
const SETTLE: Duration = Duration::from_secs(30);

/// Rooms per node as router 0 lists them.
async fn counts(http: &Http) -> BTreeMap<String, u64> {
    let r = http.get("/nodes").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
        .as_array()
        .expect("a list of nodes")
        .iter()
        .map(|n| {
            let id = n["id"].as_str().expect("id").to_owned();
            (id, n["rooms"].as_u64().expect("rooms"))
        })
        .collect()
}

async fn ready(http: &Http) -> bool {
    http.get("/readyz").await.status == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_a_table_past_etcds_answer_limit_starts_restarts_moves_and_fails_over() {
    let mut cluster = Cluster::start(0, 0).await;
    let ids: Vec<InstanceId> = (1..=3).map(|n| InstanceId::new(n).expect("id")).collect();
    // Each room where HRW over i1..i3 puts it, so only a new node changes
    // placement.
    let placement = Placement::active(
        ids.iter()
            .map(|&id| NodeRecord {
                id,
                addr: String::new(),
                weight: 1.0,
                state: NodeState::Active,
            })
            .collect::<Vec<_>>()
            .iter(),
    );
    let mut rooms = bulk::records((0..ROOMS).map(|n| bulk::long_id(n, 64)), &ids);
    for r in &mut rooms {
        r.node = placement.owner(&r.id).expect("an owner");
    }
    bulk::write_rooms(&cluster.etcd.kv(SETTLE).await, &cluster.prefix, &rooms).await;

    for n in 1..=3 {
        cluster.add_node(n, &[]).await;
    }
    cluster.add_router(&[]).await;
    let http = cluster.router(0).http();
    let expected: BTreeMap<String, u64> = ids
        .iter()
        .map(|id| {
            (
                id.to_string(),
                rooms.iter().filter(|r| r.node == *id).count() as u64,
            )
        })
        .collect();
    assert_eq!(
        counts(&http).await,
        expected,
        "the router loaded every room"
    );
    let sample = &rooms[ROOMS / 2];
    let r = http.get(&format!("/rooms/{}", sample.id)).await;
    assert_eq!(r.body["node"], sample.node.to_string(), "{}", r.text);
    let (_member, welcome) = join(&format!(
        "{}/room/{}",
        cluster.router(0).ws_base(),
        sample.id
    ))
    .await;
    assert_eq!(welcome["node"], sample.node.to_string(), "{welcome}");

    // etcd restarted under everyone: all ready again, and a new room is seen.
    cluster.etcd.stop().await;
    cluster.etcd.restart().await;
    eventually(
        SETTLE,
        "router and nodes ready after etcd's restart",
        async || {
            let mut all = ready(&http).await;
            for n in &cluster.nodes {
                all &= ready(&n.http()).await;
            }
            all
        },
    )
    .await;
    cluster.create_room("after-restart").await;
    eventually(SETTLE, "the router counts the new room", async || {
        counts(&http).await.values().sum::<u64>() == ROOMS as u64 + 1
    })
    .await;

    // A light fourth node: a rebalance moves the rooms HRW now gives it.
    cluster.add_node(4, &["--weight", "0.05"]).await;
    cluster.wait_nodes_seen(4).await;
    let (status, out) = cluster
        .run_router_command(&["rebalance"], Duration::from_secs(60))
        .await;
    assert!(status.success(), "rebalance failed:\n{out}");
    let after = counts(&http).await;
    assert!(after["i4"] > 0, "i4 got rooms: {after:?}\n{out}");
    assert_eq!(after.values().sum::<u64>(), ROOMS as u64 + 1);
    let (status, out) = cluster
        .run_router_command(&["rebalance", "--dry-run"], Duration::from_secs(60))
        .await;
    assert!(
        status.success() && out.contains("0 room(s) to move"),
        "{out}"
    );

    // i3 dies: its rooms all get a live owner within the lease TTL + 5 s
    // (slack for the test's own polling).
    let orphaned = after["i3"];
    cluster.node_mut(3).proc.signal(Signal::SIGKILL);
    let bound = Duration::from_secs(TEST_LEASE_TTL + 5) + Duration::from_secs(5);
    eventually(bound, "every room of i3 has a live owner", async || {
        let c = counts(&http).await;
        !c.contains_key("i3") && c.values().sum::<u64>() == ROOMS as u64 + 1
    })
    .await;
    let text = metrics::scrape(&http).await;
    assert_eq!(
        metrics::sum(&text, "router_failovers_total"),
        Some(orphaned as f64),
        "every orphan failed over once"
    );
}
