//! The `websocket` transport: a session's WebSocket, opened fresh (the
//! open packet is its first frame) or as the probe of an upgrade from
//! polling (`2probe` → `3probe`, then `5`: the session moves over, with
//! what was queued for it, in order).
//!
//! Every byte goes out through the session's [`Outlet`], as for native
//! members: the room writes message frames straight to an idle socket,
//! this task writes the rest and tungstenite's own frames. Text frames are
//! Engine.IO packets, a binary frame is a binary message; a malformed
//! packet closes the session, a message over `max_payload` closes it with
//! 1009.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use super::packet::{self, Incoming, Message};
use super::session::{Farewell, Received, Session, close_reason};
use super::{
    Accepted, CLOSE_TIMEOUT, CloseCause, CloseReason, End, Outlet, OutletConfig, Socket,
    say_goodbye,
};

/// Bound on a probing WebSocket sending `2probe` and `5` (the reference
/// server's default). Polling goes on meanwhile.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

// tungstenite's buffers, as for native members (`crate::node`): a 4 KiB
// read buffer cost an idle Socket.IO member 3 KB more (BENCHMARKS.md).
use crate::node::{READ_BUFFER, WRITE_BUFFER};

/// The WebSocket settings of every session.
pub(super) fn config(max_payload: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
}

fn outlet(session: &Session, accepted: &Accepted) -> Arc<Outlet> {
    let config = OutletConfig {
        max_queue: session.config().max_queue,
        direct: true,
    };
    Arc::new(Outlet::new(
        Some(accepted.io.clone()),
        config,
        session.core().metrics.clone(),
    ))
}

/// A new session's WebSocket: the open packet, then what was queued.
pub(super) async fn run_fresh(session: Arc<Session>, accepted: Accepted, open_packet: String) {
    let outlet = outlet(&session, &accepted);
    let _ = outlet.queue(packet::text_frame(&open_packet));
    let socket = accepted.into_socket(outlet.clone()).await;
    session.attach(&outlet);
    serve(&session, socket, &outlet, Phase::Live).await;
}

/// A WebSocket probing a polling session for an upgrade.
pub(super) async fn run_probe(session: Arc<Session>, accepted: Accepted) {
    let outlet = outlet(&session, &accepted);
    let mut socket = accepted.into_socket(outlet.clone()).await;
    if !session.begin_probe(&outlet) {
        say_goodbye(&mut socket, already_upgraded()).await;
        return;
    }
    let phase = Phase::Probe(Instant::now() + UPGRADE_TIMEOUT);
    serve(&session, socket, &outlet, phase).await;
}

/// A WebSocket for a session that cannot take it: closed at once.
pub(super) async fn run_refused(session: Arc<Session>, accepted: Accepted) {
    let outlet = outlet(&session, &accepted);
    drop(session);
    let mut socket = accepted.into_socket(outlet).await;
    say_goodbye(&mut socket, already_upgraded()).await;
}

fn already_upgraded() -> CloseReason {
    CloseReason::bare(proto::wire::close::POLICY, "session already upgraded")
}

/// Where the WebSocket stands.
#[derive(Clone, Copy)]
enum Phase {
    /// Probing, until `5` or this deadline.
    Probe(Instant),
    /// Carrying the session.
    Live,
}

/// How a frame leaves the task.
enum Next {
    Go,
    /// Now carrying the session.
    Upgraded,
    /// The client is gone or closed the WebSocket: nothing to say (but
    /// the reply to its close, if it sent one).
    Gone(CloseCause),
    /// Close the WebSocket with this (the session, if it was carrying it,
    /// has ended, and its outlet will say the same).
    Close(CloseReason),
}

/// Reads the client's frames and runs the outlet's writes until the
/// WebSocket ends; then the session lets go of it.
async fn serve(session: &Arc<Session>, socket: Socket, outlet: &Arc<Outlet>, phase: Phase) {
    serve_socket(session, socket, outlet, phase).await;
    session.detach(outlet);
}

