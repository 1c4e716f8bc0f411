//! [`Cluster`]: a real etcd, room nodes and routers as processes of the real
//! binaries, on free ports, with their logs in one temp dir. Everything is
//! killed when the cluster drops.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use proto::record::RoomRecord;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::local::{Listening, ListeningNode};
use crate::{Etcd, Http, Proc, eventually, free_port, ids};

/// Bound on a process becoming ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Lease TTL the cluster's nodes use unless told otherwise: short, so that
/// expiry tests stay fast, but above etcd's minimum.
pub const TEST_LEASE_TTL: u64 = 3;

/// Bound on an operator command ([`Cluster::router_ok`]).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Rooms [`create_room_on`] tries before it gives up.
const ROOM_TRIES: usize = 64;

/// Room records read from etcd at once.
const RECORDS_PAGE: usize = 1000;

/// The cluster secret of test clusters.
pub const TEST_SECRET: &str = "test-secret-0123456789";

/// A room node process; dereferences to where it listens.
pub struct NodeProc {
    /// Its instance and port.
    pub at: ListeningNode,
    /// The process.
    pub proc: Proc,
}

impl std::ops::Deref for NodeProc {
    type Target = ListeningNode;
    fn deref(&self) -> &ListeningNode {
        &self.at
    }
}

/// A router process; dereferences to where it listens.
pub struct RouterProc {
    /// Its port.
    pub at: Listening,
    /// The process.
    pub proc: Proc,
}

impl std::ops::Deref for RouterProc {
    type Target = Listening;
    fn deref(&self) -> &Listening {
        &self.at
    }
}

