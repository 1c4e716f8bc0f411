//! Operations started from the dashboard, run in the background so their
//! progress can be watched: `POST /admin/operations` starts a rebalance, a
//! drain or an undrain and answers at once (202); `GET
//! /admin/operations[/{id}]` shows how far each has got (moved, failed, the
//! room last handled, the last lines of its log). One operation that moves
//! rooms runs at a time per router; the last [`KEEP`] are kept in memory.
//! The work itself is [`crate::rebalance::execute`] and
//! [`crate::ops::drain_watched`], the same as the command line's.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use proto::record::NodeState;
use proto::{ErrorCode, InstanceId};
use serde::{Deserialize, Serialize};
use service::client::InternalClient;
use service::error::ApiError;

use crate::admin::events::unix_ms;
use crate::admin::rebalance::PlanSummary;
use crate::app::App;
use crate::ops::{self, DrainStep};
use crate::rebalance::{self, Outcome};

/// Operations kept, finished or not.
const KEEP: usize = 20;
/// Log lines kept per operation.
const LOG_LINES: usize = 50;

/// `POST /admin/operations` body.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Start {
    /// Move every room to its HRW owner.
    Rebalance {
        max_moves: Option<usize>,
        concurrency: Option<usize>,
    },
    /// Stop placing rooms on `node` and move its rooms away.
    Drain {
        node: InstanceId,
        concurrency: Option<usize>,
    },
    /// Let `node` take new rooms again.
    Undrain { node: InstanceId },
}

const SHAPE: &str = "{\"op\": \"rebalance\", \"max_moves\"?: int, \"concurrency\"?: int} \
    or {\"op\": \"drain\"|\"undrain\", \"node\": \"iN\"}";

/// One operation and how far it has got.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Operation {
    id: u64,
    /// `rebalance`, `drain` or `undrain`.
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<InstanceId>,
    /// Who started it (the credential's label).
    by: String,
    /// `running`, `done` or `failed`.
    state: &'static str,
    started_at: u64,
    finished_at: Option<u64>,
    /// Moves planned so far (a drain plans round by round).
    total: u64,
    moved: u64,
    failed: u64,
    /// The move last handled, e.g. `lobby i1 → i4`.
    current: Option<String>,
    /// A rebalance's plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<PlanSummary>,
    /// The last lines of its log.
    log: VecDeque<String>,
    error: Option<String>,
}

impl Operation {
    fn say(&mut self, line: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    fn outcome(&mut self, o: &Outcome) {
        let m = &o.planned;
        self.current = Some(format!("{} {} → {}", m.room, m.from, m.to));
        match &o.error {
            None => self.moved += 1,
            Some(e) => {
                self.failed += 1;
                self.say(format!("FAILED {} {} → {}: {e}", m.room, m.from, m.to));
            }
        }
    }
}

/// One operation, shared with its task.
type Shared = Arc<Mutex<Operation>>;

fn lock(op: &Shared) -> std::sync::MutexGuard<'_, Operation> {
    op.lock().unwrap_or_else(|p| p.into_inner())
}

/// The kept operations. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Operations {
    inner: Arc<Mutex<Kept>>,
}

#[derive(Default)]
struct Kept {
    next: u64,
    list: VecDeque<Shared>,
}

impl Operations {
    /// Registers a new operation, unless it moves rooms while another that
    /// moves rooms runs.
    fn begin(
        &self,
        kind: &'static str,
        node: Option<InstanceId>,
        by: String,
    ) -> Result<Shared, ApiError> {
        let mut kept = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if kind != "undrain"
            && let Some(busy) = kept
                .list
                .iter()
                .map(lock)
                .find(|o| o.state == "running" && o.kind != "undrain")
        {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "operation {} ({}) is still running; wait for it to end",
                    busy.id, busy.kind
                ),
            ));
        }
        kept.next += 1;
        let op = Arc::new(Mutex::new(Operation {
            id: kept.next,
            kind,
            node,
            by,
            state: "running",
            started_at: unix_ms(),
            finished_at: None,
            total: 0,
            moved: 0,
            failed: 0,
            current: None,
            plan: None,
            log: VecDeque::new(),
            error: None,
        }));
        if kept.list.len() == KEEP {
            kept.list.pop_front();
        }
        kept.list.push_back(op.clone());
        Ok(op)
    }

    fn get(&self, id: u64) -> Option<Operation> {
        let kept = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        kept.list
            .iter()
            .map(lock)
            .find(|o| o.id == id)
            .map(|o| o.clone())
    }

    fn newest_first(&self) -> Vec<Operation> {
        let kept = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        kept.list.iter().rev().map(|o| lock(o).clone()).collect()
    }
}