async fn serve_socket(
    session: &Arc<Session>,
    mut socket: Socket,
    outlet: &Arc<Outlet>,
    mut phase: Phase,
) {
    let writes = outlet.serve();
    tokio::pin!(writes);
    loop {
        let probe_by = match phase {
            Phase::Probe(by) => Some(by),
            Phase::Live => None,
        };
        let next = tokio::select! {
            biased;
            end = &mut writes => match end {
                End::Close(reason) => Next::Close(reason),
                End::Gone => Next::Gone(CloseCause::TransportError),
            },
            () = sleep_until(probe_by.unwrap_or_else(Instant::now)), if probe_by.is_some() => {
                Next::Close(upgrade_failed())
            }
            frame = socket.next() => match phase {
                Phase::Probe(_) => probe_frame(session, outlet, frame),
                Phase::Live => live_frame(session, frame),
            },
        };
        let live = matches!(phase, Phase::Live);
        match next {
            Next::Go => {}
            Next::Upgraded => phase = Phase::Live,
            Next::Gone(cause) => {
                // What is still queued (the reply to the client's close)
                // leaves before the session's end drops the outlet's queue.
                let flushed = async {
                    let _ = socket.flush().await;
                    let _ = outlet.drain().await;
                };
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, flushed).await;
                if live {
                    session.end(cause, Farewell::Silent);
                }
                return;
            }
            Next::Close(reason) => {
                if !live {
                    // Polling goes on at once, not after the goodbye.
                    session.detach(outlet);
                }
                say_goodbye(&mut socket, reason).await;
                return;
            }
        }
    }
}

/// A frame on a probing WebSocket: only `2probe`, then `5`.
fn probe_frame(
    session: &Session,
    outlet: &Arc<Outlet>,
    frame: Option<Result<WsMessage, WsError>>,
) -> Next {
    let text = match frame {
        Some(Ok(WsMessage::Text(text))) => text,
        Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => return Next::Go,
        Some(Ok(WsMessage::Close(_))) => return Next::Gone(CloseCause::ClientClose),
        None => return Next::Gone(CloseCause::TransportError),
        Some(Ok(WsMessage::Binary(_))) => return Next::Close(upgrade_failed()),
        Some(Err(e)) => {
            return match read_error(&e) {
                Some(cause) => Next::Close(close_reason(cause, Farewell::Silent)),
                None => Next::Gone(CloseCause::TransportError),
            };
        }
    };
    match text.as_str() {
        "2probe" => {
            let _ = outlet.queue(packet::text_frame("3probe"));
            if session.probed(outlet) {
                Next::Go
            } else {
                Next::Close(upgrade_failed())
            }
        }
        "5" if session.complete_upgrade(outlet) => Next::Upgraded,
        _ => Next::Close(upgrade_failed()),
    }
}

fn upgrade_failed() -> CloseReason {
    CloseReason::bare(proto::wire::close::POLICY, "upgrade failed")
}

/// A frame on the WebSocket carrying the session.
fn live_frame(session: &Arc<Session>, frame: Option<Result<WsMessage, WsError>>) -> Next {
    let packet = match frame {
        Some(Ok(WsMessage::Text(text))) => match packet::decode(text.as_str(), false) {
            Ok(packet) => packet,
            Err(_) => {
                // The outlet's end comes next, and says goodbye.
                session.end(CloseCause::ProtocolError, Farewell::Close);
                return Next::Go;
            }
        },
        Some(Ok(WsMessage::Binary(bytes))) => Incoming::Message(Message::Binary(bytes)),
        Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => return Next::Go,
        Some(Ok(WsMessage::Close(_))) => return Next::Gone(CloseCause::ClientClose),
        None => return Next::Gone(CloseCause::TransportError),
        Some(Err(e)) => match read_error(&e) {
            Some(cause) => {
                session.end(cause, Farewell::Silent);
                return Next::Go;
            }
            None => return Next::Gone(CloseCause::TransportError),
        },
    };
    // A packet that ends the session ends the outlet too, which is next.
    let _: Received = session.receive(packet);
    Next::Go
}

/// Why a read error ends the WebSocket with a close frame: a message over
/// `max_payload` (1009), a WebSocket protocol violation (1002) or text that
/// is not UTF-8; `None` when the connection just ended.
fn read_error(e: &WsError) -> Option<CloseCause> {
    match e {
        WsError::Capacity(_) => Some(CloseCause::TooLarge),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) | WsError::Utf8(_) => {
            tracing::debug!(error = %e, "WebSocket protocol violation");
            Some(CloseCause::ProtocolError)
        }
        _ => None,
    }
}
