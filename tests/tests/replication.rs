//! No accepted message lost when a node dies (SPEC, issue 15), end to end
//! with real processes and a real etcd: four nodes carry live traffic in
//! 40 rooms (two members each, sending every 100 ms through the router and
//! resuming with `since`/`stream` after any reconnect). The node with the
//! most rooms is killed with SIGKILL; its rooms fail over to their
//! replicas. Then the node that took most of them is killed too: its copies
//! must already have been re-made on a third node, so again nothing is
//! lost.
//!
//! At the end every room must hold every body each member sent, each
//! exactly once, in seqs 1..=N seen identically by both members, in one
//! stream: no stream change, no `history_gap`, no seq carrying two bodies
//! ([`testkit::verdict`]).
//!
//! And the server API's idempotency keys travel with the messages: a
//! publish repeated with its key after a failover delivers nothing twice.
//! And a restarted replica gets its copies back without traffic.
//! And a frozen replica: the owner refuses for a bounded time, then moves
//! its replica, and a failover after that still has everything.

use std::time::Duration;

use nix::sys::signal::Signal;
use reqwest::Method;
use serde_json::{Value, json};
use testkit::Http;
use testkit::{eventually, metrics, wait_until};
use tokio::time::Instant;

use testkit::faults::{self, Plan, Scene};
use testkit::traffic::{Config, Expect};
use testkit::verdict;

