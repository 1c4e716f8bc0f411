//! One member's connection: the only place that reads or writes its
//! WebSocket. Client frames go to the room; the member's queue goes to the
//! socket, every frame already waiting written in one flush.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proto::wire::{ClientMsg, close, code};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::limits::{RateLimit, Verdict};
use crate::metrics::Metrics;
use crate::registration::Registration;
use crate::room::{CloseReason, Kick, Membership, Outbound, Refused, Room, error_frame};
use crate::upgrade::Socket;

/// Most frames written per flush, so one busy member cannot hold its task
/// for long.
const MAX_BATCH: usize = 64;

/// Most frames held back for one coalesced write.
const MAX_COALESCED: usize = 1024;

/// How a session behaves.
pub(crate) struct Settings {
    /// Ping a quiet member this often.
    pub(crate) ping: Option<Duration>,
    /// Hold a member's frames this long so they leave in one write (off:
    /// every batch is written as soon as it is there).
    pub(crate) flush_window: Option<Duration>,
    /// The member's message rate limit.
    pub(crate) rate: RateLimit,
    /// The node's registration: nothing is accepted once its lease may
    /// have expired.
    pub(crate) lease: Registration,
}

/// Bound on saying goodbye to a client that may not be reading.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Most bytes read and thrown away after refusing an oversized frame, so the
/// close frame is not lost to a TCP reset.
const DRAIN_LIMIT: usize = 1 << 20;

/// Serves one member until it leaves, is kicked, goes silent or the room
/// closes. With `ping`, a member that sent nothing for that long is pinged,
/// and one silent for twice that long (no pong) is dropped.
pub(crate) async fn run(
    mut socket: Socket,
    room: Arc<Room>,
    m: Membership,
    metrics: Arc<Metrics>,
    settings: Settings,
) {
    let Settings {
        ping,
        flush_window,
        mut rate,
        lease,
    } = settings;
    let max_batch = if flush_window.is_some() {
        MAX_COALESCED
    } else {
        MAX_BATCH
    };
    // With a flush window: when the held-back frames must go.
    let mut flush_at: Option<Instant> = None;
    let Membership {
        key,
        first,
        mut rx,
        kick,
    } = m;
    metrics.connections.inc();
    let mut ended = write_first(&mut socket, first).await.err();
    let mut batch: Vec<Outbound> = Vec::new();
    let mut heard = Instant::now();
    let mut pinger = ping.map(|every| {
        (
            tokio::time::interval_at(Instant::now() + every, every),
            every,
        )
    });
    while ended.is_none() {
        let room_left = max_batch - batch.len();
        tokio::select! {
            biased;
            reason = kick.kicked() => ended = Some(End::Close(reason)),
            every = tick(&mut pinger) => ended = keep_alive(&mut socket, heard, every).await.err(),
            n = rx.recv_many(&mut batch, room_left), if room_left > 0 => {
                if n == 0 {
                    ended = Some(End::Gone);
                    continue;
                }
                let closing = matches!(batch.last(), Some(Outbound::Close(_)));
                if let Some(window) = flush_window
                    && !closing
                    && batch.len() < max_batch
                {
                    flush_at.get_or_insert_with(|| Instant::now() + window);
                    continue;
                }
                flush_at = None;
                ended = write_or_kicked(&mut socket, &mut batch, &metrics, &kick).await.err();
            }
            () = tokio::time::sleep_until(flush_at.unwrap_or_else(Instant::now)), if flush_at.is_some() => {
                flush_at = None;
                ended = write_or_kicked(&mut socket, &mut batch, &metrics, &kick).await.err();
            }
            frame = socket.next() => {
                heard = Instant::now();
                let inbound = Inbound { room: &room, key, rate: &mut rate, metrics: &metrics, lease: &lease };
                ended = handle(&mut socket, frame, inbound).await.err();
            }
        }
    }
    room.leave(key);
    metrics.connections.dec();
    if let Some(End::Close(reason)) = ended {
        let goodbye = say_goodbye(&mut socket, reason);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
    }
}

/// Writes the batch, unless the member is kicked meanwhile.
async fn write_or_kicked(
    socket: &mut Socket,
    batch: &mut Vec<Outbound>,
    metrics: &Metrics,
    kick: &Kick,
) -> Result<(), End> {
    tokio::select! {
        biased;
        reason = kick.kicked() => Err(End::Close(reason)),
        r = write_batch(socket, batch, metrics) => r,
    }
}

/// The next ping tick (with the interval), or never.
async fn tick(pinger: &mut Option<(tokio::time::Interval, Duration)>) -> Duration {
    match pinger {
        Some((interval, every)) => {
            interval.tick().await;
            *every
        }
        None => std::future::pending().await,
    }
}

/// Pings a member that has been quiet; drops one that stayed silent for two
/// intervals (a half-open connection, a vanished client).
async fn keep_alive(socket: &mut Socket, heard: Instant, every: Duration) -> Result<(), End> {
    let quiet = heard.elapsed();
    if quiet >= every * 2 {
        tracing::debug!(?quiet, "member silent; dropping it");
        return Err(End::Close(CloseReason {
            last: None,
            code: close::GOING_AWAY,
            reason: "ping timeout",
        }));
    }
    if quiet >= every {
        socket
            .send(Message::Ping(Default::default()))
            .await
            .map_err(|_| End::Gone)?;
    }
    Ok(())
}

