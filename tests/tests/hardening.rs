//! The HTTP and WebSocket plumbing against hostile clients (issue 11), on
//! real processes: deadlines on request bodies, connection caps per client
//! address, HTTP/1.0 upgrades through the router, WebSocket protocol
//! violations (1002, 1007), auth schemes in any case, JSON bodies on
//! refusals of oversized heads, and the order of a join's checks. Requests
//! and frames are written by hand on raw TCP, as a hostile client would.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::cluster::TEST_SECRET;
use testkit::{Cluster, Proc, bin_path, eventually, free_port, join};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// Bound on any one answer.
const WAIT: Duration = Duration::from_secs(10);

/// The body deadline the tests give routers and nodes, seconds.
const BODY_TIMEOUT: u64 = 2;

/// `127.0.0.1:port`.
fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A connection to `port` from `from` (any 127/8 address is this host).
async fn connect_from(from: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(local(port)).await
}

/// An HTTP answer read to the end of its connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

/// Parses what a server wrote before closing.
fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

/// Writes `request` to `port` and reads until the server closes.
async fn exchange(port: u16, request: &[u8]) -> Answer {
    let mut s = TcpStream::connect(local(port)).await.expect("connect");
    s.write_all(request).await.expect("write the request");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .unwrap_or_else(|_| panic!("no end of the answer to {request:.80?} within {WAIT:?}"))
        .expect("read the answer");
    parse(&raw)
}

/// Asserts `a` is `status` with the JSON error `code`.
fn assert_refusal(a: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (status, Some(code)),
        "{what}: {a:?}"
    );
    assert!(a.body["message"].is_string(), "{what}: {a:?}");
}

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
    let rejected = |port| async move {
        let text = testkit::Http::new(format!("http://127.0.0.1:{port}"))
            .get("/metrics")
            .await
            .text;
        sample(&text, "rejected_total{", "reason=\"body_timeout\"")
    };
    assert_eq!(rejected(router).await, Some(20.0));
    assert_eq!(rejected(node).await, Some(1.0));
}

