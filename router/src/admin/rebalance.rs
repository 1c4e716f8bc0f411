//! Rebalancing over HTTP: `POST /admin/rebalance` plans (`dry_run`) or
//! plans and moves, answering when done (for scripts), and `GET
//! /admin/plan` summarises the plan for the dashboard (counts per node
//! before and after, and per pair of nodes, not a million moves); the
//! dashboard then runs it as an operation (`operations`) to show progress.

use axum::Json;
use axum::body::Bytes;
use std::collections::BTreeMap;

use axum::extract::State;
use proto::ErrorCode;
use serde::{Deserialize, Serialize};
use service::error::ApiError;

use crate::app::App;
use proto::InstanceId;

use crate::rebalance::{self, Move, Plan, Summary};

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

/// Moves shown in a [`PlanSummary`]: a sample, not the plan.
const SAMPLE: usize = 20;

/// A plan in figures: what the dashboard shows before a rebalance runs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PlanSummary {
    /// Rooms to move.
    moves: usize,
    /// Rooms per live node now.
    before: BTreeMap<InstanceId, u64>,
    /// Rooms per live node after the moves.
    after: BTreeMap<InstanceId, u64>,
    /// Rooms on nodes that are gone (failover moves those).
    orphaned: u64,
    /// Rooms to move per (from, to) pair.
    flows: Vec<Flow>,
    /// The first few moves.
    sample: Vec<Move>,
}

/// Rooms moving from one node to another.
#[derive(Debug, Clone, Serialize)]
struct Flow {
    from: InstanceId,
    to: InstanceId,
    rooms: u64,
}

impl PlanSummary {
    pub(crate) fn of(plan: &Plan) -> Self {
        let mut flows: BTreeMap<(InstanceId, InstanceId), u64> = BTreeMap::new();
        for m in &plan.moves {
            *flows.entry((m.from, m.to)).or_default() += 1;
        }
        Self {
            moves: plan.moves.len(),
            before: plan.before.clone(),
            after: plan.after.clone(),
            orphaned: plan.orphaned,
            flows: flows
                .into_iter()
                .map(|((from, to), rooms)| Flow { from, to, rooms })
                .collect(),
            sample: plan.moves.iter().take(SAMPLE).cloned().collect(),
        }
    }
}

/// `GET /admin/plan`: what a rebalance would do now, from this router's
/// mirror.
pub(crate) async fn plan(State(app): State<App>) -> Json<PlanSummary> {
    let nodes = app.mirror().nodes().nodes.clone();
    let rooms = app.mirror().rooms_where(usize::MAX, |_| true);
    Json(PlanSummary::of(&rebalance::plan(&nodes, &rooms)))
}
