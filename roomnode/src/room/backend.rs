//! What the application's backend may do with a room (the server API,
//! through the router): publish into its stream as the server, exactly
//! once per idempotency key; list its members; kick one; read its
//! retained history.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use proto::backend::{IDEMPOTENCY_WINDOW_SECS, MemberView, SERVER_MEMBER};
use proto::handoff::PublishedKey;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::replica::Receipt;
use super::sink::Sink;
use super::{Origin, Refused, Room};
use crate::engineio::Transport;
use crate::member::close::CloseReason;
use crate::socketio::outbound::Source;

/// How long a key is remembered.
const WINDOW: Duration = Duration::from_secs(IDEMPOTENCY_WINDOW_SECS);

/// Most keys one room remembers; beyond, the oldest are forgotten early.
const MAX_KEYS: usize = 100_000;

/// The server's recent publishes by idempotency key, oldest first.
#[derive(Default)]
pub(crate) struct Idempotency {
    seqs: HashMap<Arc<str>, u64>,
    order: VecDeque<(Arc<str>, Instant)>,
}

impl Idempotency {
    fn forget_old(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front() {
            if now.duration_since(*at) < WINDOW && self.order.len() <= MAX_KEYS {
                break;
            }
            self.seqs.remove(key);
            self.order.pop_front();
        }
    }

    fn remember(&mut self, key: &str, seq: u64, at: Instant) {
        let key: Arc<str> = key.into();
        self.seqs.insert(key.clone(), seq);
        self.order.push_back((key, at));
    }

    /// The keys to hand to a new owner, with their ages.
    pub(crate) fn export(&self, now: Instant) -> Vec<PublishedKey> {
        self.order
            .iter()
            .filter_map(|(key, at)| {
                Some(PublishedKey {
                    key: key.to_string(),
                    seq: *self.seqs.get(key)?,
                    age_ms: u64::try_from(now.duration_since(*at).as_millis()).unwrap_or(u64::MAX),
                })
            })
            .collect()
    }

    /// The keys a former owner handed over.
    pub(crate) fn import(keys: Vec<PublishedKey>, now: Instant) -> Self {
        let mut me = Self::default();
        for k in keys {
            let at = now
                .checked_sub(Duration::from_millis(k.age_ms))
                .unwrap_or(now);
            me.remember(&k.key, k.seq, at);
        }
        me.forget_old(now);
        me
    }
}

/// A kept `message` frame, as the history API shows it.
#[derive(Deserialize)]
struct Kept<'a> {
    seq: u64,
    #[serde(borrow)]
    from: &'a str,
    #[serde(default, borrow)]
    name: Option<&'a str>,
    #[serde(borrow)]
    body: &'a RawValue,
}

impl Room {
    /// Publishes `body` as the server (`from: "server"`), delivered to
    /// every member; with `key`, once per key within the window: the same
    /// key again answers the first seq and delivers nothing. `receipt`
    /// hears the seq once the message counts (at once for a repeated key),
    /// or why it did not; it is called only if this returns `Ok`.
    pub(crate) fn publish_as_server(
        &self,
        body: &RawValue,
        key: Option<&str>,
        receipt: Receipt,
    ) -> Result<(), Refused> {
        let mut st = self.lock();
        st.accepting()?;
        let now = Instant::now();
        st.published.forget_old(now);
        if let Some(seq) = key.and_then(|k| st.published.seqs.get(k)) {
            receipt(Ok(*seq));
            return Ok(());
        }
        let origin = Origin {
            sender: 0,
            source: Source::Body(body),
            key,
            receipt: Some(receipt),
        };
        let seq = self.accept(&mut st, (SERVER_MEMBER, None), body, origin)?;
        if let Some(key) = key {
            st.published.remember(key, seq, now);
        }
        Ok(())
    }

    /// The members now, oldest first.
    pub(crate) fn member_views(&self) -> Vec<MemberView> {
        let st = self.lock();
        let mut members: Vec<_> = st.members.iter().collect();
        members.sort_by_key(|(key, _)| **key);
        members
            .into_iter()
            .map(|(_, m)| MemberView {
                member: m.id.to_string(),
                name: m.name.as_deref().map(str::to_owned),
                transport: transport_name(&m.sink).into(),
                joined_at: m.joined_at,
            })
            .collect()
    }

    /// Removes member `id`, closing its connection as kicked (native:
    /// `error kicked` and 1008; Socket.IO: DISCONNECT, so it does not come
    /// back); whether it was here.
    pub(crate) fn kick(&self, id: &str) -> bool {
        let Some(key) = self.lock().by_id.get(id).copied() else {
            return false;
        };
        let member = {
            let mut st = self.lock();
            let Some(m) = self.remove_member(&mut st, key) else {
                return false;
            };
            if self.crowded(st.members.len() + 1) {
                self.presence_changed(&mut st);
            } else {
                let left = m.left_frame(st.members.len());
                self.fan_out(&mut st, left, None, None);
            }
            m
        };
        member.sink.end(&CloseReason::kicked(), &self.id);
        true
    }

    /// The stream and the retained messages after `since` (all retained
    /// ones without it), at most `limit`, oldest first.
    pub(crate) fn history_page(
        &self,
        since: Option<u64>,
        limit: usize,
    ) -> (String, Vec<proto::backend::HistoryMessage>) {
        let frames: Vec<Utf8Bytes> = {
            let st = self.lock();
            match since {
                // Older than what is kept: all of it.
                Some(s) => st.history.since(s).unwrap_or_else(|_| st.history.frames()),
                None => st.history.frames(),
            }
        };
        let messages = frames
            .iter()
            .filter_map(|f| serde_json::from_str::<Kept<'_>>(f.as_str()).ok())
            .filter(|k| since.is_none_or(|s| k.seq > s))
            .take(limit)
            .map(|k| proto::backend::HistoryMessage {
                seq: k.seq,
                from: k.from.to_owned(),
                name: k.name.map(str::to_owned),
                body: k.body.to_owned(),
            })
            .collect();
        (self.stream.clone(), messages)
    }
}

/// How a member is connected, as the members API names it.
fn transport_name(sink: &Sink) -> &'static str {
    match sink {
        Sink::Native(_) => "websocket",
        Sink::SocketIo(peer) => match peer.session.transport() {
            Transport::WebSocket => "socketio-websocket",
            Transport::Polling => "socketio-polling",
        },
    }
}