/// The value of the first series whose line starts with `prefix` (after
/// `router_` or `roomnode_`) and contains `label`.
fn sample(text: &str, prefix: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(prefix) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
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

/// A WebSocket member through `port` from `from`, joined to `room` (its
/// welcome read), or the I/O error of a refused connection.
async fn member_from(from: Ipv4Addr, port: u16, path: &str) -> std::io::Result<WsRaw> {
    let s = connect_from(from, port).await?;
    WsRaw::handshake(s, path).await
}

/// A plain `GET /healthz` from `from`: its status, or `None` when the
/// connection was closed without an answer.
async fn healthz_from(from: Ipv4Addr, port: u16) -> Option<u16> {
    let mut s = connect_from(from, port).await.ok()?;
    let req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    s.write_all(req).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    (!raw.is_empty()).then(|| parse(&raw).status)
}

const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const OTHER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

#[tokio::test]
async fn an_address_over_its_cap_is_refused_while_the_router_serves_others() {
    let mut cluster = Cluster::start(1, 0).await;
    let metrics_port = free_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let args = [
        "--max-connections-per-ip",
        "4",
        "--metrics-listen",
        &metrics,
    ];
    let router = cluster.add_router(&args).await.port;
    let path = cluster.create_room("capped").await["path"]
        .as_str()
        .expect("path")
        .to_owned();

    // Four proxied WebSockets hold the address's four connections.
    let mut members = Vec::new();
    for _ in 0..4 {
        members.push(member_from(CLIENT, router, &path).await.expect("member"));
    }
    assert_eq!(
        healthz_from(CLIENT, router).await,
        None,
        "a fifth connection"
    );
    assert_eq!(
        healthz_from(OTHER, router).await,
        Some(200),
        "another address"
    );
    let text = testkit::Http::new(format!("http://{metrics}"))
        .get("/metrics")
        .await
        .text;
    assert!(
        sample(&text, "router_rejected_total{", "per_ip").is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // One member leaves: its slot is free again.
    drop(members.pop());
    eventually(WAIT, "the address may connect again", async || {
        healthz_from(CLIENT, router).await == Some(200)
    })
    .await;
}

#[tokio::test]
async fn an_address_over_its_cap_is_refused_by_the_node() {
    let cluster = Cluster::start_with(1, 1, &["--max-connections-per-ip", "2"]).await;
    let path = cluster.create_room("capped").await["path"]
        .as_str()
        .expect("path")
        .to_owned();
    let node = cluster.node(1).port;
    let _a = member_from(CLIENT, node, &path).await.expect("first");
    let _b = member_from(CLIENT, node, &path).await.expect("second");
    assert!(member_from(CLIENT, node, &path).await.is_err(), "a third");
    assert_eq!(healthz_from(OTHER, node).await, Some(200));
}

#[tokio::test]
async fn http_1_0_upgrades_are_refused_through_the_router_as_at_the_node() {
    let cluster = Cluster::start(1, 1).await;
    cluster.create_room("old").await;
    let (node, router) = (cluster.node(1).port, cluster.router(0).port);
    for (port, path, what) in [
        (node, "/i1/room/old", "node"),
        (router, "/i1/room/old", "router, instance path"),
        (router, "/room/old", "router, legacy path"),
    ] {
        let req = format!("GET {path} HTTP/1.0\r\nHost: x\r\n{}\r\n", UPGRADE_HEADERS);
        let answer = exchange(port, req.as_bytes()).await;
        assert_refusal(&answer, 426, "upgrade_required", what);
    }
}

/// The headers of a WebSocket upgrade, each line ended.
const UPGRADE_HEADERS: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/// A WebSocket client on raw TCP that writes frames by hand.
struct WsRaw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl WsRaw {
    /// Upgrades `s` at `path` and reads the welcome.
    async fn handshake(mut s: TcpStream, path: &str) -> std::io::Result<Self> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS}\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut ws = Self { s, buf: Vec::new() };
        while !ws.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            ws.fill().await?;
        }
        let end = ws
            .buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(0)
            + 4;
        let head = String::from_utf8_lossy(&ws.buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        ws.buf.drain(..end);
        let (op, welcome) = ws.frame().await?.expect("a welcome");
        assert_eq!(op, 1, "{welcome:?}");
        Ok(ws)
    }

    /// Reads more; the end of the connection is `UnexpectedEof`.
    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, self.s.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::other("nothing to read within 10 s"))??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The next frame from the server (opcode, payload); `None` at the end
    /// of the connection.
    async fn frame(&mut self) -> std::io::Result<Option<(u8, Vec<u8>)>> {
        loop {
            if let Some((op, start, len)) = frame_at(&self.buf)
                && self.buf.len() >= start + len
            {
                let payload = self.buf[start..start + len].to_vec();
                self.buf.drain(..start + len);
                return Ok(Some((op, payload)));
            }
            match self.fill().await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

/// The opcode, payload offset and length of the server frame at the start
/// of `buf`, once its header is complete (servers do not mask).
fn frame_at(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let (op, len) = (buf.first()? & 0x0f, buf.get(1)? & 0x7f);
    match len {
        126 => Some((
            op,
            4,
            u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize,
        )),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            Some((op, 10, u64::from_be_bytes(bytes) as usize))
        }
        n => Some((op, 2, n as usize)),
    }
}

/// A client frame: `first` is the FIN, RSV and opcode byte; masked with a
/// fixed key unless `masked` is false. Payloads under 126 bytes, or 126.
fn client_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![first];
    match payload.len() {
        n @ 0..126 => out.push(mask_bit | n as u8),
        n => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    if !masked {
        out.extend_from_slice(payload);
        return out;
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

#[tokio::test]
async fn protocol_violations_close_with_1002_and_bad_utf8_with_1007() {
    let cluster = Cluster::start(1, 1).await;
    let path = cluster.create_room("strict").await["path"]
        .as_str()
        .expect("path")
        .to_owned();
    let (mut watcher, _) = join(&format!("{}{path}", cluster.node(1).ws_base())).await;
    let cases: [(&str, Vec<u8>, u16); 6] = [
        (
            "text frame with invalid UTF-8",
            client_frame(0x81, b"{\"x\":\"\xff\"}", true),
            1007,
        ),
        (
            "reserved data opcode 3",
            client_frame(0x83, b"x", true),
            1002,
        ),
        (
            "reserved control opcode 11",
            client_frame(0x8b, b"", true),
            1002,
        ),
        (
            "RSV1 set without an extension",
            client_frame(0xc1, b"{}", true),
            1002,
        ),
        (
            "unmasked client frame",
            client_frame(0x81, b"{}", false),
            1002,
        ),
        (
            "ping of 126 bytes",
            client_frame(0x89, &[b'p'; 126], true),
            1002,
        ),
    ];
    for port in [cluster.node(1).port, cluster.router(0).port] {
        for (what, frame, want) in &cases {
            let what = format!("{what} (port {port})");
            let mut ws = member_from(CLIENT, port, &path).await.expect("join");
            ws.s.write_all(frame).await.expect("write the frame");
            let at = Instant::now();
            let code = loop {
                match ws.frame().await.expect("read") {
                    Some((8, payload)) if payload.len() >= 2 => {
                        break Some(u16::from_be_bytes([payload[0], payload[1]]));
                    }
                    Some((8, _)) | None => break None,
                    Some(_) => {}
                }
            };
            assert_eq!(code, Some(*want), "{what}: the close code");
            assert!(
                ws.frame().await.expect("read").is_none(),
                "{what}: more after close"
            );
            let took = at.elapsed();
            assert!(
                took < Duration::from_secs(1),
                "{what}: ended after {took:?}"
            );
        }
    }
    // The room is fine: its other member is still there and hears a send.
    watcher
        .send_json(&json!({"type": "send", "body": "still here"}))
        .await;
    let m = watcher.recv_until("message", WAIT).await;
    assert_eq!(m["body"], "still here");
}

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

#[tokio::test]
async fn a_join_is_checked_for_its_instance_and_room_before_its_query() {
    let cluster = Cluster::start(1, 1).await;
    cluster.create_room("named").await;
    let name = "n".repeat(65);
    let node = cluster.node(1).port;
    for (path, status, code) in [
        (format!("/i2/room/named?name={name}"), 404, "wrong_instance"),
        (
            format!("/i1/room/bad.id?name={name}"),
            400,
            "invalid_room_id",
        ),
        (format!("/i1/room/named?name={name}"), 400, "invalid_name"),
    ] {
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{UPGRADE_HEADERS}\r\n");
        assert_refusal(&exchange(node, req.as_bytes()).await, status, code, &path);
    }
}
