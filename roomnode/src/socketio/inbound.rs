//! One Socket.IO session's packets from its client, as a room member: the
//! CONNECT (namespace, `auth` token and name, recovery), events accepted
//! into the room's stream and their acks, binary attachments, DISCONNECT.
//!
//! As Socket.IO's own server does: a packet that does not decode closes
//! the session; events to a namespace the client has not joined are
//! ignored; a DISCONNECT leaves the room but keeps the session (it can
//! CONNECT again). One namespace per session (`/` or `/room/{id}`, both
//! the path's room).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use proto::hooks::{JoinHeaders, Protocol};

use proto::ErrorCode;
use proto::socketio::bridge::Event;
use proto::socketio::packet::{Kind, Packet as SioPacket};
use proto::socketio::recovery::Resume;
use proto::wire::code;
use serde_json::Value;
use serde_json::value::RawValue;

use super::outbound::{self, Nsp, Peer};
use crate::engineio::{Close, CloseCause, Handler, Message, Session};
use crate::member::admission::{self, Admitted};
use crate::member::join_hook;
use crate::member::limits::{RateLimit, Slot, Verdict};
use crate::member::publish_hook::{self, Decision};
use crate::node::Node;
use crate::room::replica::Receipt;
use crate::room::{Refused, Room};
use tokio::sync::mpsc;

/// What the session's first request gave besides Engine.IO's parameters.
pub(super) struct Given {
    /// A join token from `?token=` or `Authorization: Bearer`.
    pub(super) token: Option<String>,
    /// A display name from `?name=`.
    pub(super) name: Option<String>,
    /// Its query parameters and credentials, for the join hook (empty
    /// without one).
    pub(super) query: BTreeMap<String, Value>,
    pub(super) headers: JoinHeaders,
}

/// A Socket.IO session as a member of its path's room.
pub(super) struct Member {
    /// This handler, for the tasks it starts.
    me: Weak<Member>,
    node: Node,
    room: Arc<Room>,
    given: Given,
    state: Mutex<State>,
    /// The member's place in the node's connection limit.
    _slot: Slot,
}

#[derive(Default)]
struct State {
    joined: Option<Joined>,
    /// A CONNECT waits for the join hook.
    connecting: bool,
    /// The publish hook's queue of this member's events.
    publisher: Option<mpsc::Sender<Pending>>,
    /// A binary packet waiting for its attachments.
    partial: Option<Partial>,
}

struct Joined {
    key: u64,
    nsp: Nsp,
    rate: RateLimit,
}

struct Partial {
    kind: Kind,
    nsp: String,
    id: Option<u64>,
    data: String,
    expected: usize,
    attachments: Vec<Vec<u8>>,
    /// Bytes of the packet and its attachments so far.
    bytes: usize,
}

/// Most binary attachments one event may carry.
const MAX_ATTACHMENTS: usize = 64;

