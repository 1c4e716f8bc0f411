//! Who owns a room, decided in one place on the router: finding a room's
//! record, creating a room on its HRW owner, deleting it, and giving a room
//! whose owner is gone a new one (failover), on access and in bulk.
//!
//! Failover: a room whose owner is gone (its lease expired: crash,
//! partition, or a stop without drain) gets a new owner, its HRW choice
//! among the live active nodes, with epoch + 1. It happens on the next
//! access through this router ([`locate`]) and, without anyone asking, from
//! a reconciler that every router runs: it finds every orphaned room in its
//! table at once and re-owns them in bulk, [`ROOMS_PER_TXN`] rooms per etcd
//! transaction and several transactions in flight. The compare-and-swap on
//! each record makes racing routers agree (a lost transaction is redone
//! room by room). The room's history lived only on the dead node: the new
//! owner starts a new stream, so resuming clients get `history_gap`.
//!
//! Live moves to a room's HRW owner (rebalance, drain) are the nodes' work,
//! planned in [`crate::rebalance`].

use std::time::Duration;

use futures_util::StreamExt;
use proto::record::RoomRecord;
use proto::{ErrorCode, InstanceId, RoomId};
use service::error::ApiError;
use store::store::ROOMS_PER_TXN;
use store::{Created, StoreError};
use tokio::time::Instant;

use crate::app::App;

/// How often the reconciler looks for rooms on dead nodes.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(1);
/// Failover transactions in flight at once: etcd commits concurrent
/// transactions together, so a few in flight multiply the rate.
const IN_FLIGHT: usize = 8;
/// Longest wait for this router's mirror to show its own write, so the
/// next request here sees it (normally a few milliseconds).
const READ_YOUR_WRITES: Duration = Duration::from_secs(1);

/// 404 for a room that does not exist.
pub(crate) fn unknown_room(id: &RoomId) -> ApiError {
    ApiError::new(ErrorCode::UnknownRoom, format!("room {id} does not exist"))
}

/// 503 when there is no node to place a room on.
fn no_nodes() -> ApiError {
    ApiError::new(
        ErrorCode::NoNodes,
        "no active room node is registered".into(),
    )
}

/// The room's record as this router's mirror has it, whoever owns it.
pub(crate) async fn find(app: &App, id: &RoomId) -> Result<RoomRecord, ApiError> {
    app.mirror()
        .lookup(id)
        .await?
        .ok_or_else(|| unknown_room(id))
}

/// The room's record with a live owner: failed over first if its owner is
/// gone. What a join or a lookup is sent to.
pub(crate) async fn locate(app: &App, id: &RoomId) -> Result<RoomRecord, ApiError> {
    live_owner(app, find(app, id).await?).await
}

/// Creates the room on its HRW owner, or answers the room that exists
/// (with a live owner): idempotent, and two routers racing agree on one
/// owner.
pub(crate) async fn create(app: &App, id: RoomId, private: bool) -> Result<Created, ApiError> {
    let Some(node) = app.mirror().nodes().placement.owner(&id) else {
        // No node to place on, but an existing room is still an answer.
        return match app.mirror().lookup(&id).await? {
            Some(rec) => Ok(Created::Existing(rec)),
            None => Err(no_nodes()),
        };
    };
    let rec = RoomRecord::new(id, node, private, store::store::unix_now());
    Ok(match app.store().create_room(&rec).await? {
        Created::New(rec) => {
            app.mirror().catch_up(READ_YOUR_WRITES).await;
            tracing::info!(room = %rec.id, node = %rec.node, private = rec.private, "room created");
            Created::New(rec)
        }
        Created::Existing(rec) => Created::Existing(live_owner(app, rec).await?),
    })
}

