//! One native member's WebSocket: joins it to its room ([`start`]), reads
//! its frames and hands them to the room, keeps it alive, and runs its
//! [`Outlet`]'s writes (frames the room could not write at once, or holds
//! for a flush window) until the connection ends, then says goodbye.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proto::wire::{ClientMsg, JoinParams, code};
use serde_json::value::RawValue;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::Instrument;

use crate::cluster::registration::Registration;
use crate::member::admission::Admitted;
use crate::member::close::{CloseReason, error_frame};
use crate::member::limits::{RateLimit, Verdict};
use crate::member::outlet::{End, Outlet, OutletConfig};
use crate::member::publish_hook::{self, Decision};
use crate::member::upgrade::{Accepted, Socket};
use crate::metrics::Metrics;
use crate::node::Node;
use crate::room::{JoinRequest, Refused, Room};

/// How a session behaves.
pub(crate) struct Settings {
    /// Ping a quiet member this often.
    pub(crate) ping: Option<Duration>,
    /// The member's message rate limit.
    pub(crate) rate: RateLimit,
    /// The node's registration: nothing is accepted once its lease may
    /// have expired.
    pub(crate) lease: Registration,
    /// The node, when its publish hook is asked about each message.
    pub(crate) publish_hook: Option<Node>,
}

/// Bound on saying goodbye to a client that may not be reading or
/// answering: on our close frame getting into a full socket, and on the wait
/// for the client's close reply.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Most bytes read and thrown away after our close frame, so it is not lost
/// to a TCP reset.
const DRAIN_LIMIT: usize = 1 << 20;

/// A native member's connection once its upgrade is done: joins the room
/// it was admitted to, then serves it until it ends. The admission's
/// connection slot is held until then, its handshake slot until the member
/// is in the room.
/// `params.name` is the member's final name (its token's, or the join
/// hook's).
pub(crate) async fn start(accepted: Accepted, node: Node, admitted: Admitted, params: JoinParams) {
    let name = params.name;
    let Admitted {
        room,
        slot,
        handshake,
        ..
    } = admitted;
    let config = node.config();
    let outlet_config = OutletConfig {
        max_queue: config.max_queue,
        direct: config.flush_window().is_none(),
    };
    let outlet = Arc::new(Outlet::new(
        Some(accepted.io.clone()),
        outlet_config,
        node.metrics(),
    ));
    let mut socket = accepted.into_socket(outlet.clone()).await;
    let req = JoinRequest {
        name: name.as_deref(),
        since: params.since,
        stream: params.stream.as_deref(),
    };
    let joined = room.join(req, &outlet);
    drop(handshake);
    let key = match joined {
        Ok(key) => key,
        // Full, closed or frozen between the checks and the upgrade: the
        // client tries again (through the router).
        Err(refused) => {
            let reason = match refused {
                Refused::Full => CloseReason::room_full(),
                Refused::Closed | Refused::Moving | Refused::NotAccepted => {
                    CloseReason::room_gone()
                }
            };
            let _ = socket.send(Message::Close(Some(reason.frame()))).await;
            return;
        }
    };
    let span = tracing::debug_span!("member", room = %room.id(), node = %node.id());
    let settings = Settings {
        ping: config.ping(),
        rate: RateLimit::new(config.rate, config.burst),
        lease: node.registration().clone(),
        publish_hook: publish_hook::on(&node).then(|| node.clone()),
    };
    run(socket, room, key, node.metrics(), settings)
        .instrument(span)
        .await;
    drop(slot);
}

/// Serves one member (the room's `key`) until it leaves, is dropped, goes
/// silent or the room closes. With `ping`, a member quiet at a tick (every
/// `ping`) is pinged, and dropped at the next tick if nothing came back.
pub(crate) async fn run(
    mut socket: Socket,
    room: Arc<Room>,
    key: u64,
    metrics: Arc<Metrics>,
    settings: Settings,
) {
    let Settings {
        ping,
        mut rate,
        lease,
        publish_hook,
    } = settings;
    let outlet: Arc<Outlet> = socket.get_ref().outlet().clone();
    let writes = outlet.serve();
    tokio::pin!(writes);
    metrics.connections.inc();
    let mut ended = None;
    let mut ka = KeepAlive {
        heard: Instant::now(),
        pinged: None,
    };
    let mut pinger = ping.map(|every| {
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        // A late tick is followed by a whole interval, never by a catch-up
        // tick that would find the fresh ping unanswered.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        (ticks, every)
    });
    while ended.is_none() {
        tokio::select! {
            biased;
            end = &mut writes => ended = Some(end),
            every = tick(&mut pinger) => ended = keep_alive(&mut socket, &mut ka, every).await.err(),
            frame = socket.next() => {
                ka.heard = Instant::now();
                let inbound = Inbound { room: &room, key, rate: &mut rate, metrics: &metrics, lease: &lease, hook: publish_hook.as_ref() };
                ended = handle(&mut socket, frame, inbound).await.err();
            }
        }
    }
    room.leave(key);
    metrics.connections.dec();
    match ended {
        Some(End::Close(reason)) => {
            say_goodbye(&mut socket, reason).await;
        }
        // What is still queued (a reply to the client's close) leaves
        // before the socket closes.
        _ => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, outlet.drain()).await;
        }
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

/// What keeps a quiet member's connection honest.
struct KeepAlive {
    /// When the member last sent anything (a pong included).
    heard: Instant,
    /// The ping sent at the last tick, if the member was quiet then.
    pinged: Option<Instant>,
}