/// The session broke the protocol: it is closed.
struct Violation(&'static str);

impl Member {
    pub(super) fn new(node: Node, admitted: Admitted, given: Given) -> Arc<Self> {
        let Admitted { room, slot, .. } = admitted;
        node.metrics().connections.inc();
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            node,
            room,
            given,
            state: Mutex::new(State::default()),
            _slot: slot,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn receive(&self, session: &Arc<Session>, msg: Message) -> Result<(), Violation> {
        let mut st = self.lock();
        let text = match msg {
            Message::Binary(bytes) => {
                let partial = st
                    .partial
                    .as_mut()
                    .ok_or(Violation("binary data without a binary packet"))?;
                partial.bytes += bytes.len();
                if partial.bytes > self.node.config().max_frame_bytes {
                    return Err(Violation(
                        "event with its attachments over --max-frame-bytes",
                    ));
                }
                partial.attachments.push(bytes.to_vec());
                if partial.attachments.len() == partial.expected {
                    let done = st.partial.take().expect("checked above");
                    self.complete(session, &mut st, done);
                }
                return Ok(());
            }
            Message::Text(text) => text,
        };
        if st.partial.is_some() {
            return Err(Violation("text packet while attachments were due"));
        }
        let packet = SioPacket::decode(&text).map_err(|_| Violation("invalid packet"))?;
        match packet.kind {
            Kind::Connect => self.connect(session, &mut st, &packet),
            Kind::Disconnect => {
                if st
                    .joined
                    .as_ref()
                    .is_some_and(|j| Nsp::of(packet.nsp, self.room.id()) == Some(j.nsp))
                {
                    let joined = st.joined.take().expect("checked above");
                    self.room.leave(joined.key);
                }
            }
            Kind::Event | Kind::BinaryEvent | Kind::BinaryAck => {
                if packet.attachments > MAX_ATTACHMENTS {
                    return Err(Violation("too many attachments"));
                }
                let partial = Partial {
                    kind: packet.kind,
                    nsp: packet.nsp.to_owned(),
                    id: packet.id,
                    data: packet.data.map(|d| d.get().to_owned()).unwrap_or_default(),
                    expected: packet.attachments,
                    attachments: Vec::with_capacity(packet.attachments),
                    bytes: text.len(),
                };
                if partial.expected == 0 {
                    self.complete(session, &mut st, partial);
                } else {
                    st.partial = Some(partial);
                }
            }
            // Nobody here asks clients for acks.
            Kind::Ack => {}
            Kind::ConnectError => return Err(Violation("CONNECT_ERROR from a client")),
        }
        Ok(())
    }

    /// A CONNECT: joins the room under the namespace asked for.
    fn connect(&self, session: &Arc<Session>, st: &mut State, packet: &SioPacket<'_>) {
        let room = self.room.id();
        let Some(nsp) = Nsp::of(packet.nsp, room) else {
            refuse(session, packet.nsp, "Invalid namespace", None);
            return;
        };
        if st.joined.is_some() {
            let text = "this connection is in the room already";
            refuse(
                session,
                packet.nsp,
                text,
                Some(ErrorCode::BadRequest.as_str()),
            );
            return;
        }
        let auth: Value = packet
            .data
            .and_then(|d| serde_json::from_str(d.get()).ok())
            .unwrap_or(Value::Null);
        if st.connecting {
            let text = "this connection is joining the room already";
            let code = ErrorCode::BadRequest.as_str();
            return refuse(session, packet.nsp, text, Some(code));
        }
        let name = match self.name(&auth) {
            Ok(name) => name,
            Err((message, code)) => return refuse(session, packet.nsp, &message, Some(&code)),
        };
        let asking = self.node.hooks().is_some_and(|h| h.has_join());
        let Some(me) = self.me.upgrade().filter(|_| asking) else {
            return self.join(session, st, packet.nsp, nsp, name, &auth);
        };
        // The backend's say first, off the session's reading task; the
        // client sends nothing else before its CONNECT is answered.
        st.connecting = true;
        let session = session.clone();
        let nsp_name = packet.nsp.to_owned();
        tokio::spawn(async move {
            let mut query = me.given.query.clone();
            query.insert("auth".into(), auth.clone());
            let join = join_hook::Join {
                room: me.room.id(),
                name,
                query,
                headers: me.given.headers.clone(),
                protocol: Protocol::Socketio,
            };
            let verdict = join_hook::ask(&me.node, join).await;
            let mut st = me.lock();
            st.connecting = false;
            if session.is_closed() {
                return;
            }
            match verdict {
                Ok(name) => me.join(&session, &mut st, &nsp_name, nsp, name, &auth),
                Err(e) => refuse(&session, &nsp_name, e.message(), Some(e.code())),
            }
        });
    }

    /// Joins the room as `name` under `nsp` (spelled `nsp_name`).
    fn join(
        &self,
        session: &Arc<Session>,
        st: &mut State,
        nsp_name: &str,
        nsp: Nsp,
        name: Option<String>,
        auth: &Value,
    ) {
        let room = self.room.id();
        let peer = Peer::new(session.clone(), nsp);
        match self
            .room
            .join_socketio(name.as_deref(), peer, Resume::from_auth(auth))
        {
            Ok(key) => {
                session.mark_connected();
                let config = self.node.config();
                st.joined = Some(Joined {
                    key,
                    nsp,
                    rate: RateLimit::new(config.rate, config.burst),
                });
            }
            Err(Refused::Full) => {
                let text = format!("room {room} is full");
                refuse(session, nsp_name, &text, Some(ErrorCode::RoomFull.as_str()));
            }
            // Moved, deleted or fenced since the session started: the
            // client reconnects, through the router to the room's owner.
            Err(Refused::Closed | Refused::Moving | Refused::NotAccepted) => {
                session.close(Close::Transport)
            }
        }
    }

    /// The member's name: its token's (a private room's token is checked
    /// here), else `auth.name`, else `?name=`.
    fn name(&self, auth: &Value) -> Result<Option<String>, (String, String)> {
        let asked = auth
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| self.given.name.clone());
        if let Some(name) = &asked {
            proto::wire::check_name(name)
                .map_err(|e| (e.to_string(), ErrorCode::InvalidName.as_str().to_owned()))?;
        }
        if !self.room.is_private() {
            return Ok(asked);
        }
        let token = auth
            .get("token")
            .and_then(Value::as_str)
            .or(self.given.token.as_deref());
        let Some(token) = token else {
            let text = format!(
                "room {} is private: pass a join token as auth: {{ token }}",
                self.room.id()
            );
            return Err((text, ErrorCode::TokenRequired.as_str().to_owned()));
        };
        let claims = admission::verify_token(&self.node, &self.room, Some(token))
            .map_err(|e| (e.message().to_owned(), e.code().to_owned()))?;
        Ok(claims.name.or(asked))
    }

    /// A whole event (or a binary ack, ignored): accepted into the room.
    fn complete(&self, session: &Arc<Session>, st: &mut State, p: Partial) {
        if p.kind == Kind::BinaryAck {
            return;
        }
        let Some(joined) = st
            .joined
            .as_mut()
            .filter(|j| Nsp::of(&p.nsp, self.room.id()) == Some(j.nsp))
        else {
            return;
        };
        let nsp = p.nsp.as_str();
        let answer = |reply: Arc<crate::engineio::Packet>| {
            // A session that overflows closes itself.
            let _ = session.send(&[reply]);
        };
        if self.node.registration().is_fenced() {
            if let Some(id) = p.id {
                answer(outbound::ack_error(nsp, id, code::UNAVAILABLE));
            }
            return;
        }
        match joined.rate.check() {
            Verdict::Accept => {}
            verdict => {
                let metrics = self.node.metrics();
                metrics.rejected.with_label_values(&["rate_limited"]).inc();
                if verdict == Verdict::Close {
                    session.close(Close::Transport);
                } else if let Some(id) = p.id {
                    answer(outbound::ack_error(nsp, id, code::RATE_LIMITED));
                }
                return;
            }
        }
        let Some(event) = event_of(&p) else {
            // Decoding checked the shape: an array starting with a name.
            return;
        };
        let body = RawValue::from_string(event.to_body().to_string())
            .expect("a serialized value is valid JSON");
        let key = joined.key;
        if publish_hook::on(&self.node) {
            let pending = Pending {
                key,
                event,
                body,
                nsp: p.nsp.clone(),
                id: p.id,
            };
            let publisher = match &st.publisher {
                Some(tx) => tx.clone(),
                None => {
                    let tx = self.start_publisher(session);
                    st.publisher = Some(tx.clone());
                    tx
                }
            };
            if publisher.try_send(pending).is_err()
                && let Some(id) = p.id
            {
                answer(outbound::ack_error(nsp, id, code::RATE_LIMITED));
            }
            return;
        }
        let receipt = p.id.map(|id| ack_receipt(session, nsp, id));
        if let (Err(refused), Some(id)) = (self.room.emit(key, &event, &body, receipt), p.id) {
            answer(acked(nsp, id, Err(refused)));
        }
    }

    /// The task that asks the publish hook about this member's events, one
    /// at a time in order, and accepts and acks them.
    fn start_publisher(&self, session: &Arc<Session>) -> mpsc::Sender<Pending> {
        let (tx, mut rx) = mpsc::channel::<Pending>(PUBLISH_QUEUE);
        let (node, room, session) = (self.node.clone(), self.room.clone(), session.clone());
        tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                let name = p.event.name.as_str().map(str::to_owned);
                let decision = publish_hook::ask(&node, &room, p.key, &p.body, name).await;
                // The room's answer (the ack follows when the message
                // counts), or the hook's refusal (with its reason).
                let receipt = p.id.map(|id| ack_receipt(&session, &p.nsp, id));
                let packet = match decision {
                    Decision::Accept(body) => {
                        let result = match (body, receipt) {
                            (None, receipt) => room.emit(p.key, &p.event, &p.body, receipt),
                            (Some(body), Some(receipt)) => room.send_with(p.key, &body, receipt),
                            (Some(body), None) => room.send(p.key, &body),
                        };
                        match (result, p.id) {
                            (Err(refused), Some(id)) => Some(acked(&p.nsp, id, Err(refused))),
                            _ => None,
                        }
                    }
                    Decision::Reject(reason) => {
                        p.id.map(|id| outbound::ack_rejected(&p.nsp, id, &reason))
                    }
                    Decision::Unavailable(_) => {
                        p.id.map(|id| outbound::ack_error(&p.nsp, id, code::UNAVAILABLE))
                    }
                };
                if let Some(packet) = packet {
                    // A session that overflows closes itself.
                    let _ = session.send(&[packet]);
                }
            }
        });
        tx
    }
}

