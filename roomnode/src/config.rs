//! The node's configuration: one struct, every field a flag with an
//! environment variable, checked once at start.

use std::time::Duration;

use clap::Args;
use proto::InstanceId;
use proto::token::Secret;

/// Default lease TTL, seconds (SPEC).
pub const DEFAULT_LEASE_TTL_SECS: u64 = 10;
/// Default retained messages per room (SPEC).
pub const DEFAULT_HISTORY: usize = 1000;
/// Default bytes of retained history per room: the default thousand
/// messages at 256 bytes each, or four 64 KiB ones.
pub const DEFAULT_HISTORY_BYTES: usize = 256 << 10;
/// Default bytes of history all rooms nobody is in may hold together.
pub const DEFAULT_HISTORY_BUDGET: usize = 1 << 30;
/// Default seconds a room with nobody in it keeps its history.
pub const DEFAULT_HISTORY_IDLE_SECS: u64 = 3600;
/// Default joins in progress on one node (request to admission).
pub const DEFAULT_MAX_HANDSHAKES: usize = 256;
/// Default joins per second one room admits, sustained.
pub const DEFAULT_ROOM_JOIN_RATE: u32 = 200;
/// Default joins one room admits at once above the sustained rate.
pub const DEFAULT_ROOM_JOIN_BURST: u32 = 1000;
/// Default most members of a room whose joins and leaves are announced one
/// by one.
pub const DEFAULT_PRESENCE_LIMIT: usize = 100;
/// Default largest client frame, bytes (SPEC: 64 KiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
/// Default frames queued per member before it is a slow consumer (SPEC).
pub const DEFAULT_MAX_QUEUE: usize = 1024;
/// Default time between pings to a member (below the 60 s idle timeout of
/// an AWS ALB, so quiet rooms are not cut off).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(25);
/// Default time a Socket.IO client has to answer a ping.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// Default time a new Socket.IO session has to send its CONNECT.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(45);
/// Default most members in one room.
pub const DEFAULT_MAX_MEMBERS: usize = 10_000;
/// Default most member connections on one node (keep below the process's
/// open-file limit).
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_000;
/// Default sustained messages per second one connection may send.
pub const DEFAULT_RATE: u32 = 50;
/// Default burst above the sustained rate.
pub const DEFAULT_BURST: u32 = 100;
/// Default time a replica may go without answering before its rooms refuse
/// messages.
pub const DEFAULT_REPLICA_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on a graceful shutdown, seconds.
pub const DEFAULT_GRACE_SECS: u64 = 10;

