//! Rooms: creation that happens once, pages in id order within the
//! prefix, deletion, and moves as a compare-and-swap on the epoch.

use super::*;

on_both_backends!(
    create_room_creates_once,
    concurrent_creates_agree_on_one_owner,
    rooms_paginate_in_id_order_within_the_prefix,
    a_page_holds_at_most_its_limit,
    delete_room_says_whether_it_existed,
    move_room_is_a_compare_and_swap_on_the_epoch,
    of_two_concurrent_moves_exactly_one_wins,
);

async fn create_room_creates_once(f: Fixture) {
    let s = f.store().await;
    let first = room("lobby", 1);
    assert_eq!(
        s.create_room(&first).await.expect("create"),
        Created::New(first.clone())
    );
    let second = RoomRecord {
        private: true,
        ..room("lobby", 2)
    };
    let again = s.create_room(&second).await.expect("create again");
    assert_eq!(again, Created::Existing(first.clone()));
    assert_eq!(again.record(), &first);
    assert_eq!(s.room(&rid("lobby")).await.expect("read"), Some(first));
    assert_eq!(s.room(&rid("nowhere")).await.expect("read"), None);
}

async fn concurrent_creates_agree_on_one_owner(f: Fixture) {
    // Two separately connected stores (two routers) race on each of 20 ids.
    let stores = [f.store().await, f.store().await];
    let barrier = Arc::new(Barrier::new(2));
    let tasks = stores.iter().enumerate().map(|(i, s)| {
        let (s, barrier) = (s.clone(), barrier.clone());
        tokio::spawn(async move {
            let mut out = Vec::new();
            for r in 0..20 {
                let rec = room(&format!("race-{r}"), 1 + i as u16);
                barrier.wait().await;
                out.push(s.create_room(&rec).await.expect("create"));
            }
            out
        })
    });
    let results: Vec<Vec<Created>> = join_all(tasks).await;
    for (r, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        let news = [a, b]
            .iter()
            .filter(|c| matches!(c, Created::New(_)))
            .count();
        assert_eq!(news, 1, "race-{r}: {a:?} / {b:?}");
        assert_eq!(a.record(), b.record(), "race-{r}: two owners");
        let stored = stores[0].room(&rid(&format!("race-{r}"))).await;
        assert_eq!(stored.expect("read").as_ref(), Some(a.record()));
    }
}

async fn join_all<T: Send + 'static>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks.collect::<Vec<_>>() {
        out.push(t.await.expect("task panicked"));
    }
    out
}

async fn rooms_paginate_in_id_order_within_the_prefix(f: Fixture) {
    let s = f.store().await;
    // Byte order: '-' < digits < upper case < '_' < lower case.
    let ids = ["m", "A", "_x", "-a", "z9", "b", "0", "mm"];
    let mut records = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let rec = room(id, 1 + i as u16 % 3);
        create(&s, &rec).await;
        records.insert(id.to_string(), rec);
    }
    // Records of another cluster, one of them under a prefix that shares
    // this one's characters, and a node of this cluster.
    for prefix in [SIBLING, "/other"] {
        create(&f.store_under(prefix).await, &room("aa", 1)).await;
    }
    s.register_node(&node(1), LONG_TTL).await.expect("register");

    let mut sorted: Vec<RoomId> = ids.iter().map(|i| rid(i)).collect();
    sorted.sort();
    let sorted: Vec<String> = sorted.iter().map(ToString::to_string).collect();
    assert_eq!(room_ids(&s, None, 100).await, sorted);

    // Page by page, three at a time.
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = room_ids(&s, after.as_deref(), 3).await;
        assert!(page.len() <= 3, "page larger than its limit: {page:?}");
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        pages.push(page);
        assert!(pages.len() <= ids.len(), "pagination does not end");
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), sorted);

    // `after` need not exist: the page starts at the next id.
    assert_eq!(room_ids(&s, Some("ma"), 2).await, vec!["mm", "z9"]);
    assert_eq!(room_ids(&s, Some("z9"), 2).await, Vec::<String>::new());
    // Full records come back.
    let page = s.rooms(Some(&rid("A")), 2).await.expect("list rooms");
    assert_eq!(page, vec![records["_x"].clone(), records["b"].clone()]);
}

