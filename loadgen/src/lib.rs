//! `loadgen`: the load generator for roomrouter and for the Socket.IO +
//! Redis baseline. `run` drives rooms × members with senders at a rate and
//! reports delivery latency, loss, errors and server CPU; `floor` measures
//! the kernel's cost of writing frames to loopback sockets, the floor under
//! any server's CPU per delivery; `bulk-rooms` fills a store with a room
//! table for scale benchmarks.
//!
//! Layout:
//! - `config` — the command line, validated once.
//! - `clock` — the process-wide epoch every timestamp counts from.
//! - `body` — the stamped message body (sender, sequence, send time, padding).
//! - `engineio` — just enough Engine.IO v4 / Socket.IO v4.
//! - `net` — URL resolution, source-address spreading, TCP and WebSocket setup.
//! - `polling` — Engine.IO's long-polling transport (a GET loop, a POST writer).
//! - `session` — one connection's framing for either target and transport.
//! - `target` — where each room's members connect and what they speak
//!   (roomrouter API, natively or Socket.IO; Socket.IO servers).
//! - `conn` — the task per connection: connect, read, send on schedule.
//! - `stats` — windows, latency and gap bookkeeping, loss, sharded histograms.
//! - `errors` — failures by kind.
//! - `scenario` — `run` from plan to report.
//! - `report` — the `run` report: JSON fields and the table.
//! - `floor` — `floor`, with its report.
//! - `bulk` — `bulk-rooms`: a room table written straight into etcd.
//! - `procstat`, `sys` — `/proc` sampling, rlimits, rusage, clock ticks.

pub mod body;
pub mod bulk;
pub mod clock;
pub mod config;
pub mod conn;
pub mod engineio;
pub mod errors;
pub mod floor;
pub mod net;
pub mod polling;
pub mod procstat;
pub mod report;
pub mod scenario;
pub mod session;
pub mod stats;
pub mod sys;
pub mod target;
