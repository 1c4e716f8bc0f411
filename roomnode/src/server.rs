//! [`run`]: a whole room node on a bound listener until `shutdown`
//! resolves. The binary and `router up` both call it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use proto::record::{NodeRecord, NodeState};
use store::{Mirror, Scope, Store, StoreError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::ownership::Ownership;
use crate::cluster::registration::Registration;
use crate::config::{Config, ConfigError};
use crate::engineio::Engine;
use crate::feed::Feed;
use crate::hooks::Hooks;
use crate::member::close::CloseReason;
use crate::member::limits::Slots;
use crate::metrics::Metrics;
use crate::node::{Node, Parts};
use crate::replication::Replication;
use crate::replication::copies::Copies;
use crate::replication::link::Outbound;
use crate::room::limits::RoomLimits;
use crate::room::rooms::Rooms;
use service::client::InternalClient;
use service::server::{Limits, serve};

/// Why a node could not start (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A flag is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--advertise` is needed.
    #[error(
        "--advertise is required when listening on {0}: give the URL routers reach this node at"
    )]
    NoAdvertise(std::net::SocketAddr),
    /// Registration failed (e.g. the id is taken).
    #[error("cannot register this node: {0}")]
    Register(#[from] StoreError),
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves a room node on `listener` until `shutdown` resolves, then stops
/// accepting, closes every client with 1001, releases the lease and
/// returns, all within the configured grace period.
pub async fn run(
    listener: TcpListener,
    mut config: Config,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    config.validate()?;
    let local = listener.local_addr()?;
    let advertise = match config.advertise.clone() {
        Some(a) => a,
        None if local.ip().is_unspecified() => return Err(NodeError::NoAdvertise(local)),
        None => format!("http://{local}"),
    };
    config.advertise = Some(advertise.clone());
    let id = config.id;
    let metrics = Arc::new(Metrics::new(id));
    let limits = RoomLimits::new(&config);
    // Sends until the node has stopped, so the last rooms' events go too.
    let feed_stop = CancellationToken::new();
    let feed = Feed::start(&config, metrics.clone(), feed_stop.clone());
    let copies = Copies::new(limits.history, metrics.clone());
    let replication = Replication::new(
        id,
        replication_outbound(&config),
        copies.clone(),
        metrics.clone(),
    );
    let rooms = Rooms::new(limits, metrics.clone(), feed, replication.clone());
    let ownership = Ownership::new(id, config.auto_create, store.clone(), rooms.clone(), copies);
    let hook = ownership.clone();
    let mirror = Mirror::start(
        store.clone(),
        Scope::Node(id),
        Some(Arc::new(move |c: &store::Change| hook.on_change(c))),
    );
    replication.set_mirror(mirror.clone());
    let record = NodeRecord {
        id,
        addr: advertise.clone(),
        weight: config.weight,
        state: NodeState::Active,
    };
    let registration = Registration::register(store.clone(), record, config.ttl()).await?;
    tracing::info!(node = %id, addr = %advertise, listen = %local, "room node registered");

    let stopping = CancellationToken::new();
    let sessions = TaskTracker::new();
    let config_max_connections = config.max_connections;
    let max_handshakes = config.max_handshakes;
    let internal = config
        .secret
        .as_ref()
        .map(|s| (InternalClient::new(s), proto::handoff::internal_key(s)));
    let grace = Duration::from_secs(config.grace);
    // 0 keeps idle rooms for as long as the budget allows.
    let idle = match config.history_idle {
        0 => Duration::MAX,
        secs => Duration::from_secs(secs),
    };
    let history_budget = config.history_budget;
    let engine = Engine::new(crate::socketio::engine_config(&config), metrics.clone());
    let hooks = Hooks::new(&config, metrics.clone()).map(Arc::new);
    let node = Node::new(Parts {
        config,
        store,
        mirror,
        rooms: rooms.clone(),
        ownership,
        metrics: metrics.clone(),
        registration: registration.clone(),
        sessions: sessions.clone(),
        stopping: stopping.clone(),
        internal,
        connections: Slots::new(config_max_connections),
        handshakes: Slots::new(max_handshakes),
        engine: engine.clone(),
        hooks,
        replication: replication.clone(),
    });
    let fence_rooms = rooms.clone();
    let keeper = crate::cluster::registration::spawn_keeper(
        registration.clone(),
        stopping.clone(),
        metrics.lease_renewal.clone(),
        move || fence_rooms.close_all(&CloseReason::fenced()),
    )?;
    tokio::spawn(replication.clone().follow(
        node.mirror().clone(),
        rooms.clone(),
        stopping.clone(),
    ));
    tokio::spawn(drop_idle_rooms(
        rooms.clone(),
        idle,
        history_budget,
        stopping.clone(),
    ));
    let signal = stopping.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.cancel();
    });

    let limits = node_limits(&node);
    let app = crate::http::routes(node);
    let serve = serve(listener, app, stopping.clone().cancelled_owned(), limits);
    let serving = tokio::spawn(serve);
    stopping.cancelled().await;
    tracing::info!(node = %id, "shutting down: closing every room");
    rooms.close_all(&CloseReason::shutdown());
    sessions.close();
    let drained = tokio::time::timeout(grace, async {
        engine.shutdown().await;
        sessions.wait().await;
        let _ = serving.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(node = %id, "grace period over; dropping what is left");
    }
    let _ = tokio::task::spawn_blocking(move || keeper.join()).await;
    registration.deregister().await;
    feed_stop.cancel();
    tracing::info!(node = %id, "stopped");
    Ok(())
}

/// Drops rooms nobody has been in for `idle`, and the longest idle beyond
/// `budget` bytes of their history, checking every few seconds, until
/// `stop`.
/// How rooms' messages reach their replicas: `None` (rooms accept at once)
/// with `--replication off`, or without `--secret`.
fn replication_outbound(config: &Config) -> Option<Outbound> {
    if config.replication == crate::config::Replication::Off {
        return None;
    }
    match &config.secret {
        Some(secret) => Some(Outbound {
            client: InternalClient::new(secret),
            replica_wait: config.replica_timeout,
        }),
        None => {
            tracing::warn!(
                "no --secret: rooms are not replicated (a crash of this node loses their history)"
            );
            None
        }
    }
}

async fn drop_idle_rooms(rooms: Rooms, idle: Duration, budget: usize, stop: CancellationToken) {
    let every = (idle / 4).clamp(Duration::from_secs(1), IDLE_CHECK);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return,
        }
        let dropped = rooms.drop_idle(idle, budget);
        if dropped > 0 {
            tracing::debug!(dropped, idle = ?idle, "dropped the history of rooms nobody is in");
        }
    }
}

/// Longest pause between checks for idle rooms (and the history budget).
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// A room node's limits, from its flags, counted in
/// `roomnode_rejected_total`.
fn node_limits(node: &Node) -> Limits {
    let config = node.config();
    Limits {
        body: Duration::from_secs(config.body_timeout),
        per_ip: config.max_connections_per_ip,
        rejected: Some(node.metrics().rejected.clone()),
        ..Limits::default()
    }
}
