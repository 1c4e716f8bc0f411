//! Any HTTP request through the router's routes (`router::server::app`) over
//! the embedded store, without a listener.
//!
//! Input: a request written as text, bytes as they are:
//!
//! ```text
//! [@]METHOD TARGET
//! Name: value
//! ...
//!
//! body
//! ```
//!
//! Lines end in `\n` (a `\r` before it is dropped). Bytes of TARGET that a
//! URI cannot hold raw (controls, space, non-ASCII, ...) are
//! percent-encoded, so nearly every input is a request hyper could have
//! parsed; `%` is left as it is, so broken escapes reach the routes. Headers
//! whose name or value HTTP refuses are left out. A leading `@` picks the
//! seeded world, otherwise the empty one:
//!
//! - empty: no node registered, no room, no admin or create token (the
//!   configuration of the fuzzing brief). Nothing can be created, so every
//!   request sees the same state.
//! - seeded: nodes `i1` (active, `http://127.0.0.1:9`: a closed loopback
//!   port, so proxying fails fast with 502) and `i2` (draining, address not
//!   a URL), rooms `lobby` (public, on i1), `vip` (private, on i1) and
//!   `orphan` (on the unregistered i3: failover), an admin and a create
//!   token and a public URL. Requests change it (rooms are created, moved
//!   and deleted), so it is rebuilt every `RESET_EVERY` inputs.
//!
//! Properties: no panic and no hang (30 s); every status is < 500, except
//! 503 and, in the seeded world where nodes are unreachable, 502 and 504;
//! every error answer (>= 400) is the JSON error body
//! `{"error": string, "message": string}`; every `application/json` answer
//! parses; a 307 points at a sharded room path; a method outside RFC 9110's
//! (and PATCH) never becomes a label of the request metric (strict only:
//! reported finding, see fuzz/README.md).
//!
//! Error answers that axum makes itself and that are not the JSON error
//! body (405 with an empty body; 400/413 rejections in plain text) are
//! findings reported in fuzz/README.md; they fail only with
//! `ROOMROUTER_FUZZ_STRICT=1`, so fuzzing can go past them.
//! `ROOMROUTER_FUZZ_PRINT=1` prints each request and its answer (to replay
//! an input: `target/.../router_requests FILE`).
#![no_main]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use proto::path::RoomPath;
use proto::record::{NodeRecord, NodeState, RoomRecord};
use router::RouterConfig;
use store::kv::memory::MemoryKv;
use store::{Backend, Store};
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// Seeded-world inputs between two rebuilds.
const RESET_EVERY: u64 = 2000;
/// Empty-world inputs between two rebuilds.
const RESET_EMPTY_EVERY: u64 = 20_000;
/// Longest a request may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(30);

const ADMIN: &str = "fuzz-admin-token-0123456789";
const CREATOR: &str = "fuzz-create-token-0123456789";

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("ROOMROUTER_FUZZ_STRICT").is_some_and(|v| v == "1"))
}

/// The brief's world: no nodes, no rooms, no admin token. Requests cannot
/// change it, except its metrics, which grow with every new method a
/// request uses (finding 5 of fuzz/README.md) and then slow down every
/// `GET /metrics`: it is rebuilt every `RESET_EMPTY_EVERY` inputs too.
fn empty_world() -> Router {
    static APP: Mutex<Option<Router>> = Mutex::new(None);
    static USES: AtomicU64 = AtomicU64::new(0);
    let mut app = APP.lock().unwrap_or_else(|p| p.into_inner());
    if USES.fetch_add(1, Ordering::Relaxed) % RESET_EMPTY_EVERY == 0 || app.is_none() {
        *app = None;
        *app = Some(runtime().block_on(async {
            let store = Store::new(Backend::Memory(MemoryKv::new()), "/fuzz");
            let config = RouterConfig {
                public_url: None,
                metrics_listen: None,
                admin_token: None,
                create_token: None,
                secret: Some("fuzz-secret-0123456789".parse().unwrap()),
                token_ttl: 60,
                body_timeout: 10,
                max_connections_per_ip: 0,
            };
            router::server::app(config, store)
        }));
    }
    app.clone().unwrap()
}

