//! [`Cluster`]: room nodes and routers in this process, the real
//! `roomnode::run` and `router::run` on port-0 listeners, sharing one
//! embedded memory store (as `router up` does). For the cases that need no
//! process fault: no etcd to start, no binary to spawn, the same HTTP and
//! WebSocket clients against the same base URLs as [`crate::Cluster`].
//!
//! The services run on a runtime of their own, so a test's runtime (current
//! thread or not, paused clock or not) never starves or steers them; the
//! cluster cancels every service and shuts that runtime down when it drops.
//! Logs go to stdout (captured by the test runner) at `warn`, or as
//! `RUST_LOG` says.

use std::time::Duration;

use proto::token::Secret;
use router::RouterConfig;
use serde_json::{Value, json};
use store::kv::memory::MemoryKv;
use store::{Backend, Store};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::{TEST_LEASE_TTL, TEST_SECRET};
use crate::local::{Listening, ListeningNode};
use crate::{eventually, ids, wait_until};

/// Bound on a service answering `GET /readyz` with 200.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Worker threads of the services' runtime.
const WORKERS: usize = 2;

/// Messages per second (and burst) a node allows a connection: tests send
/// floods on purpose, as with the process tier's nodes.
const UNLIMITED_RATE: u32 = 1_000_000;

/// Seconds a node takes to shut down at most (the process tier's `--grace`).
const GRACE_SECS: u64 = 5;

/// Bound on a service's graceful stop: its grace period and some slack.
const STOP_TIMEOUT: Duration = Duration::from_secs(GRACE_SECS + 5);

/// A room node or router running on the cluster's runtime: its own token
/// (a child of the cluster's) and its `run`.
struct Service {
    stop: CancellationToken,
    task: JoinHandle<Result<(), String>>,
}

impl Service {
    /// Cancels it and waits for its `run` to return, at most
    /// [`STOP_TIMEOUT`]: what `run` returned.
    async fn stop(self) -> Result<(), String> {
        self.stop.cancel();
        match tokio::time::timeout(STOP_TIMEOUT, self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(format!("the service's task failed: {e}")),
            Err(_) => Err(format!("still running {STOP_TIMEOUT:?} after its stop")),
        }
    }
}

/// A room node in this process; dereferences to where it listens.
pub struct Node {
    /// Its instance and port.
    pub at: ListeningNode,
    service: Service,
}

impl std::ops::Deref for Node {
    type Target = ListeningNode;
    fn deref(&self) -> &ListeningNode {
        &self.at
    }
}

/// A router in this process; dereferences to where it listens.
pub struct Router {
    /// Its port.
    pub at: Listening,
    service: Service,
}

impl std::ops::Deref for Router {
    type Target = Listening;
    fn deref(&self) -> &Listening {
        &self.at
    }
}

/// Room nodes and routers in this process on one memory store.
pub struct Cluster {
    /// Room nodes, in start order.
    pub nodes: Vec<Node>,
    /// Routers, in start order.
    pub routers: Vec<Router>,
    store: Store,
    /// Parent of every service's token.
    stop: CancellationToken,
    /// `None` only while dropping.
    runtime: Option<Runtime>,
}

impl Cluster {
    /// `nodes` room nodes (`i1`..) and `routers` routers, all ready and
    /// every router seeing every node.
    pub async fn start(nodes: u16, routers: usize) -> Self {
        Self::start_with(nodes, routers, |_| {}).await
    }

    /// [`Cluster::start`] with `node` applied to every node's configuration
    /// (e.g. a shorter history or a smaller frame limit).
    pub async fn start_with(
        nodes: u16,
        routers: usize,
        node: impl Fn(&mut roomnode::Config),
    ) -> Self {
        init_tracing();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("inproc-cluster")
            .enable_all()
            .build()
            .expect("the cluster's runtime");
        // The memory store's sweeper is spawned on the runtime it is made in.
        let store = runtime
            .spawn(async {
                Store::new(
                    Backend::Memory(MemoryKv::new()),
                    proto::keys::DEFAULT_PREFIX,
                )
            })
            .await
            .expect("making the memory store");
        let mut cluster = Self {
            nodes: Vec::new(),
            routers: Vec::new(),
            store,
            stop: CancellationToken::new(),
            runtime: Some(runtime),
        };
        for n in 1..=nodes {
            cluster.add_node(n, &node).await;
        }
        for _ in 0..routers {
            cluster.add_router(|_| {}).await;
        }
        cluster.wait_nodes_seen(nodes as usize).await;
        cluster
    }

    /// The store every service shares.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts node `n` with the test defaults and then `configure` applied,
    /// and waits until it is registered (`/readyz`).
    pub async fn add_node(
        &mut self,
        n: u16,
        configure: impl FnOnce(&mut roomnode::Config),
    ) -> &Node {
        let store = self.store.clone();
        let mut config = roomnode::Config::new(ids::iid(n), String::new());
        // `run` advertises `http://<its listener's address>`.
        config.advertise = None;
        config.lease_ttl = TEST_LEASE_TTL;
        config.secret = Some(test_secret());
        config.grace = GRACE_SECS;
        config.rate = UNLIMITED_RATE;
        config.burst = UNLIMITED_RATE;
        configure(&mut config);
        let (port, service) = self
            .spawn(
                format!("room node i{n}"),
                move |listener, stop| async move {
                    roomnode::run(listener, config, store, stop.cancelled_owned())
                        .await
                        .map_err(|e| e.to_string())
                },
            )
            .await;
        self.nodes.push(Node {
            at: ListeningNode { n, port },
            service,
        });
        self.nodes.last().expect("just pushed")
    }

