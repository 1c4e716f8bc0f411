//! [`flood_busiest_node`]: the node hosting the most live rooms is flooded
//! (`hostile.rs`): oversized frames (1009), malformed frames
//! (`bad_frame`), one client sending as fast as it can, and members that
//! never read while their room gets traffic (cut off, 1008). The node
//! survives, its memory stays bounded, the flood's connections go away, and
//! the live clients never notice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Scene;
use super::hostile::{flooder, malformed, oversized, silent_end, silent_member};
use crate::cluster::create_room_on;
use crate::{metrics, process, wait_until};

/// How often the nodes' memory is sampled during the flood.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// What a flood sends and what it may cost.
#[derive(Debug, Clone, Copy)]
pub struct Flood {
    /// Members of the flooded room that never read.
    pub silent: usize,
    /// Messages the flooding client sends, and the padding of each.
    pub messages: u64,
    /// See `messages`.
    pub pad: usize,
    /// Malformed frames each of two clients sends.
    pub malformed: usize,
    /// Clients sending one oversized frame each.
    pub oversized: usize,
    /// Bound on every node's VmRSS after the flood, KiB.
    pub rss_max_kib: u64,
    /// Bound on every node's VmRSS growth across the flood, KiB.
    pub rss_growth_max_kib: u64,
}

/// Floods the node hosting the most live rooms as [`Flood`] says, in two
/// rooms of its own (created on it), and checks the answers, the node's
/// counters and memory, and that no live client reconnected.
pub async fn flood_busiest_node(scene: &mut Scene, flood: &Flood) {
    let (wait, plan) = (scene.wait(), scene.plan);
    let target = scene.busiest_node().await;
    let target_idx = scene.node_index(&target);
    let target_http = scene.cluster.nodes[target_idx].http();
    let router_http = scene.router(1).http();
    let (flood_room, _) = create_room_on(&router_http, "flood-", &target).await;
    let (junk_room, _) = create_room_on(&router_http, "junk-", &target).await;
    scene
        .other_rooms
        .extend([flood_room.clone(), junk_room.clone()]);
    let memory = Memory::sample(scene);
    let scrape = async || metrics::try_scrape(&target_http).await.unwrap_or_default();
    let slow = |text: &str| metrics::value(text, "roomnode_slow_consumers_total", &[]);
    let connections = |text: &str| metrics::value(text, "roomnode_connections", &[]);
    let target_metrics = scrape().await;
    let slow_before = slow(&target_metrics);
    let connections_before = connections(&target_metrics);
    let before_flood = scene.snapshot();

    let flood_path = format!("/{target}/room/{flood_room}");
    let junk_path = format!("/{target}/room/{junk_room}");
    let node_ws = scene.cluster.nodes[target_idx].ws_base();
    let mut silent = Vec::new();
    for _ in 0..flood.silent {
        silent.push(silent_member(&format!("{node_ws}{flood_path}")).await);
    }
    let via = [scene.router(0).ws_base(), scene.router(1).ws_base()];
    let junk_urls = [
        format!("{node_ws}{junk_path}"),
        format!("{}{junk_path}", via[0]),
    ];
    let big_urls: Vec<String> = (0..flood.oversized)
        .map(|k| match k {
            0 => format!("{}/room/{junk_room}", via[0]),
            1 => format!("{}{junk_path}", via[1]),
            _ => format!("{node_ws}{junk_path}"),
        })
        .collect();
    let flood_url = format!("{node_ws}{flood_path}");
    let flood_started = Instant::now();
    let (flooded, bad, big) = tokio::join!(
        flooder(&flood_url, flood, &plan),
        futures_util::future::join_all(junk_urls.iter().enumerate().map(|(k, u)| {
            let marker = if k == 0 { "good-0" } else { "good-1" };
            malformed(u, marker, flood.malformed, wait)
        })),
        futures_util::future::join_all(big_urls.iter().map(|u| oversized(u, wait))),
    );
    let flood_took = flood_started.elapsed();
    let mut problems = flooded.problems.clone();
    if flooded.accepted + flooded.rate_limited != flood.messages {
        problems.push(format!(
            "flooder: {} accepted + {} rate_limited of {}",
            flooded.accepted, flooded.rate_limited, flood.messages
        ));
    }
    for (u, b) in junk_urls.iter().zip(&bad) {
        if b.as_ref().ok() != Some(&flood.malformed) {
            problems.push(format!(
                "{u}: {b:?} bad_frame answer(s) to {} malformed frames",
                flood.malformed
            ));
        }
    }
    for (u, code) in big_urls.iter().zip(&big) {
        if *code != Some(1009) {
            problems.push(format!(
                "{u}: an oversized frame closed with {code:?}, expected 1009"
            ));
        }
    }
    // Every silent member is cut off: counted, and its connection ends.
    let cut = wait_until(wait, async || {
        slow(&scrape().await) >= slow_before + flood.silent as f64
    })
    .await;
    let slow_after = slow(&scrape().await);
    if !cut {
        problems.push(format!(
            "roomnode_slow_consumers_total went from {slow_before} to {slow_after}, expected +{}",
            flood.silent
        ));
    }
    let silent_ends =
        futures_util::future::join_all(silent.into_iter().map(|ws| silent_end(ws, wait))).await;
    let mut silent_codes: BTreeMap<String, usize> = BTreeMap::new();
    for (end, _) in &silent_ends {
        let key = match end {
            Ok(Some(code)) => code.to_string(),
            Ok(None) => "no close frame".into(),
            Err(_) => "still open".into(),
        };
        *silent_codes.entry(key).or_default() += 1;
    }
    for (code, k) in &silent_codes {
        if code != "1008" && code != "no close frame" {
            problems.push(format!(
                "{k} silent member(s) ended with {code}, expected 1008 (or no close frame, if not even that fit)"
            ));
        }
    }
    let silent_frames: usize = silent_ends.iter().map(|(_, f)| *f).sum();
    let rss = memory.stop(wait).await;
    problems.extend(rss.problems(flood));
    // The flood's connections are gone again; the node still answers.
    let connections_back = wait_until(wait, async || {
        connections(&scrape().await) <= connections_before
    })
    .await;
    if !connections_back {
        problems.push(format!(
            "roomnode_connections on {target}: {connections_before} before the flood, {} after it ended",
            connections(&scrape().await)
        ));
    }
    scene
        .wait_flowing(&before_flood, "during the flood", |_, _| true)
        .await;
    let after_flood = scene.snapshot();
    for ((b, a), c) in before_flood.iter().zip(&after_flood).zip(&scene.clients) {
        if a.connections != b.connections {
            problems.push(format!(
                "{}: a live client reconnected during the flood",
                c.room
            ));
        }
    }
    if let Some(status) = scene.cluster.nodes[target_idx].proc.try_status() {
        problems.push(format!("{target} exited during the flood: {status}"));
    }
    assert!(
        problems.is_empty(),
        "flooding {target}:\n{}\n{}",
        problems.join("\n"),
        scene.cluster.nodes[target_idx]
            .proc
            .log_grep(&["ERROR", "WARN", "panic"], 20)
    );
    scene.report(format!(
        "flood of {target} in {flood_took:?}: {} of {} padded messages accepted ({} rate_limited) in {:?}; {} bad_frame answers to each of {} malformed senders; {} oversized frames closed 1009; {} silent members cut off (slow consumers {slow_before} -> {slow_after}; their ends {silent_codes:?} after {silent_frames} buffered frames)",
        flooded.accepted,
        flood.messages,
        flooded.rate_limited,
        flooded.took,
        flood.malformed,
        junk_urls.len(),
        flood.oversized,
        flood.silent
    ));
    scene.report(format!(
        "VmRSS KiB before flood {:?}, peak {:?}, after {:?}",
        rss.before, rss.peak, rss.after
    ));
}

