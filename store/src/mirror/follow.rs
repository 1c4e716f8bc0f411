//! Keeping one feed (the node registry, or the rooms) current: read the
//! prefix in pages, watch from that revision, resume from the last applied
//! revision when the watch breaks (an etcd restart or leader change), read
//! again only when the revisions in between are compacted away, and restart
//! a watch that has gone silent: with progress requests, a live watch is
//! never quiet for long.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Feed, STALE_AFTER, Shared};
use crate::StoreError;
use crate::kv::WatchMsg;

/// First and longest pause between attempts to re-establish a watch.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// How the next watch starts.
enum Start {
    /// Read the prefix whole first.
    Reload,
    /// Every change after this revision is still in the store's history.
    After(i64),
}

/// Follows `feed` until `stop`.
pub(super) async fn follow(shared: Arc<Shared>, feed: Feed, stop: CancellationToken) {
    let prefix = shared.prefix(feed);
    let mut pause = RETRY_MIN;
    let mut start = Start::Reload;
    loop {
        let attempt = async {
            let from = match start {
                Start::After(r) => r,
                Start::Reload => shared.reload(feed, &prefix).await?,
            };
            shared.store.watch(&prefix, from).await
        };
        let result = tokio::select! {
            r = attempt => r,
            () = stop.cancelled() => return,
        };
        match result {
            Ok(mut watch) => {
                pause = RETRY_MIN;
                let mut heard = Instant::now();
                loop {
                    let msg = tokio::select! {
                        msg = watch.recv() => msg,
                        () = tokio::time::sleep_until(heard + STALE_AFTER) => {
                            tracing::warn!(feed = feed.name(), silent = ?heard.elapsed(), "store watch went silent; restarting it");
                            None
                        }
                        () = stop.cancelled() => return,
                    };
                    heard = Instant::now();
                    match msg {
                        Some(WatchMsg::Event(ev)) => shared.apply(feed, ev),
                        Some(WatchMsg::Progress(revision)) => shared.reached(feed, revision),
                        Some(WatchMsg::Compacted) => {
                            start = Start::Reload;
                            break;
                        }
                        None => {
                            tracing::warn!(feed = feed.name(), "store watch ended; resuming");
                            start = Start::After(shared.applied(feed));
                            break;
                        }
                    }
                }
                if matches!(start, Start::Reload) {
                    continue;
                }
            }
            Err(StoreError::Compacted) => {
                tracing::info!(
                    feed = feed.name(),
                    "store history compacted; reading it whole again"
                );
                start = Start::Reload;
                continue;
            }
            Err(e) => {
                tracing::warn!(feed = feed.name(), error = %e, "cannot watch the store; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => return,
        }
        pause = (pause * 2).min(RETRY_MAX);
    }
}
