//! Scale-out end to end: three nodes grow to four and `router rebalance`
//! moves rooms live while clients keep talking. Every client follows
//! `moved`, resumes with `since` and `stream`, and resends what the frozen
//! room refused; afterwards every room's sequence must be 1..=N with no gap
//! and no duplicate, identical for both members, holding every body sent
//! exactly once ([`testkit::verdict`]). The same refusal, held open
//! deterministically, is `moves.rs`'s `a_send_during_a_move_is_refused_not_dropped`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use testkit::ids::hrw;
use testkit::traffic::{self, Config, Expect, LiveClient, Progress, Shared, collect};
use testkit::verdict::{self, Tally};
use testkit::{Cluster, eventually, wait_until};
use tokio::time::Instant;

/// Bound on one frame, connect or close.
const WAIT: Duration = Duration::from_secs(10);
/// Bound on a state the whole cluster reaches (traffic flowing, drained).
const SETTLE: Duration = Duration::from_secs(30);
/// Rooms in the cluster.
const ROOMS: usize = 300;
/// Rooms with live clients that the new node's arrival moves, and that it
/// leaves where they are.
const LIVE_MOVERS: usize = 20;
const LIVE_STAYERS: usize = 20;
/// Live clients per room.
const PER_ROOM: usize = 2;
/// Each client's send pacing: traffic, not synchronisation.
const SEND_EVERY: Duration = Duration::from_millis(20);
/// Own messages every client must see accepted before the move starts, and
/// again on its new connection after a move.
const WARM_UP: usize = 25;
/// Longest a client task runs before giving up on being told to finish.
const CLIENT_LIMIT: Duration = Duration::from_secs(120);

