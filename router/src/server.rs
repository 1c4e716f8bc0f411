//! [`run`]: a router on a bound listener until `shutdown` resolves; the
//! routes of the API, the data plane, health, metrics, the chat page and
//! the operator dashboard (`admin`);
//! `router serve` ([`ServeArgs`]), the same against an etcd cluster.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use service::error::ApiError;
use service::server::{Limits, serve};
use store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{self, App};
use crate::config::{ConfigError, RouterConfig, StoreArgs};
use crate::{admin, api, backend, proxy};

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

/// `router serve` flags.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ROUTER_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    router: RouterConfig,
}

impl ServeArgs {
    /// `router serve`: connects to etcd, binds `--listen` and serves until
    /// `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = self.store.connect().await?;
        let listener = service::server::bind(self.listen)
            .with_context(|| format!("binding --listen {}", self.listen))?;
        run(listener, self.router, store, shutdown)
            .await
            .context("router")
    }
}

/// The chat page served at `/`.
const PAGE: &str = include_str!("../assets/index.html");

/// socket.io-client's own browser build for the page's Socket.IO mode,
/// vendored from npm (`assets/vendor/README.md`).
const SOCKET_IO_JS: &[u8] = include_bytes!("../assets/vendor/socket.io.min.js");

/// Where the page loads [`SOCKET_IO_JS`]: the path names the version, so
/// browsers may keep it for good.
const SOCKET_IO_JS_PATH: &str = "/assets/socket.io-4.8.4.min.js";

/// The server API (`backend`), behind its credential check (before the
/// body is read).
fn backend_routes(app: &App) -> Router<App> {
    Router::new()
        .route(
            "/rooms/{room}/messages",
            axum::routing::post(backend::publish),
        )
        .route("/rooms/{room}/members", get(backend::members))
        .route(
            "/rooms/{room}/members/{member}",
            axum::routing::delete(backend::kick),
        )
        .route("/rooms/{room}/history", get(backend::history))
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            app::backend_only,
        ))
        // Outside the credential check, so refused kicks are recorded too.
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            admin::audit::audited,
        ))
}

/// Every route. `/metrics` is on the public router only when it has no
/// listener of its own.
fn routes(app: App, public_metrics: bool) -> Router {
    let mut router = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(SOCKET_IO_JS_PATH, get(socket_io_js))
        .route(
            "/rooms",
            get(api::list).post(api::create.layer(middleware::from_fn_with_state(
                app.clone(),
                app::creators_only,
            ))),
        )
        .route(
            "/rooms/{room}",
            get(api::get).delete(
                api::delete
                    .layer(middleware::from_fn_with_state(app.clone(), app::admin_only))
                    .layer(middleware::from_fn_with_state(
                        app.clone(),
                        admin::audit::audited,
                    )),
            ),
        )
        .route(
            "/rooms/{room}/tokens",
            axum::routing::post(
                api::mint.layer(middleware::from_fn_with_state(app.clone(), app::admin_only)),
            ),
        )
        .merge(backend_routes(&app))
        .route("/nodes", get(api::nodes))
        .merge(admin::routes(&app))
        .route("/room/{room}", get(proxy::legacy))
        .route("/room/{room}/socket.io/", any(proxy::legacy))
        .route("/room/{room}/socket.io", any(proxy::legacy))
        .route("/{instance}/room/{room}", any(proxy::instance))
        .route("/{instance}/room/{room}/socket.io/", any(proxy::instance))
        .route("/{instance}/room/{room}/socket.io", any(proxy::instance))
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
        .layer(middleware::map_response(service::error::json_errors))
        .with_state(app)
}

/// The router's routes over `store`, with no listener and no background
/// tasks (no readiness probe, no failover reconciler): for embedding the
/// API in another server, and for fuzzing the request routing.
pub fn app(config: RouterConfig, store: Store) -> Router {
    let app = App::new(config, store, TaskTracker::new(), CancellationToken::new());
    routes(app, true)
}

/// [`SOCKET_IO_JS`], cacheable for a year (a new version gets a new path).
async fn socket_io_js() -> Response {
    use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        SOCKET_IO_JS,
    )
        .into_response()
}

