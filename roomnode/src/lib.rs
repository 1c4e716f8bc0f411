//! A roomrouter room node: every room it owns lives entirely in this
//! process (members, sequence, history), so a broadcast never leaves it.
//!
//! Layout:
//! - [`server`]: [`run`], the node on a listener until shutdown.
//! - [`config`]: [`Config`], flags and environment, validated once.
//! - `node`: the shared handle (identity, config, store, rooms, ownership,
//!   registration, metrics).
//! - `http`: the routes and their thin handlers: the WebSocket join,
//!   health, metrics, and the internal routes.
//! - `member/`: one client in one room: may it join (`admission`, for
//!   every protocol), the WebSocket handshake (`upgrade`), its `session`,
//!   its outgoing bytes (`outlet`, `conn`), how it ends (`close`), what it
//!   may take (`limits`).
//! - `room/`: one room (`room`: members, seq, fan-out, slow-consumer
//!   policy), its `history` and `limits`, and `rooms`, the rooms this node
//!   hosts.
//! - `cluster/`: the node in the cluster: which rooms it serves on the
//!   store's word (`ownership`: resolve a join, activate, adopt, release),
//!   its leased `registration` and the fence, the `internal` API and the
//!   `handoff` that move rooms.
//! - `replication/`: every room copied to its HRW runner-up before a
//!   message counts (`link`: the owner's batches to one replica;
//!   `copies`: the copies held here for other owners, promoted on
//!   failover); the room's side is `room/replica`.
//! - `engineio/`: Engine.IO, the transport under Socket.IO: sessions over
//!   polling and WebSocket, heartbeats.
//! - `socketio/`: Socket.IO on every room: a session's admission, its
//!   packets in (`inbound`) and out (`outbound`).
//! - `backend`: the node's side of the server API (publish as the server,
//!   members, kick, history), behind the cluster key.
//! - `hooks`: the application's join and publish hooks, signed and
//!   bounded, with their failure policy; `feed`: the events feed (every
//!   accepted message, join and leave, batched, at least once).
//! - `metrics`: the Prometheus metrics.
//! - `bench`: a room in isolation, for the micro-benchmarks.
//! - `fuzzing`: the Engine.IO decoders, for the fuzz targets.
//!
//! Dependencies point one way: `close` and `limits` are leaves; a room
//! writes to its members' outlets; `rooms` holds rooms; `ownership`
//! decides what `rooms` holds; `node` holds them all; `admission`,
//! `session`, `internal` and `handoff` work through `node`; `http` routes
//! to them and `server` starts it all.
//!
//! Serving (the HTTP loop, errors, auth, the internal API's client, tracing)
//! comes from the `service` crate, shared with the router.

mod backend;
#[doc(hidden)]
pub mod bench;
mod cluster;
pub mod config;
mod engineio;
mod feed;
#[doc(hidden)]
pub mod fuzzing;
mod hooks;
mod http;
mod member;
mod metrics;
mod node;
mod replication;
mod room;
pub mod server;
mod socketio;

pub use config::Config;
pub use server::{NodeError, run};
