//! Fault phases for scenarios that break a cluster under live traffic
//! (`chaos.rs`). A [`Scene`] is a cluster of real processes with live
//! clients ([`crate::traffic`]) talking in its rooms; each phase is one
//! function that does one thing to it, checks what must hold right after
//! (panicking with the cluster's log tails if not), and adds a line to the
//! scene's report. What a phase leaves for the end, e.g. rooms that failed
//! over to a new stream, it returns, for the scenario's final verdict
//! ([`crate::verdict`]).
//!
//! Layout:
//! - this file: [`Scene`] and its [`Plan`], and what the phases share (the
//!   busiest node, fencings, one owner per room).
//! - [`etcd`]: [`etcd_outage`], etcd killed and back within what nodes ride
//!   out.
//! - [`freeze`]: [`freeze_busiest_node`], SIGSTOP past the lease: failover
//!   and fencing; [`Frozen`] checks the failed-over rooms at the end.
//! - [`observer`]: a member that joins a failed-over room at its new owner.
//! - [`kill`]: [`kill_node`], SIGKILL under traffic: failover to the
//!   replicas, the same stream going on.
//! - [`router`]: [`restart_router`], a router replaced on a new port.
//! - [`flood`]: [`flood_busiest_node`], a node flooded by `hostile.rs`'s
//!   oversized, malformed, fast and silent clients.
//! - `end.rs`: draining the traffic and checking the cluster's end state.
//!
//! The only sleeps let a fault last, and say so.

mod end;
pub mod etcd;
pub mod flood;
pub mod freeze;
mod hostile;
pub mod kill;
pub mod observer;
pub mod router;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

pub use etcd::etcd_outage;
pub use flood::{Flood, flood_busiest_node};
pub use freeze::{Frozen, freeze_busiest_node};
pub use kill::{Killed, kill_node};
pub use router::restart_router;

use crate::traffic::{self, Config, LiveClient, Progress, Shared};
use crate::ws::tungstenite::Error as WsError;
use crate::{Cluster, RouterProc, WsClient};

/// The node's log line when it fences itself.
pub const FENCING: &str = "lease may have expired; fencing";

/// What a scene is made of and how it is paced.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Room nodes (`i1`..).
    pub nodes: u16,
    /// Routers; the clients' router slots, one per router.
    pub routers: usize,
    /// Rooms with live clients, `{prefix}-00`, `{prefix}-01`, …
    pub rooms: usize,
    /// Live clients per room.
    pub per_room: usize,
    /// How the live clients behave.
    pub clients: Config,
    /// Own bodies every client must see accepted before the first fault.
    pub warm_up: u64,
    /// Own bodies every client must see accepted after a fault, to call its
    /// room live again.
    pub again: u64,
    /// Bound on the cluster reaching a state after a fault.
    pub settle: Duration,
}

/// A cluster under live traffic, as the phases change it.
pub struct Scene {
    /// The cluster.
    pub cluster: Cluster,
    /// What the clients share: their router slots, stop and finish.
    pub shared: Arc<Shared>,
    /// The live clients, in start order.
    pub clients: Vec<LiveClient>,
    /// The rooms with live clients.
    pub rooms: Vec<String>,
    /// Rooms the phases created (without live clients), checked at the end
    /// like the others.
    pub other_rooms: Vec<String>,
    /// Nodes a phase killed on purpose: the end state does not miss them.
    pub killed: BTreeSet<String>,
    /// Slot k of the clients' router list is
    /// `cluster.routers[router_at[k]]`.
    pub router_at: Vec<usize>,
    /// Its plan.
    pub plan: Plan,
    report: Vec<String>,
    started: Instant,
}

impl Scene {
    /// The cluster of `plan`, its rooms `{prefix}-NN` created through the
    /// routers in turn, and the live clients joined (each welcomed by its
    /// room's owner) and flowing ([`Plan::warm_up`] bodies each).
    pub async fn start(plan: Plan, prefix: &str) -> Self {
        let started = Instant::now();
        let cluster = Cluster::start(plan.nodes, plan.routers).await;
        let router_at: Vec<usize> = (0..plan.routers).collect();
        let shared = Shared::new(
            router_at
                .iter()
                .map(|&i| cluster.router(i).ws_base())
                .collect(),
        );
        let rooms: Vec<String> = (0..plan.rooms)
            .map(|i| format!("{prefix}-{i:02}"))
            .collect();
        for (i, room) in rooms.iter().enumerate() {
            let r = cluster
                .router(i % plan.routers)
                .http()
                .post_json("/rooms", &json!({"id": room}))
                .await;
            assert_eq!(r.status, 201, "POST /rooms {room}: {}", r.text);
            assert_eq!(r.body["epoch"], 1, "{}", r.text);
        }
        let placement = cluster.placement().await;
        // Clients of a room through different routers, all joined before
        // anyone sends.
        let clients = traffic::start(&shared, &rooms, plan.per_room, plan.clients, |room, w| {
            assert_eq!(w["node"], placement[room].0.as_str(), "{w}");
        })
        .await;
        let zero = vec![Progress::default(); clients.len()];
        let warm = plan.warm_up;
        traffic::wait_flowing(&clients, &zero, warm, plan.settle, "warm-up", |_, _| true).await;
        let report = vec![format!(
            "cluster up and traffic flowing in {} rooms after {:?}",
            plan.rooms,
            started.elapsed()
        )];
        Self {
            cluster,
            shared,
            clients,
            rooms,
            other_rooms: Vec::new(),
            killed: BTreeSet::new(),
            router_at,
            plan,
            report,
            started,
        }
    }

