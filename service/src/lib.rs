//! What both roomrouter services are served with, below `router` and
//! `roomnode` (so the router needs the node crate only to run nodes in its
//! own process, `router up`):
//!
//! Layout:
//! - [`server`]: the HTTP server loop with its limits (head and body
//!   deadlines, connections per client address, oversized heads), binding,
//!   graceful stop.
//! - [`error`]: [`error::ApiError`], the one JSON error answer, and the
//!   layer every route is behind: it gives the framework's own refusals
//!   the same body and logs each refusal once.
//! - [`extract`]: [`extract::RoomPath`], the parsed `{room}` path
//!   parameter of a route.
//! - [`auth`]: bearer credentials and constant-time comparison.
//! - [`client`]: the typed client of a node's internal API (moves, state).
//! - [`process`]: tracing set-up and the shutdown signal.

pub mod auth;
pub mod client;
pub mod error;
pub mod extract;
pub mod process;
pub mod server;
