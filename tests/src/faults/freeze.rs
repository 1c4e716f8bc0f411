//! [`freeze_busiest_node`]: the node hosting the most live rooms is frozen
//! (SIGSTOP) for longer than its lease, then thawed. Its rooms fail over
//! to their replicas (epoch + 1, the same stream going on: every message
//! the frozen node accepted was confirmed by the replica first) while it is
//! frozen; it fences itself once it runs again (members get `error`
//! `unavailable` and 1012), registers again, accepts nothing the new owners
//! lack, and no room is ever served by two nodes.
//! [`Frozen`] keeps what the final verdict needs: which rooms failed over,
//! when, and their observers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;

use super::Scene;
use super::observer::{Observer, ObserverLog};
use crate::cluster::TEST_LEASE_TTL;
use crate::traffic::{ClientLog, Got, LiveClient};
use crate::{WsClient, eventually, metrics, wait_until};

/// Signals are delivered at once; a body sent this long after SIGSTOP can
/// only have been read by the frozen node after SIGCONT.
pub const SIGNAL_SLACK: Duration = Duration::from_millis(100);

/// Bound on the frozen node being ready again after SIGCONT.
const READY_AGAIN: Duration = Duration::from_secs(15);

/// Bound on a frozen node's rooms failing over, beyond its TTL.
const FAILOVER_SLACK: Duration = Duration::from_secs(5);

/// A node that was frozen past its lease, and its rooms that failed over.
#[derive(Debug)]
pub struct Frozen {
    /// The frozen node.
    pub node: String,
    /// Its live rooms, failed over to other nodes.
    pub rooms: BTreeSet<String>,
    /// When it was stopped (SIGSTOP) and continued (SIGCONT).
    pub frozen_at: Instant,
    /// See `frozen_at`.
    pub thawed_at: Instant,
    /// How long it stayed frozen.
    pub frozen_for: Duration,
    /// `router_failovers_total` of all routers after the freeze.
    pub failovers: f64,
    /// Per failed-over room, the last seq of the frozen node's time: the
    /// seq its new owner's first welcome named.
    handed_over: BTreeMap<String, u64>,
    observers: Vec<Observer>,
}