/// Ready only while the store answers (existing tunnels are unaffected).
async fn readyz(State(app): State<App>) -> Response {
    match app.readiness() {
        Ok(()) => Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => e.into_response(),
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
    // Methods clients invent would each add a series for good.
    let method = match *req.method() {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::HEAD
        | Method::OPTIONS
        | Method::PATCH => req.method().as_str(),
        _ => "OTHER",
    };
    let route = format!(
        "{method} {}",
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
        Some(addr) => Some(service::server::bind(addr)?),
        None => None,
    };
    let public_metrics = metrics_listener.is_none();
    let app = App::new(config, store, tunnels.clone(), stopping.clone());
    let limits = app.config().limits(app.metrics().rejected.clone());
    tokio::spawn(app.clone().probe_store());
    tokio::spawn(crate::ownership::reconcile(app.clone()));
    tokio::spawn(admin::watch(app.clone()));
    let signal = stopping.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.cancel();
    });
    if let Some(ml) = metrics_listener {
        tracing::info!(listen = %ml.local_addr()?, "metrics listener");
        let metrics_app = Router::new()
            .route("/metrics", get(metrics))
            .layer(middleware::map_response(service::error::json_errors))
            .with_state(app.clone());
        tokio::spawn(serve(
            ml,
            metrics_app,
            stopping.clone().cancelled_owned(),
            Limits::default(),
        ));
    }
    tracing::info!(listen = %listener.local_addr()?, "router serving");
    let shutdown = stopping.clone().cancelled_owned();
    serve(listener, routes(app, public_metrics), shutdown, limits).await;
    tunnels.close();
    let _ = tokio::time::timeout(GRACE, tunnels.wait()).await;
    tracing::info!("router stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use proto::record::{NodeRecord, NodeState};
    use serde_json::{Value, json};
    use store::kv::memory::MemoryKv;
    use store::{Backend, Store};
    use tower::ServiceExt;

    use super::*;

    fn config() -> RouterConfig {
        RouterConfig {
            public_url: Some("https://chat.example.com".into()),
            metrics_listen: None,
            admin_token: Some("admin-token-0123456789".parse().unwrap()),
            create_token: None,
            api_keys: Vec::new(),
            secret: Some("secret-0123456789abcdef".parse().unwrap()),
            token_ttl: 60,
            body_timeout: 10,
            max_connections_per_ip: 0,
        }
    }

    /// The routes over an embedded store with one registered node.
    async fn routes_with_one_node() -> Router {
        routes_with(config()).await
    }

    async fn routes_with(settings: RouterConfig) -> Router {
        let store = Store::new(Backend::Memory(MemoryKv::new()), "/t");
        let node = NodeRecord {
            id: "i1".parse().unwrap(),
            addr: "http://127.0.0.1:9".into(),
            weight: 1.0,
            state: NodeState::Active,
        };
        store
            .register_node(&node, Duration::from_secs(30))
            .await
            .unwrap();
        let app = App::new(
            settings,
            store,
            TaskTracker::new(),
            CancellationToken::new(),
        );
        assert!(app.mirror().wait_synced(Duration::from_secs(5)).await);
        routes(app, true)
    }

    async fn call(
        routes: &Router,
        method: &str,
        uri: &str,
        body: Value,
        auth: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(a) = auth {
            req = req.header("authorization", format!("Bearer {a}"));
        }
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let resp = routes
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn rooms_are_created_once_and_read_back() {
        let r = routes_with_one_node().await;
        let (status, created) = call(&r, "POST", "/rooms", json!({"id": "lobby"}), None).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(created["ws_url"], "wss://chat.example.com/i1/room/lobby");
        assert_eq!(created["socketio_path"], "/i1/room/lobby/socket.io/");
        let (status, again) = call(&r, "POST", "/rooms", json!({"id": "lobby"}), None).await;
        assert_eq!((status, &again), (StatusCode::OK, &created));
        let (status, got) = call(&r, "GET", "/rooms/lobby", Value::Null, None).await;
        assert_eq!((status, got["epoch"].as_u64()), (StatusCode::OK, Some(1)));
        let (status, err) = call(&r, "POST", "/rooms", json!({"id": "no way"}), None).await;
        assert_eq!(
            (status, err["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_room_id"))
        );
    }

    #[tokio::test]
    async fn a_create_token_guards_room_creation() {
        let r = routes_with(RouterConfig {
            create_token: Some("create-token-0123456789".parse().unwrap()),
            api_keys: Vec::new(),
            ..config()
        })
        .await;
        let body = json!({"id": "guarded"});
        assert_eq!(
            call(&r, "POST", "/rooms", body.clone(), None).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&r, "POST", "/rooms", body.clone(), Some("nope"))
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        let (status, _) = call(
            &r,
            "POST",
            "/rooms",
            body.clone(),
            Some("create-token-0123456789"),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = call(&r, "POST", "/rooms", body, Some("admin-token-0123456789")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            call(&r, "GET", "/rooms/guarded", Value::Null, None).await.0,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn the_frameworks_own_refusals_are_json_too() {
        let r = routes_with_one_node().await;
        let (status, body) = call(&r, "PUT", "/rooms", Value::Null, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
        );
        let (status, body) = call(&r, "GET", "/rooms/%ff", Value::Null, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_request"))
        );
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("UTF-8")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn admin_endpoints_need_the_admin_token() {
        let r = routes_with_one_node().await;
        let (_, room) = call(
            &r,
            "POST",
            "/rooms",
            json!({"id": "p", "private": true}),
            None,
        )
        .await;
        assert!(room["token"].as_str().is_some_and(|t| t.starts_with("v1.")));
        let (status, _) = call(&r, "POST", "/rooms/p/tokens", json!({}), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = call(&r, "DELETE", "/rooms/p", Value::Null, Some("wrong")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, minted) = call(
            &r,
            "POST",
            "/rooms/p/tokens",
            json!({"name": "zed"}),
            Some("admin-token-0123456789"),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(minted["expires_at"].as_u64().is_some());
        let (status, _) = call(
            &r,
            "DELETE",
            "/rooms/p",
            Value::Null,
            Some("admin-token-0123456789"),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn nodes_list_their_rooms_and_metrics_name_them() {
        let r = routes_with_one_node().await;
        call(&r, "POST", "/rooms", json!({"id": "a"}), None).await;
        // The mirror learns of the room through its watch.
        let mut nodes = Value::Null;
        for _ in 0..100 {
            nodes = call(&r, "GET", "/nodes", Value::Null, None).await.1;
            if nodes[0]["rooms"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(nodes[0]["id"], "i1");
        assert_eq!(nodes[0]["rooms"], 1);
        let resp = r
            .clone()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let text = String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        assert!(text.contains("router_rooms{node=\"i1\"} 1"), "{text}");
        assert!(text.contains("router_nodes 1"), "{text}");
    }
}