    /// Starts a router with the test defaults and then `configure` applied
    /// (e.g. an admin token), and waits until it is ready.
    pub async fn add_router(&mut self, configure: impl FnOnce(&mut RouterConfig)) -> &Router {
        let store = self.store.clone();
        let mut config = RouterConfig {
            public_url: None,
            metrics_listen: None,
            admin_token: None,
            create_token: None,
            api_keys: Vec::new(),
            secret: Some(test_secret()),
            token_ttl: router::config::DEFAULT_TOKEN_TTL_SECS,
            body_timeout: router::config::DEFAULT_BODY_TIMEOUT_SECS,
            max_connections_per_ip: 0,
        };
        configure(&mut config);
        let (port, service) = self
            .spawn("router".into(), move |listener, stop| async move {
                router::run(listener, config, store, stop.cancelled_owned())
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
        self.routers.push(Router {
            at: Listening { port },
            service,
        });
        self.routers.last().expect("just pushed")
    }

    /// Binds 127.0.0.1:0 on the cluster's runtime, runs `serve` there with
    /// the listener and the service's own token, and waits until it answers
    /// `GET /readyz` with 200: its port and handle. Panics with `what` and
    /// the service's error if it stops first.
    async fn spawn<F>(
        &self,
        what: String,
        serve: impl FnOnce(TcpListener, CancellationToken) -> F + Send + 'static,
    ) -> (u16, Service)
    where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        let stop = self.stop.child_token();
        let token = stop.clone();
        let runtime = self.runtime.as_ref().expect("the cluster is running");
        // Bound in a task of the cluster's runtime, so that its reactor
        // drives the socket.
        let (port, task) = runtime
            .spawn(async move {
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("binding 127.0.0.1:0");
                let port = listener.local_addr().expect("bound").port();
                (port, tokio::spawn(serve(listener, token)))
            })
            .await
            .expect("starting a service");
        let mut service = Service { stop, task };
        let http = Listening { port }.http();
        let ready = wait_until(START_TIMEOUT, async || {
            service.task.is_finished()
                || http
                    .send(reqwest::Method::GET, "/readyz", None)
                    .await
                    .is_ok_and(|r| r.status == 200)
        })
        .await;
        if service.task.is_finished() {
            let result = (&mut service.task).await;
            panic!("{what} on port {port} stopped before it was ready: {result:?}");
        }
        assert!(
            ready,
            "{what} on port {port} was not ready within {START_TIMEOUT:?}"
        );
        (port, service)
    }

    /// Stops node `n` gracefully (it closes its members with 1001 and
    /// releases its lease) and removes it: what its `run` returned.
    pub async fn stop_node(&mut self, n: u16) -> Result<(), String> {
        let at = self
            .nodes
            .iter()
            .position(|node| node.n == n)
            .unwrap_or_else(|| panic!("no node i{n} in this cluster"));
        self.nodes.remove(at).service.stop().await
    }

    /// Stops router `i` gracefully and removes it: what its `run` returned.
    pub async fn stop_router(&mut self, i: usize) -> Result<(), String> {
        self.routers.remove(i).service.stop().await
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

    /// Router `i`.
    pub fn router(&self, i: usize) -> &Router {
        &self.routers[i]
    }

    /// The node with instance number `n`.
    pub fn node(&self, n: u16) -> &Node {
        self.nodes
            .iter()
            .find(|node| node.n == n)
            .unwrap_or_else(|| panic!("no node i{n} in this cluster"))
    }

    /// `room`'s record from router 0 (`GET /rooms/{room}`, 200 asserted).
    pub async fn record(&self, room: &str) -> Value {
        let rec = self.router(0).http().get(&format!("/rooms/{room}")).await;
        assert_eq!(rec.status, 200, "GET /rooms/{room}: {}", rec.text);
        rec.body
    }

    /// The node hosting `room` according to router 0.
    pub async fn owner(&self, room: &str) -> &Node {
        let rec = self.record(room).await;
        let id = rec["node"].as_str().expect("node field");
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

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
        // Not a plain drop: a test drops the cluster inside its own runtime,
        // where waiting for another runtime's threads is not allowed.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The cluster secret, as the process tier's nodes and routers have it.
fn test_secret() -> Secret {
    TEST_SECRET.parse().expect("the test secret is long enough")
}

/// Logs of every service to stdout, once per test process.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_stops_a_service_and_tears_down_on_drop() {
        let mut cluster = Cluster::start(2, 2).await;
        let nodes = cluster.router(0).http().get("/nodes").await;
        assert_eq!(nodes.status, 200, "{}", nodes.text);
        let addrs: Vec<&str> = nodes
            .body
            .as_array()
            .expect("array")
            .iter()
            .map(|n| n["addr"].as_str().expect("addr"))
            .collect();
        assert!(addrs.contains(&cluster.node(2).http().base()), "{addrs:?}");
        assert_eq!(cluster.stop_router(1).await, Ok(()));
        assert_eq!(cluster.stop_node(2).await, Ok(()));
        cluster.wait_nodes_seen(1).await;
        let node = cluster.node(1).http();
        drop(cluster);
        eventually(
            START_TIMEOUT,
            "the dropped cluster's node stops answering",
            async || {
                node.send(reqwest::Method::GET, "/healthz", None)
                    .await
                    .is_err()
            },
        )
        .await;
    }
}