/// On each tick: drops a member that has sent nothing since the previous
/// tick's ping (a half-open connection, a vanished client), and pings one
/// that has been quiet for half an interval. The drop is decided by an
/// unanswered ping, not by the clock alone, so a tick that fires late on a
/// busy machine never drops a member that answers.
async fn keep_alive(socket: &mut Socket, ka: &mut KeepAlive, every: Duration) -> Result<(), End> {
    if let Some(sent) = ka.pinged
        && ka.heard < sent
    {
        tracing::debug!(quiet = ?ka.heard.elapsed(), "member did not answer a ping; dropping it");
        return Err(End::Close(CloseReason::ping_timeout()));
    }
    ka.pinged = None;
    if ka.heard.elapsed() >= every / 2 {
        socket
            .send(Message::Ping(Default::default()))
            .await
            .map_err(|_| End::Gone)?;
        ka.pinged = Some(Instant::now());
    }
    Ok(())
}

/// What a client frame is checked against.
struct Inbound<'a> {
    room: &'a Room,
    key: u64,
    rate: &'a mut RateLimit,
    metrics: &'a Metrics,
    lease: &'a Registration,
    /// The node, when the publish hook is on.
    hook: Option<&'a Node>,
}

/// Acts on one frame from the client.
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
        hook,
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
            return Err(End::Close(CloseReason::too_big()));
        }
        Some(Err(e)) => return Err(violation(e)),
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
        Ok(ClientMsg::Send { body }) => {
            // One message of this sender at a time: its order is kept.
            let body = match hook {
                None => body,
                Some(node) => match publish_hook::ask(node, room, key, &body, None).await {
                    Decision::Accept(None) => body,
                    Decision::Accept(Some(replaced)) => replaced,
                    Decision::Reject(reason) => {
                        return reply_error(socket, code::REJECTED, &reason).await;
                    }
                    Decision::Unavailable(why) => {
                        return reply_error(socket, code::UNAVAILABLE, &why).await;
                    }
                },
            };
            send(socket, room, key, &body).await
        }
        Err(e) => reply_error(socket, code::BAD_FRAME, &e.to_string()).await,
    }
}

/// Accepts a member's message into the room.
async fn send(socket: &mut Socket, room: &Room, key: u64, body: &RawValue) -> Result<(), End> {
    match room.send(key, body) {
        Ok(_) => Ok(()),
        Err(Refused::Moving) => {
            let text = "the room is moving to another node: this message was not accepted; send it again after reconnecting";
            reply_error(socket, code::ROOM_MOVING, text).await
        }
        Err(Refused::NotAccepted) => {
            let text = "the room's replica cannot confirm messages now: this message was not accepted; send it again";
            reply_error(socket, code::NOT_ACCEPTED, text).await
        }
        // The room closed (moved, deleted, fenced) as this frame came
        // in: its goodbye is already queued for this member, so carry on
        // and deliver it. The frame was not accepted; the client knows
        // by not seeing it come back with a seq.
        Err(Refused::Closed | Refused::Full) => Ok(()),
    }
}

/// How a read error ends the session: a client that broke the protocol
/// (reserved bits or opcodes, an unmasked or fragmented frame, a control
/// frame over 125 bytes) is closed with 1002, a text frame that is not
/// UTF-8 with 1007 (RFC 6455 7.4.1); a connection that just ended needs
/// no goodbye.
fn violation(e: WsError) -> End {
    let reason = match &e {
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return End::Gone,
        WsError::Protocol(_) => CloseReason::protocol_error(),
        WsError::Utf8(_) => CloseReason::invalid_utf8(),
        _ => return End::Gone,
    };
    tracing::debug!(error = %e, "protocol violation");
    End::Close(reason)
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
        Verdict::Close => Err(End::Close(CloseReason::rate_limit())),
    }
}

async fn reply_error(socket: &mut Socket, code: &str, message: &str) -> Result<(), End> {
    socket
        .send(Message::Text(error_frame(code, message).into()))
        .await
        .map_err(|_| End::Gone)
}

/// Sends the last frame and the close frame (on the wire at once), then
/// waits for the client's close reply and returns, so that dropping the
/// socket ends the connection right away: the server closes the TCP
/// connection first (RFC 6455 7.1.1), and a client only sees the WebSocket
/// closed when it does. Reading on to the end of the connection instead
/// would wait for a client that waits for us. Bounded by [`CLOSE_TIMEOUT`];
/// Engine.IO's WebSocket transport ends the same way.
pub(crate) async fn say_goodbye(socket: &mut Socket, reason: CloseReason) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye_unbounded(socket, reason)).await;
}

async fn goodbye_unbounded(socket: &mut Socket, reason: CloseReason) {
    let framed = !reason.follows_unreadable_input();
    let frame = reason.frame();
    if let Some(last) = reason.last {
        let _ = socket.feed(Message::Text(last)).await;
    }
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    if framed {
        await_close_reply(socket).await;
    } else {
        drain_raw(socket).await;
    }
}

/// Reads and discards the client's frames until its close reply or the end
/// of its connection: closing a socket with unread input makes the kernel
/// send a reset, which can overtake the close frame.
async fn await_close_reply(socket: &mut Socket) {
    let mut drained = 0;
    while drained < DRAIN_LIMIT {
        match socket.next().await {
            Some(Ok(Message::Close(_))) | None => return,
            Some(Ok(msg)) => drained += msg.len(),
            // A frame tungstenite cannot read past.
            Some(Err(_)) => return drain_raw(socket).await,
        }
    }
}

/// When the client's frames cannot be read: shuts our side of the
/// connection (the client sees it end right after the close frame), then
/// reads and discards raw input until the client closes its side.
async fn drain_raw(socket: &mut Socket) {
    socket.get_ref().outlet().shut_write();
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
