//! The HTTP and WebSocket plumbing against hostile clients (issue 11), on
//! real processes: deadlines on request bodies, connection caps per client
//! address, HTTP/1.0 upgrades through the router, WebSocket protocol
//! violations (1002, 1007), auth schemes in any case, JSON bodies on
//! refusals of oversized heads, and the order of a join's checks. Requests
//! and frames are written by hand on raw TCP, as a hostile client would.
//!
//! Layout: `raw.rs` is the hostile client (HTTP and WebSocket written by
//! hand on raw TCP); the tests are by topic: `deadlines.rs` (request
//! bodies), `caps.rs` (connections per address), `websocket.rs` (upgrades,
//! protocol violations, a join's checks), `heads.rs` (auth schemes,
//! oversized heads).

mod caps;
mod deadlines;
mod heads;
mod raw;
mod websocket;

use std::time::Duration;

/// Bound on any one answer.
const WAIT: Duration = Duration::from_secs(10);

/// The body deadline the tests give routers and nodes, seconds.
const BODY_TIMEOUT: u64 = 2;