/// Rooms per node as router `i` reports them on `GET /nodes`.
async fn node_counts(cluster: &Cluster, i: usize) -> BTreeMap<String, u64> {
    let r = cluster.router(i).http().get("/nodes").await;
    assert_eq!(r.status, 200, "GET /nodes: {}", r.text);
    r.body
        .as_array()
        .expect("GET /nodes is an array")
        .iter()
        .map(|n| {
            (
                n["id"].as_str().expect("node id").to_owned(),
                n["rooms"].as_u64().expect("node rooms"),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The live clients of the traffic test (testkit::traffic).

/// How the live clients behave: the run only moves rooms, nothing fails.
const CLIENTS: Config = Config {
    send_every: SEND_EVERY,
    wait: WAIT,
    join_timeout: WAIT,
    rejoin_limit: WAIT,
    client_limit: CLIENT_LIMIT,
    expect: Expect::Moves,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_from_three_to_four_nodes_loses_and_duplicates_nothing() {
    let mut cluster = Cluster::start(3, 2).await;

    // 300 rooms through the API, alternating routers; HRW over i1..i3 places
    // them.
    let ids: Vec<String> = (0..ROOMS).map(|i| format!("scale-{i:03}")).collect();
    let created: Vec<Value> = futures_util::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| {
            let http = cluster.router(i % 2).http();
            async move {
                let r = http.post_json("/rooms", &json!({"id": id})).await;
                assert_eq!(r.status, 201, "POST /rooms {id}: {}", r.text);
                r.body
            }
        })
        .buffered(16)
        .collect()
        .await;
    let mut before: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for (id, body) in ids.iter().zip(&created) {
        assert_eq!(body["id"], id.as_str(), "{body}");
        assert_eq!(body["epoch"], 1, "{body}");
        let node = body["node"].as_str().expect("node").to_owned();
        assert_eq!(
            node,
            hrw(&[1, 2, 3], id),
            "room {id} placed by HRW over i1..i3"
        );
        before.insert(id.clone(), (node, 1));
    }
    assert_eq!(cluster.placement().await, before);

    // Which rooms a fourth node takes: exactly those whose HRW owner over
    // i1..i4 is i4 (the plan `router rebalance` must follow).
    let movers: BTreeSet<String> = ids
        .iter()
        .filter(|id| hrw(&[1, 2, 3, 4], id) == "i4")
        .cloned()
        .collect();
    let live: Vec<String> = ids
        .iter()
        .filter(|id| movers.contains(*id))
        .take(LIVE_MOVERS)
        .chain(
            ids.iter()
                .filter(|id| !movers.contains(*id))
                .take(LIVE_STAYERS),
        )
        .cloned()
        .collect();
    assert_eq!(live.len(), LIVE_MOVERS + LIVE_STAYERS);

    // Two clients per live room, on the legacy path, spread over both
    // routers; all joined before anyone sends, so each sees seq 1 onwards.
    let shared = Shared::new(vec![
        cluster.router(0).ws_base(),
        cluster.router(1).ws_base(),
    ]);
    let clients = traffic::start(&shared, &live, PER_ROOM, CLIENTS, |room, welcome| {
        assert_eq!(welcome["node"], before[room].0.as_str(), "{welcome}");
    })
    .await;
    let snapshot = |clients: &[LiveClient]| -> Vec<(String, Progress)> {
        clients
            .iter()
            .map(|c| (c.room.clone(), c.progress()))
            .collect()
    };
    let all_warm = wait_until(SETTLE, async || {
        snapshot(&clients)
            .iter()
            .all(|(_, p)| p.accepted_here >= WARM_UP)
    })
    .await;
    assert!(
        all_warm,
        "traffic did not flow in every live room: {:?}{}",
        snapshot(&clients),
        cluster.log_tails(30, 15)
    );

    // The fourth node arrives: nothing moves by itself, nor on a dry run.
    cluster.add_node(4, &[]).await;
    cluster.wait_nodes_seen(4).await;
    let dry = cluster.router_ok(&["rebalance", "--dry-run"]).await;
    assert!(dry.contains("dry run: nothing moved"), "{dry}");
    assert!(
        dry.contains(&format!("plan: {} room(s) to move", movers.len())),
        "expected {} moves planned:\n{dry}",
        movers.len()
    );
    assert_eq!(
        cluster.placement().await,
        before,
        "a dry run changed room records"
    );

    // The real thing, while every live client keeps sending.
    let started = Instant::now();
    let out = cluster.router_ok(&["rebalance"]).await;
    let rebalance_took = started.elapsed();
    let live_movers = live.iter().filter(|r| movers.contains(*r)).count();
    assert!(
        out.contains(&format!("moved {} room(s), ", movers.len())) && out.contains(" 0 failed"),
        "rebalance summary:\n{out}"
    );
    assert!(out.contains("now: 0 room(s) to move"), "{out}");

    // Every client of a moved room rejoined and talks on the new owner.
    // (Whether each did so for the right reason is checked at the end.)
    let settled = wait_until(SETTLE, async || {
        snapshot(&clients).iter().all(|(room, p)| {
            p.connected
                && (!movers.contains(room) || (p.rejoins() >= 1 && p.accepted_here >= WARM_UP))
        })
    })
    .await;
    let unsettled: Vec<(String, Progress)> = snapshot(&clients)
        .into_iter()
        .filter(|(room, p)| {
            !p.connected
                || (movers.contains(room) && (p.rejoins() == 0 || p.accepted_here < WARM_UP))
        })
        .collect();

    // Stop sending and let every room drain: no body pending anywhere, both
    // members at the same last seq.
    shared.stop_sending();
    let drained = wait_until(SETTLE, async || traffic::drained(&clients)).await;
    let undrained = traffic::undrained(&clients);
    let logs = collect(&shared, clients, WAIT).await;

    // Per room: 1..=N once each, identical for both members, every body
    // sent present exactly once; moved exactly when the plan says, with a
    // close 1000 after `moved`, and refused only in a room that moved.
    let mut problems = Vec::new();
    for (room, members) in &logs {
        assert_eq!(members.len(), PER_ROOM);
        problems.extend(verdict::room(room, members, 1));
        let moved = movers.contains(room);
        for c in members {
            assert!(
                c.sent >= WARM_UP as u64,
                "{room} client {} sent {}",
                c.id,
                c.sent
            );
            let want_moves: Vec<String> = if moved {
                vec![format!("/i4/room/{room}")]
            } else {
                Vec::new()
            };
            if c.moved_to != want_moves {
                problems.push(format!(
                    "{room} client {}: moved to {:?}, expected {want_moves:?}",
                    c.id, c.moved_to
                ));
            }
            if c.move_closes.iter().any(|code| *code != Some(1000)) {
                problems.push(format!(
                    "{room} client {}: closes after moved {:?}, expected 1000",
                    c.id, c.move_closes
                ));
            }
            if !moved && (c.room_moving > 0 || !c.resent.is_empty()) {
                problems.push(format!(
                    "{room} client {} was refused in a room that did not move",
                    c.id
                ));
            }
        }
    }
    let tally = Tally::of(&logs);
    assert!(
        problems.is_empty() && settled && drained,
        "settled after the move: {settled} (not: {unsettled:?}); drained: {drained} (not: {undrained:?}); {} problem(s):\n{}{}",
        problems.len(),
        problems.join("\n"),
        cluster.log_tails(30, 15)
    );

    // Globally: a quarter-ish moved, all of them to i4, epochs say so.
    let after = cluster.placement().await;
    assert_eq!(after.len(), ROOMS);
    let moved: BTreeSet<String> = after
        .iter()
        .filter(|(id, now)| before[*id].0 != now.0)
        .map(|(id, _)| id.clone())
        .collect();
    let fraction = moved.len() as f64 / ROOMS as f64;
    assert!(
        (0.15..=0.35).contains(&fraction),
        "{} of {ROOMS} rooms moved ({fraction:.3})",
        moved.len()
    );
    assert_eq!(moved, movers, "the rooms that moved are the HRW plan's");
    for (id, (node, epoch)) in &after {
        if moved.contains(id) {
            assert_eq!(
                (node.as_str(), *epoch),
                ("i4", 2),
                "moved room {id} (was on {})",
                before[id].0
            );
        } else {
            assert_eq!((node, *epoch), (&before[id].0, 1), "unmoved room {id}");
        }
    }
    let mut want_counts: BTreeMap<String, u64> = (1..=4).map(|n| (format!("i{n}"), 0)).collect();
    for (node, _) in after.values() {
        *want_counts.get_mut(node).expect("a known node") += 1;
    }
    assert_eq!(want_counts.values().sum::<u64>(), ROOMS as u64);
    for i in 0..cluster.routers.len() {
        eventually(
            SETTLE,
            "GET /nodes counts every room where it is",
            async || node_counts(&cluster, i).await == want_counts,
        )
        .await;
    }

    // A second run finds nothing to do and changes nothing.
    let again = cluster.router_ok(&["rebalance"]).await;
    assert!(again.contains("plan: 0 room(s) to move"), "{again}");
    assert!(
        again.contains("moved 0 room(s), 0 member(s) told to reconnect, 0 failed"),
        "{again}"
    );
    assert_eq!(cluster.placement().await, after);

    let told = format!(
        "moved {} room(s), {} member(s) told to reconnect, 0 failed",
        movers.len(),
        live_movers * PER_ROOM
    );
    eprintln!(
        "scale-out: {} of {ROOMS} rooms moved ({:.1}%) in {rebalance_took:?}; {} live rooms, {} messages in the live rooms; {} room_moving refusal(s), {} body(ies) neither accepted nor refused, {} resent after a move",
        moved.len(),
        fraction * 100.0,
        live.len(),
        tally.total(),
        tally.room_moving,
        tally.unanswered,
        tally.resent
    );

    // Last, as it is only a count: every live member of a moved room was
    // told to reconnect (each followed its `moved`, checked above), and the
    // summary says so.
    assert!(
        out.contains(&told),
        "expected {told:?} in the summary:\n{out}{}",
        cluster.log_tails(30, 15)
    );
}
