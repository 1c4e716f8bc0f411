//! [`run`]: a router on a bound listener until `shutdown` resolves; the
//! routes of the API, the data plane, health, metrics and the chat page.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use roomnode::error::ApiError;
use store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::config::{ConfigError, RouterConfig};
use crate::{api, proxy};

/// Bound on waiting for proxied tunnels after shutdown is signalled.
const GRACE: Duration = Duration::from_secs(5);

/// Why a router could not start.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A flag is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// The chat page served at `/`.
const PAGE: &str = include_str!("../assets/index.html");

/// Every route. `/metrics` is on the public router only when it has no
/// listener of its own.
fn routes(app: App, public_metrics: bool) -> Router {
    let mut router = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/rooms", get(api::list).post(api::create))
        .route("/rooms/{id}", get(api::get).delete(api::delete))
        .route("/rooms/{id}/tokens", axum::routing::post(api::mint))
        .route("/nodes", get(api::nodes))
        .route("/room/{room}", get(proxy::legacy))
        .route(
            "/{instance}/room/{room}",
            axum::routing::any(proxy::instance),
        )
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz));
    if public_metrics {
        router = router.route("/metrics", get(metrics));
    }
    router
        .route_layer(middleware::from_fn_with_state(app.clone(), count))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(app)
}

/// Ready only while the store answers (existing tunnels are unaffected).
async fn readyz(State(app): State<App>) -> Response {
    if app.is_ready() {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the coordination store is unreachable".into(),
        )
        .into_response()
    }
}

async fn metrics(State(app): State<App>) -> Response {
    let body = app.metrics().render(app.mirror());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

/// Counts every routed request by route template and status.
async fn count(
    State(app): State<App>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let route = format!(
        "{} {}",
        req.method(),
        matched.as_ref().map_or("unmatched", MatchedPath::as_str)
    );
    let resp = next.run(req).await;
    app.metrics()
        .requests
        .with_label_values(&[&route, resp.status().as_str()])
        .inc();
    resp
}

/// Serves a router on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: RouterConfig,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RouterError> {
    config.validate()?;
    let stopping = CancellationToken::new();
    let tunnels = TaskTracker::new();
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None => None,
    };
    let public_metrics = metrics_listener.is_none();
    let app = App::new(config, store, tunnels.clone(), stopping.clone());
    tokio::spawn(app.clone().probe_store());
    let signal = stopping.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.cancel();
    });
    if let Some(ml) = metrics_listener {
        tracing::info!(listen = %ml.local_addr()?, "metrics listener");
        let metrics_app = Router::new()
            .route("/metrics", get(metrics))
            .with_state(app.clone());
        let stop = stopping.clone().cancelled_owned();
        tokio::spawn(async move {
            axum::serve(ml, metrics_app)
                .with_graceful_shutdown(stop)
                .await
        });
    }
    tracing::info!(listen = %listener.local_addr()?, "router serving");
    axum::serve(
        listener,
        routes(app, public_metrics).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stopping.clone().cancelled_owned())
    .await?;
    tunnels.close();
    let _ = tokio::time::timeout(GRACE, tunnels.wait()).await;
    tracing::info!("router stopped");
    Ok(())
}