async fn a_page_holds_at_most_its_limit(f: Fixture) {
    let s = f.store().await;
    for id in ["a", "b"] {
        create(&s, &room(id, 1)).await;
    }
    assert_eq!(room_ids(&s, None, 1).await, vec!["a"]);
    assert_eq!(room_ids(&s, None, usize::MAX).await, vec!["a", "b"]);
    assert_eq!(
        room_ids(&s, None, 0).await,
        Vec::<String>::new(),
        "rooms(limit = 0) must return at most 0 rooms"
    );
}

async fn delete_room_says_whether_it_existed(f: Fixture) {
    let s = f.store().await;
    create(&s, &room("gone", 1)).await;
    create(&s, &room("kept", 1)).await;
    assert!(s.delete_room(&rid("gone")).await.expect("delete"));
    assert_eq!(s.room(&rid("gone")).await.expect("read"), None);
    assert!(!s.delete_room(&rid("gone")).await.expect("delete again"));
    assert!(!s.delete_room(&rid("never")).await.expect("delete unknown"));
    assert_eq!(room_ids(&s, None, 10).await, vec!["kept"]);
    // The id can be created afresh.
    create(&s, &room("gone", 2)).await;
}

async fn move_room_is_a_compare_and_swap_on_the_epoch(f: Fixture) {
    let s = f.store().await;
    let original = RoomRecord {
        private: true,
        created_at: 1_700_000_000,
        ..room("r", 1)
    };
    create(&s, &original).await;

    let moved = s.move_room(&rid("r"), 0, iid(2)).await.expect("move");
    let expected = RoomRecord {
        node: iid(2),
        epoch: 1,
        ..original.clone()
    };
    assert_eq!(moved, expected);
    assert_eq!(
        s.room(&rid("r")).await.expect("read"),
        Some(expected.clone())
    );

    // A stale or invented epoch changes nothing.
    for epoch in [0, 2, 7] {
        match s.move_room(&rid("r"), epoch, iid(3)).await {
            Err(StoreError::Conflict(why)) => assert!(why.contains('r'), "{why}"),
            other => panic!("move from epoch {epoch} of a room at epoch 1: {other:?}"),
        }
        assert_eq!(
            s.room(&rid("r")).await.expect("read"),
            Some(expected.clone())
        );
    }

    // Moving a room that does not exist is a conflict too, and creates
    // nothing.
    assert!(matches!(
        s.move_room(&rid("absent"), 0, iid(2)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.room(&rid("absent")).await.expect("read"), None);

    // Epochs keep counting.
    let again = s.move_room(&rid("r"), 1, iid(1)).await.expect("move back");
    assert_eq!((again.node, again.epoch), (iid(1), 2));
}

async fn of_two_concurrent_moves_exactly_one_wins(f: Fixture) {
    let stores = [f.store().await, f.store().await];
    for r in 0..10 {
        create(&stores[0], &room(&format!("m{r}"), 1)).await;
    }
    let barrier = Arc::new(Barrier::new(2));
    let tasks = stores.iter().enumerate().map(|(i, s)| {
        let (s, barrier) = (s.clone(), barrier.clone());
        tokio::spawn(async move {
            let mut out = Vec::new();
            for r in 0..10 {
                barrier.wait().await;
                out.push(
                    s.move_room(&rid(&format!("m{r}")), 0, iid(2 + i as u16))
                        .await,
                );
            }
            out
        })
    });
    let results = join_all(tasks).await;
    for (r, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        let outcomes = [a, b];
        let winners: Vec<&RoomRecord> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "m{r}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .any(|o| matches!(o, Err(StoreError::Conflict(_)))),
            "m{r}: the loser must see a conflict: {outcomes:?}"
        );
        let stored = stores[1].room(&rid(&format!("m{r}"))).await.expect("read");
        assert_eq!(stored.as_ref(), Some(winners[0]));
        assert_eq!(winners[0].epoch, 1);
    }
}