const PLAN: Plan = Plan {
    nodes: 4,
    routers: 1,
    rooms: 40,
    per_room: 2,
    clients: Config {
        send_every: Duration::from_millis(100),
        wait: Duration::from_secs(10),
        join_timeout: Duration::from_secs(5),
        rejoin_limit: Duration::from_secs(30),
        client_limit: Duration::from_secs(120),
        expect: Expect::Faults,
    },
    warm_up: 10,
    again: 10,
    settle: Duration::from_secs(30),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_owner_then_its_heir_loses_no_accepted_message() {
    let mut scene = Scene::start(PLAN, "crash").await;
    let first = scene.busiest_node().await;
    let killed = faults::kill_node(&mut scene, &first).await;
    let heir = killed.main_heir();
    faults::kill_node(&mut scene, &heir).await;

    let mut problems: Vec<String> = scene.drain(|_| true).await.into_iter().collect();
    let logs = scene.collect().await;
    problems.extend(scene.end_state().await);
    for (room, members) in &logs {
        assert_eq!(members.len(), PLAN.per_room);
        problems.extend(verdict::room(room, members, 1));
    }
    scene.conclude("replication", &logs, &problems, "");
}

const ADMIN: &str = "replication-admin-token-0123456789";

/// `POST /rooms/{room}/messages` with the admin token: the status and
/// the JSON answer.
async fn publish(router: &Http, room: &str, body: &Value) -> (u16, Value) {
    let path = format!("/rooms/{room}/messages");
    let r = router
        .call(Method::POST, &path, Some(ADMIN), Some(body))
        .await;
    (r.status, r.body)
}

/// The room's history through the router: its stream, and (seq, body) of
/// every message.
async fn history(router: &Http, room: &str) -> (Value, Vec<(u64, String)>) {
    let path = format!("/rooms/{room}/history");
    let r = router.call(Method::GET, &path, Some(ADMIN), None).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text);
    let kept = r.body["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|x| {
                    let seq = x["seq"].as_u64().expect("a seq");
                    (seq, x["body"].as_str().unwrap_or_default().to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    (r.body["stream"].clone(), kept)
}

/// A cluster of `nodes` nodes (with `node_args`) and a router with the
/// admin token, a room on i1 (ids from `prefix`), and its first publish
/// `body` answered with seq 1: the cluster, the router, the room and that
/// answer.
async fn one_room(
    nodes: u16,
    node_args: &[&str],
    prefix: &str,
    body: &Value,
) -> (testkit::Cluster, Http, String, Value) {
    let mut cluster = testkit::Cluster::start_with(nodes, 0, node_args).await;
    cluster.add_router(&["--admin-token", ADMIN]).await;
    let router = cluster.router(0).http();
    let (room, _) = testkit::cluster::create_room_on(&router, prefix, "i1").await;
    let (status, first) = publish(&router, &room, body).await;
    assert_eq!((status, &first["seq"]), (201, &json!(1)), "{first}");
    (cluster, router, room, first)
}

/// Copies node `n` holds for other owners.
async fn copies(cluster: &testkit::Cluster, n: u16) -> f64 {
    let text = metrics::scrape(&cluster.node(n).http()).await;
    metrics::value(&text, "roomnode_replica_rooms", &[])
}

/// SIGKILLs the room's owner i1 and waits until the room fails over to
/// `heir`; then, once its history holds at least `at_least` messages,
/// the room's stream and history.
async fn kill_owner(
    cluster: &mut testkit::Cluster,
    router: &Http,
    room: &str,
    heir: &str,
    at_least: usize,
) -> (Value, Vec<(u64, String)>) {
    cluster.node_mut(1).proc.kill().await;
    eventually(
        Duration::from_secs(15),
        &format!("the room fails over to {heir}"),
        async || cluster.record(room).await["node"] == heir,
    )
    .await;
    let mut kept = (Value::Null, Vec::new());
    let complete = wait_until(Duration::from_secs(10), async || {
        kept = history(router, room).await;
        kept.1.len() >= at_least
    })
    .await;
    assert!(complete, "history after the failover: {kept:?}");
    kept
}

/// A server publish's idempotency key travels to the replica with the
/// message: after the owner's SIGKILL, the same key at the new owner
/// answers the first seq again and delivers nothing twice.
#[tokio::test]
async fn an_idempotency_key_survives_a_failover() {
    let keyed = json!({"body": "once", "idempotency_key": "k1"});
    let (mut cluster, router, room, first) = one_room(2, &[], "keyed", &keyed).await;
    kill_owner(&mut cluster, &router, &room, "i2", 1).await;
    // The new owner may need a moment to take the room up: retry refusals.
    let mut again = (0, Value::Null);
    let answered = wait_until(Duration::from_secs(10), async || {
        again = publish(&router, &room, &keyed).await;
        again.0 == 201
    })
    .await;
    assert!(answered, "no 201 from the new owner: {again:?}");
    assert_eq!(again.1, first, "the same key answers the first publish");
    let next = json!({"body": "next", "idempotency_key": "k2"});
    let (status, next) = publish(&router, &room, &next).await;
    assert_eq!((status, &next["seq"]), (201, &json!(2)), "{next}");
    let (stream, kept) = history(&router, &room).await;
    assert_eq!(kept, vec![(1, "once".into()), (2, "next".into())]);
    assert_eq!(stream, first["stream"], "the same stream");
}

/// The replica frozen (SIGSTOP) under a stream of server publishes, with
/// `--replica-timeout 1s` and 3 s leases: once the replica has been silent
/// for the timeout the owner refuses (`not_accepted`) rather than hold
/// messages; once the frozen node's lease expires, the room copies itself
/// to its next runner-up and accepts again. Then the owner is SIGKILLed
/// with the old replica still frozen: the room fails over to the new
/// replica with every accepted message and none of the refused ones, in
/// one stream.
#[tokio::test]
async fn a_frozen_replica_is_replaced_and_nothing_accepted_is_lost() {
    let args = ["--replica-timeout", "1s"];
    let (mut cluster, router, room, first) =
        one_room(3, &args, "frozen-replica", &json!({"body": "b0"})).await;
    let (replica, spare) = if copies(&cluster, 2).await == 1.0 {
        (2, 3)
    } else {
        (3, 2)
    };
    assert_eq!(
        copies(&cluster, replica).await,
        1.0,
        "one node holds the copy"
    );

    assert!(cluster.node(replica).proc.signal(Signal::SIGSTOP));
    let frozen_at = Instant::now();
    let mut accepted = vec![(1, "b0".to_owned())];
    let mut refused = Vec::new();
    let mut timeline = Vec::new();
    let mut n = 0;
    while frozen_at.elapsed() < Duration::from_secs(8) {
        n += 1;
        let body = format!("b{n}");
        let sent = frozen_at.elapsed();
        let (status, answer) = publish(&router, &room, &json!({ "body": body })).await;
        let took = frozen_at.elapsed() - sent;
        match (status, answer["error"].as_str()) {
            (201, _) => accepted.push((answer["seq"].as_u64().expect("a seq"), body)),
            (503, Some("not_accepted")) => refused.push(body),
            _ => panic!("publish {body}: {status} {answer}"),
        }
        timeline.push((sent.as_secs_f64(), took.as_secs_f64(), status));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refusals: Vec<_> = timeline.iter().filter(|t| t.2 == 503).collect();
    let (first_refusal, last) = match (refusals.first(), refusals.last()) {
        (Some(f), Some(l)) => (f, l),
        _ => panic!("the owner refused while its replica was silent: {timeline:?}"),
    };
    eprintln!(
        "replica i{replica} frozen: {} publishes refused (not_accepted), the first answered {:.2} s after SIGSTOP, the last sent at {:.2} s; {} accepted",
        refusals.len(),
        first_refusal.0 + first_refusal.1,
        last.0,
        accepted.len() - 1
    );
    let after = timeline
        .iter()
        .skip_while(|t| t.0 <= last.0)
        .collect::<Vec<_>>();
    assert!(
        !after.is_empty() && after.iter().all(|t| t.2 == 201),
        "accepted again once the frozen node left the node set: {timeline:?}"
    );
    eventually(
        Duration::from_secs(10),
        "the copy moved to the spare node",
        async || copies(&cluster, spare).await == 1.0,
    )
    .await;

    let heir = format!("i{spare}");
    let kept = kill_owner(&mut cluster, &router, &room, &heir, accepted.len()).await;
    assert_eq!(kept.1, accepted, "every accepted message, nothing else");
    assert_eq!(kept.0, first["stream"], "the same stream");
    assert!(cluster.node(replica).proc.signal(Signal::SIGCONT));
}

/// The replica restarted (its copies gone) while the room is idle: the
/// owner learns it (the node set changed; its answer names a new
/// incarnation) and sends the copy again before anyone speaks, so a
/// failover right after still has the room's history and stream.
#[tokio::test]
async fn a_restarted_replica_gets_its_copies_back_without_traffic() {
    let (mut cluster, router, room, first) =
        one_room(2, &[], "restart", &json!({"body": "b1"})).await;
    assert_eq!(copies(&cluster, 2).await, 1.0, "i2 holds the copy");

    cluster.restart_node(2, &[]).await;
    let copied = wait_until(Duration::from_secs(10), async || {
        copies(&cluster, 2).await == 1.0
    })
    .await;
    assert!(
        copied,
        "the restarted replica got its copy back, nobody speaking"
    );
    let text = metrics::scrape(&cluster.node(2).http()).await;
    let bytes = metrics::value(&text, "roomnode_replica_bytes", &[]);
    assert!(
        bytes >= 20.0,
        "the copy holds the message's frame: {bytes} bytes"
    );

    let kept = kill_owner(&mut cluster, &router, &room, "i2", 1).await;
    assert_eq!(kept.1, vec![(1, "b1".to_owned())]);
    assert_eq!(kept.0, first["stream"], "the same stream");
}
