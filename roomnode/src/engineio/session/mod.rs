//! One Engine.IO session: which transport carries it, the packets waiting
//! for a poll, the pending poll, the heartbeat's deadline, and how it ends.
//!
//! All of it sits behind one std mutex, never held across an `.await`:
//! [`Session::send`] runs under the room's lock and must not wait. On
//! polling (and on a WebSocket not ready yet, and during an upgrade) the
//! packets queue here, at most `max_queue`; on a WebSocket they go to its
//! [`Outlet`], which writes them at once to an idle socket.
//!
//! Layout: this file (the state, sending, the end, the client's packets,
//! the heartbeat's deadline), `polling` (a session's GETs and POSTs),
//! `upgrade` (a WebSocket taking the session over).
//!
//! Lock order: the session's state, then the outlet's. The handler's lock
//! is held while `on_message` runs (so `on_close`, which takes it first,
//! never overlaps a message) and is never taken under the state's lock.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod polling;
mod upgrade;

pub(super) use polling::Poll;

use super::engine::Core;
use super::packet::{Incoming, Packet};
use super::{Close, CloseCause, CloseReason, Handler, Outlet, Overflow, Transport};

/// One client's Engine.IO session.
pub(crate) struct Session {
    sid: String,
    scope: String,
    core: Arc<Core>,
    opened: Instant,
    state: Mutex<State>,
    handler: Mutex<Option<Arc<dyn Handler>>>,
    /// Cancelled when the session ends.
    pub(super) ended: CancellationToken,
    /// Cancelled when a poll has taken the lingering close packet.
    pub(super) released: CancellationToken,
    /// A pong answered the ping waiting for one.
    pub(super) pong: Notify,
}

struct State {
    mode: Mode,
    /// Packets waiting for a poll, for the WebSocket to be ready, or for
    /// an upgrade to finish.
    queue: VecDeque<Arc<Packet>>,
    /// The GET waiting for packets.
    poll: Option<Waiter>,
    next_poll: u64,
    posting: bool,
    end: Option<CloseCause>,
    /// Ended with [`Farewell::Flush`] and the close packet not sent yet:
    /// the next poll takes what is queued, or else the close packet.
    linger: bool,
    /// The client closed with no poll waiting: the next poll gets `6`. A
    /// GET sent together with the POST of the close may be read after it
    /// (two connections); it is answered as if it had come first.
    parting: bool,
    /// When the pong to the last ping is due.
    pong_due: Option<Instant>,
    connected: bool,
    /// Counted among the sessions waiting for `mark_connected`.
    pending: bool,
}

enum Mode {
    Polling,
    /// A WebSocket probes the session for an upgrade; polling goes on
    /// until the probe, then polls get `6` until the upgrade.
    Probing {
        outlet: Arc<Outlet>,
        probed: bool,
    },
    /// `None` until the fresh WebSocket is ready.
    WebSocket(Option<Arc<Outlet>>),
}

struct Waiter {
    id: u64,
    tx: oneshot::Sender<Vec<Arc<Packet>>>,
}

/// What the client is told when its session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Farewell {
    /// Nothing: a pending poll gets `6`, a WebSocket is closed.
    Silent,
    /// A pending poll gets `1`; a WebSocket is closed.
    Close,
    /// What is queued, then `1`, on either transport.
    Flush,
}

/// What became of a packet from the client.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Received {
    /// Go on with the next one.
    Go,
    /// The session has ended: ignore the rest.
    Ended,
}

