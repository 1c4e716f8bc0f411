//! Failover: a room whose owner is gone (its lease expired: crash,
//! partition, or a stop without drain) gets a new owner, its HRW choice among
//! the live active nodes, with epoch + 1. It happens on the next access
//! through this router and, without anyone asking, from a reconciler that
//! every router runs; the compare-and-swap on the epoch makes racing routers
//! agree. The room's history lived only on the dead node: the new owner
//! starts a new stream, so resuming clients get `history_gap`.

use std::time::Duration;

use axum::http::StatusCode;
use proto::record::RoomRecord;
use roomnode::error::ApiError;
use store::StoreError;

use crate::app::App;

/// How often the reconciler looks for rooms on dead nodes.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(1);
/// Most rooms failed over per pass, so one pass stays short.
const PER_PASS: usize = 1000;

/// The room's record with a live owner: `rec` itself if its owner is
/// registered, else the record after failing it over.
pub(crate) async fn live_owner(app: &App, rec: RoomRecord) -> Result<RoomRecord, ApiError> {
    if app.mirror().nodes().nodes.contains_key(&rec.node) {
        return Ok(rec);
    }
    fail_over(app, rec).await
}

/// Moves `rec` off its dead owner.
async fn fail_over(app: &App, rec: RoomRecord) -> Result<RoomRecord, ApiError> {
    let Some(target) = app.mirror().nodes().placement.owner(&rec.id) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_nodes",
            "no active room node is registered".into(),
        ));
    };
    match app.store().move_room(&rec.id, rec.epoch, target).await {
        Ok(moved) => {
            app.metrics().failovers.inc();
            tracing::warn!(room = %rec.id, from = %rec.node, to = %moved.node, epoch = moved.epoch, "failed over a room whose node is gone");
            app.mirror().catch_up(Duration::from_secs(1)).await;
            Ok(moved)
        }
        // Someone else (another router) got there first: take their answer.
        Err(StoreError::Conflict(_)) => app
            .store()
            .room(&rec.id)
            .await?
            .ok_or_else(|| crate::api::unknown_room(&rec.id)),
        Err(e) => Err(e.into()),
    }
}

/// Fails over every room whose node is gone, until the router stops.
pub(crate) async fn reconcile(app: App) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(RECONCILE_INTERVAL) => {}
            () = app.stopping().cancelled() => return,
        }
        if !app.is_ready() {
            continue;
        }
        let nodes = app.mirror().nodes();
        if nodes.placement.is_empty() {
            continue;
        }
        let orphans = app
            .mirror()
            .rooms_where(PER_PASS, |r| !nodes.nodes.contains_key(&r.node));
        for rec in orphans {
            if let Err(e) = fail_over(&app, rec).await {
                tracing::warn!(error = e.code(), "failover pass stopped");
                break;
            }
        }
    }
}
