//! Private rooms: a join needs a valid token for that room, through the
//! router or at the node; minted tokens bind a name and expire.

use serde_json::json;
use testkit::WsClient;
use testkit::eventually;
use testkit::inproc::Cluster;
use testkit::ws::tungstenite::Error;

use crate::{WAIT, assert_error, create_private, join, now_secs, ws_refusal};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_rooms_need_a_valid_token_for_that_room() {
    let cluster = Cluster::start(3, 2).await;
    let p1 = create_private(&cluster, "p1").await;
    let p2 = create_private(&cluster, "p2").await;
    let url = p1["ws_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&cluster.router(0).ws_base()), "{url}");
    let token = p1["token"].as_str().unwrap();

    assert_eq!(ws_refusal(&url, &[]).await, (401, "token_required".into()));

    let (mut ws, welcome) = join(&format!("{url}?token={token}"), &[]).await;
    assert_eq!(welcome["room"], "p1");
    assert_eq!(welcome["node"], p1["node"]);

    // Flip one character of the signature.
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig: Vec<u8> = sig.bytes().collect();
    sig[0] = if sig[0] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{head}.{}", String::from_utf8(sig).unwrap());
    assert_eq!(
        ws_refusal(&format!("{url}?token={tampered}"), &[]).await,
        (401, "invalid_token".into())
    );
    assert_eq!(
        ws_refusal(&format!("{url}?token=garbage"), &[]).await,
        (401, "invalid_token".into())
    );

    let other = p2["token"].as_str().unwrap();
    assert_eq!(
        ws_refusal(&format!("{url}?token={other}"), &[]).await,
        (403, "wrong_room".into())
    );

    // The header instead of the query, at the node itself too.
    let bearer = format!("Bearer {token}");
    let (_ws2, welcome) = join(&url, &[("authorization", &bearer)]).await;
    assert_eq!(welcome["room"], "p1");
    assert_eq!(welcome["members"], 2);
    let owner = cluster.owner("p1").await;
    let direct = format!("{}{}", owner.ws_base(), p1["path"].as_str().unwrap());
    assert_eq!(
        ws_refusal(&direct, &[]).await,
        (401, "token_required".into())
    );
    let (_ws3, welcome) = join(&direct, &[("authorization", &bearer)]).await;
    assert_eq!(welcome["members"], 3);
    let joined = ws.recv_until("joined", WAIT).await;
    assert_eq!(joined["members"], 2);

    // The legacy path goes through the same check.
    let legacy = format!("{}/room/p1", cluster.router(1).ws_base());
    assert_eq!(
        ws_refusal(&legacy, &[]).await,
        (401, "token_required".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minted_token_binds_its_name() {
    let cluster = Cluster::start(3, 2).await;
    let p1 = create_private(&cluster, "p1").await;
    let url = p1["ws_url"].as_str().unwrap().to_owned();
    let http = cluster.router(1).http();
    let before = now_secs();
    let r = http
        .post_json("/rooms/p1/tokens", &json!({"name": "zed", "ttl_secs": 60}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let minted = r.body["token"].as_str().expect("token").to_owned();
    let expires = r.body["expires_at"].as_u64().expect("expires_at");
    assert!(
        (before + 60..=now_secs() + 60).contains(&expires),
        "expires_at {expires} is not now + 60"
    );

    let (mut watcher, _) = join(
        &format!("{url}?token={}", p1["token"].as_str().unwrap()),
        &[],
    )
    .await;
    let (mut zed, welcome) = join(&format!("{url}?token={minted}&name=other"), &[]).await;
    assert_eq!(welcome["room"], "p1");
    let joined = watcher.recv_until("joined", WAIT).await;
    assert_eq!(joined["name"], "zed", "the token's name wins: {joined}");
    assert_eq!(joined["member"], welcome["member"]);

    zed.send_json(&json!({"type": "send", "body": "hi"})).await;
    for ws in [&mut watcher, &mut zed] {
        let msg = ws.recv_until("message", WAIT).await;
        assert_eq!(
            (&msg["name"], &msg["body"], &msg["seq"]),
            (&json!("zed"), &json!("hi"), &json!(1))
        );
    }

    // Bad mint requests.
    let r = http
        .post_json("/rooms/p1/tokens", &json!({"ttl_secs": 0}))
        .await;
    assert_eq!(r.status, 400, "ttl 0: {}", r.text);
    let r = http
        .post_json("/rooms/p1/tokens", &json!({"name": "n".repeat(65)}))
        .await;
    assert_eq!(r.status, 400, "name over 64: {}", r.text);
    let r = http
        .post_json("/rooms/p1/tokens", &json!({"nom": "typo"}))
        .await;
    assert_error(&r, 400, "invalid_body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_token_expires() {
    let cluster = Cluster::start(3, 2).await;
    let p1 = create_private(&cluster, "p1").await;
    let url = p1["ws_url"].as_str().unwrap().to_owned();
    let r = cluster
        .router(0)
        .http()
        .post_json("/rooms/p1/tokens", &json!({"ttl_secs": 1}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let expires = r.body["expires_at"].as_u64().unwrap();
    assert!(expires <= now_secs() + 1, "expires_at {expires}");
    let with_token = format!("{url}?token={}", r.body["token"].as_str().unwrap());
    eventually(
        WAIT,
        "the 1 s token is refused as expired",
        async || match WsClient::connect(&with_token).await {
            Ok(_) => false,
            Err(Error::Http(resp)) if resp.status() == 401 => true,
            Err(e) => panic!("unexpected refusal of an expiring token: {e}"),
        },
    )
    .await;
    assert_eq!(
        ws_refusal(&with_token, &[]).await,
        (401, "token_expired".into())
    );
    assert!(now_secs() >= expires, "refused before its expiry {expires}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_only_for_private_rooms() {
    let cluster = Cluster::start(3, 2).await;
    cluster.create_room("public").await;
    let http = cluster.router(0).http();
    let r = http.post_json("/rooms/public/tokens", &json!({})).await;
    assert_error(&r, 400, "not_private");
    let r = http.post_json("/rooms/ghost/tokens", &json!({})).await;
    assert_error(&r, 404, "unknown_room");
    let r = http.post_json("/rooms/a%20b/tokens", &json!({})).await;
    assert_error(&r, 400, "invalid_room_id");
    // A repeat POST of a private room returns the record without a new token.
    let p = create_private(&cluster, "p1").await;
    let again = http
        .post_json("/rooms", &json!({"id": "p1", "private": true}))
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["private"], true);
    assert_eq!(again.body["node"], p["node"]);
    assert!(again.body.get("token").is_none(), "{}", again.text);
    // And a public room needs none, even when one is passed.
    let (_ws, welcome) = join(
        &format!("{}/room/public?token=whatever", cluster.router(0).ws_base()),
        &[],
    )
    .await;
    assert_eq!(welcome["room"], "public");
}
