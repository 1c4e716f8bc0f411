//! `DELETE /rooms/{id}`: the room's members are closed and every router
//! forgets it; the admin token guards deletion and minting.

use reqwest::Method;
use serde_json::json;
use testkit::eventually;
use testkit::inproc::Cluster;

use crate::{ADMIN_TOKEN, WAIT, assert_error, create_private, join, raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_closes_the_room_and_forgets_it() {
    let cluster = Cluster::start(3, 2).await;
    cluster.create_room("doomed").await;
    let base = cluster.router(0).ws_base();
    let (mut member, _) = join(&format!("{base}/room/doomed"), &[]).await;
    let (mut other, _) = join(&format!("{}/room/doomed", cluster.router(1).ws_base()), &[]).await;

    let http = cluster.router(0).http();
    let r = http.delete("/rooms/doomed").await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(r.text, "", "204 has no body");
    // At once on the router that deleted it is
    // `a_deleted_room_is_gone_at_once_where_it_was_deleted` (api_processes.rs).
    eventually(WAIT, "GET answers 404 after the DELETE", async || {
        http.get("/rooms/doomed").await.status == 404
    })
    .await;
    assert_error(&http.get("/rooms/doomed").await, 404, "unknown_room");
    assert_error(&http.delete("/rooms/doomed").await, 404, "unknown_room");

    for ws in [&mut member, &mut other] {
        let err = ws.recv_until("error", WAIT).await;
        assert_eq!(err["code"], "room_closed", "{err}");
        assert_eq!(ws.expect_close(WAIT).await, Some(1000));
    }
    let http1 = cluster.router(1).http();
    eventually(WAIT, "router 1 forgets the room", async || {
        http1.get("/rooms/doomed").await.status == 404
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_guards_deletion_and_minting() {
    let mut cluster = Cluster::start(3, 2).await;
    cluster
        .add_router(|c| c.admin_token = Some(ADMIN_TOKEN.parse().expect("a valid token")))
        .await;
    let guarded = cluster.router(2).http();
    cluster.create_room("guarded").await;
    create_private(&cluster, "vault").await;

    let wrong = ("authorization", "Bearer not-the-admin-token");
    let right_value = format!("Bearer {ADMIN_TOKEN}");
    let right = ("authorization", right_value.as_str());
    let basic = ("authorization", "Basic YWRtaW46YWRtaW4=");

    let r = raw(&guarded, Method::DELETE, "/rooms/guarded", &[], None).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.body["error"].is_string(), "{}", r.text);
    let r = raw(&guarded, Method::DELETE, "/rooms/guarded", &[basic], None).await;
    assert_eq!(r.status, 401, "a non-bearer scheme: {}", r.text);
    let r = raw(&guarded, Method::DELETE, "/rooms/guarded", &[wrong], None).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        cluster.router(0).http().get("/rooms/guarded").await.status,
        200,
        "still there"
    );

    let mint = Some("{\"ttl_secs\": 60}");
    let r = raw(&guarded, Method::POST, "/rooms/vault/tokens", &[], mint).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = raw(
        &guarded,
        Method::POST,
        "/rooms/vault/tokens",
        &[wrong],
        mint,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = raw(
        &guarded,
        Method::POST,
        "/rooms/vault/tokens",
        &[right],
        mint,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body["token"].is_string());

    // Reads and creation stay open.
    assert_eq!(guarded.get("/rooms/guarded").await.status, 200);
    assert_eq!(
        guarded
            .post_json("/rooms", &json!({"id": "open"}))
            .await
            .status,
        201
    );

    let r = raw(&guarded, Method::DELETE, "/rooms/guarded", &[right], None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        guarded.get("/rooms/guarded").await.status,
        404,
        "deleted with the right token"
    );
}
