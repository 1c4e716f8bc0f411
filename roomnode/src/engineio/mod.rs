//! Engine.IO v4, the transport under Socket.IO v5 (what `socket.io-client`
//! 4.x speaks): sessions over HTTP long-polling and WebSocket, the upgrade
//! from one to the other, heartbeats. The layer above (Socket.IO and the
//! room) sees only messages in and out of a [`Session`].
//!
//! Layout:
//! - `engine`: [`Engine`], the sessions by id; serves one HTTP request of a
//!   session path (handshake, poll, post, WebSocket); shutdown.
//! - `session`: [`Session`], one client's state: its transport, the packets
//!   waiting for a poll, how it ends.
//! - `polling`: the long GET and the POST of the `polling` transport.
//! - `websocket`: a session's WebSocket, fresh or probed for an upgrade,
//!   written through the member [`Outlet`] as native members are.
//! - `heartbeat`: each session's task: pings, the ping and connect
//!   timeouts, and the end (`on_close`, removal).
//! - `packet`: the packet and polling payload codec, [`Packet`].
//! - `query`: `EIO`, `transport`, `sid`, and Engine.IO's JSON refusals.
//! - `cors`: cross-origin polling for allowed origins.
//!
//! The interface, for the layer above:
//! - [`Engine::serve`] serves one request on `/…/socket.io/`; for a new
//!   session it calls `open` (the room's admission), which returns the
//!   session's [`Handler`] or a response that refuses it.
//! - [`Handler::on_message`] gets the client's messages in order, from the
//!   session's reading task; [`Handler::on_close`] is called once when the
//!   session ends, whatever ended it, never from inside [`Session::send`]
//!   or [`Session::close`] (it comes from the session's own task), and no
//!   `on_message` runs after it has begun. A handler should not hold its
//!   session strongly beyond `on_close` (the session drops its handler
//!   then).
//! - [`Session::send`] never blocks and is called under the room's lock:
//!   one [`Packet`] is built once and sent to every member; on a WebSocket
//!   its frame is written at once to an idle socket.
//! - [`Session::mark_connected`] ends the connect timeout;
//!   [`Session::close`] ends the session.
//!
//! Behaviour the official test suite pins (socket.io-protocol's "Engine.IO
//! protocol" part, engine.io-protocol's suite): a second concurrent GET is
//! refused with 400, closes the session, and the first GET gets `1`; a
//! client's `1` answers a pending GET with `6`; a probe answers a pending
//! GET with `6`; after the upgrade, polling requests get 400 and another
//! WebSocket with that sid is opened and closed at once; a client that
//! does not answer a ping within `ping_timeout` is closed (a poll after
//! the deadline gets 400 even before the session's task has run).

mod cors;
mod engine;
mod heartbeat;
pub(crate) mod packet; // also read by `crate::fuzzing`
mod polling;
mod query;
mod session;
mod websocket;

#[cfg(test)]
mod tests;

use std::sync::Arc;

// What the layer is built on from the member path, named once here.
use crate::member::close::CloseReason;
use crate::member::outlet::{End, Outlet, OutletConfig};
use crate::member::session::{CLOSE_TIMEOUT, say_goodbye};
use crate::member::upgrade::{Accepted, Socket, Upgrade};
use crate::metrics::Metrics;

pub(crate) use crate::member::outlet::Overflow;
pub(crate) use engine::{Engine, EngineConfig};
pub(crate) use packet::{Message, Packet};
pub(crate) use session::Session;

/// What the layer above does with one session's traffic (one value per
/// session, bound to its room).
pub(crate) trait Handler: Send + Sync + 'static {
    /// A message from the client, in arrival order, from the session's
    /// reading task: must not block.
    fn on_message(&self, session: &Arc<Session>, msg: Message);
    /// The session has ended; called once, from the session's own task.
    fn on_close(&self, session: &Arc<Session>, cause: CloseCause);
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseCause {
    /// The client sent a close packet or closed its WebSocket.
    ClientClose,
    /// The client's transport failed or vanished (a WebSocket ended
    /// without a close, a POST body that did not arrive).
    TransportError,
    /// No pong within `ping_timeout` of a ping.
    PingTimeout,
    /// [`Session::mark_connected`] was not called within `connect_timeout`.
    ConnectTimeout,
    /// The client broke the protocol: an invalid packet, overlapping
    /// polls or posts.
    ProtocolError,
    /// A POST body or WebSocket message over `max_payload`.
    TooLarge,
    /// More than `max_queue` packets waited for the client.
    SlowConsumer,
    /// The layer above closed it ([`Session::close`]).
    Server,
    /// The engine shut down.
    Shutdown,
}

/// How the layer above ends a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// Drops the transport with no close packet and nothing more sent
    /// (a pending poll gets `6`, a WebSocket is closed with 1012): the
    /// client reconnects by itself. For moves and shutdown.
    Transport,
    /// Sends what is queued, then the close packet (on polling: to the
    /// pending poll, or to the next one within `ping_timeout`), then ends
    /// the transport. For a kick or a deleted room, after the Socket.IO
    /// DISCONNECT.
    Packet,
}

/// A session's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// HTTP long-polling (also while an upgrade is being probed).
    Polling,
    /// WebSocket, from the start or after an upgrade.
    WebSocket,
}