/// Waits until the process on `port` answers `GET /readyz` with 200, at
/// most [`START_TIMEOUT`]; fails with `what` and its log otherwise.
async fn wait_ready(port: u16, proc: &Proc, what: &str) {
    let http = Listening { port }.http();
    let ready = crate::wait_until(START_TIMEOUT, async || {
        http.send(reqwest::Method::GET, "/readyz", None)
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    if !ready {
        proc.fail(what);
    }
}

/// Creates rooms `{prefix}0`, `{prefix}1`, … through the router behind
/// `http` until one lands on node `node` (`iN`); that room's id and record.
pub async fn create_room_on(http: &Http, prefix: &str, node: &str) -> (String, Value) {
    for k in 0..ROOM_TRIES {
        let room = format!("{prefix}{k}");
        let r = http.post_json("/rooms", &json!({"id": room})).await;
        assert!(
            r.status == 201 || r.status == 200,
            "POST /rooms {room}: {} {}",
            r.status,
            r.text
        );
        if r.body["node"] == node {
            return (room, r.body);
        }
    }
    panic!("no room of {ROOM_TRIES} landed on {node}")
}

/// A whole cluster under test.
pub struct Cluster {
    /// The etcd server.
    pub etcd: Etcd,
    /// Room nodes, in start order.
    pub nodes: Vec<NodeProc>,
    /// Routers, in start order.
    pub routers: Vec<RouterProc>,
    /// The etcd key prefix.
    pub prefix: String,
    dir: TempDir,
}

impl Cluster {
    /// etcd, `nodes` room nodes (`i1`..) and `routers` routers, all ready.
    pub async fn start(nodes: u16, routers: usize) -> Self {
        Self::start_with(nodes, routers, &[]).await
    }

    /// [`Cluster::start`] with extra flags for every node.
    pub async fn start_with(nodes: u16, routers: usize, node_args: &[&str]) -> Self {
        let etcd = Etcd::start().await;
        let mut cluster = Self {
            etcd,
            nodes: Vec::new(),
            routers: Vec::new(),
            prefix: "/roomrouter".into(),
            dir: tempfile::tempdir().expect("temp dir for logs"),
        };
        for n in 1..=nodes {
            cluster.add_node(n, node_args).await;
        }
        for _ in 0..routers {
            cluster.add_router(&[]).await;
        }
        cluster.wait_nodes_seen(nodes as usize).await;
        cluster
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// `roomnode` for instance `n` with `args` on a free port, not yet
    /// waited for.
    pub fn spawn_node(&self, n: u16, port: u16, args: &[&str]) -> Proc {
        Proc::bin("roomnode")
            .args(["--id", &format!("i{n}")])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--etcd", &self.etcd.endpoint()])
            .args(["--prefix", &self.prefix])
            .args(["--lease-ttl", &TEST_LEASE_TTL.to_string()])
            .args(["--secret", TEST_SECRET])
            .args(["--grace", "5"])
            .args(args)
            .env("RUST_LOG", "info,roomnode=debug")
            // Tests send floods on purpose; a test of the rate limit passes
            // --rate/--burst, which win over these.
            .env("ROOMNODE_RATE", "1000000")
            .env("ROOMNODE_BURST", "1000000")
            .log_to(self.log(&format!("node-i{n}-{port}")))
            .spawn()
    }

    /// Starts node `n` and waits until it is registered (`/readyz`).
    pub async fn add_node(&mut self, n: u16, args: &[&str]) -> &NodeProc {
        let port = free_port();
        let proc = self.spawn_node(n, port, args);
        wait_ready(port, &proc, "room node did not become ready").await;
        self.nodes.push(NodeProc {
            at: ListeningNode { n, port },
            proc,
        });
        self.nodes.last().expect("just pushed")
    }

    /// Stops node `n` gracefully (SIGTERM, its exit awaited) and starts it
    /// again on the same port with `args`; waits until it is ready.
    pub async fn restart_node(&mut self, n: u16, args: &[&str]) {
        let i = self
            .nodes
            .iter()
            .position(|p| p.n == n)
            .unwrap_or_else(|| panic!("no node i{n}"));
        let port = self.nodes[i].port;
        let old = &mut self.nodes[i].proc;
        assert!(old.signal_term(), "SIGTERM to i{n}");
        old.wait_exit(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| old.fail("did not stop after SIGTERM"));
        let proc = self.spawn_node(n, port, args);
        wait_ready(port, &proc, "restarted room node did not become ready").await;
        self.nodes[i].proc = proc;
    }

    /// Starts a router with `args` and waits until it is ready.
    pub async fn add_router(&mut self, args: &[&str]) -> &RouterProc {
        let port = free_port();
        let proc = Proc::bin("router")
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--etcd", &self.etcd.endpoint()])
            .args(["--prefix", &self.prefix])
            .args(["--secret", TEST_SECRET])
            .args(args)
            .env("RUST_LOG", "info,router=debug")
            .log_to(self.log(&format!("router-{port}")))
            .spawn();
        wait_ready(port, &proc, "router did not become ready").await;
        self.routers.push(RouterProc {
            at: Listening { port },
            proc,
        });
        self.routers.last().expect("just pushed")
    }

    /// Waits until every router lists `count` nodes.
    pub async fn wait_nodes_seen(&self, count: usize) {
        for r in &self.routers {
            let http = r.http();
            eventually(START_TIMEOUT, "routers see every node", async || {
                http.get("/nodes").await.body.as_array().map(Vec::len) == Some(count)
            })
            .await;
        }
    }

    /// `router <args>` (an operator command: rebalance, drain, ...) against
    /// this cluster's etcd, prefix and secret, started.
    pub fn router_command(&self, args: &[&str]) -> Proc {
        Proc::bin("router")
            .args(args)
            .args(["--etcd", &self.etcd.endpoint()])
            .args(["--prefix", &self.prefix])
            .args(["--secret", TEST_SECRET])
            .spawn()
    }

    /// [`Cluster::router_command`] run to its end, at most `timeout`; its
    /// exit status and output.
    pub async fn run_router_command(
        &self,
        args: &[&str],
        timeout: Duration,
    ) -> (std::process::ExitStatus, String) {
        self.router_command(args).finish(timeout).await
    }

    /// [`Cluster::run_router_command`] that must exit 0 within
    /// [`COMMAND_TIMEOUT`]; its output.
    pub async fn router_ok(&self, args: &[&str]) -> String {
        let (status, log) = self.run_router_command(args, COMMAND_TIMEOUT).await;
        assert!(status.success(), "router {args:?} exited {status}:\n{log}");
        log
    }

    /// Every room record in etcd, by id, read page by page.
    pub async fn records(&self) -> BTreeMap<String, RoomRecord> {
        let store = self.etcd.store(&self.prefix).await;
        let mut all = BTreeMap::new();
        loop {
            let after = all.keys().next_back().map(|k: &String| ids::rid(k));
            let page = store
                .rooms(after.as_ref(), RECORDS_PAGE)
                .await
                .expect("listing rooms in etcd");
            let full = page.len() == RECORDS_PAGE;
            for rec in page {
                all.insert(rec.id.to_string(), rec);
            }
            if !full {
                return all;
            }
        }
    }

    /// `(node, epoch)` of every room record in etcd, by room id.
    pub async fn placement(&self) -> BTreeMap<String, (String, u64)> {
        self.records()
            .await
            .into_iter()
            .map(|(id, r)| (id, (r.node.to_string(), r.epoch)))
            .collect()
    }

    /// The node with id `id` (`iN`).
    pub fn node_by_id(&self, id: &str) -> &NodeProc {
        self.nodes
            .iter()
            .find(|n| n.id() == id)
            .unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    /// Router `i`.
    pub fn router(&self, i: usize) -> &RouterProc {
        &self.routers[i]
    }

    /// The node with instance number `n`.
    pub fn node(&self, n: u16) -> &NodeProc {
        self.nodes
            .iter()
            .find(|node| node.n == n)
            .unwrap_or_else(|| panic!("no node i{n} in this cluster"))
    }

    /// The node with instance number `n`, mutably (to signal and reap it).
    pub fn node_mut(&mut self, n: u16) -> &mut NodeProc {
        self.nodes
            .iter_mut()
            .find(|node| node.n == n)
            .unwrap_or_else(|| panic!("no node i{n} in this cluster"))
    }

    /// The last `node_lines` of every node's log and `router_lines` of every
    /// router's, for failure messages.
    pub fn log_tails(&self, node_lines: usize, router_lines: usize) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            out.push_str(&format!(
                "\n--- node {} ({}) ---\n{}",
                n.id(),
                n.proc.log_path().display(),
                n.proc.log_tail(node_lines)
            ));
        }
        for r in &self.routers {
            out.push_str(&format!(
                "\n--- router :{} ({}) ---\n{}",
                r.port,
                r.proc.log_path().display(),
                r.proc.log_tail(router_lines)
            ));
        }
        out
    }

    /// `room`'s record from router 0 (`GET /rooms/{room}`, 200 asserted).
    pub async fn record(&self, room: &str) -> Value {
        let rec = self.router(0).http().get(&format!("/rooms/{room}")).await;
        assert_eq!(rec.status, 200, "GET /rooms/{room}: {}", rec.text);
        rec.body
    }

    /// The node hosting `room` according to router 0.
    pub async fn owner(&self, room: &str) -> &NodeProc {
        let rec = self.record(room).await;
        let id = rec["node"].as_str().expect("node field").to_owned();
        self.nodes
            .iter()
            .find(|n| n.id() == id)
            .unwrap_or_else(|| panic!("room {room} is on {id}, which is not in this cluster"))
    }

    /// Creates `room` through router 0 and returns the answer's body.
    pub async fn create_room(&self, room: &str) -> Value {
        let r = self
            .router(0)
            .http()
            .post_json("/rooms", &json!({"id": room}))
            .await;
        assert!(
            r.status == 201 || r.status == 200,
            "POST /rooms {room}: {} {}",
            r.status,
            r.text
        );
        r.body
    }
}
