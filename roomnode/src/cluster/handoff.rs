//! The owner's side of a move, `POST /internal/handoff`: a batch of rooms
//! for one target, answered with one outcome per room.
//!
//! Each room is checked against this node's view of its own rooms (the
//! store's word when the view disagrees: it can lag a moment; the
//! compare-and-swap catches anything older), then frozen, so no join or
//! message can slip in that its snapshot would miss. Frozen rooms go over
//! in slices of at most [`ADOPT_BATCH_BYTES`] of snapshots (or one larger
//! room): one adopt request to the target carrying the whole slice, one
//! [`store::Store::move_rooms`] call (one transaction per
//! `ROOMS_PER_TXN` rooms), then each room that moved tells its members
//! where to go, and each that did not is unfrozen and goes on here.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use proto::ErrorCode;
use proto::handoff::{
    ADOPT_BATCH_BYTES, Adopted, HandoffAnswer, HandoffBatch, HandoffDone, HandoffOutcome,
    HandoffRoom, MAX_HANDOFF_ROOMS,
};
use proto::record::{NodeRecord, NodeState, RoomRecord};
use service::client::{CallError, InternalClient};
use service::error::ApiError;
use store::StoreError;
use tokio::time::Instant;

use crate::member::close::CloseReason;
use crate::node::Node;
use crate::room::{Refused, Room};