/// Why the loop ended.
enum End {
    /// The peer is gone or the socket failed: nothing more to say.
    Gone,
    /// Close with this reason.
    Close(CloseReason),
}

async fn write_first(socket: &mut Socket, first: Vec<Utf8Bytes>) -> Result<(), End> {
    for text in first {
        socket
            .feed(Message::Text(text))
            .await
            .map_err(|_| End::Gone)?;
    }
    socket.flush().await.map_err(|_| End::Gone)
}

async fn write_batch(
    socket: &mut Socket,
    batch: &mut Vec<Outbound>,
    metrics: &Metrics,
) -> Result<(), End> {
    let mut accepted = Vec::new();
    let mut close = None;
    for out in batch.drain(..) {
        match out {
            Outbound::Frame(d) => {
                socket
                    .feed(Message::Text(d.text.clone()))
                    .await
                    .map_err(|_| End::Gone)?;
                accepted.extend(d.accepted);
            }
            Outbound::Close(reason) => {
                close = Some(*reason);
                break;
            }
        }
    }
    socket.flush().await.map_err(|_| End::Gone)?;
    let now = Instant::now();
    metrics.delivered.inc_by(accepted.len() as u64);
    for at in accepted {
        metrics.delivery_latency.observe((now - at).as_secs_f64());
    }
    close.map_or(Ok(()), |reason| Err(End::Close(reason)))
}

/// Acts on one frame from the client.
/// What a client frame is checked against.
struct Inbound<'a> {
    room: &'a Room,
    key: u64,
    rate: &'a mut RateLimit,
    metrics: &'a Metrics,
    lease: &'a Registration,
}

async fn handle(
    socket: &mut Socket,
    frame: Option<Result<Message, WsError>>,
    inbound: Inbound<'_>,
) -> Result<(), End> {
    let Inbound {
        room,
        key,
        rate,
        metrics,
        lease,
    } = inbound;
    let text = match frame {
        None => return Err(End::Gone),
        Some(Ok(Message::Close(_))) => {
            // tungstenite has queued the close reply; it leaves on a flush.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.flush()).await;
            return Err(End::Gone);
        }
        Some(Err(WsError::Capacity(e))) => {
            tracing::debug!(error = %e, "frame over the limit");
            return Err(End::Close(CloseReason {
                last: None,
                code: close::TOO_BIG,
                reason: "frame too large",
            }));
        }
        Some(Err(_)) => return Err(End::Gone),
        Some(Ok(Message::Text(text))) => text,
        Some(Ok(Message::Binary(_))) => {
            return reply_error(
                socket,
                code::BAD_FRAME,
                "binary frames are not supported; send JSON text frames",
            )
            .await;
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => return Ok(()),
    };
    match ClientMsg::decode(&text) {
        // Checked at the moment of accepting, on this node's own clock: a
        // node that was frozen past its lease accepts nothing, even before
        // its renewal task runs and fences it.
        Ok(ClientMsg::Send { .. }) if lease.is_fenced() => {
            let text =
                "this node may have lost its registration: the message was not accepted; reconnect";
            reply_error(socket, code::UNAVAILABLE, text).await
        }
        Ok(ClientMsg::Send { .. }) if rate_limited(rate, metrics)? => {
            let text = "too many messages: this one was not accepted; slow down";
            reply_error(socket, code::RATE_LIMITED, text).await
        }
        Ok(ClientMsg::Send { body }) => match room.send(key, &body) {
            Ok(()) => Ok(()),
            Err(Refused::Moving) => {
                let text = "the room is moving to another node: this message was not accepted; send it again after reconnecting";
                reply_error(socket, code::ROOM_MOVING, text).await
            }
            // The room closed (moved, deleted, fenced) as this frame came
            // in: its goodbye is already queued for this member, so carry on
            // and deliver it. The frame was not accepted; the client knows
            // by not seeing it come back with a seq.
            Err(Refused::Closed | Refused::Full) => Ok(()),
        },
        Err(e) => reply_error(socket, code::BAD_FRAME, &e.to_string()).await,
    }
}

/// Whether the rate limit refuses this message; an error when the client
/// has ignored refusals for a whole burst.
fn rate_limited(rate: &mut RateLimit, metrics: &Metrics) -> Result<bool, End> {
    let verdict = rate.check();
    if verdict != Verdict::Accept {
        metrics.rejected.with_label_values(&["rate_limited"]).inc();
    }
    match verdict {
        Verdict::Accept => Ok(false),
        Verdict::Refuse => Ok(true),
        Verdict::Close => Err(End::Close(CloseReason {
            last: None,
            code: close::POLICY,
            reason: "rate limit",
        })),
    }
}

async fn reply_error(socket: &mut Socket, code: &str, message: &str) -> Result<(), End> {
    socket
        .send(Message::Text(error_frame(code, message).into()))
        .await
        .map_err(|_| End::Gone)
}

/// Sends the last frame and the close frame, then reads and discards what
/// the client still sends until it closes: closing a socket with unread
/// input makes the kernel send a reset, which can overtake the close frame.
async fn say_goodbye(socket: &mut Socket, reason: CloseReason) {
    if let Some(last) = reason.last {
        let _ = socket.feed(Message::Text(last)).await;
    }
    let frame = CloseFrame {
        code: reason.code.into(),
        reason: reason.reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let raw = socket.get_mut();
    // On the heap: an array here would sit in every session's future.
    let mut buf = vec![0u8; 8192];
    let mut drained = 0;
    while drained < DRAIN_LIMIT {
        match raw.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}
