//! A randomized model test of replication: the real [`Room`], [`Link`]
//! queue, batch encoding and [`Copies`], with the network and the failures
//! played by the test. Each run does a few hundred random steps: members
//! send; a batch reaches its replica and is answered, or its answer is
//! lost (or it never arrived) and it goes again, or the replica stays
//! silent too long (the link gives up: pending messages are refused, a
//! copy waits); the replica moves to another node; the owner crashes and
//! its replica is promoted (failover), while the dead owner's late answers
//! still come in.
//!
//! Invariants, checked after every step:
//! - no seq ever carries two different messages, across every owner the
//!   room had;
//! - every member sees seqs 1, 2, 3, … with no gap, in one stream (a
//!   member of a dead owner rejoins the promoted one with `since`);
//! - a message is delivered only once the node that would take the room
//!   over holds it: on promotion, the copy holds every message any member
//!   saw.
//!
//! The one failure not modelled is the documented double failure: the
//! owner dies while its new replica's first copy is still on the way (the
//! copy went to a node that joined, or the old replica died), and so does
//! a replica that loses its state: then history is lost, as SPEC says.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use proto::record::RoomRecord;
use proto::replication::{Ack, Batch};
use proto::{InstanceId, RoomId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use serde_json::value::RawValue;

use super::Replication;
use super::copies::Copies;
use super::link::{self, Link, Outgoing};
use crate::config::Config;
use crate::member::outlet::{Outlet, OutletConfig};
use crate::metrics::Metrics;
use crate::room::limits::RoomLimits;
use crate::room::rooms::Rooms;
use crate::room::{JoinRequest, Room};

const NODES: u16 = 4;

/// One node as the model sees it: the copies it holds, the rooms it hosts.
struct NodeSim {
    id: InstanceId,
    copies: Copies,
    hosted: Rooms,
}

/// A member of the room and what it saw.
struct MemberSim {
    outlet: Arc<Outlet>,
    key: u64,
    /// The last seq it saw, and the stream.
    last: u64,
    stream: String,
}

/// A batch taken off a link, its answer not in yet: the replica's ack, or
/// `None` when the batch never arrived.
struct InFlight {
    /// The owner that sent it.
    from: InstanceId,
    link: Arc<Link>,
    number: u64,
    items: Vec<Outgoing>,
    ack: Option<Ack>,
}

struct Sim {
    rng: StdRng,
    nodes: Vec<NodeSim>,
    room_id: RoomId,
    owner: Arc<Room>,
    owner_node: usize,
    link: Arc<Link>,
    /// Old owners: dead to the cluster, but their late answers still come
    /// in, and their members still read (see `zombie_members`).
    zombies: Vec<Arc<Room>>,
    members: Vec<MemberSim>,
    /// Members of old owners, each with the last seq its owner may still
    /// deliver (what the promoted copy held).
    zombie_members: Vec<(MemberSim, u64)>,
    in_flight: Vec<InFlight>,
    /// The links of each owner, by replica: one per pair of nodes, as a
    /// node keeps them.
    links: HashMap<(InstanceId, InstanceId), Arc<Link>>,
    /// Every (seq → body) a member saw, across owners.
    seen: BTreeMap<u64, Value>,
    sent: u64,
    epoch: u64,
    problems: Vec<String>,
    failovers: usize,
}

fn node_sim(n: u16) -> NodeSim {
    let id = InstanceId::new(n).unwrap();
    let limits = RoomLimits::new(&Config::new(id, "http://n".into()));
    let metrics = Arc::new(Metrics::new(id));
    let copies = Copies::new(limits.history, metrics.clone());
    let replication = Replication::new(id, None, copies.clone(), metrics.clone());
    NodeSim {
        id,
        copies,
        hosted: Rooms::new(limits, metrics, None, replication),
    }
}

fn record(room: &RoomId, node: InstanceId, epoch: u64) -> RoomRecord {
    RoomRecord {
        id: room.clone(),
        node,
        epoch,
        private: false,
        created_at: 0,
    }
}

impl MemberSim {
    /// Joins `room`, resuming after `since` in `stream` when given.
    fn join(room: &Room, since: Option<(u64, &str)>) -> (Self, Vec<String>) {
        let outlet = Arc::new(Outlet::new(
            None,
            OutletConfig {
                max_queue: 1 << 20,
                direct: true,
            },
            Arc::new(Metrics::new(InstanceId::new(1).unwrap())),
        ));
        let req = JoinRequest {
            name: None,
            since: since.map(|(s, _)| s),
            stream: since.map(|(_, st)| st),
        };
        let key = room.join(req, &outlet).expect("the room takes members");
        let mut texts = outlet.take_texts().into_iter();
        let welcome: Value = serde_json::from_str(&texts.next().unwrap()).unwrap();
        let mut m = Self {
            outlet,
            key,
            last: since.map_or_else(|| welcome["seq"].as_u64().unwrap(), |(s, _)| s),
            stream: welcome["stream"].as_str().unwrap().to_owned(),
        };
        let mut problems = Vec::new();
        if let Some((_, stream)) = since
            && m.stream != stream
        {
            problems.push(format!("a new stream {} after {stream}", m.stream));
        }
        // The replay, if any, is checked like live traffic.
        problems.extend(m.read(texts.collect(), &mut BTreeMap::new()));
        (m, problems)
    }

    /// Reads what came since the last read; the problems. Each message's
    /// body goes into `seen`, which it must agree with.
    fn read_new(&mut self, seen: &mut BTreeMap<u64, Value>) -> Vec<String> {
        let texts = self.outlet.take_texts();
        self.read(texts, seen)
    }

    fn read(&mut self, texts: Vec<String>, seen: &mut BTreeMap<u64, Value>) -> Vec<String> {
        let mut problems = Vec::new();
        for t in texts {
            let v: Value = serde_json::from_str(&t).unwrap();
            match v["type"].as_str() {
                Some("message") => {
                    let seq = v["seq"].as_u64().unwrap();
                    if seq != self.last + 1 {
                        problems.push(format!("seq {seq} after {}", self.last));
                    }
                    self.last = seq;
                    let body = v["body"].clone();
                    if let Some(was) = seen.insert(seq, body.clone())
                        && was != body
                    {
                        problems.push(format!("seq {seq} carried {was} and {body}"));
                    }
                }
                Some("error") if v["code"] == "not_accepted" => {}
                Some("error") => problems.push(format!("error frame {v}")),
                _ => {}
            }
        }
        problems
    }
}

impl Sim {
    fn new(seed: u64) -> Self {
        let nodes: Vec<NodeSim> = (1..=NODES).map(node_sim).collect();
        let room_id: RoomId = "r".parse().unwrap();
        let (owner, _) = nodes[0]
            .hosted
            .host(&record(&room_id, nodes[0].id, 1), None);
        let link = Link::detached(nodes[1].id);
        let links = HashMap::from([((nodes[0].id, nodes[1].id), link.clone())]);
        owner.replication_on();
        owner.follow_replica(Some(link.clone()));
        let members = (0..2).map(|_| MemberSim::join(&owner, None).0).collect();
        Self {
            rng: StdRng::seed_from_u64(seed),
            nodes,
            room_id,
            owner,
            owner_node: 0,
            link,
            zombies: Vec::new(),
            members,
            zombie_members: Vec::new(),
            in_flight: Vec::new(),
            links,
            seen: BTreeMap::new(),
            sent: 0,
            epoch: 1,
            problems: Vec::new(),
            failovers: 0,
        }
    }

    /// The current owner's link to `peer`.
    fn link_to(&mut self, peer: InstanceId) -> Arc<Link> {
        let me = self.nodes[self.owner_node].id;
        self.links
            .entry((me, peer))
            .or_insert_with(|| Link::detached(peer))
            .clone()
    }

    fn node(&self, id: InstanceId) -> &NodeSim {
        self.nodes.iter().find(|n| n.id == id).unwrap()
    }

    fn step(&mut self) {
        match self.rng.random_range(0..100) {
            0..45 => self.send(),
            45..65 => self.ship(true),
            65..70 => self.ship(false),
            70..90 => self.answer(),
            90..95 => self.move_replica(),
            _ => self.crash(),
        }
        self.check();
    }

    fn send(&mut self) {
        let key = self.members[self.rng.random_range(0..self.members.len())].key;
        self.sent += 1;
        let body = RawValue::from_string(format!(r#"{{"n":{}}}"#, self.sent)).unwrap();
        // Refusals (a backlog, a fenced room) are allowed: they deliver
        // nothing.
        let _ = self.owner.send(key, &body);
        // A zombie's member sends too: it must get nothing accepted that
        // the promoted owner lacks.
        if let Some(z) = self.zombies.last() {
            let _ = z.send(1, &body);
        }
    }

    /// The owner's next batch reaches its replica, which applies it
    /// (`arrives`), or is lost on the way; its answer comes later.
    /// As the link's sender, it waits for the answer to its batch in
    /// flight before it sends the next.
    fn ship(&mut self, arrives: bool) {
        if self
            .in_flight
            .iter()
            .any(|f| Arc::ptr_eq(&f.link, &self.link))
        {
            return;
        }
        let items = self.link.take();
        if items.is_empty() {
            return;
        }
        let link = self.link.clone();
        let number = link::next_number();
        let from = self.nodes[self.owner_node].id;
        let ack = arrives.then(|| self.apply(from, &link, number, &items));
        self.in_flight.push(InFlight {
            from,
            link,
            number,
            items,
            ack,
        });
    }

    /// The replica of `link` applies batch `number` of owner `from`.
    fn apply(&self, from: InstanceId, link: &Link, number: u64, items: &[Outgoing]) -> Ack {
        let body = link::encode(from, number, items);
        let batch: Batch<'_> = serde_json::from_str(&body).unwrap();
        let node = self.node(link.peer());
        // The replica answers: a link that had given up is up again.
        link.set_down(false);
        node.copies.apply(batch, &node.hosted)
    }

    /// Some batch's answer comes in (in any order): mostly the ack; else
    /// the answer was lost, or the batch never arrived, and it goes again;
    /// or the replica stayed silent too long and the link gives up.
    fn answer(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        let i = self.rng.random_range(0..self.in_flight.len());
        let f = self.in_flight.swap_remove(i);
        match (f.ack, self.rng.random_range(0..100)) {
            (Some(ack), 0..70) if !ack.stale => link::answered(&f.link, f.items, &ack),
            (_, 0..90) => {
                let ack = self.apply(f.from, &f.link, f.number, &f.items);
                self.in_flight.push(InFlight {
                    ack: Some(ack),
                    ..f
                });
            }
            _ => {
                let copies = link::give_up(&f.link, f.items);
                f.link.put_back(copies);
            }
        }
    }

    /// The runner-up changes: another node becomes the replica.
    fn move_replica(&mut self) {
        let others: Vec<InstanceId> = self
            .nodes
            .iter()
            .map(|n| n.id)
            .filter(|id| *id != self.nodes[self.owner_node].id && *id != self.link.peer())
            .collect();
        let to = others[self.rng.random_range(0..others.len())];
        self.link = self.link_to(to);
        self.owner.follow_replica(Some(self.link.clone()));
    }

    /// The owner dies once its replica holds its copy (see the module
    /// doc); the store names the replica owner at the next epoch, which
    /// goes on from its copy with a replica of its own; the members
    /// rejoin it with `since`.
    fn crash(&mut self) {
        if !self.owner.replica_settled() {
            return;
        }
        let heir = self.link.peer();
        self.epoch += 1;
        let Some(snapshot) = self.node(heir).copies.promote(&self.room_id, self.epoch) else {
            self.problems
                .push(format!("{heir} holds no copy to promote"));
            return;
        };
        self.check_promoted(&snapshot);
        let bound = snapshot.seq;
        let rec = record(&self.room_id, heir, self.epoch);
        let (owner, _) = self.node(heir).hosted.host(&rec, Some(snapshot));
        let old_node = self.owner_node;
        self.owner_node = self.nodes.iter().position(|n| n.id == heir).unwrap();
        let next: Vec<InstanceId> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.owner_node && *i != old_node)
            .map(|(_, n)| n.id)
            .collect();
        let to = next[self.rng.random_range(0..next.len())];
        self.link = self.link_to(to);
        owner.replication_on();
        owner.follow_replica(Some(self.link.clone()));
        let old = std::mem::replace(&mut self.owner, owner);
        self.zombies.push(old);
        let members = std::mem::take(&mut self.members);
        for mut m in members {
            let read = m.read_new(&mut self.seen);
            self.problems.extend(read);
            let (fresh, problems) = MemberSim::join(&self.owner, Some((m.last, &m.stream)));
            self.problems.extend(problems);
            self.members.push(fresh);
            self.zombie_members.push((m, bound));
        }
        self.failovers += 1;
    }

    /// The promoted copy holds every message any member saw.
    fn check_promoted(&mut self, s: &proto::handoff::RoomSnapshot) {
        let first = s.seq + 1 - s.history.len() as u64;
        for (seq, body) in &self.seen {
            let kept = seq
                .checked_sub(first)
                .and_then(|i| s.history.get(usize::try_from(i).ok()?));
            let ok =
                kept.is_some_and(|f| serde_json::from_str::<Value>(f).unwrap()["body"] == *body);
            if !ok {
                self.problems.push(format!(
                    "seq {seq} ({body}) was delivered but the promoted copy (seq {}, {} kept) lacks it",
                    s.seq,
                    s.history.len()
                ));
            }
        }
    }

    fn check(&mut self) {
        for m in &mut self.members {
            self.problems.extend(m.read_new(&mut self.seen));
        }
        for (m, bound) in &mut self.zombie_members {
            self.problems.extend(m.read_new(&mut self.seen));
            if m.last > *bound {
                self.problems.push(format!(
                    "a dead owner delivered seq {} beyond the {bound} its heir took over",
                    m.last
                ));
            }
        }
    }
}

#[test]
fn random_sends_losses_replica_moves_and_failovers_keep_the_stream_whole() {
    let (mut failovers, mut delivered) = (0, 0);
    for seed in 0..200 {
        let mut sim = Sim::new(seed);
        for _ in 0..400 {
            sim.step();
            if !sim.problems.is_empty() {
                panic!("seed {seed}: {:#?}", sim.problems);
            }
        }
        failovers += sim.failovers;
        delivered += sim.seen.len();
    }
    // The runs did what they are for.
    assert!(failovers > 200, "{failovers} failovers in 200 runs");
    assert!(
        delivered > 8_000,
        "{delivered} messages delivered in 200 runs"
    );
}
