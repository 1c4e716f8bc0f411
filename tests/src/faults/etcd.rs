//! [`etcd_outage`]: etcd is killed and restarted well inside what the nodes
//! ride out (README "etcd outage": TTL − renewal interval − margin), and
//! nothing may be interrupted: no client reconnects, bodies keep being
//! accepted while etcd is down, no node fences itself, no record changes.

use std::time::Duration;

use tokio::time::Instant;

use super::Scene;
use crate::cluster::TEST_LEASE_TTL;
use crate::eventually;

/// Own bodies every client must see accepted while etcd is dead.
const ACCEPTED_WHILE_DEAD: u64 = 5;

/// Kills etcd, keeps it dead for `dead` (deliberately: the outage is the
/// fault), restarts it, and checks that the traffic did not notice. An
/// outage (kill to serving reads) of `outage_max` or more makes the scene
/// inconclusive, not the product wrong: it panics saying so.
pub async fn etcd_outage(scene: &mut Scene, dead: Duration, outage_max: Duration) {
    let wait = scene.wait();
    let before = scene.snapshot();
    let fenced_before = scene.all_fencings();
    let placement = scene.cluster.placement().await;
    scene.cluster.etcd.kill().await;
    let down = Instant::now();
    // Deliberate: the outage is the fault. etcd stays dead for `dead`.
    tokio::time::sleep_until(down + dead).await;
    let during = scene.snapshot();
    scene.cluster.etcd.restart().await;
    let outage = down.elapsed();
    assert!(
        outage < outage_max,
        "etcd took {outage:?} from kill to serving reads, longer than this test plans ({outage_max:?}): inconclusive"
    );
    for r in &scene.cluster.routers {
        let http = r.http();
        eventually(wait, "routers are ready again after etcd", async || {
            http.send(reqwest::Method::GET, "/readyz", None)
                .await
                .is_ok_and(|r| r.status == 200)
        })
        .await;
    }
    let after_etcd = scene.snapshot();
    scene
        .wait_flowing(&after_etcd, "after the etcd outage", |_, _| true)
        .await;
    let settled = scene.snapshot();
    let mut problems = Vec::new();
    let clients = &scene.clients;
    for ((b, d), (s, c)) in before.iter().zip(&during).zip(settled.iter().zip(clients)) {
        if s.connections != b.connections {
            problems.push(format!(
                "{}: a client reconnected across a {outage:?} etcd outage ({} -> {} connections)",
                c.room, b.connections, s.connections
            ));
        }
        if d.accepted < b.accepted + ACCEPTED_WHILE_DEAD {
            problems.push(format!(
                "{}: {} own bodies accepted during the first {dead:?} of the etcd outage",
                c.room,
                d.accepted - b.accepted
            ));
        }
    }
    for (n, was) in scene.cluster.nodes.iter().zip(&fenced_before) {
        let now = scene.fencings(&n.id());
        if now != *was {
            problems.push(format!(
                "{} fenced itself during a {outage:?} etcd outage:\n{}",
                n.id(),
                n.proc.log_grep(&["fenc", "renew", "lease"], 12)
            ));
        }
    }
    if scene.cluster.placement().await != placement {
        problems.push("room records changed across the etcd outage".into());
    }
    let ttl = Duration::from_secs(TEST_LEASE_TTL);
    scene.assert_clean(
        &format!("etcd outage of {outage:?} (TTL {ttl:?}) interrupted traffic"),
        &problems,
    );
    scene.report(format!(
        "etcd outage: {outage:?} from SIGKILL to serving reads; no reconnect, no fencing, no record changed"
    ));
}
