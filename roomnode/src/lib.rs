//! A roomrouter room node: every room it owns lives entirely in this
//! process (members, sequence, history), so a broadcast never leaves it.
//!
//! Layout:
//! - [`server`]: [`run`], the node on a listener until shutdown.
//! - [`config`]: [`Config`], flags and environment, validated once.
//! - `node`: the shared handle (identity, rooms, store, metrics).
//! - `http`: the routes: WebSocket join with ownership checks, health,
//!   metrics.
//! - `internal`: the handoff, adopt and drain endpoints that move rooms.
//! - `registration`: the leased registration, its renewal and the fence.
//! - `rooms`: the hosted rooms by id, kept in line with the store.
//! - `room`: one room: members, seq, fan-out, slow-consumer policy.
//! - `close`: how a connection ends (close codes, reasons, last frames).
//! - `limits`: connections per node, messages per connection.
//! - `history`: the ring of recent messages behind `since` resume.
//! - `upgrade`: the WebSocket handshake, keeping the raw connection.
//! - `session`: one member's WebSocket: reads its frames, runs its writes.
//! - `outlet`: a member's outgoing bytes: frames written straight by the
//!   broadcasting thread, or queued when the socket is full.
//! - `conn`: the connection under tungstenite, writing through the outlet.
//! - `metrics`: the Prometheus metrics.
//!
//! Serving (the HTTP loop, errors, auth, the internal API's client, tracing)
//! comes from the `service` crate, shared with the router.

#[doc(hidden)]
pub mod bench;
mod close;
pub mod config;
mod conn;
#[allow(dead_code, unused_imports)] // wired into the routes by the Socket.IO layer
mod engineio;
mod history;
mod http;
mod internal;
mod limits;
mod metrics;
mod node;
mod outlet;
mod registration;
mod room;
mod rooms;
pub mod server;
mod session;
mod upgrade;

pub use config::Config;
pub use server::{NodeError, run};