impl Session {
    pub(super) fn new(sid: String, scope: &str, core: Arc<Core>, transport: Transport) -> Self {
        let mode = match transport {
            Transport::Polling => Mode::Polling,
            Transport::WebSocket => Mode::WebSocket(None),
        };
        Self {
            sid,
            scope: scope.to_owned(),
            core,
            opened: Instant::now(),
            state: Mutex::new(State {
                mode,
                queue: VecDeque::new(),
                poll: None,
                next_poll: 0,
                posting: false,
                end: None,
                linger: false,
                parting: false,
                pong_due: None,
                connected: false,
                pending: true,
            }),
            handler: Mutex::new(None),
            ended: CancellationToken::new(),
            released: CancellationToken::new(),
            pong: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handler_lock(&self) -> MutexGuard<'_, Option<Arc<dyn Handler>>> {
        self.handler.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session id, random and unguessable (160 bits).
    pub(crate) fn sid(&self) -> &str {
        &self.sid
    }

    /// The path's room this session belongs to.
    pub(crate) fn scope(&self) -> &str {
        &self.scope
    }

    pub(crate) fn transport(&self) -> Transport {
        match self.lock().mode {
            Mode::Polling | Mode::Probing { .. } => Transport::Polling,
            Mode::WebSocket(_) => Transport::WebSocket,
        }
    }

    /// Whether the session has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().end.is_some()
    }

    /// The layer above says the session is established: stops the
    /// connect timeout.
    pub(crate) fn mark_connected(&self) {
        let mut st = self.lock();
        st.connected = true;
        self.unpend(&mut st);
    }

    /// Sends `packets` in order. `Err(Overflow)` when more than
    /// `max_queue` would wait for the client: the session is then closed
    /// as a slow consumer (what was sent of `packets` no longer matters).
    /// After the end, packets are dropped. Never blocks.
    pub(crate) fn send(&self, packets: &[Arc<Packet>]) -> Result<(), Overflow> {
        let mut st = self.lock();
        if st.end.is_some() {
            return Ok(());
        }
        if let Mode::WebSocket(Some(outlet)) = &st.mode {
            // Written outside the session's lock: sends to one session
            // come from its room, one at a time, and an upgrade that moves
            // the queue into the outlet is over before this mode is seen.
            let outlet = outlet.clone();
            drop(st);
            return self.send_via(&outlet, packets);
        }
        if st.queue.len() + packets.len() > self.core.config.max_queue {
            self.end_locked(&mut st, CloseCause::SlowConsumer, Farewell::Close);
            return Err(Overflow);
        }
        st.queue.extend(packets.iter().cloned());
        self.hand_off(&mut st);
        Ok(())
    }

    /// The WebSocket that carries the session for good, if it does yet.
    /// Its room may then send with [`Session::send_via`], without taking
    /// this session's lock for every message.
    pub(crate) fn websocket(&self) -> Option<Arc<Outlet>> {
        match &self.lock().mode {
            Mode::WebSocket(Some(outlet)) => Some(outlet.clone()),
            _ => None,
        }
    }

    /// [`Session::send`] on `outlet`, the session's WebSocket (from
    /// [`Session::websocket`]). After the end the outlet drops what it
    /// gets, as `send` does.
    pub(crate) fn send_via(
        &self,
        outlet: &Outlet,
        packets: &[Arc<Packet>],
    ) -> Result<(), Overflow> {
        for p in packets {
            if outlet.send(p.frame(), p.accepted()).is_err() {
                self.end(CloseCause::SlowConsumer, Farewell::Close);
                return Err(Overflow);
            }
        }
        Ok(())
    }

    /// Ends the session (see [`Close`]). `on_close` follows, from the
    /// session's task, with [`CloseCause::Server`].
    pub(crate) fn close(&self, how: Close) {
        let farewell = match how {
            Close::Transport => Farewell::Silent,
            Close::Packet => Farewell::Flush,
        };
        self.end(CloseCause::Server, farewell);
    }

    pub(super) fn config(&self) -> &super::EngineConfig {
        &self.core.config
    }

    pub(super) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    pub(super) fn opened(&self) -> Instant {
        self.opened
    }

    pub(super) fn set_handler(&self, handler: Arc<dyn Handler>) {
        *self.handler_lock() = Some(handler);
    }

    /// Calls `on_close` (once: the handler is dropped with it).
    pub(super) fn finish(self: &Arc<Self>) {
        let Some(cause) = self.cause() else { return };
        let handler = self.handler_lock().take();
        if let Some(h) = handler {
            h.on_close(self, cause);
        }
    }

    pub(super) fn cause(&self) -> Option<CloseCause> {
        self.lock().end
    }

    /// Whether a close packet waits for a poll.
    pub(super) fn lingering(&self) -> bool {
        let st = self.lock();
        st.linger || st.parting
    }

    /// Ends the session; a second end is ignored.
    pub(super) fn end(&self, cause: CloseCause, farewell: Farewell) {
        let mut st = self.lock();
        self.end_locked(&mut st, cause, farewell);
    }

    fn end_locked(&self, st: &mut State, cause: CloseCause, farewell: Farewell) {
        if st.end.is_some() {
            return;
        }
        st.end = Some(cause);
        self.unpend(st);
        let reason = close_reason(cause, farewell);
        let flush = farewell == Farewell::Flush;
        match &st.mode {
            Mode::WebSocket(Some(outlet)) => {
                if flush {
                    let _ = outlet.queue(self.core.close.frame().clone());
                }
                outlet.end(reason, !flush);
                st.queue.clear();
            }
            // A fresh WebSocket not ready yet learns it when it attaches.
            Mode::WebSocket(None) => st.linger = flush,
            Mode::Polling | Mode::Probing { .. } => {
                if let Mode::Probing { outlet, .. } = &st.mode {
                    outlet.end(reason, true);
                }
                let last = match farewell {
                    Farewell::Silent => &self.core.noop,
                    Farewell::Close | Farewell::Flush => &self.core.close,
                };
                match st.poll.take().filter(|w| !w.tx.is_closed()) {
                    // What is queued first, the close packet in the next
                    // poll's answer: socket.io-client acts on a close
                    // packet before the packets that came with it (a
                    // DISCONNECT would be reported after "transport
                    // close"), as Socket.IO's server never sends them
                    // together.
                    Some(w) if flush && !st.queue.is_empty() => {
                        let _ = w.tx.send(st.queue.drain(..).collect());
                        st.linger = true;
                    }
                    Some(w) => {
                        let mut packets: Vec<_> = match flush {
                            true => st.queue.drain(..).collect(),
                            false => Vec::new(),
                        };
                        packets.push(last.clone());
                        let _ = w.tx.send(packets);
                    }
                    None => {
                        st.linger = flush;
                        st.parting = cause == CloseCause::ClientClose;
                    }
                }
            }
        }
        if !st.linger {
            st.queue.clear();
        }
        self.ended.cancel();
    }

    /// No longer counted among the sessions waiting to connect.
    fn unpend(&self, st: &mut State) {
        if std::mem::take(&mut st.pending) {
            self.core.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A session that was never opened (its `open` refused it).
    pub(super) fn discard(&self) {
        let mut st = self.lock();
        st.end = Some(CloseCause::Server);
        self.unpend(&mut st);
    }

    /// Gives the queue to a waiting poll.
    fn hand_off(&self, st: &mut State) {
        let polls = matches!(st.mode, Mode::Polling | Mode::Probing { probed: false, .. });
        if !polls || st.queue.is_empty() {
            return;
        }
        if let Some(w) = st.poll.take() {
            let packets: Vec<_> = st.queue.drain(..).collect();
            if let Err(back) = w.tx.send(packets) {
                // That GET is gone: the next one takes them.
                st.queue.extend(back);
            }
        }
    }

    /// Acts on one packet from the client, in order.
    pub(super) fn receive(self: &Arc<Self>, packet: Incoming) -> Received {
        match packet {
            Incoming::Message(msg) => {
                let handler = self.handler_lock();
                if self.lock().end.is_some() {
                    return Received::Ended;
                }
                if let Some(h) = handler.as_ref() {
                    h.on_message(self, msg);
                }
            }
            Incoming::Pong(_) => {
                if self.lock().pong_due.take().is_some() {
                    self.pong.notify_one();
                }
            }
            Incoming::Close => self.end(CloseCause::ClientClose, Farewell::Silent),
            // The server pings in v4: a client's ping breaks the protocol.
            Incoming::Ping(_) => self.end(CloseCause::ProtocolError, Farewell::Close),
            Incoming::Noop | Incoming::Open | Incoming::Upgrade => {}
        }
        if self.ended.is_cancelled() {
            Received::Ended
        } else {
            Received::Go
        }
    }

    /// Sends a ping; the pong is due at `due`.
    pub(super) fn ping(&self, due: Instant) {
        let mut st = self.lock();
        if st.end.is_some() {
            return;
        }
        st.pong_due = Some(due);
        let ping = self.core.ping.clone();
        match &st.mode {
            Mode::WebSocket(Some(outlet)) => {
                let _ = outlet.queue(ping.frame().clone());
            }
            // Not counted against `max_queue`: one per interval at most.
            _ => {
                st.queue.push_back(ping);
                self.hand_off(&mut st);
            }
        }
    }

    /// Ends the session if its pong is overdue.
    pub(super) fn expire(&self) {
        let mut st = self.lock();
        self.check_pong(&mut st);
    }

    fn check_pong(&self, st: &mut State) {
        if st.pong_due.is_some_and(|due| Instant::now() >= due) {
            self.end_locked(st, CloseCause::PingTimeout, Farewell::Close);
        }
    }

    /// At the connect deadline: ends the session if it is not connected.
    pub(super) fn check_connected(&self) {
        let mut st = self.lock();
        if !st.connected {
            self.end_locked(&mut st, CloseCause::ConnectTimeout, Farewell::Close);
        }
    }
}

impl Drop for Session {
    /// A session whose opening was abandoned (its request cancelled
    /// during `open`) no longer counts as waiting to connect.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if std::mem::take(&mut st.pending) {
            self.core.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The WebSocket close of a session that ended for `cause`.
pub(super) fn close_reason(cause: CloseCause, farewell: Farewell) -> CloseReason {
    use proto::wire::close;
    let (code, reason) = match cause {
        CloseCause::Server if farewell == Farewell::Silent => (close::RESTART, "reconnect"),
        CloseCause::Server => (close::NORMAL, "closed by the server"),
        CloseCause::ClientClose => (close::NORMAL, "closed by the client"),
        CloseCause::TransportError => (close::NORMAL, "transport error"),
        CloseCause::PingTimeout => (close::GOING_AWAY, "ping timeout"),
        CloseCause::ConnectTimeout => (close::POLICY, "connect timeout"),
        CloseCause::ProtocolError => (1002, "invalid packet"),
        CloseCause::TooLarge => (close::TOO_BIG, "message too large"),
        CloseCause::SlowConsumer => (close::POLICY, "slow consumer"),
        CloseCause::Shutdown => (close::GOING_AWAY, "server shutting down"),
    };
    CloseReason::bare(code, reason)
}
