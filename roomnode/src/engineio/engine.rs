//! The engine: every session of the node by id, and the one entry point
//! for a request on a session path, [`Engine::serve`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{FromRequestParts, Request};
use axum::http::{Method, request::Parts};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio_util::task::TaskTracker;

use super::packet::{Kind, Packet};
use super::query::{self, Query, Refusal};
use super::session::{Farewell, Session};
use super::{
    CloseCause, Handler, Metrics, Transport, Upgrade, cors, heartbeat, polling, websocket,
};

/// Bound on waiting, at shutdown, for the sessions' tasks to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Random bytes in a session id.
const SID_BYTES: usize = 20;

/// How the engine treats its sessions.
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    /// The server pings every session this often.
    pub(crate) ping_interval: Duration,
    /// A ping not answered within this ends the session.
    pub(crate) ping_timeout: Duration,
    /// A new session must be marked connected within this.
    pub(crate) connect_timeout: Duration,
    /// Largest POST body or WebSocket message, in bytes (`maxPayload`).
    pub(crate) max_payload: usize,
    /// Packets allowed to wait for one client before it is dropped as a
    /// slow consumer.
    pub(crate) max_queue: usize,
    /// Sessions allowed to wait for `mark_connected` at once; more are
    /// refused with 503.
    pub(crate) max_pending: usize,
    /// Origins whose pages may use the sessions; empty: any.
    pub(crate) allowed_origins: Vec<String>,
}

/// What every session shares.
pub(super) struct Core {
    pub(super) config: EngineConfig,
    pub(super) metrics: Arc<Metrics>,
    /// Sessions not yet marked connected.
    pub(super) pending: AtomicUsize,
    /// The packets of the engine's own, built once.
    pub(super) ping: Arc<Packet>,
    pub(super) noop: Arc<Packet>,
    pub(super) close: Arc<Packet>,
}

/// The node's Engine.IO sessions; a cheap handle.
#[derive(Clone)]
pub(crate) struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    core: Arc<Core>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// The sessions' tasks (heartbeats, WebSockets), for shutdown.
    tasks: TaskTracker,
    closing: AtomicBool,
}

impl Engine {
    pub(crate) fn new(config: EngineConfig, metrics: Arc<Metrics>) -> Self {
        let core = Core {
            config,
            metrics,
            pending: AtomicUsize::new(0),
            ping: Arc::new(Packet::control(Kind::Ping, "")),
            noop: Arc::new(Packet::control(Kind::Noop, "")),
            close: Arc::new(Packet::control(Kind::Close, "")),
        };
        Self {
            inner: Arc::new(Inner {
                core: Arc::new(core),
                sessions: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                closing: AtomicBool::new(false),
            }),
        }
    }

    fn sessions_lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Open sessions (for metrics).
    pub(crate) fn sessions(&self) -> usize {
        self.sessions_lock().len()
    }

    /// Serves one HTTP request on a session path. `scope` names the path's
    /// room: a session of another scope is unknown here. `open` is called
    /// only for a valid request that starts a session, before anything is
    /// sent: it admits the session into its room and returns its handler,
    /// or a response that refuses it (returned as is).
    pub(crate) async fn serve<F>(&self, req: Request, scope: &str, open: F) -> Response
    where
        F: AsyncFnOnce(&Arc<Session>) -> Result<Arc<dyn Handler>, Response>,
    {
        let (mut parts, body) = req.into_parts();
        let origin = match cors::check(&parts.headers, &self.inner.core.config.allowed_origins) {
            Ok(origin) => origin,
            Err(refusal) => return refusal.into_response(),
        };
        if parts.method == Method::OPTIONS {
            return cors::preflight(&parts.headers, origin);
        }
        let raw = parts.uri.query().map(str::to_owned);
        let mut resp = match query::parse(raw.as_deref()) {
            Err(refusal) => refusal.into_response(),
            Ok(Query {
                transport,
                sid: None,
            }) => self.handshake(&mut parts, scope, transport, open).await,
            Ok(Query {
                transport: Transport::Polling,
                sid: Some(sid),
            }) => match self.find(sid, scope) {
                None => Refusal::UnknownSid.into_response(),
                Some(session) => match parts.method {
                    Method::GET => polling::get(&session).await,
                    Method::POST => polling::post(&session, &parts.headers, body).await,
                    _ => Refusal::BadRequest.into_response(),
                },
            },
            Ok(Query {
                transport: Transport::WebSocket,
                sid: Some(sid),
            }) => match self.find(sid, scope) {
                None => Refusal::UnknownSid.into_response(),
                Some(session) => self.probe(&mut parts, session).await,
            },
        };
        cors::allow(&mut resp, origin);
        resp
    }

    fn find(&self, sid: &str, scope: &str) -> Option<Arc<Session>> {
        self.sessions_lock()
            .get(sid)
            .filter(|s| s.scope() == scope)
            .cloned()
    }