async fn seeded_app() -> Router {
    let store = Store::new(Backend::Memory(MemoryKv::new()), "/fuzz");
    let day = Duration::from_secs(24 * 3600);
    for (id, addr, state) in [
        ("i1", "http://127.0.0.1:9", NodeState::Active),
        ("i2", "not a url", NodeState::Draining),
    ] {
        let node = NodeRecord {
            id: id.parse().unwrap(),
            addr: addr.into(),
            weight: 1.0,
            state,
        };
        store.register_node(&node, day).await.expect("register");
    }
    for (id, node, private) in [
        ("lobby", "i1", false),
        ("vip", "i1", true),
        ("orphan", "i3", false),
    ] {
        let rec = RoomRecord {
            id: id.parse().unwrap(),
            node: node.parse().unwrap(),
            epoch: 1,
            private,
            created_at: 1_700_000_000,
        };
        store.create_room(&rec).await.expect("create room");
    }
    let config = RouterConfig {
        public_url: Some("https://chat.example.com".into()),
        metrics_listen: None,
        admin_token: Some(ADMIN.parse().unwrap()),
        create_token: Some(CREATOR.parse().unwrap()),
        secret: Some("fuzz-secret-0123456789".parse().unwrap()),
        token_ttl: 60,
        body_timeout: 10,
        max_connections_per_ip: 0,
    };
    let app = router::server::app(config, store);
    // Wait for the mirror's first snapshot: both nodes listed.
    for _ in 0..500 {
        let req = Request::get("/nodes").body(Body::empty()).unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let nodes: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if nodes.as_array().is_some_and(|a| a.len() == 2) {
            return app;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the seeded world's mirror never synced");
}

/// The seeded world, rebuilt every `RESET_EVERY` uses.
fn seeded_world() -> Router {
    static APP: Mutex<Option<Router>> = Mutex::new(None);
    static USES: AtomicU64 = AtomicU64::new(0);
    let mut app = APP.lock().unwrap_or_else(|p| p.into_inner());
    if USES.fetch_add(1, Ordering::Relaxed) % RESET_EVERY == 0 || app.is_none() {
        // Dropping the old router stops its mirror and its store's tasks.
        *app = None;
        *app = Some(runtime().block_on(seeded_app()));
    }
    app.clone().unwrap()
}

/// Percent-encodes the bytes a URI cannot carry raw; `%` stays as it is.
fn uri_text(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        let keep = b.is_ascii_graphic()
            && !matches!(
                b,
                b'#' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'|' | b'[' | b']'
            );
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Parsed {
    seeded: bool,
    request: Request<Body>,
}

fn parse(data: &[u8]) -> Option<Parsed> {
    let (seeded, data) = match data.strip_prefix(b"@") {
        Some(rest) => (true, rest),
        None => (false, data),
    };
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next()?;
    let (method, target) = match first.iter().position(|&b| b == b' ') {
        Some(i) => (&first[..i], &first[i + 1..]),
        None => (first, &b"/"[..]),
    };
    let method = if method.is_empty() {
        Method::GET
    } else {
        Method::from_bytes(method).ok()?
    };
    let target = uri_text(target);
    let uri = Uri::try_from(target.as_str())
        .or_else(|_| Uri::try_from(format!("/{target}")))
        .ok()?;
    let mut builder = Request::builder().method(method).uri(uri);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii_start();
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            builder = builder.header(n, v);
        }
    }
    let mut request = builder.body(Body::from(body.to_vec())).ok()?;
    let peer: SocketAddr = "203.0.113.7:40000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    Some(Parsed { seeded, request })
}

/// The methods of RFC 9110 and PATCH: the only ones a metric label may name.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// An error answer that axum produced itself rather than the router's
/// `ApiError`: reported, tolerated unless strict.
fn axum_own_error(status: StatusCode, headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let plain = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    match status {
        StatusCode::METHOD_NOT_ALLOWED => body.is_empty(),
        StatusCode::BAD_REQUEST => plain && text.starts_with("Invalid URL"),
        StatusCode::PAYLOAD_TOO_LARGE => plain && text.contains("length limit exceeded"),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(Parsed { seeded, request }) = parse(data) else {
        return;
    };
    let app = if seeded {
        seeded_world()
    } else {
        empty_world()
    };
    let described = format!("{} {} (seeded: {seeded})", request.method(), request.uri());
    let method = request.method().clone();
    let app_again = app.clone();
    let (status, headers, body) = runtime().block_on(async {
        let resp = tokio::time::timeout(HANG, app.oneshot(request))
            .await
            .unwrap_or_else(|_| panic!("no answer within {HANG:?}: {described}"))
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = tokio::time::timeout(HANG, resp.into_body().collect())
            .await
            .unwrap_or_else(|_| panic!("body not complete within {HANG:?}: {described}"))
            .expect("body")
            .to_bytes();
        (status, headers, body)
    });
    let text = String::from_utf8_lossy(&body);
    if std::env::var_os("ROOMROUTER_FUZZ_PRINT").is_some() {
        eprintln!("{described} -> {status} {headers:?} {text:?}");
    }
    // A HEAD answer has the GET answer's head and no body.
    let head = described.starts_with("HEAD ");

    let allowed_5xx: &[StatusCode] = if seeded {
        &[
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::GATEWAY_TIMEOUT,
        ]
    } else {
        &[StatusCode::SERVICE_UNAVAILABLE]
    };
    assert!(
        !status.is_server_error() || allowed_5xx.contains(&status),
        "{described} -> {status} {text}"
    );

    if head {
        assert!(body.is_empty(), "HEAD answered with a body: {described}");
    } else if status.is_client_error() || status.is_server_error() {
        if axum_own_error(status, &headers, &body) {
            assert!(
                !strict(),
                "not the JSON error body: {described} -> {status} {text:?}"
            );
            return;
        }
        assert!(
            is_json(&headers),
            "error without JSON content type: {described} -> {status} {text:?}"
        );
        let err: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!("error body is not JSON ({e}): {described} -> {status} {text:?}")
        });
        assert!(
            err["error"].is_string() && err["message"].is_string(),
            "error body lacks error/message: {described} -> {status} {text}"
        );
    } else if is_json(&headers) {
        serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_else(|e| {
            panic!("JSON answer does not parse ({e}): {described} -> {status} {text:?}")
        });
    }

    if strict() && !seeded && !STANDARD_METHODS.contains(&method.as_str()) {
        // Labels that a client chooses make unbounded metric series.
        let metrics = runtime().block_on(async {
            let req = Request::get("/metrics").body(Body::empty()).unwrap();
            let resp = app_again.oneshot(req).await.unwrap();
            resp.into_body().collect().await.unwrap().to_bytes()
        });
        let needle = format!("route=\"{method} ");
        assert!(
            !String::from_utf8_lossy(&metrics).contains(&needle),
            "the client's method {method:?} became a metric label: {described}"
        );
    }

    if status == StatusCode::TEMPORARY_REDIRECT {
        let location = headers
            .get(header::LOCATION)
            .unwrap_or_else(|| panic!("307 without Location: {described}"))
            .to_str()
            .unwrap_or_else(|_| panic!("307 with a non-ASCII Location: {described}"));
        let path = location.split('?').next().unwrap_or_default();
        assert!(
            matches!(RoomPath::parse(path), Ok(RoomPath::Sharded { .. })),
            "307 to {location:?}: {described}"
        );
    }
});
