//! The mirror: a watched copy of the rooms and nodes that tells its hook
//! every change, places on active nodes, counts and pages rooms by owner,
//! and reads through for what it has not seen yet.

use super::*;

on_both_backends!(
    mirror_follows_rooms_and_tells_the_hook,
    mirror_follows_nodes_and_places_on_active_ones,
    mirror_counts_and_pages_rooms_by_node,
    mirror_lookup_reads_through,
);

async fn mirror_follows_rooms_and_tells_the_hook(f: Fixture) {
    let s = f.store().await;
    let before_start = room("early", 1);
    create(&s, &before_start).await;
    let (mirror, seen) = synced_mirror(&s).await;

    // The snapshot counts as changes from nothing.
    assert_eq!(mirror.room(&rid("early")), Some(before_start.clone()));
    assert_eq!(
        room_changes(&seen, "early"),
        vec![(None, Some(before_start))]
    );

    // Changes made through another connection arrive by the watch.
    let writer = f.store().await;
    let created = room("live", 1);
    create(&writer, &created).await;
    eventually(SETTLE, "the mirror sees the created room", async || {
        mirror.room(&rid("live")).is_some()
    })
    .await;
    assert_eq!(mirror.room(&rid("live")), Some(created.clone()));

    let moved = writer
        .move_room(&rid("live"), 0, iid(2))
        .await
        .expect("move");
    eventually(SETTLE, "the mirror sees the move", async || {
        mirror.room(&rid("live")).map(|r| r.epoch) == Some(1)
    })
    .await;
    assert_eq!(mirror.room(&rid("live")), Some(moved.clone()));

    assert!(writer.delete_room(&rid("live")).await.expect("delete"));
    eventually(SETTLE, "the mirror sees the deletion", async || {
        mirror.room(&rid("live")).is_none()
    })
    .await;

    assert_eq!(
        room_changes(&seen, "live"),
        vec![
            (None, Some(created.clone())),
            (Some(created), Some(moved.clone())),
            (Some(moved), None),
        ]
    );

    // Other clusters' rooms never show up.
    create(&f.store_under(SIBLING).await, &room("foreign", 1)).await;
    create(&writer, &room("marker", 1)).await;
    eventually(SETTLE, "the mirror sees the marker room", async || {
        mirror.room(&rid("marker")).is_some()
    })
    .await;
    assert_eq!(mirror.room(&rid("foreign")), None);
    assert!(room_changes(&seen, "foreign").is_empty());
}

async fn mirror_follows_nodes_and_places_on_active_ones(f: Fixture) {
    let s = f.store().await;
    let (mirror, seen) = synced_mirror(&s).await;
    assert!(mirror.nodes().nodes.is_empty());
    assert!(mirror.nodes().placement.is_empty());

    let lease1 = s.register_node(&node(1), LONG_TTL).await.expect("register");
    let draining = NodeRecord {
        state: NodeState::Draining,
        ..node(2)
    };
    let lease2 = s
        .register_node(&draining, LONG_TTL)
        .await
        .expect("register");
    eventually(SETTLE, "the mirror sees both nodes", async || {
        mirror.nodes().nodes.len() == 2
    })
    .await;
    let set = mirror.nodes();
    assert_eq!(set.nodes.get(&iid(2)), Some(&draining));
    assert_eq!(set.placement.len(), 1, "draining nodes take no new rooms");
    for r in 0..50 {
        assert_eq!(set.placement.owner(&rid(&format!("p{r}"))), Some(iid(1)));
    }

    s.update_node(&node(2), lease2).await.expect("activate");
    eventually(
        SETTLE,
        "placement includes the activated node",
        async || mirror.nodes().placement.len() == 2,
    )
    .await;

    s.deregister(lease1).await.expect("deregister");
    eventually(
        SETTLE,
        "the mirror drops the deregistered node",
        async || !mirror.nodes().nodes.contains_key(&iid(1)),
    )
    .await;
    let set = mirror.nodes();
    assert_eq!(set.placement.len(), 1);
    assert_eq!(set.placement.owner(&rid("any")), Some(iid(2)));

    // The hook hears of a change right after the view shows it.
    eventually(SETTLE, "the hook heard of the deregistration", async || {
        node_changes(&seen, iid(1)).len() >= 2
    })
    .await;
    assert_eq!(
        node_changes(&seen, iid(1)),
        vec![(None, Some(node(1))), (Some(node(1)), None)]
    );
    assert_eq!(
        node_changes(&seen, iid(2)),
        vec![
            (None, Some(draining.clone())),
            (Some(draining), Some(node(2)))
        ]
    );
}

