//! Deadlines on request bodies: a trickled body is answered 408 and its
//! connection closed at the deadline, on routers and nodes, and counted;
//! trickling clients no longer starve a router of descriptors.

use std::time::Duration;

use testkit::cluster::TEST_SECRET;
use testkit::{Cluster, Http, Proc, bin_path, eventually, free_port, metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::raw::{Answer, assert_refusal, local, parse};
use super::{BODY_TIMEOUT, WAIT};

/// `POST path` announcing a 100-byte body, then one byte each 200 ms until
/// the server answers and closes (or 20 s pass): the answer and when the
/// connection ended, from the end of the head.
async fn trickle(port: u16, path: &str, auth: Option<&str>) -> (Answer, Duration) {
    let mut s = TcpStream::connect(local(port)).await.expect("connect");
    let auth = auth.map_or(String::new(), |a| format!("Authorization: Bearer {a}\r\n"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.expect("write the head");
    let start = Instant::now();
    let mut drip = tokio::time::interval(Duration::from_millis(200));
    let (mut raw, mut buf) = (Vec::new(), [0u8; 4096]);
    loop {
        tokio::select! {
            n = s.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            },
            _ = drip.tick() => {
                assert!(start.elapsed() < Duration::from_secs(20), "{path}: still open after 20 s");
                // The server may have closed its side already.
                let _ = s.write_all(b" ").await;
            }
        }
    }
    (parse(&raw), start.elapsed())
}

/// Asserts a trickled request got 408 with the JSON error at the deadline.
fn assert_cut_at_deadline(answer: &Answer, took: Duration, what: &str) {
    assert_refusal(answer, 408, "request_timeout", what);
    assert!(
        answer.head.contains("connection: close"),
        "{what}: {answer:?}"
    );
    let deadline = Duration::from_secs(BODY_TIMEOUT);
    assert!(
        took >= deadline - Duration::from_millis(300) && took < deadline + Duration::from_secs(2),
        "{what}: closed {took:?} after the head (deadline {deadline:?})"
    );
}

#[tokio::test]
async fn trickled_bodies_get_408_and_are_closed_at_the_deadline() {
    let timeout = BODY_TIMEOUT.to_string();
    let mut cluster = Cluster::start_with(1, 0, &["--body-timeout", &timeout]).await;
    let router = cluster.add_router(&["--body-timeout", &timeout]).await.port;

    // Twenty at once on the router's room API.
    let trickles = (0..20).map(|_| trickle(router, "/rooms", None));
    for (i, (answer, took)) in futures_util::future::join_all(trickles)
        .await
        .iter()
        .enumerate()
    {
        assert_cut_at_deadline(answer, *took, &format!("router POST /rooms #{i}"));
    }

    // The node's endpoint with a body (internal, so with the cluster key).
    let secret: proto::token::Secret = TEST_SECRET.parse().expect("secret");
    let key = proto::handoff::internal_key(&secret);
    let node = cluster.node(1).port;
    let (answer, took) = trickle(node, proto::handoff::STATE_PATH, Some(&key)).await;
    assert_cut_at_deadline(&answer, took, "node POST /internal/state");

    // Both count it.
    let rejected = |port, name| async move {
        let text = metrics::scrape(&Http::new(format!("http://127.0.0.1:{port}"))).await;
        metrics::sum_with(&text, name, &[("reason", "body_timeout")])
    };
    assert_eq!(rejected(router, "router_rejected_total").await, Some(20.0));
    assert_eq!(rejected(node, "roomnode_rejected_total").await, Some(1.0));
}

#[tokio::test]
async fn trickling_clients_no_longer_starve_the_router_of_descriptors() {
    // The router with few descriptors, as 1,100 trickled bodies left the
    // one in the report: it stopped accepting, /healthz included.
    let cluster = Cluster::start(1, 0).await;
    let port = free_port();
    let command = format!(
        "ulimit -n 96 && exec {} serve --listen 127.0.0.1:{port} --etcd {} --prefix {} --body-timeout {BODY_TIMEOUT}",
        bin_path("router").display(),
        cluster.etcd.endpoint(),
        cluster.prefix,
    );
    let router = Proc::program("router", "/bin/sh")
        .args(["-c", &command])
        .spawn();
    let http = testkit::Http::new(format!("http://127.0.0.1:{port}"));
    eventually(WAIT, "the router is ready", async || {
        http.send(reqwest::Method::GET, "/readyz", None)
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;

    let trickles = (0..150).map(|_| trickle(port, "/rooms", None));
    let ends = futures_util::future::join_all(trickles).await;
    let cut = ends.iter().filter(|(a, _)| a.status == 408).count();
    // Those accepted late (after descriptors came free) start their
    // deadline then; none may stay open.
    let longest = ends.iter().map(|(_, took)| *took).max().unwrap_or_default();
    assert!(
        longest < Duration::from_secs(4 * BODY_TIMEOUT + 4),
        "a trickle stayed open {longest:?}"
    );
    assert_eq!(cut, 150, "trickles answered 408\n{}", router.log_tail(20));
    let health = http.get("/healthz").await;
    assert_eq!(
        health.status, 200,
        "/healthz after the trickles: {health:?}"
    );
    assert!(
        router.log().contains("Too many open files"),
        "the trickles did not reach the descriptor limit, so this test shows nothing"
    );
}