/// SIGSTOPs the node with the most live rooms for `frozen_for` (past its
/// lease TTL), checks the failover and the fencing, and waits until the
/// traffic flows again, every failed-over room at another node, on the
/// same stream.
pub async fn freeze_busiest_node(scene: &mut Scene, frozen_for: Duration) -> Frozen {
    let wait = scene.wait();
    let ttl = Duration::from_secs(TEST_LEASE_TTL);
    let victim = scene.busiest_node().await;
    let recs = scene.cluster.placement().await;
    let victim_rooms: BTreeSet<String> = scene
        .rooms
        .iter()
        .filter(|r| recs[*r].0 == victim)
        .cloned()
        .collect();
    let old_streams: BTreeMap<String, String> = scene
        .clients
        .iter()
        .zip(scene.snapshot())
        .map(|(c, p)| (c.room.clone(), p.stream))
        .collect();
    let fenced_before = scene.all_fencings();
    let victim_fenced_before = scene.fencings(&victim);
    let victim_idx = scene.node_index(&victim);
    let before_freeze = scene.snapshot();
    assert!(scene.cluster.nodes[victim_idx].proc.signal(Signal::SIGSTOP));
    let frozen_at = Instant::now();
    // Its rooms fail over while it is frozen: epoch + 1 on a live node.
    let failover_bound = ttl + FAILOVER_SLACK;
    let failed_over = wait_until(failover_bound, async || {
        let now = scene.cluster.placement().await;
        victim_rooms
            .iter()
            .all(|r| now[r].0 != victim && now[r].1 == recs[r].1 + 1)
    })
    .await;
    let failover_took = frozen_at.elapsed();
    if !failed_over {
        let now = scene.cluster.placement().await;
        let _ = scene.cluster.nodes[victim_idx].proc.signal(Signal::SIGCONT);
        panic!(
            "{victim}'s rooms were not failed over within {failover_bound:?} of SIGSTOP: {:?}{}",
            victim_rooms
                .iter()
                .map(|r| (r, &now[r]))
                .collect::<Vec<_>>(),
            scene.cluster.log_tails(25, 10)
        );
    }
    let (observers, handed_over) = observe_new_owners(scene, &victim_rooms, &old_streams).await;
    // Deliberate: the node stays frozen for `frozen_for`, past its lease.
    tokio::time::sleep_until(frozen_at + frozen_for).await;
    assert!(scene.cluster.nodes[victim_idx].proc.signal(Signal::SIGCONT));
    let thawed_at = Instant::now();
    let victim_http = scene.cluster.nodes[victim_idx].http();
    eventually(
        wait,
        &format!("{victim} logs that it fenced itself"),
        async || scene.fencings(&victim) > victim_fenced_before,
    )
    .await;
    eventually(
        READY_AGAIN,
        &format!("{victim} is ready again"),
        async || {
            victim_http
                .send(reqwest::Method::GET, "/readyz", None)
                .await
                .is_ok_and(|r| r.status == 200)
        },
    )
    .await;
    let reregistered = thawed_at.elapsed();
    scene
        .cluster
        .wait_nodes_seen(scene.cluster.nodes.len())
        .await;
    let thawed = scene.snapshot();
    scene
        .wait_flowing(&thawed, "after the frozen node came back", |c, p| {
            !victim_rooms.contains(&c.room) || p.node != victim
        })
        .await;
    let after_freeze = scene.snapshot();
    let recs_after = scene.cluster.placement().await;
    let mut problems = Vec::new();
    for room in &scene.rooms {
        let (was, now) = (&recs[room], &recs_after[room]);
        if victim_rooms.contains(room) {
            if now.0 == victim || now.1 != was.1 + 1 {
                problems.push(format!("{room}: {was:?} -> {now:?} after {victim} froze"));
            }
        } else if now != was {
            problems.push(format!(
                "{room} was not on {victim} but changed: {was:?} -> {now:?}"
            ));
        }
    }
    for ((b, a), c) in before_freeze.iter().zip(&after_freeze).zip(&scene.clients) {
        if !victim_rooms.contains(&c.room) && a.connections != b.connections {
            problems.push(format!(
                "{}: not on {victim}, yet its client reconnected while {victim} was frozen",
                c.room
            ));
        }
    }
    for (n, was) in scene.cluster.nodes.iter().zip(&fenced_before) {
        if n.id() != victim && scene.fencings(&n.id()) != *was {
            problems.push(format!(
                "{} fenced itself, but only {victim} was frozen",
                n.id()
            ));
        }
    }
    problems.extend(scene.one_owner_each(&scene.rooms).await);
    scene.assert_clean(
        &format!("after freezing {victim} for {frozen_for:?}"),
        &problems,
    );
    let mut failovers = 0.0;
    for r in &scene.cluster.routers {
        let text = metrics::try_scrape(&r.http()).await.unwrap_or_default();
        failovers += metrics::value(&text, "router_failovers_total", &[]);
    }
    scene.report(format!(
        "frozen node: {victim} (hosting {} of {} live rooms) SIGSTOPped for {frozen_for:?}; its rooms failed over {failover_took:?} after SIGSTOP (routers count {failovers} failover(s)); it fenced itself and was ready again {reregistered:?} after SIGCONT",
        victim_rooms.len(),
        scene.rooms.len()
    ));
    Frozen {
        node: victim,
        rooms: victim_rooms,
        frozen_at,
        thawed_at,
        frozen_for,
        failovers,
        handed_over,
        observers,
    }
}

/// An observer in each failed-over room, joined straight at its new owner
/// (so later faults, e.g. a router restart, do not touch it) while the old
/// owner is still frozen; and the seq each welcome named.
async fn observe_new_owners(
    scene: &Scene,
    rooms: &BTreeSet<String>,
    old_streams: &BTreeMap<String, String>,
) -> (Vec<Observer>, BTreeMap<String, u64>) {
    let placement = scene.cluster.placement().await;
    let mut observers = Vec::new();
    let mut handed_over = BTreeMap::new();
    for room in rooms {
        let owner = &placement[room].0;
        let node = scene.cluster.node_by_id(owner);
        let url = format!("{}/{owner}/room/{room}", node.ws_base());
        let (ws, welcome) = WsClient::try_join(&url, scene.plan.clients.join_timeout)
            .await
            .unwrap_or_else(|e| panic!("observer: {e}"));
        assert_eq!(
            welcome["node"],
            owner.as_str(),
            "the observer of {room} joins its new owner: {welcome}"
        );
        assert_eq!(
            welcome["stream"],
            old_streams[room].as_str(),
            "{room} failed over with its history lost (a new stream), although its replica held it: {welcome}"
        );
        handed_over.insert(room.clone(), welcome["seq"].as_u64().unwrap_or(0));
        let (shared, config) = (scene.shared.clone(), scene.plan.clients);
        observers.push(Observer::spawn(room.clone(), ws, welcome, shared, config));
    }
    (observers, handed_over)
}

