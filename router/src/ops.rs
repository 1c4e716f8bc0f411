//! The operator commands that change where rooms live, run against the
//! store: `router rebalance` and `router drain`, their flags and what they
//! do.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use proto::InstanceId;
use proto::record::{NodeRecord, NodeState, RoomRecord};
use proto::token::Secret;
use service::client::{CallError, InternalClient};
use store::{Store, StoreError};

use crate::config::StoreArgs;
use crate::rebalance::{self, Outcome, Plan, Summary};

/// Rounds `drain` tries before giving up on rooms that would not move.
const DRAIN_ROUNDS: usize = 5;
/// Pause between drain rounds.
const DRAIN_PAUSE: Duration = Duration::from_secs(1);

/// Talking to the nodes' internal endpoints.
#[derive(Debug, clap::Args)]
struct ClusterArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The cluster secret (the nodes' `--secret`): internal calls are
    /// authenticated with a key derived from it.
    #[arg(
        long,
        env = "ROOMROUTER_SECRET",
        hide_env_values = true,
        required = true
    )]
    secret: Option<Secret>,
    /// Handoff requests in flight at once, each a batch of up to 42 rooms
    /// with one owner and one target.
    #[arg(long, env = "ROUTER_MOVE_CONCURRENCY", default_value_t = rebalance::DEFAULT_CONCURRENCY)]
    concurrency: usize,
}

impl ClusterArgs {
    fn client(&self) -> InternalClient {
        InternalClient::new(self.secret.as_ref().expect("clap requires --secret"))
    }
}

/// `router rebalance` flags.
#[derive(Debug, clap::Args)]
pub struct RebalanceArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Print the plan only.
    #[arg(long)]
    dry_run: bool,
    /// Move at most this many rooms.
    #[arg(long)]
    max_moves: Option<usize>,
}

impl RebalanceArgs {
    /// `router rebalance`, printing its progress.
    pub async fn run(self) -> anyhow::Result<()> {
        let store = self.cluster.store.connect().await?;
        let opts = RebalanceOptions {
            dry_run: self.dry_run,
            max_moves: self.max_moves,
            concurrency: self.cluster.concurrency,
        };
        rebalance(&store, &self.cluster.client(), opts, &mut print)
            .await
            .context("rebalance")?;
        Ok(())
    }
}

/// `router drain` flags.
#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    /// The node to drain, e.g. `i3`.
    node: InstanceId,
    /// Undo a drain: the node takes new rooms again.
    #[arg(long)]
    cancel: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

impl DrainArgs {
    /// `router drain` (or, with `--cancel`, its undoing), printing its
    /// progress.
    pub async fn run(self) -> anyhow::Result<()> {
        let store = self.cluster.store.connect().await?;
        let client = self.cluster.client();
        if self.cancel {
            return Ok(undrain(&store, &client, self.node, &mut print).await?);
        }
        drain(
            &store,
            &client,
            self.node,
            self.cluster.concurrency,
            &mut print,
        )
        .await
        .with_context(|| format!("drain {}", self.node))
    }
}

/// A command's progress, one line at a time, on stdout.
fn print(line: &str) {
    println!("{line}");
}

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A node refused or did not answer.
    #[error(transparent)]
    Call(#[from] CallError),
    /// See the message.
    #[error("node {0} is not registered")]
    NoSuchNode(InstanceId),
    /// See the message.
    #[error("no active node is left to take {0}'s rooms")]
    NowhereToGo(InstanceId),
    /// See the message.
    #[error("{left} room(s) are still on {node} after {DRAIN_ROUNDS} rounds; see the errors above")]
    Incomplete {
        /// The node.
        node: InstanceId,
        /// Rooms left on it.
        left: usize,
    },
    /// Some moves failed.
    #[error("{0} move(s) failed; see the errors above (running the command again retries them)")]
    MovesFailed(usize),
}

/// Every live node, and `node`'s record among them.
async fn registered(
    store: &Store,
    node: InstanceId,
) -> Result<(Vec<NodeRecord>, NodeRecord), OpsError> {
    let nodes = store.nodes().await?;
    let rec = nodes
        .iter()
        .find(|n| n.id == node)
        .cloned()
        .ok_or(OpsError::NoSuchNode(node))?;
    Ok((nodes, rec))
}

/// `router drain iN --cancel`: the node takes new rooms again.
pub async fn undrain(
    store: &Store,
    client: &InternalClient,
    node: InstanceId,
    out: &mut impl FnMut(&str),
) -> Result<(), OpsError> {
    let (_, rec) = registered(store, node).await?;
    client.set_state(&rec.addr, NodeState::Active).await?;
    out(&format!("{node} is active again: it takes new rooms"));
    Ok(())
}

/// Live nodes and every room (or only `of` that node's, from its index),
/// from the store, as one paged snapshot.
pub async fn load(
    store: &Store,
    of: Option<InstanceId>,
) -> Result<(BTreeMap<InstanceId, NodeRecord>, Vec<RoomRecord>), StoreError> {
    let nodes = store
        .nodes()
        .await?
        .into_iter()
        .map(|n| (n.id, n))
        .collect();
    Ok((nodes, store.all_rooms(of).await?))
}

