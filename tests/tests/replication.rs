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

use std::time::Duration;

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