/// `POST /admin/operations`: starts one, answers 202 with it.
pub(crate) async fn start(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Operation>), ApiError> {
    let req: Option<Start> = crate::api::json_body(&body, SHAPE)?;
    let Some(req) = req else {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!("body must be {SHAPE}"),
        ));
    };
    let Some(client) = app.internal_client().cloned() else {
        return Err(ApiError::new(
            ErrorCode::InternalDisabled,
            "this router has no --secret to reach the nodes".into(),
        ));
    };
    let who = super::audit::who(&app, &headers);
    let (kind, node) = match &req {
        Start::Rebalance { .. } => ("rebalance", None),
        Start::Drain { node, .. } => ("drain", Some(*node)),
        Start::Undrain { node } => ("undrain", Some(*node)),
    };
    if let Some(node) = node {
        check_node(&app, kind, node)?;
    }
    let op = app.admin().operations.begin(kind, node, who.clone())?;
    let id = lock(&op).id;
    let action = match node {
        Some(n) => format!("{kind} {n}"),
        None => kind.to_owned(),
    };
    app.admin()
        .audit
        .record(&who, &action, &format!("started (operation {id})"));
    let task = {
        let (app, op) = (app.clone(), op.clone());
        async move {
            let work = async {
                match req {
                    Start::Rebalance {
                        max_moves,
                        concurrency,
                    } => run_rebalance(&app, &client, &op, max_moves, concurrency).await,
                    Start::Drain { node, concurrency } => {
                        run_drain(&app, &client, &op, node, concurrency).await
                    }
                    Start::Undrain { node } => ops::undrain(app.store(), &client, node, &mut |l| {
                        lock(&op).say(l.to_owned())
                    })
                    .await
                    .map_err(|e| e.to_string()),
                }
            };
            // A move in flight when the router stops is either done or not:
            // each is one store transaction, checked against the epoch.
            let result = tokio::select! {
                result = work => result,
                () = app.stopping().cancelled() => Err("the router stopped".into()),
            };
            finish(&app, &op, &who, &action, result);
        }
    };
    tokio::spawn(task);
    let answer = lock(&op).clone();
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// Refuses at once what the operation would refuse later: an unknown node,
/// or draining the last active one.
fn check_node(app: &App, kind: &str, node: InstanceId) -> Result<(), ApiError> {
    let nodes = app.mirror().nodes();
    if !nodes.nodes.contains_key(&node) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("node {node} is not registered"),
        ));
    }
    if kind == "drain"
        && !nodes
            .nodes
            .values()
            .any(|n| n.id != node && n.state == NodeState::Active)
    {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("no active node is left to take {node}'s rooms"),
        ));
    }
    Ok(())
}

/// Marks `op` ended, and logs and audits how.
fn finish(app: &App, op: &Shared, who: &str, action: &str, result: Result<(), String>) {
    let (summary, id) = {
        let mut o = lock(op);
        o.finished_at = Some(unix_ms());
        match result {
            Ok(()) => o.state = "done",
            Err(e) => {
                o.state = "failed";
                o.say(format!("failed: {e}"));
                o.error = Some(e);
            }
        }
        let summary = format!(
            "{}: moved {} room(s), {} failed{}",
            o.state,
            o.moved,
            o.failed,
            o.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
        (summary, o.id)
    };
    app.admin().audit.record(who, action, &summary);
    app.admin().events.push(
        "operation",
        lock(op).node,
        format!("operation {id} ({action}) {summary}"),
    );
}

async fn run_rebalance(
    app: &App,
    client: &InternalClient,
    op: &Shared,
    max_moves: Option<usize>,
    concurrency: Option<usize>,
) -> Result<(), String> {
    let nodes = app.mirror().nodes().nodes.clone();
    let mut plan = {
        let rooms = app.mirror().rooms_where(usize::MAX, |_| true);
        rebalance::plan(&nodes, &rooms)
    };
    if let Some(max) = max_moves {
        plan.moves.truncate(max);
    }
    {
        let mut o = lock(op);
        o.total = plan.moves.len() as u64;
        o.plan = Some(PlanSummary::of(&plan));
        o.say(format!("plan: {} room(s) to move", plan.moves.len()));
    }
    let concurrency = concurrency.unwrap_or(rebalance::DEFAULT_CONCURRENCY);
    let mut flows: BTreeMap<(InstanceId, InstanceId), u64> = BTreeMap::new();
    let summary = rebalance::execute(client, &nodes, plan.moves, concurrency, |o| {
        if o.error.is_none() {
            *flows.entry((o.planned.from, o.planned.to)).or_default() += 1;
        }
        lock(op).outcome(o);
    })
    .await;
    // The nodes wrote the moves; this router's next answers should show them.
    app.mirror().sync_with_store(Duration::from_secs(2)).await;
    let mut o = lock(op);
    for ((from, to), n) in flows {
        o.say(format!("moved {n} room(s) {from} → {to}"));
    }
    if summary.failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} move(s) failed", summary.failed.len()))
    }
}

async fn run_drain(
    app: &App,
    client: &InternalClient,
    op: &Shared,
    node: InstanceId,
    concurrency: Option<usize>,
) -> Result<(), String> {
    let concurrency = concurrency.unwrap_or(rebalance::DEFAULT_CONCURRENCY);
    let result = ops::drain_watched(app.store(), client, node, concurrency, &mut |step| {
        let mut o = lock(op);
        match step {
            DrainStep::Note(line) => o.say(line.to_owned()),
            DrainStep::Round(n) => o.total += n as u64,
            DrainStep::Moved(outcome) => o.outcome(outcome),
        }
    })
    .await;
    app.mirror().sync_with_store(Duration::from_secs(2)).await;
    result.map_err(|e| e.to_string())
}

/// `GET /admin/operations` answer.
#[derive(Debug, Serialize)]
pub(crate) struct OperationList {
    operations: Vec<Operation>,
}

/// `GET /admin/operations`: the kept ones, newest first.
pub(crate) async fn list(State(app): State<App>) -> Json<OperationList> {
    Json(OperationList {
        operations: app.admin().operations.newest_first(),
    })
}

/// `GET /admin/operations/{id}`.
pub(crate) async fn get(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Operation>, ApiError> {
    id.parse()
        .ok()
        .and_then(|id| app.admin().operations.get(id))
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such operation (only the last 20 are kept)"))
}
