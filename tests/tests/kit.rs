//! Checks of the test kit itself, so that an end-to-end failure points at
//! the system under test and not at its tools: processes and their logs,
//! the WebSocket client against a scripted server, and the HTTP client
//! against etcd's own HTTP endpoints.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use testkit::ws::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use testkit::ws::tungstenite::protocol::CloseFrame;
use testkit::ws::tungstenite::{Error, Message};
use testkit::{Etcd, Http, Proc, WsClient, bin_path, eventually, wait_until};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn proc_logs_output_and_obeys_signals() {
    let mut p = Proc::program("sh", "/bin/sh")
        .args([
            "-c",
            "echo out; echo err >&2; echo $GREETING; exec sleep 30",
        ])
        .env("GREETING", "hello")
        .spawn();
    eventually(WAIT, "the shell has written its three lines", async || {
        p.log().lines().count() == 3
    })
    .await;
    let log = p.log();
    for line in ["out", "err", "hello"] {
        assert!(
            log.lines().any(|l| l == line),
            "{line:?} missing from {log:?}"
        );
    }
    assert_eq!(p.wait_exit(Duration::from_millis(100)).await, None);
    assert!(p.signal_term());
    let status = p.wait_exit(WAIT).await.expect("exits on SIGTERM");
    assert_eq!(status.signal(), Some(15));
    assert!(!p.signal_term(), "a reaped process cannot be signalled");

    let mut p = Proc::program("sleep", "/bin/sleep").arg("30").spawn();
    assert_eq!(p.kill().await.signal(), Some(9));
}

#[test]
#[should_panic(expected = "binary no-such-binary not built: run `cargo build --workspace --bins`")]
fn a_missing_binary_is_named() {
    bin_path("no-such-binary");
}

#[tokio::test]
async fn wait_until_is_bounded() {
    let start = tokio::time::Instant::now();
    assert!(!wait_until(Duration::from_millis(200), async || false).await);
    assert!(start.elapsed() < Duration::from_secs(2));
    // A condition that hangs is cut off too.
    assert!(
        !wait_until(Duration::from_millis(200), async || {
            std::future::pending::<bool>().await
        })
        .await
    );
    let mut calls = 0;
    assert!(
        wait_until(WAIT, async || {
            calls += 1;
            calls == 3
        })
        .await
    );
}

/// A one-connection WebSocket server: refuses paths other than `/ok` with
/// 404; on `/ok` echoes one frame, sends a `noise` then a `done` frame, and
/// closes with 1012.
async fn scripted_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.expect("accept");
            tokio::spawn(async move {
                // The signature is tungstenite's `Callback`, not ours.
                #[allow(clippy::result_large_err)]
                let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                    if req.uri().path() == "/ok" {
                        Ok(resp)
                    } else {
                        let mut refusal = ErrorResponse::new(Some("no such room".into()));
                        *refusal.status_mut() = 404.try_into().expect("status");
                        Err(refusal)
                    }
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await else {
                    return;
                };
                let Some(Ok(msg)) = ws.next().await else {
                    return;
                };
                let _ = ws.send(msg).await;
                let _ = ws.send(Message::text(r#"{"type":"noise"}"#)).await;
                let _ = ws.send(Message::text(r#"{"type":"done","n":1}"#)).await;
                let _ = ws
                    .send(Message::Close(Some(CloseFrame {
                        code: 1012.into(),
                        reason: "restart".into(),
                    })))
                    .await;
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    format!("ws://{addr}")
}

#[tokio::test]
async fn ws_client_speaks_json_and_sees_refusals_and_close_codes() {
    let base = scripted_server().await;
    match WsClient::connect(&format!("{base}/nope")).await {
        Err(Error::Http(resp)) => assert_eq!(resp.status(), 404),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got a connection"),
    }

    let mut ws = WsClient::connect_with_headers(&format!("{base}/ok"), &[("x-test", "1")])
        .await
        .expect("connect");
    assert_eq!(ws.response().status(), 101);
    ws.send_json(&json!({"type": "send", "body": [1, 2]})).await;
    assert_eq!(
        ws.recv_json(WAIT).await,
        json!({"type": "send", "body": [1, 2]})
    );
    assert_eq!(ws.recv_until("done", WAIT).await["n"], 1);
    assert_eq!(ws.expect_close(WAIT).await, Some(1012));
}

#[tokio::test]
async fn ws_client_try_forms_say_what_went_wrong() {
    let base = scripted_server().await;
    let refused = WsClient::try_join(&format!("{base}/nope"), WAIT)
        .await
        .err()
        .expect("refused");
    assert!(refused.contains("HTTP 404"), "{refused}");
    // `/ok` sends nothing before it hears a frame: no welcome comes.
    let quiet = Duration::from_millis(300);
    let silent = WsClient::try_join(&format!("{base}/ok"), quiet)
        .await
        .err()
        .expect("no welcome");
    assert!(silent.contains("no welcome"), "{silent}");

    let mut ws = WsClient::connect(&format!("{base}/ok"))
        .await
        .expect("connect");
    let sent = ws.try_send(Message::text(r#"{"type":"echo"}"#), WAIT).await;
    assert!(matches!(sent, Some(Ok(()))), "{sent:?}");
    match ws.read_frame().await {
        Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), r#"{"type":"echo"}"#),
        other => panic!("expected the echo, got {other:?}"),
    }
    assert_eq!(ws.try_recv_json(WAIT).await, Ok(json!({"type": "noise"})));
    assert_eq!(
        ws.try_recv_json(WAIT).await,
        Ok(json!({"type": "done", "n": 1}))
    );
    let closed = ws.try_recv_json(WAIT).await.expect_err("a close");
    assert!(closed.contains("Close"), "{closed}");
}

#[tokio::test]
async fn http_client_reads_status_and_json() {
    let etcd = Etcd::start().await;
    let http = Http::new(etcd.endpoint());
    let version = http.get("/version").await;
    assert_eq!(version.status, 200);
    assert!(version.body["etcdserver"].is_string(), "{:?}", version.body);
    assert_eq!(http.get("/no-such-path").await.status, 404);
    // No answer at all is an error, not a panic, with `send`.
    let port = testkit::free_port();
    let down = Http::new(format!("http://127.0.0.1:{port}"));
    assert!(
        down.send(reqwest::Method::GET, "/", None).await.is_err(),
        "nothing listens on a free port"
    );
}