async fn mirror_counts_and_pages_rooms_by_node(f: Fixture) {
    let s = f.store().await;
    let (mirror, _seen) = synced_mirror(&s).await;
    for (id, owner) in [("a", 1), ("b", 2), ("c", 1), ("d", 2), ("e", 1)] {
        create(&s, &room(id, owner)).await;
    }
    let counts = |pairs: &[(u16, u64)]| -> HashMap<InstanceId, u64> {
        pairs.iter().map(|&(n, c)| (iid(n), c)).collect()
    };
    eventually(SETTLE, "the mirror counts 3 + 2 rooms", async || {
        mirror.room_counts() == counts(&[(1, 3), (2, 2)])
    })
    .await;
    assert_eq!(mirror.rooms_of(iid(1)), 3);
    assert_eq!(mirror.rooms_of(iid(9)), 0);

    // Pages by owner come from the store's owner index, in id order.
    let ids = |page: Vec<RoomRecord>| -> Vec<String> {
        page.into_iter().map(|r| r.id.to_string()).collect()
    };
    let of = async |n: u16, after: Option<&str>, limit: usize| -> Vec<String> {
        let after = after.map(rid);
        ids(s
            .rooms_of(iid(n), after.as_ref(), limit)
            .await
            .expect("list a node's rooms"))
    };
    assert_eq!(of(1, None, 2).await, ["a", "c"]);
    assert_eq!(of(1, Some("c"), 2).await, ["e"]);
    assert_eq!(of(2, Some("a"), 10).await, ["b", "d"]);
    assert_eq!(of(9, None, 10).await, Vec::<String>::new());
    // The index holds the same records as the rooms themselves.
    let mut indexed = s.rooms_of(iid(1), None, 10).await.expect("index");
    indexed.extend(s.rooms_of(iid(2), None, 10).await.expect("index"));
    indexed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(indexed, s.rooms(None, 10).await.expect("list rooms"));

    s.move_room(&rid("a"), 0, iid(2)).await.expect("move");
    s.delete_room(&rid("c")).await.expect("delete");
    s.delete_room(&rid("e")).await.expect("delete");
    eventually(
        SETTLE,
        "the mirror recounts after a move and deletes",
        async || mirror.room_counts() == counts(&[(2, 3)]),
    )
    .await;
    assert_eq!(mirror.rooms_of(iid(1)), 0, "a node with no rooms counts 0");
    assert_eq!(of(2, None, 10).await, ["a", "b", "d"]);
    assert_eq!(
        of(1, None, 10).await,
        Vec::<String>::new(),
        "moves and deletes leave no index entry behind"
    );
}

async fn mirror_lookup_reads_through(f: Fixture) {
    let s = f.store().await;
    let (mirror, _seen) = synced_mirror(&s).await;
    // Rooms created by another router: asked for right away, before the
    // watch may have delivered them, lookup still finds each one.
    let writer = f.store().await;
    for r in 0..20 {
        let rec = room(&format!("fresh-{r}"), 1);
        create(&writer, &rec).await;
        assert_eq!(
            mirror.lookup(&rec.id).await.expect("lookup"),
            Some(rec),
            "a room that exists in the store must be found"
        );
    }
    assert_eq!(mirror.lookup(&rid("nowhere")).await.expect("lookup"), None);
}
