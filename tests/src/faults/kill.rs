//! [`kill_node`]: a node killed with SIGKILL under live traffic. Its rooms
//! fail over once its lease expires, each to its HRW owner among the
//! remaining nodes, which held the room's replica: the traffic goes on in
//! the same stream (SPEC "No accepted message lost when a node dies").
//! [`Killed`] says where the rooms went and how long it took.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::Scene;
use crate::cluster::TEST_LEASE_TTL;
use crate::{metrics, wait_until};

/// Bound on a dead node's rooms failing over, beyond its TTL.
const FAILOVER_SLACK: Duration = Duration::from_secs(5);

/// A node that was killed, and where its live rooms went.
#[derive(Debug)]
pub struct Killed {
    /// The killed node.
    pub node: String,
    /// Its live rooms, by the node that holds each now.
    pub heirs: BTreeMap<String, String>,
    /// From SIGKILL to every one of its rooms owned by another node.
    pub failover_took: Duration,
    /// From SIGKILL to every client sending and seeing its bodies again.
    pub flowing_after: Duration,
}

impl Killed {
    /// The node that took most of the killed node's rooms.
    pub fn main_heir(&self) -> String {
        let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
        for heir in self.heirs.values() {
            *per_node.entry(heir).or_default() += 1;
        }
        per_node
            .into_iter()
            .max_by_key(|(_, k)| *k)
            .map(|(n, _)| n.to_owned())
            .expect("the killed node had rooms")
    }
}

/// SIGKILLs node `victim`, waits until its live rooms are failed over to
/// other nodes at epoch + 1 and every client's traffic flows again through
/// a live node, and checks that every live node has a replica for each of
/// its rooms again (`roomnode_rooms_without_replica` 0) before returning.
pub async fn kill_node(scene: &mut Scene, victim: &str) -> Killed {
    let ttl = Duration::from_secs(TEST_LEASE_TTL);
    let before = scene.cluster.placement().await;
    let rooms: Vec<String> = scene
        .rooms
        .iter()
        .filter(|r| before[*r].0 == victim)
        .cloned()
        .collect();
    assert!(!rooms.is_empty(), "{victim} owns none of the live rooms");
    let base = scene.snapshot();
    let idx = scene.node_index(victim);
    let killed_at = Instant::now();
    scene.cluster.nodes[idx].proc.kill().await;
    scene.killed.insert(victim.to_owned());
    let bound = ttl + FAILOVER_SLACK;
    let failed_over = wait_until(bound, async || {
        let now = scene.cluster.placement().await;
        rooms
            .iter()
            .all(|r| now[r].0 != victim && now[r].1 == before[r].1 + 1)
    })
    .await;
    let failover_took = killed_at.elapsed();
    let after = scene.cluster.placement().await;
    assert!(
        failed_over,
        "{victim}'s rooms were not failed over within {bound:?} of SIGKILL: {:?}{}",
        rooms.iter().map(|r| (r, &after[r])).collect::<Vec<_>>(),
        scene.cluster.log_tails(25, 10)
    );
    scene
        .wait_flowing(&base, &format!("after {victim} was killed"), |_, p| {
            p.node != victim
        })
        .await;
    let flowing_after = killed_at.elapsed();
    let mut unprotected = Vec::new();
    for n in &scene.cluster.nodes {
        if scene.killed.contains(&n.id()) {
            continue;
        }
        let text = metrics::scrape(&n.http()).await;
        let without = metrics::value(&text, "roomnode_rooms_without_replica", &[]);
        if without != 0.0 {
            unprotected.push(format!("{}: {without} room(s) without a replica", n.id()));
        }
    }
    scene.assert_clean(&format!("after {victim} was killed"), &unprotected);
    let heirs: BTreeMap<String, String> = rooms
        .iter()
        .map(|r| (r.clone(), after[r].0.clone()))
        .collect();
    scene.report(format!(
        "killed {victim} (SIGKILL) with {} of {} live rooms: failed over to {:?} {failover_took:?} after the kill (lease TTL {ttl:?}); every client flowing again {flowing_after:?} after it",
        rooms.len(),
        scene.rooms.len(),
        heirs.values().fold(BTreeMap::<&str, usize>::new(), |mut m, h| {
            *m.entry(h).or_default() += 1;
            m
        }),
    ));
    Killed {
        node: victim.to_owned(),
        heirs,
        failover_took,
        flowing_after,
    }
}
