//! Request heads: auth schemes match in any case, and oversized heads get
//! the JSON error.

use serde_json::{Value, json};
use testkit::Cluster;

use super::raw::{assert_refusal, exchange};

#[tokio::test]
async fn auth_schemes_match_in_any_case() {
    const ADMIN: &str = "admin-token-0123456789";
    let mut cluster = Cluster::start(1, 0).await;
    let router = cluster.add_router(&["--admin-token", ADMIN]).await.http();
    let created = router
        .post_json("/rooms", &json!({"id": "vault", "private": true}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let client = reqwest::Client::new();
    let mint = client
        .post(router.url("/rooms/vault/tokens"))
        .header("authorization", format!("bearer {ADMIN}"))
        .json(&json!({}))
        .send()
        .await
        .expect("mint");
    assert_eq!(mint.status(), 201, "lowercase bearer on the router");
    let token: Value = mint.json().await.expect("token JSON");
    let token = token["token"].as_str().expect("token");

    let url = format!("{}/i1/room/vault", cluster.node(1).ws_base());
    let auth = format!("BEARER {token}");
    let joined = testkit::WsClient::connect_with_headers(&url, &[("Authorization", &auth)]).await;
    assert!(
        joined.is_ok(),
        "uppercase BEARER on the node: {:?}",
        joined.err()
    );

    let del = client
        .delete(router.url("/rooms/vault"))
        .header("authorization", format!("BeArEr  {ADMIN}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status(), 204, "mixed case and two spaces");
}

#[tokio::test]
async fn oversized_request_heads_get_the_json_error() {
    let cluster = Cluster::start(1, 1).await;
    let long_target = format!("/rooms/{}", "a".repeat(9000));
    let many: String = (0..150).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let big = format!("x-big: {}\r\n", "b".repeat(70_000));
    for port in [cluster.router(0).port, cluster.node(1).port] {
        let answer = exchange(
            port,
            format!("GET {long_target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await;
        assert_refusal(&answer, 414, "uri_too_long", "a 9,000-byte target");
        for (headers, what) in [(&many, "150 header fields"), (&big, "a 70 KB header")] {
            let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
            let answer = exchange(port, req.as_bytes()).await;
            assert_refusal(&answer, 431, "headers_too_large", what);
        }
    }
}
