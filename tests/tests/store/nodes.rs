//! Nodes: registration under a lease, ids that stay taken while it lives,
//! expiry, renewal, updates and deregistration.

use super::*;

on_both_backends!(
    registered_nodes_are_listed_in_id_order,
    a_live_node_id_cannot_be_registered_twice,
    deregister_removes_the_node_at_once,
    an_unrenewed_lease_expires_and_frees_the_id,
    renewing_keeps_a_node_past_its_ttl,
    a_lease_lasts_its_whole_ttl,
    update_node_is_visible_and_stays_leased,
);

async fn registered_nodes_are_listed_in_id_order(f: Fixture) {
    let s = f.store().await;
    assert!(s.nodes().await.expect("list nodes").is_empty());
    // Key order would be i1, i10, i2; id order is numeric.
    for n in [10, 2, 1] {
        s.register_node(&node(n), LONG_TTL).await.expect("register");
    }
    assert_eq!(
        s.nodes().await.expect("list nodes"),
        vec![node(1), node(2), node(10)]
    );
    // Another cluster's store does not see them.
    let other = f.store_under(SIBLING).await;
    assert!(node_ids(&other).await.is_empty());
}

async fn a_live_node_id_cannot_be_registered_twice(f: Fixture) {
    let s = f.store().await;
    let first = s.register_node(&node(4), LONG_TTL).await.expect("register");
    let mut impostor = node(4);
    impostor.addr = "http://127.0.0.1:1".into();
    for store in [s.clone(), f.store().await] {
        match store.register_node(&impostor, LONG_TTL).await {
            Err(e @ StoreError::NodeIdTaken(id)) => {
                assert_eq!(id, iid(4));
                assert!(e.to_string().contains("i4"), "message names no id: {e}");
            }
            other => panic!("second registration of i4: {other:?}"),
        }
    }
    // The first registration is untouched and still renewable.
    assert_eq!(s.nodes().await.expect("list nodes"), vec![node(4)]);
    s.renew(first).await.expect("renew the first registration");
    // Once it is gone, the id is free.
    s.deregister(first).await.expect("deregister");
    s.register_node(&impostor, LONG_TTL)
        .await
        .expect("register a freed id");
    assert_eq!(s.nodes().await.expect("list nodes"), vec![impostor]);
}

async fn deregister_removes_the_node_at_once(f: Fixture) {
    let s = f.store().await;
    let a = s.register_node(&node(1), LONG_TTL).await.expect("register");
    s.register_node(&node(2), LONG_TTL).await.expect("register");
    s.deregister(a).await.expect("deregister");
    assert_eq!(node_ids(&s).await, vec![iid(2)]);
    // A revoked lease stays dead.
    assert!(matches!(s.renew(a).await, Err(StoreError::LeaseExpired)));
    assert!(matches!(
        s.update_node(&node(1), a).await,
        Err(StoreError::LeaseExpired)
    ));
    assert_eq!(node_ids(&s).await, vec![iid(2)]);
    // Deregistering twice is harmless.
    s.deregister(a).await.expect("deregister again");
}

async fn an_unrenewed_lease_expires_and_frees_the_id(f: Fixture) {
    let s = f.store().await;
    let lease = s
        .register_node(&node(3), SHORT_TTL)
        .await
        .expect("register");
    let kept = s.register_node(&node(5), LONG_TTL).await.expect("register");
    assert_eq!(node_ids(&s).await, vec![iid(3), iid(5)]);
    eventually(
        SHORT_TTL + Duration::from_secs(5),
        "the unrenewed node i3 disappears",
        async || node_ids(&s).await == vec![iid(5)],
    )
    .await;
    assert!(
        matches!(s.renew(lease).await, Err(StoreError::LeaseExpired)),
        "renewing an expired lease must say so"
    );
    s.renew(kept).await.expect("the other lease is alive");
    s.register_node(&node(3), LONG_TTL)
        .await
        .expect("an expired node's id is free again");
}

async fn renewing_keeps_a_node_past_its_ttl(f: Fixture) {
    let s = f.store().await;
    let ttl = Duration::from_secs(2);
    let lease = s.register_node(&node(7), ttl).await.expect("register");
    // Renew every TTL/5 for twice the TTL: the node must never go.
    let renewer = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl / 5);
            loop {
                tick.tick().await;
                if let Err(e) = s.renew(lease).await {
                    return e;
                }
            }
        })
    };
    always(ttl * 2, "renewed node i7 stays registered", async || {
        !renewer.is_finished() && node_ids(&s).await == vec![iid(7)]
    })
    .await;
    renewer.abort();
    s.renew(lease).await.expect("the lease is still alive");
}

async fn a_lease_lasts_its_whole_ttl(f: Fixture) {
    // A node counts on its registration lasting the TTL it asked for (SPEC
    // "Store outage": it serves until TTL after its last renewal), so a
    // lease must never be shorter than asked, fractions of seconds included.
    let s = f.store().await;
    let ttl = Duration::from_millis(2900);
    let start = Instant::now();
    s.register_node(&node(8), ttl).await.expect("register");
    let margin = Duration::from_millis(200);
    always(
        (ttl - margin).saturating_sub(start.elapsed()),
        "node i8 stays registered within its 2.9 s TTL",
        async || node_ids(&s).await == vec![iid(8)],
    )
    .await;
}

async fn update_node_is_visible_and_stays_leased(f: Fixture) {
    let s = f.store().await;
    let lease = s.register_node(&node(2), LONG_TTL).await.expect("register");
    let draining = NodeRecord {
        state: NodeState::Draining,
        weight: 3.0,
        ..node(2)
    };
    s.update_node(&draining, lease).await.expect("update");
    assert_eq!(s.nodes().await.expect("list nodes"), vec![draining]);
    // Still bound to the lease: ending it removes the updated record.
    s.deregister(lease).await.expect("deregister");
    assert!(s.nodes().await.expect("list nodes").is_empty());
}