/// What a room node is and how it behaves.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// This node's instance id, `i1`..`i9999`; in Kubernetes the StatefulSet
    /// ordinal + 1. Two live nodes can never share one.
    #[arg(long, env = "ROOMNODE_ID")]
    pub id: InstanceId,
    /// The URL routers use to reach this node, e.g. `http://10.0.0.5:9000`.
    /// Defaults to `http://<listen>` when that is a specific address.
    #[arg(long, env = "ROOMNODE_ADVERTISE")]
    pub advertise: Option<String>,
    /// Relative share of new rooms (positive).
    #[arg(long, env = "ROOMNODE_WEIGHT", default_value_t = 1.0)]
    pub weight: f64,
    /// Registration lease TTL in seconds: a dead node disappears after it.
    #[arg(long, env = "ROOMNODE_LEASE_TTL", default_value_t = DEFAULT_LEASE_TTL_SECS)]
    pub lease_ttl: u64,
    /// Create unknown rooms on this node when a client joins them.
    #[arg(long, env = "ROOMNODE_AUTO_CREATE")]
    pub auto_create: bool,
    /// Messages retained per room for resume (`since`).
    #[arg(long, env = "ROOMNODE_HISTORY", default_value_t = DEFAULT_HISTORY)]
    pub history: usize,
    /// Bytes of retained history per room (the oldest messages go first);
    /// with `--history` it bounds what a room holds, whatever its senders do.
    #[arg(long, env = "ROOMNODE_HISTORY_BYTES", default_value_t = DEFAULT_HISTORY_BYTES)]
    pub history_bytes: usize,
    /// Seconds a room nobody is in keeps its history; after that it is
    /// dropped from memory, and the next join starts a new stream (resuming
    /// clients get `history_gap`). 0 keeps it for as long as the node runs.
    #[arg(long, env = "ROOMNODE_HISTORY_IDLE", default_value_t = DEFAULT_HISTORY_IDLE_SECS)]
    pub history_idle: u64,
    /// Bytes of history that rooms nobody is in may hold together; beyond
    /// it the longest idle are dropped first (checked every few seconds).
    #[arg(long, env = "ROOMNODE_HISTORY_BUDGET", default_value_t = DEFAULT_HISTORY_BUDGET)]
    pub history_budget: usize,
    /// Most members of a room whose joins and leaves are announced one by
    /// one (`joined`/`left`); a larger room announces only its member count
    /// (`members`), at most once a second, so a join storm costs O(N).
    #[arg(long, env = "ROOMNODE_PRESENCE_LIMIT", default_value_t = DEFAULT_PRESENCE_LIMIT)]
    pub presence_limit: usize,
    /// Most joins in progress on this node (from the request to the
    /// member's admission); beyond: 503 `too_many_handshakes` with
    /// `Retry-After`.
    #[arg(long, env = "ROOMNODE_MAX_HANDSHAKES", default_value_t = DEFAULT_MAX_HANDSHAKES)]
    pub max_handshakes: usize,
    /// Joins per second one room admits, sustained; beyond: 503
    /// `join_rate_limited` with `Retry-After`.
    #[arg(long, env = "ROOMNODE_ROOM_JOIN_RATE", default_value_t = DEFAULT_ROOM_JOIN_RATE)]
    pub room_join_rate: u32,
    /// Joins one room admits at once above its sustained rate.
    #[arg(long, env = "ROOMNODE_ROOM_JOIN_BURST", default_value_t = DEFAULT_ROOM_JOIN_BURST)]
    pub room_join_burst: u32,
    /// Largest client frame in bytes; larger closes with 1009.
    #[arg(long, env = "ROOMNODE_MAX_FRAME_BYTES", default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
    /// Frames queued per member; a member further behind is disconnected
    /// with 1008 (slow consumer).
    #[arg(long, env = "ROOMNODE_MAX_QUEUE", default_value_t = DEFAULT_MAX_QUEUE)]
    pub max_queue: usize,
    /// Longest graceful shutdown, seconds.
    #[arg(long, env = "ROOMNODE_GRACE", default_value_t = DEFAULT_GRACE_SECS)]
    pub grace: u64,
    /// Time between keep-alive checks (`25s`, `300ms`; a bare number is
    /// seconds): a native member quiet at a check is pinged, and dropped at
    /// the next one if it sent nothing back (a silent member goes after
    /// about two intervals); 0 turns native pings off. Also Socket.IO's
    /// `pingInterval` (25 s when this is 0).
    #[arg(long, env = "ROOMNODE_PING_INTERVAL", default_value = "25s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// Time a Socket.IO client has to answer a ping (`pingTimeout`).
    #[arg(long, env = "ROOMNODE_PING_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub ping_timeout: Duration,
    /// Time a new Socket.IO session has to send its CONNECT packet.
    #[arg(long, env = "ROOMNODE_CONNECT_TIMEOUT", default_value = "45s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Copy each room's stream to its HRW runner-up before a message counts
    /// as accepted, so that failover loses nothing (`on`); `off` accepts at
    /// once, and a failover starts a new stream. Needs `--secret`.
    #[arg(long, env = "ROOMNODE_REPLICATION", value_enum, default_value_t = Replication::On)]
    pub replication: Replication,
    /// How long a room's replica may go without answering before the room
    /// refuses messages (`not_accepted`, retryable) instead of holding
    /// them, until the replica answers again or its lease expires and
    /// another node replaces it.
    #[arg(long, env = "ROOMNODE_REPLICA_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub replica_timeout: Duration,
    /// Milliseconds a room holds its frames after the first one, so each
    /// member gets all of them in one write (fewer system calls under load,
    /// at up to that much added latency; `--max-queue` must cover a
    /// window's frames). 0, the default, writes each frame as it comes.
    #[arg(long, env = "ROOMNODE_FLUSH_WINDOW_MS", default_value_t = 0)]
    pub flush_window_ms: u64,
    /// Most members in one room; a join beyond gets 503 `room_full`.
    #[arg(long, env = "ROOMNODE_MAX_MEMBERS", default_value_t = DEFAULT_MAX_MEMBERS)]
    pub max_members: usize,
    /// Most member connections on this node; a join beyond gets 503
    /// `node_full` before the upgrade.
    #[arg(long, env = "ROOMNODE_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds a client may take to send a request's body after its head;
    /// past it the request gets 408 and its connection is closed. Joins
    /// have no body; internal moves post room state, and their sender
    /// gives up after the same 30 s.
    #[arg(long, env = "ROOMNODE_BODY_TIMEOUT", default_value_t = service::client::CALL_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout: u64,
    /// Most connections open at once from one client address (an IPv6
    /// /64), members included; more are closed unanswered and counted in
    /// `roomnode_rejected_total{reason="per_ip"}`. 0, the default, is no
    /// limit: behind a load balancer or a router every connection comes
    /// from the balancer's address.
    #[arg(long, env = "ROOMNODE_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: usize,
    /// Messages per second one connection may send, sustained; above it a
    /// send is refused with `rate_limited`, and a client that keeps at it
    /// for a whole burst more is closed with 1008.
    #[arg(long, env = "ROOMNODE_RATE", default_value_t = DEFAULT_RATE)]
    pub rate: u32,
    /// Messages a connection may send at once above the sustained rate.
    #[arg(long, env = "ROOMNODE_BURST", default_value_t = DEFAULT_BURST)]
    pub burst: u32,
    /// Browser origins allowed to join (comma-separated, e.g.
    /// `https://chat.example.com`); empty allows every origin. Requests
    /// without `Origin` (non-browser clients) are always allowed.
    #[arg(long, env = "ROOMNODE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Cluster secret that verifies join tokens of private rooms (the same
    /// as the routers'). Without it, private rooms cannot be joined here.
    #[arg(long, env = "ROOMROUTER_SECRET", hide_env_values = true)]
    pub secret: Option<Secret>,
    /// The secret before the last rotation, still accepted.
    #[arg(long, env = "ROOMROUTER_PREVIOUS_SECRET", hide_env_values = true)]
    pub previous_secret: Option<Secret>,
    /// Most events one request of the events feed carries.
    #[arg(long, env = "ROOMNODE_EVENTS_BATCH", default_value_t = 100)]
    pub events_batch: usize,
    /// Events waiting for the backend, at most, on this node; more are
    /// dropped and counted (`roomnode_hook_events_dropped_total`).
    #[arg(long, env = "ROOMNODE_EVENTS_BUFFER", default_value_t = 100_000)]
    pub events_buffer: usize,
    /// The application's hooks.
    #[command(flatten)]
    pub hooks: HookArgs,
    /// Publish hook calls in flight at once on this node; more wait (a
    /// room's throughput through the hook is this over the hook's latency).
    #[arg(long, env = "ROOMNODE_PUBLISH_HOOK_CONCURRENCY", default_value_t = 256)]
    pub publish_hook_concurrency: usize,
}