/// Events of one member waiting for the publish hook, at most.
const PUBLISH_QUEUE: usize = 256;

/// An event waiting for the publish hook.
struct Pending {
    key: u64,
    event: Event,
    body: Box<RawValue>,
    nsp: String,
    id: Option<u64>,
}

/// Sends the event's ack when the room has accepted it (or refused it
/// after all).
fn ack_receipt(session: &Arc<Session>, nsp: &str, id: u64) -> Receipt {
    let (session, nsp) = (session.clone(), nsp.to_owned());
    Box::new(move |result| {
        // A session that overflows closes itself.
        let _ = session.send(&[acked(&nsp, id, result)]);
    })
}

/// The ack of an event the room accepted (`{"seq"}`) or refused.
fn acked(nsp: &str, id: u64, result: Result<u64, Refused>) -> Arc<crate::engineio::Packet> {
    match result {
        Ok(seq) => outbound::ack_seq(nsp, id, seq),
        Err(Refused::Moving) => outbound::ack_error(nsp, id, code::ROOM_MOVING),
        Err(Refused::Closed | Refused::Full) => outbound::ack_error(nsp, id, code::ROOM_CLOSED),
        Err(Refused::NotAccepted) => outbound::ack_error(nsp, id, code::NOT_ACCEPTED),
    }
}

