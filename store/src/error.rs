//! What can go wrong talking to the store. Callers map
//! [`StoreError::Unavailable`] to 503 and keep serving from their caches.

use proto::InstanceId;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer in time or refused the connection.
    #[error("coordination store unavailable: {0}")]
    Unavailable(String),
    /// Another live process holds this node id.
    #[error("node id {0} is already registered by another live node; each node needs its own --id")]
    NodeIdTaken(InstanceId),
    /// The lease is gone (expired or revoked): the registration is lost.
    #[error("lease expired or revoked")]
    LeaseExpired,
    /// The store refused the write for good measure: etcd's space quota is
    /// exhausted (the NOSPACE alarm). Nothing was written; deletes still
    /// work, and an operator must compact, defragment and disarm.
    #[error("coordination store is full (etcd NOSPACE alarm): {0}")]
    NoSpace(String),
    /// A read at, or a watch from, a revision the store has compacted away.
    #[error("revision compacted away")]
    Compacted,
    /// A compare-and-swap lost: the record changed since it was read.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A record that is not the JSON this version writes.
    #[error("unreadable record at {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// The parse error.
        reason: String,
    },
}

impl From<etcd_client::Error> for StoreError {
    fn from(e: etcd_client::Error) -> Self {
        match e {
            etcd_client::Error::LeaseKeepAliveError(_) => Self::LeaseExpired,
            etcd_client::Error::GRpcStatus(s) if s.message().contains("compacted") => {
                Self::Compacted
            }
            etcd_client::Error::GRpcStatus(s)
                if s.message().contains("database space exceeded") =>
            {
                Self::NoSpace(s.message().to_owned())
            }
            other => Self::Unavailable(other.to_string()),
        }
    }
}
