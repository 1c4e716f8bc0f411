//! Test kit for roomrouter's end-to-end tests: real etcd, the real binaries
//! as child processes, and real WebSocket and HTTP clients. It knows nothing
//! of any binary's flags; cluster-level helpers build on top of it.
//!
//! Layout:
//! - [`port`]: [`free_port`], a port nobody listens on right now.
//! - [`wait`]: [`eventually`], the one way tests wait for asynchronous state,
//!   and [`always`], for a state that must last.
//! - [`process`]: [`Proc`], a workspace binary (or any program) as a child
//!   process with its output in a log file, killed on drop; [`bin_path`];
//!   [`process::rss_kib`].
//! - [`etcd`]: [`Etcd`], a throwaway single-member etcd on free ports.
//! - [`bulk`]: writing tens of thousands of rooms straight into the store.
//! - [`cluster`]: [`Cluster`], etcd plus room nodes and routers as real
//!   processes, ready to use, and what etcd says of its rooms.
//! - [`inproc`]: [`inproc::Cluster`], room nodes and routers in this
//!   process (`roomnode::run`, `router::run`) on one memory store, for the
//!   cases that need no process fault.
//! - [`ids`]: instance and room ids from literals, and [`ids::hrw`], the
//!   owner rendezvous hashing picks.
//! - [`ws`]: [`WsClient`], the one WebSocket client, speaking JSON text
//!   frames; [`join`], [`next`], [`ws::refusal`].
//! - [`http`]: [`Http`], a JSON HTTP client that never follows redirects.
//! - [`local`]: where a started node or router listens, and its clients.
//! - [`upstream`]: [`Upstream`], a stand-in room node that answers with
//!   what reached it, to check what a proxy in front of it forwards.
//! - [`metrics`]: the one parser of a `/metrics` page ([`metrics::sum`],
//!   [`metrics::sum_with`], [`metrics::value`]) and scraping it.
//! - [`traffic`]: [`LiveClient`], a client that keeps talking in its room
//!   through moves and faults and records what it received.
//! - [`verdict`]: the one exactly-once verdict on those records: every
//!   accepted body reached every member once, in one order, nothing lost.
//! - [`faults`]: fault phases (etcd outage, frozen node, router restart,
//!   flood) on a [`faults::Scene`], a cluster under live traffic.
//!
//! Every wait in the kit is bounded and fails with a message that says what
//! was awaited (plus the relevant log tail for processes).

pub mod bulk;
pub mod cluster;
pub mod etcd;
pub mod faults;
pub mod http;
pub mod ids;
pub mod inproc;
pub mod local;
pub mod metrics;
pub mod port;
pub mod process;
pub mod traffic;
pub mod upstream;
pub mod verdict;
pub mod wait;
pub mod ws;

pub use cluster::{Cluster, NodeProc, RouterProc};
pub use etcd::Etcd;
pub use http::{Http, Reply};
pub use port::free_port;
pub use process::{Proc, ProcBuilder, bin_path};
pub use traffic::LiveClient;
pub use upstream::Upstream;
pub use wait::{always, eventually, wait_until};
pub use ws::{WsClient, join, next};
