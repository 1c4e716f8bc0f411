//! Admin endpoints, for operators who prefer HTTP to the command line:
//! `POST /admin/rebalance`. They need `--admin-token` to be set (and given),
//! and `--secret` to reach the nodes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use proto::ErrorCode;
use serde::{Deserialize, Serialize};
use service::error::ApiError;

use crate::app::App;
use crate::rebalance::{self, Plan, Summary};

/// `POST /admin/rebalance` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RebalanceRequest {
    #[serde(default)]
    dry_run: bool,
    max_moves: Option<usize>,
    concurrency: Option<usize>,
}

/// `POST /admin/rebalance` answer.
#[derive(Debug, Serialize)]
pub(crate) struct RebalanceAnswer {
    plan: Plan,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<Summary>,
}

/// Plans from this router's mirror and, unless `dry_run`, moves.
pub(crate) async fn rebalance(
    State(app): State<App>,
    body: Bytes,
) -> Result<Json<RebalanceAnswer>, ApiError> {
    let req: RebalanceRequest = crate::api::json_body(
        &body,
        "{\"dry_run\"?: bool, \"max_moves\"?: int, \"concurrency\"?: int}",
    )?;
    let Some(client) = app.internal_client() else {
        return Err(ApiError::new(
            ErrorCode::InternalDisabled,
            "this router has no --secret to reach the nodes".into(),
        ));
    };
    let nodes = app.mirror().nodes().nodes.clone();
    let rooms = app.mirror().rooms_where(usize::MAX, |_| true);
    let mut plan = rebalance::plan(&nodes, &rooms);
    if req.dry_run {
        return Ok(Json(RebalanceAnswer {
            plan,
            summary: None,
        }));
    }
    if let Some(max) = req.max_moves {
        plan.moves.truncate(max);
    }
    let concurrency = req.concurrency.unwrap_or(rebalance::DEFAULT_CONCURRENCY);
    let summary = rebalance::execute(client, &nodes, plan.moves.clone(), concurrency, |_| {}).await;
    // The nodes wrote the moves; this router's next answers should show them.
    app.mirror()
        .sync_with_store(std::time::Duration::from_secs(2))
        .await;
    tracing::info!(
        moved = summary.moved,
        failed = summary.failed.len(),
        "rebalance over HTTP"
    );
    Ok(Json(RebalanceAnswer {
        plan,
        summary: Some(summary),
    }))
}
