//! The systems under test: what each room is called, where its members
//! connect and what they speak.
//!
//! Layout:
//! - `roomrouter` — rooms created through the router API, three ways in,
//!   natively or as Socket.IO members.
//! - `socketio` — the Socket.IO + Redis baseline, members round-robin over
//!   its servers.

use std::sync::Arc;

use crate::net::Endpoint;
use crate::session::Protocol;

pub mod roomrouter;
pub mod socketio;

/// One room of the run.
#[derive(Debug, Clone)]
pub struct Room {
    /// Its id.
    pub name: String,
    /// Where members connect: member `k` uses `endpoints[k % len]`.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// What they speak.
    pub protocol: Protocol,
    /// The node hosting it, when the target says.
    pub node: Option<String>,
    /// Whether a sender gets its own message back: the expected deliveries
    /// of a message are the room's connected members, or one fewer.
    pub echo: bool,
}

/// The id of room `k` of run `run`.
pub fn room_name(run: &str, k: usize) -> String {
    format!("lg-{run}-{k}")
}
