//! The operator dashboard and the admin API it uses (docs/admin.md).
//!
//! `GET /admin` serves the page (plain HTML, JS and CSS compiled into the
//! binary, no build step); the page signs in with the admin token, keeps it
//! in the tab's sessionStorage and sends it as `Authorization: Bearer` on
//! every call. It uses the router's public API (`/nodes`, `/rooms…`, the
//! server API for members, kick and history) and these:
//!
//! - [`overview`]: `GET /admin/overview`, nodes with live figures and the
//!   imbalance indicator;
//! - [`scrape`]: the nodes' `/metrics`, fetched on demand and cached;
//! - [`rebalance`]: `POST /admin/rebalance` (blocking, for scripts) and
//!   `GET /admin/plan`;
//! - [`operations`]: `POST /admin/operations` (rebalance, drain, undrain in
//!   the background) and `GET /admin/operations[/{id}]` (progress);
//! - [`events`]: `GET /admin/events`, the live log of node and room changes;
//! - [`audit`]: `GET /admin/audit`, who did what, and the layer that
//!   records kicks and deletions.
//!
//! Like every `/admin/*` endpoint, the API needs the admin token to be set
//! and given (403 `admin_disabled` on a router without one); only the page
//! and its two assets load without it.

pub(crate) mod audit;
pub(crate) mod events;
mod operations;
mod overview;
mod rebalance;
mod scrape;

use std::sync::Arc;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::app::{self, App};

pub(crate) use events::watch;

/// The dashboard's state in a router: logs, operations and the scrape
/// cache. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Admin {
    pub(crate) events: events::Events,
    pub(crate) audit: audit::Audit,
    operations: operations::Operations,
    scraper: Arc<scrape::Scraper>,
}

impl Admin {
    pub(crate) fn new() -> Self {
        Self {
            events: events::Events::default(),
            audit: audit::Audit::default(),
            operations: operations::Operations::default(),
            scraper: Arc::new(scrape::Scraper::new()),
        }
    }
}

const PAGE: &str = include_str!("../../assets/admin/index.html");
const SCRIPT: &str = include_str!("../../assets/admin/admin.js");
const STYLE: &str = include_str!("../../assets/admin/admin.css");

/// One of the page's files, revalidated on every load (they change with
/// the binary).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

/// The page, its assets and the admin API.
pub(crate) fn routes(app: &App) -> Router<App> {
    let api = Router::new()
        .route("/admin/overview", get(overview::overview))
        .route("/admin/events", get(events::list))
        .route("/admin/audit", get(audit::list))
        .route("/admin/plan", get(rebalance::plan))
        .route(
            "/admin/operations",
            get(operations::list).post(operations::start),
        )
        .route("/admin/operations/{id}", get(operations::get))
        .route("/admin/rebalance", post(rebalance::rebalance))
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            app::admin_endpoint,
        ));
    Router::new()
        .route(
            "/admin",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/admin/admin.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/admin/admin.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .merge(api)
}
