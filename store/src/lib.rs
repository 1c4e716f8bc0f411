//! The coordination store: which nodes are alive (leased registrations) and
//! which node owns each room (durable assignments), with the operations the
//! rest of the system needs and nothing more.
//!
//! Layout:
//! - [`kv`]: the key-value backend contract ([`kv::Kv`]) and its two
//!   implementations, [`kv::etcd`] (a real etcd v3 cluster) and
//!   [`kv::memory`] (in-process, for `router up` only), with identical
//!   semantics checked by one behavioural suite (`tests/tests/store.rs`).
//! - [`store`]: [`Store`], typed node and room operations over a backend
//!   (registration, create-if-absent, compare-and-swap moves).
//! - [`mirror`]: [`Mirror`], an always-current in-memory copy of what a
//!   process needs (the node registry, and every room for a router or its
//!   own rooms for a node), loaded in pages and kept by watches that resume
//!   after a break, so lookups never wait on the network; it says when it
//!   is stale.
//! - [`error`]: what can fail, as [`StoreError`].

pub mod error;
pub mod kv;
pub mod mirror;
pub mod store;

pub use error::StoreError;
pub use kv::{Backend, LeaseId};
pub use mirror::{Change, Mirror, NodeSet, Scope, Staleness};
pub use store::{Created, Store};

/// Results of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
