//! The contract between roomrouter's parts: everything two components must
//! agree on byte for byte lives here, and nothing else does.
//!
//! Layout:
//! - [`id`]: instance ids (`i12`) and room ids, validated once at the edge.
//! - [`path`]: the data-plane paths `/iN/room/ID` and legacy `/room/ID`.
//! - [`wire`]: the client ↔ node WebSocket messages and close codes.
//! - [`record`]: the JSON records stored in etcd for nodes and rooms.
//! - [`keys`]: the etcd key schema under a configurable prefix.
//! - [`placement`]: weighted rendezvous hashing over the active nodes.
//! - [`handoff`]: the internal endpoints that move rooms between nodes.
//! - [`replication`]: the owner copying each room's stream to its runner-up.
//! - [`token`]: signed join tokens for private rooms.
//! - [`api`]: the router's HTTP API bodies and the error body shared by all.
//! - [`errors`]: [`ErrorCode`], every error code with its one HTTP status.
//! - [`socketio`]: Socket.IO v5 packets, and how a Socket.IO event and a
//!   native message map onto each other in one room.

pub mod api;
pub mod backend;
pub mod errors;
pub mod handoff;
pub mod hooks;
pub mod id;
pub mod keys;
pub mod path;
pub mod placement;
pub mod record;
pub mod replication;
pub mod socketio;
pub mod token;
pub mod wire;

pub use errors::ErrorCode;
pub use id::{IdError, InstanceId, RoomId};