impl Frozen {
    /// The streams a member of `room` must have been in: 1, failed over or
    /// not (the replica goes on with the stream).
    pub fn streams(&self, _room: &str) -> usize {
        1
    }

    /// Whether every observer has seen its room up to the last seq of the
    /// room's live clients.
    pub fn observers_caught_up(&self, clients: &[LiveClient]) -> bool {
        self.observers.iter().all(|o| {
            let seen = o.last_seq();
            clients
                .iter()
                .filter(|c| c.room == o.room)
                .all(|c| c.progress().last_seq == seen)
        })
    }

    /// Tells nothing (the clients' finish does) and collects every
    /// observer's log, each within `timeout`, by room.
    pub async fn observed(&mut self, timeout: Duration) -> BTreeMap<String, ObserverLog> {
        let mut logs = BTreeMap::new();
        for o in std::mem::take(&mut self.observers) {
            let room = o.room.clone();
            logs.insert(room, o.finish(timeout).await);
        }
        logs
    }

    /// The problems of a failed-over `room` beyond [`crate::verdict::room`]
    /// (which must have found each member in one stream; else nothing is
    /// checked here): the stream was served by the frozen node, then by
    /// another; the frozen node accepted no body sent after SIGSTOP (it read
    /// nothing while frozen, so it would have accepted it after SIGCONT,
    /// past its lease, in a room another node owned by then): every body
    /// up to the seq the observer's welcome named was the frozen node's;
    /// every member was told (1012/`unavailable`) or moved; the observer
    /// saw what the members saw after its welcome.
    pub fn check_room(
        &self,
        room: &str,
        members: &[ClientLog],
        observer: Option<&ObserverLog>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.rooms.contains(room) || members.iter().any(|c| c.segments.len() != 1) {
            return problems;
        }
        let victim = self.node.as_str();
        let stream = &members[0].segments[0];
        if stream.nodes.len() != 2 || !stream.nodes.contains(victim) {
            problems.push(format!(
                "{room}: stream served by {:?}, expected {victim} then its replica",
                stream.nodes
            ));
        }
        let failed_over_at = self.handed_over.get(room).copied().unwrap_or(0);
        for c in members {
            problems.extend(self.late_bodies(room, c, failed_over_at));
            let fenced = c.unavailable > 0 || c.ends().contains(&"close 1012");
            let moved = c.ends().iter().any(|e| e.starts_with("moved "));
            if !fenced && !moved {
                problems.push(format!(
                    "{room} client {}: neither 1012/unavailable nor moved from {victim}; connections ended {:?}",
                    c.id,
                    c.ends()
                ));
            }
        }
        match observer {
            None => problems.push(format!("{room}: no observer")),
            Some(o) => {
                let want: Vec<Got> = stream
                    .got
                    .iter()
                    .filter(|g| g.seq > o.welcome_seq)
                    .copied()
                    .collect();
                if o.stream != stream.stream || o.got != want || !o.anomalies.is_empty() {
                    problems.push(format!(
                        "{room}: the observer on {} (stream {}, from seq {}) saw {} message(s), the members {} in stream {}; anomalies {:?}, end {}",
                        o.node,
                        o.stream,
                        o.welcome_seq,
                        o.got.len(),
                        want.len(),
                        stream.stream,
                        o.anomalies,
                        o.end
                    ));
                }
            }
        }
        problems
    }