    /// A request without `sid`: a new session, on polling (a GET answered
    /// with the open packet) or on a WebSocket (its first frame).
    async fn handshake<F>(
        &self,
        parts: &mut Parts,
        scope: &str,
        transport: Transport,
        open: F,
    ) -> Response
    where
        F: AsyncFnOnce(&Arc<Session>) -> Result<Arc<dyn Handler>, Response>,
    {
        let upgrade = match transport {
            Transport::Polling if parts.method != Method::GET => {
                return Refusal::BadHandshakeMethod.into_response();
            }
            Transport::Polling => None,
            Transport::WebSocket => match Upgrade::from_request_parts(parts, &()).await {
                Ok(upgrade) => Some(upgrade),
                Err(_) => return Refusal::BadRequest.into_response(),
            },
        };
        let session = match self.open(scope, transport, open).await {
            Ok(session) => session,
            Err(resp) => return resp,
        };
        let open_packet = self.open_packet(&session, transport);
        match upgrade {
            None => polling::opened(&open_packet),
            Some(upgrade) => {
                let config = websocket::config(self.inner.core.config.max_payload);
                upgrade.accept(config, &self.inner.tasks, move |accepted| {
                    websocket::run_fresh(session, accepted, open_packet)
                })
            }
        }
    }

    /// Creates a session, has the layer above admit it, and starts its
    /// task.
    async fn open<F>(
        &self,
        scope: &str,
        transport: Transport,
        open: F,
    ) -> Result<Arc<Session>, Response>
    where
        F: AsyncFnOnce(&Arc<Session>) -> Result<Arc<dyn Handler>, Response>,
    {
        let core = &self.inner.core;
        if self.inner.closing.load(Ordering::Relaxed) {
            return Err(Refusal::Busy.into_response());
        }
        if core.pending.fetch_add(1, Ordering::Relaxed) >= core.config.max_pending {
            core.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::Busy.into_response());
        }
        let sid = URL_SAFE_NO_PAD.encode(rand::random::<[u8; SID_BYTES]>());
        let session = Arc::new(Session::new(sid, scope, core.clone(), transport));
        let handler = match open(&session).await {
            Ok(handler) => handler,
            Err(resp) => {
                session.discard();
                return Err(resp);
            }
        };
        session.set_handler(handler);
        {
            let mut sessions = self.sessions_lock();
            sessions.insert(session.sid().to_owned(), session.clone());
            if self.inner.closing.load(Ordering::Relaxed) {
                session.end(CloseCause::Shutdown, Farewell::Silent);
            }
        }
        self.inner
            .tasks
            .spawn(heartbeat::run(session.clone(), self.clone()));
        if session.cause().is_some() {
            return Err(Refusal::Busy.into_response());
        }
        Ok(session)
    }

    fn open_packet(&self, session: &Session, transport: Transport) -> String {
        let config = &self.inner.core.config;
        let upgrades: &[&str] = match transport {
            Transport::Polling => &["websocket"],
            Transport::WebSocket => &[],
        };
        let json = serde_json::json!({
            "sid": session.sid(),
            "upgrades": upgrades,
            "pingInterval": config.ping_interval.as_millis(),
            "pingTimeout": config.ping_timeout.as_millis(),
            "maxPayload": config.max_payload,
        });
        format!("0{json}")
    }

    /// A WebSocket with a `sid`: the probe of an upgrade. A session that
    /// cannot upgrade (upgraded already, or another probe running) gets
    /// the WebSocket opened and closed at once, as the reference server
    /// does (and as its clients expect: an HTTP refusal is an error event).
    async fn probe(&self, parts: &mut Parts, session: Arc<Session>) -> Response {
        let upgrade = match Upgrade::from_request_parts(parts, &()).await {
            Ok(upgrade) => upgrade,
            Err(_) => return Refusal::BadRequest.into_response(),
        };
        let config = websocket::config(self.inner.core.config.max_payload);
        if !session.can_probe() {
            return upgrade.accept(config, &self.inner.tasks, move |accepted| {
                websocket::run_refused(session, accepted)
            });
        }
        upgrade.accept(config, &self.inner.tasks, move |accepted| {
            websocket::run_probe(session, accepted)
        })
    }

    /// Forgets an ended session (its task, once it has said goodbye).
    pub(super) fn remove(&self, session: &Session) {
        let mut sessions = self.sessions_lock();
        if sessions
            .get(session.sid())
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), session))
        {
            sessions.remove(session.sid());
        }
    }

    /// Closes every session with [`super::Close::Transport`] (the clients
    /// reconnect, elsewhere), refuses new ones, and waits (bounded) for
    /// their tasks.
    pub(crate) async fn shutdown(&self) {
        self.inner.closing.store(true, Ordering::Relaxed);
        let all: Vec<_> = self.sessions_lock().values().cloned().collect();
        for session in all {
            session.end(CloseCause::Shutdown, Farewell::Silent);
        }
        self.inner.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("Engine.IO sessions still running after the shutdown grace");
        }
    }
}
