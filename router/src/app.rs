//! [`App`]: the handle every request handler shares: configuration, store,
//! its mirror, readiness, metrics and the dashboard's state.

use proto::ErrorCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use service::auth::{bearer, secret_eq};
use service::client::InternalClient;
use service::error::ApiError;
use store::{Mirror, Scope, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{RouterConfig, ws_base};
use crate::metrics::Metrics;
use proto::token::Secret;

/// How often readiness asks the store whether it answers.
const READY_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Shared router state. Cheap to clone.
#[derive(Clone)]
pub(crate) struct App {
    inner: Arc<Inner>,
}

struct Inner {
    config: RouterConfig,
    store: Store,
    mirror: Mirror,
    metrics: Metrics,
    store_ok: AtomicBool,
    internal: Option<InternalClient>,
    tunnels: TaskTracker,
    stopping: CancellationToken,
    admin: crate::admin::Admin,
}

impl App {
    pub(crate) fn new(
        config: RouterConfig,
        store: Store,
        tunnels: TaskTracker,
        stopping: CancellationToken,
    ) -> Self {
        let mirror = Mirror::start(store.clone(), Scope::Cluster, None);
        let internal = config.secret.as_ref().map(InternalClient::new);
        Self {
            inner: Arc::new(Inner {
                internal,
                config,
                store,
                mirror,
                metrics: Metrics::new(),
                store_ok: AtomicBool::new(false),
                tunnels,
                stopping,
                admin: crate::admin::Admin::new(),
            }),
        }
    }

    pub(crate) fn config(&self) -> &RouterConfig {
        &self.inner.config
    }

    /// The client for the nodes' internal endpoints, with a secret.
    pub(crate) fn internal_client(&self) -> Option<&InternalClient> {
        self.inner.internal.as_ref()
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn mirror(&self) -> &Mirror {
        &self.inner.mirror
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The operator dashboard's logs, operations and scrape cache.
    pub(crate) fn admin(&self) -> &crate::admin::Admin {
        &self.inner.admin
    }

    pub(crate) fn tunnels(&self) -> &TaskTracker {
        &self.inner.tunnels
    }

    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.inner.stopping
    }

    /// Ready: the store answered the last probe and the mirror's view of it
    /// is loaded and current.
    pub(crate) fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }

    /// Why the router is not ready, as the error `/readyz` answers.
    pub(crate) fn readiness(&self) -> Result<(), ApiError> {
        if !self.inner.store_ok.load(Ordering::Acquire) {
            return Err(ApiError::new(
                ErrorCode::StoreUnavailable,
                "the coordination store is unreachable".into(),
            ));
        }
        match self.inner.mirror.staleness() {
            None => Ok(()),
            Some(s) => Err(ApiError::new(
                s.code(),
                format!(
                    "this router's view of the store is not current (last confirmed {:.1}s ago)",
                    self.inner.mirror.age().as_secs_f64()
                ),
            )),
        }
    }

    /// Probes the store until stopped, for `/readyz`; logs every change of
    /// readiness with its reason.
    pub(crate) async fn probe_store(self) {
        let mut was: Option<String> = Some("starting".into());
        loop {
            let ok = self.inner.store.ping().await.is_ok();
            self.inner.metrics.store_up.set(i64::from(ok));
            self.inner.store_ok.store(ok, Ordering::Release);
            let age = self.inner.mirror.age();
            let now = self.readiness().err().map(|e| e.code().to_owned());
            if now != was {
                match &now {
                    None => tracing::info!("ready: store reachable and view current"),
                    Some(reason) => tracing::warn!(
                        reason = reason.as_str(),
                        age = ?age,
                        "not ready; answering lookups from cache"
                    ),
                }
                was = now;
            }
            tokio::select! {
                () = tokio::time::sleep(READY_PROBE_INTERVAL) => {}
                () = self.inner.stopping.cancelled() => return,
            }
        }
    }

    /// `ws://host` for `ws_url`s: `--public-url`, else the request's `Host`
    /// (and `X-Forwarded-Proto` from a TLS-terminating load balancer).
    pub(crate) fn ws_base(&self, headers: &HeaderMap) -> String {
        if let Some(base) = self.inner.config.public_url.as_deref().and_then(ws_base) {
            return base;
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let tls = headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
        format!("{}://{host}", if tls { "wss" } else { "ws" })
    }

    /// Refuses the request unless it carries the admin token (when one is
    /// configured). Compared in constant time.
    pub(crate) fn require_admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        require(
            headers,
            [self.inner.config.admin_token.as_ref()],
            "admin token",
        )
    }

    /// Refuses a room creation unless it carries the create token or the
    /// admin token (when a create token is configured).
    pub(crate) fn require_creator(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let config = &self.inner.config;
        if config.create_token.is_none() {
            return Ok(());
        }
        require(
            headers,
            [config.create_token.as_ref(), config.admin_token.as_ref()],
            "create token",
        )
    }
}

/// Layer in front of the server API: the admin token or an API key (when
/// either is configured), checked before the body is read.
pub(crate) async fn backend_only(
    State(app): State<App>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let config = app.config();
    let accepted =
        std::iter::once(config.admin_token.as_ref()).chain(config.api_keys.iter().map(Some));
    require(req.headers(), accepted, "admin token or API key")?;
    Ok(next.run(req).await)
}

/// Layer in front of admin-token routes: refuses before the body is read.
pub(crate) async fn admin_only(
    State(app): State<App>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    app.require_admin(req.headers())?;
    Ok(next.run(req).await)
}

/// Layer in front of `/admin/*`: those need an admin token to be set at
/// all, and the caller to carry it; refuses before the body is read.
pub(crate) async fn admin_endpoint(
    State(app): State<App>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if app.config().admin_token.is_none() {
        return Err(ApiError::new(
            ErrorCode::AdminDisabled,
            "admin endpoints need the router to run with --admin-token".into(),
        ));
    }
    admin_only(State(app), req, next).await
}

/// Layer in front of room creation: the create token (or the admin token)
/// when one is set, checked before the body is read.
pub(crate) async fn creators_only(
    State(app): State<App>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    app.require_creator(req.headers())?;
    Ok(next.run(req).await)
}

/// Refuses unless the bearer credential is one of `accepted` (none
/// configured: anyone passes).
fn require<'a>(
    headers: &HeaderMap,
    accepted: impl IntoIterator<Item = Option<&'a Secret>>,
    what: &str,
) -> Result<(), ApiError> {
    let accepted: Vec<&Secret> = accepted.into_iter().flatten().collect();
    if accepted.is_empty() {
        return Ok(());
    }
    match bearer(headers) {
        Some(g) if accepted.iter().any(|t| secret_eq(g, t.expose())) => Ok(()),
        Some(_) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("the {what} is wrong"),
        )),
        None => Err(ApiError::new(
            ErrorCode::Unauthorized,
            format!("this endpoint needs Authorization: Bearer <{what}>"),
        )),
    }
}