    /// Client `c`'s own bodies sent after SIGSTOP (plus [`SIGNAL_SLACK`])
    /// that it saw accepted with a seq up to `failed_over_at` (the last seq
    /// of the frozen node's time): the frozen node read them after SIGCONT.
    fn late_bodies(&self, room: &str, c: &ClientLog, failed_over_at: u64) -> Option<String> {
        let (frozen_at, thawed_at) = (self.frozen_at, self.thawed_at);
        // (seq, n, sent after SIGSTOP, echo arrived after SIGCONT).
        let late: Vec<(u64, u64, Duration, Duration)> = c.segments[0]
            .got
            .iter()
            .zip(&c.segments[0].arrived)
            .filter(|(g, _)| g.c == c.id && g.seq <= failed_over_at)
            .filter_map(|(g, at)| {
                let sent = *c.sent_at.get(g.n as usize)?;
                (sent > frozen_at + SIGNAL_SLACK).then(|| {
                    (
                        g.seq,
                        g.n,
                        sent - frozen_at,
                        at.saturating_duration_since(thawed_at),
                    )
                })
            })
            .collect();
        let (first, last) = (late.first()?, late.last()?);
        let ttl = Duration::from_secs(TEST_LEASE_TTL);
        Some(format!(
            "{room} client {}: {} accepted {} of its bodies that were sent after SIGSTOP, i.e. read after SIGCONT, at least {:?} after its last lease renewal (TTL {ttl:?}), when the room had already failed over to another node: seqs {}..={} (bodies n={}..={}, sent {:?}..{:?} after SIGSTOP, their echoes arrived {:?}..{:?} after SIGCONT)",
            c.id,
            self.node,
            late.len(),
            self.frozen_for,
            first.0,
            last.0,
            first.1,
            last.1,
            first.2,
            last.2,
            first.3,
            last.3
        ))
    }

    /// Lines for the report: when the bodies of the failed-over rooms were
    /// sent relative to SIGSTOP, what became of those sent while the node
    /// was frozen, and the fencings and failovers counted.
    pub fn report(&self, scene: &Scene, logs: &BTreeMap<String, Vec<ClientLog>>) -> Vec<String> {
        let (frozen_at, thawed_at) = (self.frozen_at, self.thawed_at);
        let rel = |t: Instant| {
            if t >= frozen_at {
                (t - frozen_at).as_secs_f64()
            } else {
                -(frozen_at - t).as_secs_f64()
            }
        };
        let mut last_old = f64::NEG_INFINITY;
        let (mut sent_frozen, mut frozen_old, mut frozen_new, mut unavailable) = (0, 0, 0, 0);
        let mut read_after_thaw = 0;
        for c in self.rooms.iter().flat_map(|r| &logs[r]) {
            unavailable += c.unavailable;
            let frozen: BTreeSet<u64> = (0..c.sent)
                .filter(|n| {
                    let t = c.sent_at[*n as usize];
                    t > frozen_at && t < thawed_at
                })
                .collect();
            sent_frozen += frozen.len();
            let handed_over = self.handed_over.get(&c.room).copied().unwrap_or(0);
            for seg in &c.segments {
                for g in seg.got.iter().filter(|g| g.c == c.id) {
                    let sent = c.sent_at[g.n as usize];
                    if g.seq <= handed_over {
                        last_old = last_old.max(rel(sent));
                        frozen_old += usize::from(frozen.contains(&g.n));
                        read_after_thaw += usize::from(sent > frozen_at + SIGNAL_SLACK);
                    } else {
                        frozen_new += usize::from(frozen.contains(&g.n));
                    }
                }
            }
        }
        let fenced: usize = scene.all_fencings().iter().sum();
        vec![
            format!(
                "frozen node's rooms: {unavailable} `unavailable` errors; the last body the frozen node accepted was sent {last_old:+.3} s from SIGSTOP; of {sent_frozen} bodies sent while it was frozen, {frozen_old} were accepted by it ({read_after_thaw} of them sent more than {SIGNAL_SLACK:?} after SIGSTOP, so read after SIGCONT) and {frozen_new} by the new owners after being resent"
            ),
            format!(
                "fencings logged: {fenced}; failovers: {} (router_failovers_total after the freeze)",
                self.failovers
            ),
        ]
    }

    /// The frozen node's log around its fencing, for a failure message.
    pub fn log_excerpt(&self, scene: &Scene) -> String {
        let node = scene.cluster.node_by_id(&self.node);
        format!(
            "--- {} around its fencing ({}) ---\n{}",
            self.node,
            node.proc.log_path().display(),
            node.proc
                .log_grep(&["fenc", "registered again", "closing it", "ERROR"], 20)
        )
    }
}
