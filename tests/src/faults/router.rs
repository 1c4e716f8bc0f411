//! [`restart_router`]: the router in one of the clients' slots is stopped
//! (SIGTERM) and a new one started on a new port in its place, as a load
//! balancer's target list would change. Its clients come back through the
//! other routers and resume with `since`; no other client notices.

use std::time::Duration;

use super::Scene;

/// Bound on a router's exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Restarts the router in client slot `slot` on a new port and checks that
/// exactly the clients that were on it reconnected, and that the traffic
/// flows again.
pub async fn restart_router(scene: &mut Scene, slot: usize) {
    let before = scene.snapshot();
    scene.shared.set_router(slot, None);
    let old = scene.router_at[slot];
    let old_port = scene.cluster.routers[old].port;
    let proc = &mut scene.cluster.routers[old].proc;
    assert!(proc.signal_term());
    let Some(exit) = proc.wait_exit(EXIT_TIMEOUT).await else {
        proc.fail(&format!("still running {EXIT_TIMEOUT:?} after SIGTERM"));
    };
    assert!(exit.success(), "router exited with {exit} after SIGTERM");
    let new_port = scene.cluster.add_router(&[]).await.port;
    scene.router_at[slot] = scene.cluster.routers.len() - 1;
    scene
        .shared
        .set_router(slot, Some(scene.router(slot).ws_base()));
    let what = "after the router restart";
    scene.wait_flowing(&before, what, |_, p| p.connected).await;
    let restart_base = scene.snapshot();
    scene.wait_flowing(&restart_base, what, |_, _| true).await;
    let after = scene.snapshot();
    let mut problems = Vec::new();
    let mut rejoined = 0;
    for ((b, a), c) in before.iter().zip(&after).zip(&scene.clients) {
        match (b.via == slot, a.connections > b.connections) {
            (true, false) => problems.push(format!(
                "{}: its client on the stopped router never reconnected",
                c.room
            )),
            (true, true) => rejoined += 1,
            (false, true) => problems.push(format!(
                "{}: its client on another router reconnected too",
                c.room
            )),
            (false, false) => {}
        }
    }
    scene.assert_clean("router restart", &problems);
    scene.report(format!(
        "router restart: :{old_port} stopped (SIGTERM, exit {exit}), :{new_port} started; {rejoined} client(s) came back through the other router"
    ));
}