/// The application's hooks and how they are called; `router up` takes the
/// same flags for its nodes.
#[derive(Debug, Clone, Args)]
pub struct HookArgs {
    /// The application's backend, asked before each member is admitted
    /// (`http://…`; see docs/hooks.md).
    #[arg(long, env = "ROOMNODE_JOIN_HOOK")]
    pub join_hook: Option<String>,
    /// The application's backend, asked before each message is accepted.
    #[arg(long, env = "ROOMNODE_PUBLISH_HOOK")]
    pub publish_hook: Option<String>,
    /// The application's backend, sent every accepted message, join and
    /// leave in batches, at least once, in seq order per room.
    #[arg(long, env = "ROOMNODE_EVENTS_HOOK")]
    pub events_hook: Option<String>,
    /// Signs every hook request (`X-Roomrouter-Signature`); required with
    /// a hook.
    #[arg(long, env = "ROOMNODE_HOOK_SECRET", hide_env_values = true)]
    pub hook_secret: Option<Secret>,
    /// Longest wait for the join and publish hooks' answer.
    #[arg(long, env = "ROOMNODE_HOOK_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub hook_timeout: Duration,
    /// What a join or publish hook that fails (times out, answers non-2xx
    /// or nonsense) means: `closed` refuses the join or message, `open`
    /// lets it through.
    #[arg(long, env = "ROOMNODE_HOOK_FAILURE", value_enum, default_value_t = HookFailure::Closed)]
    pub hook_failure: HookFailure,
}

impl Default for HookArgs {
    fn default() -> Self {
        Self {
            join_hook: None,
            publish_hook: None,
            events_hook: None,
            hook_secret: None,
            hook_timeout: Duration::from_secs(2),
            hook_failure: HookFailure::Closed,
        }
    }
}

/// Whether rooms are copied to their runner-up (`--replication`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Replication {
    /// Every message is confirmed by the room's replica before it counts.
    On,
    /// Messages count at once; a node's death loses its rooms' history.
    Off,
}

/// What a failed join or publish hook call means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HookFailure {
    /// Refuse: the backend must say yes.
    Closed,
    /// Let it through.
    Open,
}