/// How a rebalance runs.
#[derive(Debug, Clone, Copy)]
pub struct RebalanceOptions {
    /// Only print the plan.
    pub dry_run: bool,
    /// Move at most this many rooms.
    pub max_moves: Option<usize>,
    /// Handoff requests (batches of rooms) in flight at once.
    pub concurrency: usize,
}

/// `router rebalance`: plans, prints the plan, moves, prints the result.
pub async fn rebalance(
    store: &Store,
    client: &InternalClient,
    opts: RebalanceOptions,
    out: &mut impl FnMut(&str),
) -> Result<(Plan, Summary), OpsError> {
    let (nodes, rooms) = load(store, None).await?;
    let mut plan = rebalance::plan(&nodes, &rooms);
    out(&format!("plan: {}", rebalance::describe(&plan)));
    if opts.dry_run {
        out("dry run: nothing moved");
        return Ok((plan, Summary::default()));
    }
    if let Some(max) = opts.max_moves {
        plan.moves.truncate(max);
    }
    let total = plan.moves.len();
    let mut done = 0;
    let summary = rebalance::execute(client, &nodes, plan.moves.clone(), opts.concurrency, |o| {
        done += 1;
        match &o.error {
            None => out(&format!(
                "[{done}/{total}] moved {} {} -> {}",
                o.planned.room, o.planned.from, o.planned.to
            )),
            Some(e) => out(&format!(
                "[{done}/{total}] FAILED {} {} -> {}: {e}",
                o.planned.room, o.planned.from, o.planned.to
            )),
        }
    })
    .await;
    let (nodes_after, rooms_after) = load(store, None).await?;
    let now = rebalance::plan(&nodes_after, &rooms_after);
    out(&format!(
        "moved {} room(s), {} member(s) told to reconnect, {} failed\nnow: {}",
        summary.moved,
        summary.members,
        summary.failed.len(),
        rebalance::describe(&now)
    ));
    if summary.failed.is_empty() {
        Ok((plan, summary))
    } else {
        Err(OpsError::MovesFailed(summary.failed.len()))
    }
}

/// A step of a drain, for whoever follows it ([`drain_watched`]).
#[derive(Debug, Clone, Copy)]
pub enum DrainStep<'a> {
    /// A line for people.
    Note(&'a str),
    /// A round of this many moves begins.
    Round(usize),
    /// One room's move ended.
    Moved(&'a Outcome),
}

/// `router drain iN`: marks the node draining, moves every room it owns to
/// its HRW owner among the remaining active nodes, and returns once it owns
/// none (safe to terminate).
pub async fn drain(
    store: &Store,
    client: &InternalClient,
    node: InstanceId,
    concurrency: usize,
    out: &mut impl FnMut(&str),
) -> Result<(), OpsError> {
    drain_watched(store, client, node, concurrency, &mut |step| match step {
        DrainStep::Note(line) => out(line),
        DrainStep::Round(_) => {}
        DrainStep::Moved(o) => {
            if let Some(e) = &o.error {
                out(&format!(
                    "FAILED {} -> {}: {e}",
                    o.planned.room, o.planned.to
                ));
            }
        }
    })
    .await
}

/// [`drain`], telling `step` of every line, round and move (the admin
/// dashboard shows them as progress).
pub async fn drain_watched(
    store: &Store,
    client: &InternalClient,
    node: InstanceId,
    concurrency: usize,
    step: &mut impl FnMut(DrainStep<'_>),
) -> Result<(), OpsError> {
    let (nodes, rec) = registered(store, node).await?;
    let rec = &rec;
    // Refuse before changing anything: draining the last active node would
    // leave the cluster unable to place new rooms.
    if !nodes
        .iter()
        .any(|n| n.id != node && n.state == NodeState::Active)
    {
        return Err(OpsError::NowhereToGo(node));
    }
    if rec.state != NodeState::Draining {
        client.set_state(&rec.addr, NodeState::Draining).await?;
        step(DrainStep::Note(&format!(
            "{node} is draining: it takes no new rooms (`router drain {node} --cancel` undoes it)"
        )));
    }
    let mut left = 0;
    for round in 1..=DRAIN_ROUNDS {
        // Without the index (no router of this version has run yet), only
        // the records themselves tell which rooms are the node's.
        let of = store.indexed().await?.then_some(node);
        let (nodes, rooms) = load(store, of).await?;
        if !nodes.contains_key(&node) {
            return Err(OpsError::NoSuchNode(node));
        }
        let plan = rebalance::plan(&nodes, rooms.iter().filter(|r| r.node == node));
        left = plan.before.get(&node).copied().unwrap_or(0) as usize;
        if left == 0 {
            step(DrainStep::Note(&format!(
                "{node} owns no rooms: safe to stop"
            )));
            return Ok(());
        }
        if plan.moves.is_empty() {
            return Err(OpsError::NowhereToGo(node));
        }
        step(DrainStep::Note(&format!(
            "round {round}: moving {} room(s) off {node}",
            plan.moves.len()
        )));
        step(DrainStep::Round(plan.moves.len()));
        let summary = rebalance::execute(client, &nodes, plan.moves, concurrency, |o| {
            step(DrainStep::Moved(o));
        })
        .await;
        step(DrainStep::Note(&format!(
            "moved {}, {} failed",
            summary.moved,
            summary.failed.len()
        )));
        if !summary.failed.is_empty() {
            tokio::time::sleep(DRAIN_PAUSE).await;
        }
    }
    Err(OpsError::Incomplete { node, left })
}