/// Every node's VmRSS sampled while a flood runs.
struct Memory {
    pids: Vec<(String, u32)>,
    before: BTreeMap<String, u64>,
    peak: Arc<Mutex<BTreeMap<String, u64>>>,
    sampling: Arc<AtomicBool>,
    sampler: JoinHandle<()>,
}

/// VmRSS per node (KiB): before, at the peak of, and after the flood.
struct Rss {
    before: BTreeMap<String, u64>,
    peak: BTreeMap<String, u64>,
    after: BTreeMap<String, u64>,
}

impl Memory {
    /// Starts sampling every node of `scene`.
    fn sample(scene: &Scene) -> Self {
        let pids: Vec<(String, u32)> = scene
            .cluster
            .nodes
            .iter()
            .map(|n| (n.id(), n.proc.pid().expect("node running")))
            .collect();
        let before: BTreeMap<String, u64> = pids
            .iter()
            .map(|(id, pid)| (id.clone(), process::rss_kib(*pid).expect("VmRSS")))
            .collect();
        let peak = Arc::new(Mutex::new(before.clone()));
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let (peak, sampling, pids) = (peak.clone(), sampling.clone(), pids.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SAMPLE_EVERY);
                while sampling.load(Ordering::SeqCst) {
                    tick.tick().await;
                    let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
                    for (id, pid) in &pids {
                        if let Some(kib) = process::rss_kib(*pid) {
                            let e = p.entry(id.clone()).or_default();
                            *e = (*e).max(kib);
                        }
                    }
                }
            })
        };
        Self {
            pids,
            before,
            peak,
            sampling,
            sampler,
        }
    }

    /// Stops sampling (waiting at most `wait` for the sampler) and reads
    /// every node's VmRSS once more.
    async fn stop(self, wait: Duration) -> Rss {
        self.sampling.store(false, Ordering::SeqCst);
        let _ = tokio::time::timeout(wait, self.sampler).await;
        let peak = self.peak.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let after = self
            .pids
            .iter()
            .map(|(id, pid)| (id.clone(), process::rss_kib(*pid).unwrap_or(u64::MAX)))
            .collect();
        Rss {
            before: self.before,
            peak,
            after,
        }
    }
}

impl Rss {
    /// Every node over [`Flood::rss_max_kib`] after the flood or grown more
    /// than [`Flood::rss_growth_max_kib`].
    fn problems(&self, flood: &Flood) -> Vec<String> {
        let (max, growth) = (flood.rss_max_kib, flood.rss_growth_max_kib);
        self.after
            .iter()
            .filter(|(id, after)| **after > max || after.saturating_sub(self.before[*id]) > growth)
            .map(|(id, after)| {
                format!(
                    "{id}: VmRSS {} KiB before the flood, {after} KiB after (peak {} KiB): over {max} KiB or grew more than {growth} KiB",
                    self.before[id], self.peak[id]
                )
            })
            .collect()
    }
}
