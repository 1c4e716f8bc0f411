//! The admin API behind the operator dashboard (SPEC "Operator dashboard",
//! docs/admin.md), in process: every endpoint the page calls refuses a
//! missing or wrong credential and answers the admin token; the overview's
//! live figures and imbalance; a rebalance and a drain run as operations
//! with progress, events and audit entries; kicks and deletions audited.
//!
//! Layout: this file holds the helpers, the page and the router without an
//! admin token; `overview.rs` the cluster view's endpoint; `operations.rs`
//! the plan, rebalance, drain and undrain; `events.rs` the events and the
//! audit list.

mod events;
mod operations;
mod overview;

use std::time::Duration;

use proto::record::{NodeRecord, NodeState};
use reqwest::Method;
use serde_json::{Value, json};
use testkit::ids::iid;
use testkit::inproc::Cluster;
use testkit::ws::join;
use testkit::{Http, Reply, eventually};

const ADMIN: &str = "admin-token-0123456789";
const API_KEY: &str = "api-key-0123456789abc";
const WAIT: Duration = Duration::from_secs(15);

/// `nodes` nodes and one router with an admin token and an API key.
async fn cluster(nodes: u16) -> Cluster {
    let mut cluster = Cluster::start(nodes, 0).await;
    cluster
        .add_router(|c| {
            c.admin_token = Some(ADMIN.parse().unwrap());
            c.api_keys = vec![API_KEY.parse().unwrap()];
        })
        .await;
    cluster.wait_nodes_seen(nodes as usize).await;
    cluster
}

async fn admin_get(router: &Http, path: &str) -> Value {
    let r = router.call(Method::GET, path, Some(ADMIN), None).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text);
    r.body
}

/// No credential: 401; a wrong one: 403; the admin token: `ok`.
async fn assert_guarded(
    router: &Http,
    method: Method,
    path: &str,
    body: Option<Value>,
    ok: u16,
) -> Reply {
    let b = body.as_ref();
    router
        .call(method.clone(), path, None, b)
        .await
        .assert_error(401, "unauthorized");
    router
        .call(method.clone(), path, Some("wrong-0123456789"), b)
        .await
        .assert_error(403, "forbidden");
    let r = router.call(method.clone(), path, Some(ADMIN), b).await;
    assert_eq!(
        r.status, ok,
        "{method} {path} with the admin token: {}",
        r.text
    );
    r
}

/// Waits until operation `id` has ended; it, as the API shows it.
async fn finished(router: &Http, id: u64) -> Value {
    let path = format!("/admin/operations/{id}");
    let mut op = Value::Null;
    eventually(WAIT, "the operation ends", async || {
        op = admin_get(router, &path).await;
        op["state"] != "running"
    })
    .await;
    op
}

#[tokio::test]
async fn the_page_and_its_assets_load_without_a_credential() {
    let cluster = cluster(1).await;
    let router = cluster.router(0).http();
    let page = router.get("/admin").await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text.contains(r#"<script src="/admin/admin.js">"#));
    for (path, kind) in [
        ("/admin/admin.js", "text/javascript"),
        ("/admin/admin.css", "text/css"),
    ] {
        let r = router.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with(kind),
            "{path}"
        );
    }
    // The page keeps the token out of URLs: it sends a header.
    let script = router.get("/admin/admin.js").await.text;
    assert!(script.contains("sessionStorage") && script.contains("authorization"));
}

#[tokio::test]
async fn without_an_admin_token_the_page_loads_and_its_api_is_refused() {
    let cluster = Cluster::start(1, 1).await;
    let router = cluster.router(0).http();
    assert_eq!(router.get("/admin").await.status, 200);
    for path in [
        "/admin/overview",
        "/admin/events",
        "/admin/audit",
        "/admin/plan",
        "/admin/operations",
        "/admin/operations/1",
    ] {
        router.get(path).await.assert_error(403, "admin_disabled");
    }
    router
        .post_json("/admin/operations", &json!({"op": "rebalance"}))
        .await
        .assert_error(403, "admin_disabled");
}