    /// Bound on one frame, handshake or close.
    pub fn wait(&self) -> Duration {
        self.plan.clients.wait
    }

    /// The router in the clients' slot `slot`.
    pub fn router(&self, slot: usize) -> &RouterProc {
        &self.cluster.routers[self.router_at[slot]]
    }

    /// Every client's progress right now.
    pub fn snapshot(&self) -> Vec<Progress> {
        traffic::snapshot(&self.clients)
    }

    /// Waits until every client has [`Plan::again`] more own bodies
    /// accepted than in `base` and `also` holds for it (see
    /// [`traffic::wait_flowing`]).
    pub async fn wait_flowing(
        &self,
        base: &[Progress],
        what: &str,
        also: impl Fn(&LiveClient, &Progress) -> bool,
    ) {
        let (again, settle) = (self.plan.again, self.plan.settle);
        traffic::wait_flowing(&self.clients, base, again, settle, what, also).await;
    }

    /// Adds a line to the report printed at the end.
    pub fn report(&mut self, line: String) {
        self.report.push(line);
    }

    /// The node owning the most live rooms now.
    pub async fn busiest_node(&self) -> String {
        let placement = self.cluster.placement().await;
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for room in &self.rooms {
            *per_node.entry(placement[room].0.clone()).or_default() += 1;
        }
        per_node
            .iter()
            .max_by_key(|(_, k)| **k)
            .map(|(id, _)| id.clone())
            .expect("rooms have owners")
    }

    /// The index in `cluster.nodes` of node `id`.
    pub fn node_index(&self, id: &str) -> usize {
        self.cluster
            .nodes
            .iter()
            .position(|n| n.id() == id)
            .unwrap_or_else(|| panic!("no node {id} in the cluster"))
    }

    /// How often node `id` has logged that it fenced itself.
    pub fn fencings(&self, id: &str) -> usize {
        self.cluster
            .node_by_id(id)
            .proc
            .log()
            .matches(FENCING)
            .count()
    }

    /// [`Scene::fencings`] of every node, in `cluster.nodes` order.
    pub fn all_fencings(&self) -> Vec<usize> {
        let ids: Vec<String> = self.cluster.nodes.iter().map(|n| n.id()).collect();
        ids.iter().map(|id| self.fencings(id)).collect()
    }

    /// Panics with `problems` after `what` and the cluster's log tails,
    /// unless there are none.
    pub fn assert_clean(&self, what: &str, problems: &[String]) {
        assert!(
            problems.is_empty(),
            "{what}:\n{}{}",
            problems.join("\n"),
            self.cluster.log_tails(25, 10)
        );
    }

    /// For every room of `rooms`, a join directly at every node other than
    /// its owner must be refused (307 to the owner, or 404), and a join at
    /// the owner welcomed by it: no room is served by two nodes. The
    /// problems found.
    pub async fn one_owner_each(&self, rooms: &[String]) -> Vec<String> {
        let placement = self.cluster.placement().await;
        let wait = self.wait();
        let mut problems = Vec::new();
        for room in rooms {
            let Some((owner, _)) = placement.get(room) else {
                problems.push(format!("{room}: no record"));
                continue;
            };
            for node in &self.cluster.nodes {
                let id = node.id();
                if self.killed.contains(&id) {
                    continue;
                }
                let url = format!("{}/{id}/room/{room}", node.ws_base());
                match (WsClient::connect(&url).await, &id == owner) {
                    (Ok(mut c), true) => {
                        let w = c.recv_json(wait).await;
                        if w["type"] != "welcome" || w["node"] != id.as_str() {
                            problems
                                .push(format!("{room}: its owner {id} answered a join with {w}"));
                        }
                    }
                    (Err(e), true) => {
                        problems.push(format!("{room}: its owner {id} refused a join: {e}"))
                    }
                    (Ok(mut c), false) => {
                        let w = c.recv_json(wait).await;
                        problems.push(format!(
                            "{room} is owned by {owner}, but {id} welcomed a join too: {w}"
                        ));
                    }
                    (Err(WsError::Http(resp)), false) => {
                        let status = resp.status().as_u16();
                        let location = resp
                            .headers()
                            .get("location")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let to_owner = location.starts_with(&format!("/{owner}/room/{room}"));
                        if !(status == 404 || (status == 307 && to_owner)) {
                            problems.push(format!(
                                "{room} (owner {owner}): {id} answered {status} {location:?}"
                            ));
                        }
                    }
                    (Err(e), false) => problems.push(format!("{room}: joining at {id}: {e}")),
                }
            }
        }
        problems
    }
}
