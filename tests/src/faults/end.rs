//! The end of a scene: the traffic drained and collected, the cluster's end
//! state checked (every process alive, every room reachable and owned by
//! one node), and the report printed with the verdict's problems.

use std::collections::BTreeMap;

use super::Scene;
use crate::traffic::{self, ClientLog, LiveClient};
use crate::verdict::Tally;
use crate::{WsClient, wait_until};

impl Scene {
    /// Stops the clients sending and waits, at most [`super::Plan::settle`],
    /// until the traffic has drained ([`traffic::drained`]) and `also`
    /// holds; the problem if it did not.
    pub async fn drain(&self, also: impl Fn(&[LiveClient]) -> bool) -> Option<String> {
        self.shared.stop_sending();
        let settle = self.plan.settle;
        let clients = &self.clients;
        let drained = wait_until(settle, async || traffic::drained(clients) && also(clients)).await;
        let undrained = traffic::undrained(clients);
        (!drained).then(|| format!("traffic did not drain within {settle:?}: {undrained:?}"))
    }

    /// Tells the clients to finish and collects their logs, by room.
    pub async fn collect(&mut self) -> BTreeMap<String, Vec<ClientLog>> {
        let clients = std::mem::take(&mut self.clients);
        traffic::collect(&self.shared, clients, self.wait()).await
    }

    /// Every problem with the cluster's end state: a node or a router in a
    /// client slot that exited, etcd not running, a room (live or made by a
    /// phase) not reachable through the routers, or not owned by exactly
    /// one node ([`Scene::one_owner_each`]).
    pub async fn end_state(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for n in &mut self.cluster.nodes {
            if self.killed.contains(&n.id()) {
                continue;
            }
            if let Some(status) = n.proc.try_status() {
                problems.push(format!("node {} exited: {status}", n.id()));
            }
        }
        for (slot, i) in self.router_at.iter().enumerate() {
            if let Some(status) = self.cluster.routers[*i].proc.try_status() {
                problems.push(format!("router in slot {slot} exited: {status}"));
            }
        }
        if !self.cluster.etcd.is_running() {
            problems.push("etcd is not running".into());
        }
        let mut all_rooms = self.rooms.clone();
        all_rooms.extend(self.other_rooms.iter().cloned());
        let join_timeout = self.plan.clients.join_timeout;
        for (k, room) in all_rooms.iter().enumerate() {
            let base = self.router(k % self.router_at.len()).ws_base();
            let url = format!("{base}/room/{room}");
            if let Err(e) = WsClient::try_join(&url, join_timeout).await {
                problems.push(format!("{room} is not reachable: {e}"));
            }
        }
        problems.extend(self.one_owner_each(&all_rooms).await);
        problems
    }

    /// Prints the report, `name` first, with a [`Tally`] of `logs` and the
    /// time taken; then panics if there are `problems`, with them, `note`
    /// and the cluster's log tails.
    pub fn conclude(
        &mut self,
        name: &str,
        logs: &BTreeMap<String, Vec<ClientLog>>,
        problems: &[String],
        note: &str,
    ) {
        let t = Tally::of(logs);
        let (least, most) = t.least_and_most();
        let split: Vec<String> = t
            .messages
            .iter()
            .filter(|(_, m)| m.len() > 1)
            .map(|(r, m)| format!("{r} {m:?}"))
            .collect();
        self.report(format!(
            "{} messages in {} live rooms ({least}..={most} per room; per stream in the rooms with two: {split:?}); {} reconnects ({} failed join attempts), connections ended {:?}; {} stream changes, {} history_gaps; {} room_moving and {} not_accepted refusals; {} bodies resent after a replay",
            t.total(),
            logs.len(),
            t.reconnects,
            t.join_failures,
            t.ends,
            t.stream_changes,
            t.history_gaps,
            t.room_moving,
            t.not_accepted,
            t.resent
        ));
        self.report(format!("took {:?}", self.started.elapsed()));
        eprintln!("{name}:\n  {}", self.report.join("\n  "));
        if !problems.is_empty() {
            panic!(
                "{} problem(s):\n{}\n{note}\n{}",
                problems.len(),
                problems.join("\n"),
                self.cluster.log_tails(25, 10)
            );
        }
    }
}