/// The event a whole EVENT or BINARY_EVENT carries.
fn event_of(p: &Partial) -> Option<Event> {
    let mut all: Vec<Value> = serde_json::from_str(&p.data).ok()?;
    if all.is_empty() {
        return None;
    }
    let name = all.remove(0);
    Some(Event {
        name,
        args: all,
        attachments: p.attachments.clone(),
    })
}

/// Answers a CONNECT with CONNECT_ERROR.
fn refuse(session: &Session, nsp: &str, message: &str, code: Option<&str>) {
    let _ = session.send(&[outbound::connect_error(nsp, message, code)]);
}

impl Handler for Member {
    fn on_message(&self, session: &Arc<Session>, msg: Message) {
        if let Err(Violation(why)) = self.receive(session, msg) {
            tracing::debug!(sid = session.sid(), why, "closing a Socket.IO session");
            session.close(Close::Packet);
        }
    }

    fn on_close(&self, _session: &Arc<Session>, cause: CloseCause) {
        let metrics = self.node.metrics();
        metrics.connections.dec();
        if cause == CloseCause::SlowConsumer {
            metrics.slow_consumers.inc();
        }
        let mut st = self.lock();
        st.publisher = None;
        if let Some(joined) = st.joined.take() {
            self.room.leave(joined.key);
        }
    }
}