/// Deletes the room: its owner sees the deletion through its watch and
/// closes the room's connections.
pub(crate) async fn delete(app: &App, id: &RoomId) -> Result<(), ApiError> {
    if !app.store().delete_room(id).await? {
        return Err(unknown_room(id));
    }
    app.mirror().catch_up(READ_YOUR_WRITES).await;
    tracing::info!(room = %id, "room deleted");
    Ok(())
}

/// `rec` itself if its owner is registered, else the record after failing
/// it over.
async fn live_owner(app: &App, rec: RoomRecord) -> Result<RoomRecord, ApiError> {
    if app.mirror().nodes().nodes.contains_key(&rec.node) {
        return Ok(rec);
    }
    let Some(target) = app.mirror().nodes().placement.owner(&rec.id) else {
        return Err(no_nodes());
    };
    match app.store().move_room(&rec.id, rec.epoch, target).await {
        Ok(moved) => {
            app.metrics().failovers.inc();
            tracing::warn!(room = %rec.id, from = %rec.node, to = %moved.node, epoch = moved.epoch, "failed over a room whose node is gone");
            app.mirror().catch_up(READ_YOUR_WRITES).await;
            Ok(moved)
        }
        // Someone else (another router) got there first: take their answer.
        Err(StoreError::Conflict(_)) => app
            .store()
            .room(&rec.id)
            .await?
            .ok_or_else(|| unknown_room(&rec.id)),
        Err(e) => Err(e.into()),
    }
}

/// Fails over every room whose node is gone, until the router stops. Also
/// brings a store written by an older version to this layout, once.
pub(crate) async fn reconcile(app: App) {
    let mut migrated = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(RECONCILE_INTERVAL) => {}
            () = app.stopping().cancelled() => return,
        }
        if !app.is_ready() {
            continue;
        }
        if !migrated {
            match app.store().migrate().await {
                Ok(0) => migrated = true,
                Ok(n) => {
                    tracing::info!(rooms = n, "indexed rooms by owner (store layout upgraded)");
                    migrated = true;
                }
                Err(e) => tracing::warn!(error = %e, "cannot upgrade the store layout yet"),
            }
        }
        fail_over_orphans(&app).await;
    }
}

/// One pass: every room of the table whose owner is not registered, moved
/// to its HRW owner. Cheap when there are none (a look at the counts).
async fn fail_over_orphans(app: &App) {
    let nodes = app.mirror().nodes();
    if nodes.placement.is_empty() {
        return;
    }
    let dead = app
        .mirror()
        .room_counts()
        .into_keys()
        .any(|n| !nodes.nodes.contains_key(&n));
    if !dead {
        return;
    }
    let began = Instant::now();
    let moves: Vec<(RoomRecord, InstanceId)> = app
        .mirror()
        .rooms_where(usize::MAX, |r| !nodes.nodes.contains_key(&r.node))
        .into_iter()
        .filter_map(|r| nodes.placement.owner(&r.id).map(|to| (r, to)))
        .collect();
    let total = moves.len();
    let batches: Vec<Vec<_>> = moves.chunks(ROOMS_PER_TXN).map(<[_]>::to_vec).collect();
    let mut outcomes = futures_util::stream::iter(batches)
        .map(|batch| app.store().move_rooms(batch))
        .buffer_unordered(IN_FLIGHT);
    let (mut moved, mut failed) = (0u64, 0u64);
    let mut last_error = None;
    while let Some(batch) = outcomes.next().await {
        for outcome in batch {
            match outcome {
                Ok(_) => moved += 1,
                // Another router moved it first: nothing left to do.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => {
                    failed += 1;
                    last_error = Some(e.to_string());
                }
            }
        }
    }
    app.metrics().failovers.inc_by(moved);
    tracing::warn!(
        orphaned = total,
        moved,
        failed,
        error = last_error,
        took = ?began.elapsed(),
        "failed over the rooms of dead nodes"
    );
    // The next pass must not see these rooms as orphans again.
    app.mirror().catch_up(Duration::from_secs(5)).await;
}
