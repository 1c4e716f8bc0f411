//! What only etcd has: the bytes at the SPEC keys, and outages.

use super::*;

/// What SPEC "etcd layout" promises: plain JSON at `{prefix}/nodes/{iN}`
/// and `{prefix}/rooms/{room}`, readable by any etcd client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_plain_json_at_the_spec_keys() {
    let etcd = Etcd::start().await;
    let s = etcd.store(DEFAULT_PREFIX).await;
    let lease = s
        .register_node(
            &NodeRecord {
                weight: 2.5,
                ..node(3)
            },
            LONG_TTL,
        )
        .await
        .expect("register");
    let rec = RoomRecord {
        private: true,
        ..room("lobby", 3)
    };
    create(&s, &rec).await;
    s.move_room(&rid("lobby"), 0, iid(4)).await.expect("move");

    let kv = etcd.kv(Duration::from_secs(3)).await;
    let read = async |key: &str| -> Value {
        let raw = kv
            .get(key)
            .await
            .expect("etcd get")
            .unwrap_or_else(|| panic!("{key} absent"));
        serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{key} is not JSON: {e}"))
    };
    let n = read("/roomrouter/nodes/i3").await;
    assert_eq!(
        n,
        serde_json::json!({
            "id": "i3",
            "addr": "http://127.0.0.1:9003",
            "weight": 2.5,
            "state": "active",
        })
    );
    let r = read("/roomrouter/rooms/lobby").await;
    assert_eq!(
        r,
        serde_json::json!({
            "id": "lobby",
            "node": "i4",
            "epoch": 1,
            "private": true,
            "created_at": rec.created_at,
        })
    );

    // The node key is bound to the lease; the room key is durable.
    s.deregister(lease).await.expect("deregister");
    assert_eq!(
        kv.get("/roomrouter/nodes/i3").await.expect("etcd get"),
        None
    );
    assert!(
        kv.get("/roomrouter/rooms/lobby")
            .await
            .expect("etcd get")
            .is_some()
    );
}

/// SPEC "Store outage": calls fail fast as `Unavailable` while etcd is
/// down, the mirror keeps answering from memory, and once etcd is back
/// everything works again and the mirror catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_unavailable_and_the_mirror_resynchronises() {
    let op_timeout = Duration::from_secs(1);
    let mut etcd = Etcd::start().await;
    let s = etcd.store_with_timeout(PREFIX, op_timeout).await;
    s.ping().await.expect("ping a running etcd");
    let kept = room("kept", 1);
    let doomed = room("doomed", 1);
    create(&s, &kept).await;
    create(&s, &doomed).await;
    let lease = s.register_node(&node(1), LONG_TTL).await.expect("register");
    let (mirror, seen) = synced_mirror(&s).await;

    etcd.stop().await;
    let bound = op_timeout + Duration::from_secs(1);
    let started = Instant::now();
    match s.ping().await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("ping with etcd down: {other:?}"),
    }
    assert!(
        started.elapsed() <= bound,
        "ping took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    match s.create_room(&room("during", 1)).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("create_room with etcd down: {other:?}"),
    }
    assert!(
        started.elapsed() <= bound,
        "create_room took {:?}",
        started.elapsed()
    );
    // A node must be able to tell "cannot reach etcd" from "lease lost".
    match s.renew(lease).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("renew with etcd down: {other:?}"),
    }
    // The mirror answers from memory meanwhile.
    assert_eq!(mirror.room(&rid("kept")), Some(kept.clone()));
    assert!(mirror.is_synced());

    etcd.restart().await;
    eventually(
        SETTLE,
        "the store answers again after restart",
        async || s.ping().await.is_ok(),
    )
    .await;
    assert_eq!(s.room(&rid("during")).await.expect("read"), None);
    // An outage shorter than the TTL costs no registration.
    s.renew(lease).await.expect("renew after the outage");
    assert_eq!(node_ids(&s).await, vec![iid(1)]);

    // Changes after the restart, from another connection, reach the
    // mirror whether through the old watch's replacement or its snapshot.
    let writer = etcd.store(PREFIX).await;
    let fresh = room("fresh", 2);
    create(&writer, &fresh).await;
    assert!(writer.delete_room(&rid("doomed")).await.expect("delete"));
    eventually(
        SETTLE,
        "the mirror resynchronises after the outage",
        async || mirror.room(&rid("fresh")).is_some() && mirror.room(&rid("doomed")).is_none(),
    )
    .await;
    assert_eq!(mirror.room(&rid("fresh")), Some(fresh.clone()));
    assert_eq!(mirror.room(&rid("kept")), Some(kept));
    assert_eq!(room_changes(&seen, "fresh"), vec![(None, Some(fresh))]);
    assert_eq!(
        room_changes(&seen, "doomed"),
        vec![(None, Some(doomed.clone())), (Some(doomed), None)]
    );
}
