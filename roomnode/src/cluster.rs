//! The node's part in the cluster: which rooms it serves on the store's
//! word, its leased registration in the store, and the internal API
//! through which routers move rooms between nodes.
//!
//! Layout:
//! - `registration`: the leased registration, its renewal and the fence.
//! - `ownership`: which rooms this node serves, on the store's word:
//!   resolve a join, activate, adopt, release.
//! - `internal`: the internal routes (behind the cluster key): handoff,
//!   adopt, state.
//! - `handoff`: the owner's side of a move.

pub(crate) mod handoff;
pub(crate) mod internal;
pub(crate) mod ownership;
pub(crate) mod registration;
