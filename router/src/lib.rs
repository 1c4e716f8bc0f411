//! The roomrouter router: places each new room on a node by weighted
//! rendezvous hashing, records the choice in etcd, and proxies clients to
//! their room's node. Stateless: everything it knows is in the store, and
//! its cache (the store mirror) is rebuilt from a watch.
//!
//! Layout:
//! - [`server`]: [`run`], the router on a listener until shutdown, and its
//!   routes; `router serve`.
//! - [`config`]: [`RouterConfig`] and the store's flags, with their
//!   environment variables.
//! - `app`: the shared handle (store, mirror, readiness, metrics, admin
//!   check).
//! - `admin`: the operator dashboard at `/admin` and the admin API it
//!   uses (overview, live node figures, events, audit, operations with
//!   progress, `POST /admin/rebalance`).
//! - `api`: `POST/GET/DELETE /rooms…`, `GET /nodes`.
//! - `backend`: the server API for the application's backend (publish,
//!   members, kick, history), passed on to the room's owner.
//! - `proxy`: the data plane, `/room/{id}` and `/iN/room/{id}`, each also
//!   with its Socket.IO endpoint `…/socket.io/`.
//! - [`generate`]: ALB rules, nginx.conf and Prometheus targets from the
//!   node registry (`router alb-rules`, `nginx-config`, `prometheus-sd`).
//! - `ownership`: who owns a room: find, create, delete, and fail over
//!   (on access and in bulk) rooms whose node is gone.
//! - `metrics`: the Prometheus metrics.
//! - [`ops`]: `router rebalance` and `router drain`, their flags, against
//!   the store.
//! - [`rebalance`]: plan and run live moves to each room's HRW owner.
//! - [`up`]: `router up`, the whole cluster in one process.

mod admin;
mod api;
mod app;
mod backend;
pub mod config;
pub mod generate;
mod metrics;
pub mod ops;
mod ownership;
mod proxy;
pub mod rebalance;
pub mod server;
pub mod up;

pub use config::RouterConfig;
pub use server::{RouterError, run};