/// `POST /internal/handoff`: moves the batch's rooms to `to`. A refusal of
/// the whole batch (key, target, this node's state) is an error answer;
/// otherwise every room gets its outcome.
pub(crate) async fn handoff(
    State(node): State<Node>,
    Json(req): Json<HandoffBatch>,
) -> Result<Json<HandoffAnswer>, ApiError> {
    if let Some(err) = node.not_ready() {
        return Err(err);
    }
    if req.rooms.len() > MAX_HANDOFF_ROOMS {
        return Err(ApiError::bad_request(
            ErrorCode::BatchTooLarge,
            format!("a handoff names at most {MAX_HANDOFF_ROOMS} rooms"),
        ));
    }
    if req.to == node.id() {
        return Err(ApiError::bad_request(
            ErrorCode::SameNode,
            format!("the rooms are already on {}", node.id()),
        ));
    }
    let target = target(&node, &req)?;
    let Some(client) = node.internal_client().cloned() else {
        return Err(ApiError::new(
            ErrorCode::InternalDisabled,
            "this node has no --secret".into(),
        ));
    };

    // On a task of its own: if the caller gives up (its timeout, its
    // death), the batch still ends with every room moved or unfrozen,
    // never left frozen by a dropped request.
    let work = tokio::spawn(run(node, client, target, req.rooms));
    match work.await {
        Ok(rooms) => Ok(Json(HandoffAnswer { rooms })),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

/// Moves `rooms` to `target`: one outcome per room, in order.
async fn run(
    node: Node,
    client: InternalClient,
    target: NodeRecord,
    rooms: Vec<HandoffRoom>,
) -> Vec<HandoffOutcome> {
    let mut outcomes: Vec<Option<HandoffOutcome>> = vec![None; rooms.len()];
    let mut ready = Vec::with_capacity(rooms.len());
    for (index, asked) in rooms.iter().enumerate() {
        match current(&node, asked).await {
            Ok(rec) => ready.push((index, rec)),
            Err((code, message)) => outcomes[index] = Some(refusal(&asked.room, code, message)),
        }
    }
    let mut ready = ready.into_iter().peekable();
    while ready.peek().is_some() {
        let slice = freeze_slice(&node, &mut ready, &mut outcomes);
        if slice.is_empty() {
            continue;
        }
        for (index, outcome) in hand_over(&node, &client, &target, slice).await {
            outcomes[index] = Some(outcome);
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.expect("every room of the batch has an outcome"))
        .collect()
}

/// The target's record, if it can take rooms.
fn target(node: &Node, req: &HandoffBatch) -> Result<NodeRecord, ApiError> {
    match node.mirror().nodes().nodes.get(&req.to) {
        Some(t) if t.state == NodeState::Active => Ok(t.clone()),
        Some(_) => Err(ApiError::new(
            ErrorCode::TargetDraining,
            format!("{} is draining", req.to),
        )),
        None => Err(ApiError::new(
            ErrorCode::TargetUnavailable,
            format!("{} is not registered", req.to),
        )),
    }
}

/// Why one room of a batch cannot move: a code and a text.
type Refusal = (&'static str, String);

/// The room's record if this node owns it at the epoch asked: from this
/// node's view of its own rooms, or, when the view disagrees (it may lag
/// the store by a moment), from the store.
async fn current(node: &Node, asked: &HandoffRoom) -> Result<RoomRecord, Refusal> {
    let me = node.id();
    let rec = match node.mirror().room(&asked.room) {
        Some(rec) if rec.node == me && rec.epoch == asked.epoch => return Ok(rec),
        _ => node.store().room(&asked.room).await.map_err(|e| match e {
            StoreError::Unavailable(e) => ("store_unavailable", e),
            e => ("store_error", e.to_string()),
        })?,
    };
    let Some(rec) = rec else {
        return Err((
            "unknown_room",
            format!("room {} does not exist", asked.room),
        ));
    };
    if rec.node != me || rec.epoch != asked.epoch {
        return Err((
            "stale",
            format!(
                "room {} is on {} at epoch {}, not on {me} at {}",
                rec.id, rec.node, rec.epoch, asked.epoch
            ),
        ));
    }
    Ok(rec)
}

/// A room frozen for its move.
struct Frozen {
    /// Its place in the request.
    index: usize,
    /// Its record as this node saw it: the store's compare-and-swap checks
    /// exactly these bytes.
    rec: RoomRecord,
    room: Arc<Room>,
    /// Its snapshot, as JSON; taken when the adopt request is built.
    snapshot: Vec<u8>,
    at: Instant,
    history: usize,
    members: usize,
}

/// Freezes rooms from `ready` until their snapshots reach
/// [`ADOPT_BATCH_BYTES`] (the last one may pass it) or none is left. A room
/// that cannot be frozen gets its outcome at once.
fn freeze_slice(
    node: &Node,
    ready: &mut impl Iterator<Item = (usize, RoomRecord)>,
    outcomes: &mut [Option<HandoffOutcome>],
) -> Vec<Frozen> {
    let mut slice = Vec::new();
    let mut bytes = 0;
    while bytes < ADOPT_BATCH_BYTES
        && let Some((index, rec)) = ready.next()
    {
        // Hosting the room (even if nobody is in it) and freezing it means
        // no join or message can slip in that the snapshot would miss.
        let hosted = node.ownership().activate(&rec);
        let snapshot = match hosted.freeze(rec.epoch + 1) {
            Ok(s) => s,
            Err(r) => {
                let (code, message) = match r {
                    Refused::Moving => ("already_moving", "is already moving"),
                    Refused::Closed | Refused::Full | Refused::NotAccepted => {
                        ("stale", "just closed here")
                    }
                };
                let message = format!("room {} {message}", rec.id);
                outcomes[index] = Some(refusal(&rec.id, code, message));
                continue;
            }
        };
        let json = serde_json::to_vec(&snapshot).expect("snapshots serialize");
        bytes += json.len();
        slice.push(Frozen {
            index,
            history: snapshot.history.len(),
            // Counted now: once the swap lands, this node's own watch may
            // close the room before the answer is written.
            members: hosted.members(),
            room: hosted,
            rec,
            snapshot: json,
            at: Instant::now(),
        });
    }
    slice
}

/// Hands a frozen slice to `target`: one adopt request, one batch of
/// compare-and-swaps. Every room of the slice gets its outcome.
async fn hand_over(
    node: &Node,
    client: &InternalClient,
    target: &NodeRecord,
    mut slice: Vec<Frozen>,
) -> Vec<(usize, HandoffOutcome)> {
    let mut out = Vec::with_capacity(slice.len());
    let adopted = match adopt(client, &target.addr, &mut slice).await {
        Ok(adopted) if adopted.len() == slice.len() => adopted,
        Ok(adopted) => {
            let message = format!(
                "{} answered {} adoptions for {} rooms",
                target.id,
                adopted.len(),
                slice.len()
            );
            return give_back_all(node, slice, "adopt_failed", &message);
        }
        Err(e) => return give_back_all(node, slice, "adopt_failed", &e.to_string()),
    };
    let mut moving = Vec::with_capacity(slice.len());
    for (frozen, answer) in slice.into_iter().zip(adopted) {
        if answer.adopted && answer.room == frozen.rec.id {
            moving.push(frozen);
        } else {
            let reason = answer.reason.unwrap_or_else(|| "not adopted".into());
            out.push((
                frozen.index,
                give_back(node, frozen, "adopt_refused", reason),
            ));
        }
    }
    let swaps = moving.iter().map(|f| (f.rec.clone(), target.id)).collect();
    let mut results = node.store().move_rooms(swaps).await.into_iter();
    let (mut moved, mut failed) = (0, out.len());
    for frozen in moving {
        let index = frozen.index;
        let result = results
            .next()
            .unwrap_or_else(|| Err(StoreError::Unavailable("no outcome for this room".into())));
        let outcome = match result {
            Ok(rec) => {
                moved += 1;
                HandoffOutcome::Moved(finish(node, &frozen, &rec))
            }
            Err(StoreError::Unavailable(e)) => {
                failed += 1;
                // The swap may or may not have happened. Serving on could
                // mean two owners; closing is safe: clients come back
                // through the router, which asks the store.
                tracing::warn!(room = %frozen.rec.id, error = %e, "move outcome unknown; closing the room here");
                node.ownership()
                    .release(&frozen.room, &CloseReason::fenced());
                node.metrics().moves_failed.inc();
                refusal(
                    &frozen.rec.id,
                    "store_unavailable",
                    format!("the store did not confirm the move: {e}"),
                )
            }
            Err(StoreError::Conflict(message)) => {
                failed += 1;
                give_back(node, frozen, "conflict", message)
            }
            Err(e) => {
                failed += 1;
                give_back(node, frozen, "store_error", e.to_string())
            }
        };
        out.push((index, outcome));
    }
    tracing::info!(to = %target.id, moved, failed, "rooms handed off");
    out
}

/// Sends the slice's snapshots to the target: one room on its own path
/// (a batch of one), more in one batch request. Takes the snapshots out of
/// the slice, so they are freed as soon as they are sent.
async fn adopt(
    client: &InternalClient,
    addr: &str,
    slice: &mut [Frozen],
) -> Result<Vec<Adopted>, CallError> {
    if let [one] = slice {
        let snapshot = std::mem::take(&mut one.snapshot);
        let adopted = client.adopt_one(addr, &one.rec.id, snapshot).await?;
        return Ok(vec![adopted]);
    }
    let snapshots = slice
        .iter_mut()
        .map(|frozen| std::mem::take(&mut frozen.snapshot))
        .collect();
    client.adopt(addr, snapshots).await
}

/// The move committed: members learn the new path, after everything
/// already queued for them.
fn finish(node: &Node, frozen: &Frozen, moved: &RoomRecord) -> HandoffDone {
    node.ownership()
        .release(&frozen.room, &CloseReason::moved(moved.node, &moved.id));
    let m = node.metrics();
    m.moves.inc();
    m.move_duration.observe(frozen.at.elapsed().as_secs_f64());
    tracing::debug!(room = %moved.id, to = %moved.node, epoch = moved.epoch, members = frozen.members, history = frozen.history, "room handed off");
    HandoffDone {
        room: moved.id.clone(),
        from: node.id(),
        to: moved.node,
        epoch: moved.epoch,
        members: frozen.members,
        history: frozen.history,
    }
}

/// The move did not happen: the room goes on here.
fn give_back(node: &Node, frozen: Frozen, code: &str, message: String) -> HandoffOutcome {
    node.ownership().unfreeze(&frozen.room);
    node.metrics().moves_failed.inc();
    tracing::warn!(room = %frozen.rec.id, error = code, reason = %message, "handoff failed; room stays here");
    refusal(&frozen.rec.id, code, message)
}

fn give_back_all(
    node: &Node,
    slice: Vec<Frozen>,
    code: &str,
    message: &str,
) -> Vec<(usize, HandoffOutcome)> {
    slice
        .into_iter()
        .map(|f| (f.index, give_back(node, f, code, message.to_owned())))
        .collect()
}

fn refusal(room: &proto::RoomId, code: &str, message: String) -> HandoffOutcome {
    HandoffOutcome::Failed {
        room: room.clone(),
        error: code.to_owned(),
        message,
    }
}