/// A configuration that cannot work, naming the flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// See the message.
    #[error("--weight must be a positive number, got {0}")]
    Weight(f64),
    /// See the message.
    #[error("--lease-ttl must be at least 2 seconds, got {0}")]
    LeaseTtl(u64),
    /// See the message.
    #[error(
        "--max-queue, --max-frame-bytes, --max-members, --max-connections, --rate and --burst must be positive"
    )]
    Limits,
    /// See the message.
    #[error(
        "--ping-timeout, --connect-timeout, --hook-timeout, --replica-timeout, --publish-hook-concurrency, --events-batch and --events-buffer must be positive"
    )]
    Timeouts,
    /// See the message.
    #[error("a hook must be an http:// URL, got {0:?}")]
    Hook(String),
    /// See the message.
    #[error(
        "--join-hook, --publish-hook and --events-hook need --hook-secret to sign their requests"
    )]
    HookSecret,
    /// See the message.
    #[error("--advertise must be an http:// or https:// URL, got {0:?}")]
    Advertise(String),
}

impl Config {
    /// Defaults for everything but the id and the advertised URL.
    pub fn new(id: InstanceId, advertise: String) -> Self {
        Self {
            id,
            advertise: Some(advertise),
            weight: 1.0,
            lease_ttl: DEFAULT_LEASE_TTL_SECS,
            auto_create: false,
            history: DEFAULT_HISTORY,
            history_bytes: DEFAULT_HISTORY_BYTES,
            history_idle: DEFAULT_HISTORY_IDLE_SECS,
            history_budget: DEFAULT_HISTORY_BUDGET,
            presence_limit: DEFAULT_PRESENCE_LIMIT,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            room_join_rate: DEFAULT_ROOM_JOIN_RATE,
            room_join_burst: DEFAULT_ROOM_JOIN_BURST,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_queue: DEFAULT_MAX_QUEUE,
            grace: DEFAULT_GRACE_SECS,
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            flush_window_ms: 0,
            replication: Replication::On,
            replica_timeout: DEFAULT_REPLICA_TIMEOUT,
            max_members: DEFAULT_MAX_MEMBERS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            body_timeout: service::client::CALL_TIMEOUT.as_secs(),
            max_connections_per_ip: 0,
            rate: DEFAULT_RATE,
            burst: DEFAULT_BURST,
            allowed_origins: Vec::new(),
            secret: None,
            previous_secret: None,
            hooks: HookArgs::default(),
            events_batch: 100,
            events_buffer: 100_000,
            publish_hook_concurrency: 256,
        }
    }

    /// Checks the values that clap cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(ConfigError::Weight(self.weight));
        }
        if self.lease_ttl < 2 {
            return Err(ConfigError::LeaseTtl(self.lease_ttl));
        }
        if self.max_queue == 0
            || self.max_frame_bytes == 0
            || self.max_members == 0
            || self.max_connections == 0
            || self.max_handshakes == 0
            || self.room_join_rate == 0
            || self.room_join_burst == 0
            || self.rate == 0
            || self.burst == 0
        {
            return Err(ConfigError::Limits);
        }
        if self.ping_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(ConfigError::Timeouts);
        }
        let hooks = [
            &self.hooks.join_hook,
            &self.hooks.publish_hook,
            &self.hooks.events_hook,
        ];
        for url in hooks.into_iter().flatten() {
            if !url.starts_with("http://") {
                return Err(ConfigError::Hook(url.clone()));
            }
        }
        if hooks.iter().any(|h| h.is_some()) && self.hooks.hook_secret.is_none() {
            return Err(ConfigError::HookSecret);
        }
        if self.hooks.hook_timeout.is_zero()
            || self.replica_timeout.is_zero()
            || self.publish_hook_concurrency == 0
            || self.events_batch == 0
            || self.events_buffer == 0
        {
            return Err(ConfigError::Timeouts);
        }
        if let Some(a) = &self.advertise
            && !(a.starts_with("http://") || a.starts_with("https://"))
        {
            return Err(ConfigError::Advertise(a.clone()));
        }
        Ok(())
    }

    /// The ping interval, if pings are on.
    pub fn ping(&self) -> Option<Duration> {
        (!self.ping_interval.is_zero()).then_some(self.ping_interval)
    }

    /// Socket.IO's `pingInterval`.
    pub fn socketio_ping(&self) -> Duration {
        self.ping().unwrap_or(DEFAULT_PING_INTERVAL)
    }

    /// The flush window, if coalescing is on.
    pub fn flush_window(&self) -> Option<Duration> {
        (self.flush_window_ms > 0).then(|| Duration::from_millis(self.flush_window_ms))
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl)
    }
}

/// A duration flag: `300ms`, `25s`, `1m 30s` (humantime), or a bare number
/// of seconds, as these flags took before.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 300ms, 25s, 2m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_bare_numbers_are_seconds() {
        assert_eq!(parse_duration("25"), Ok(Duration::from_secs(25)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        let err = parse_duration("soon").unwrap_err();
        assert!(err.contains("examples"), "{err}");
        assert!(parse_duration("-1").is_err());
    }
}
