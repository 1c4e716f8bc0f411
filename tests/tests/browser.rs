//! The chat page of `router up`, driven in the system's headless Chromium
//! (playwright-core, scripts in `tests/browser/`):
//!
//! - `chat.mjs`: two browser contexts create and join one room over the
//!   native protocol, see the hosting node and the member count, and chat
//!   both ways (screenshot `target/screenshots/chat-page.png`);
//! - `chat-socketio.mjs`: a native context and a Socket.IO one (the page's
//!   `?protocol=socketio` mode, socket.io-client from the router) in one
//!   room chat both ways, the Socket.IO side shows the seq of its ack and a
//!   recovered reconnect after its transport drops, and deleting the room
//!   shows it removed from the room by the server (screenshot
//!   `target/screenshots/chat-page-socketio.png`);
//! - `chat-moderation.mjs`: `router up` with its nodes' hooks on the example
//!   backend (`examples/chat-backend`): a join refused in Socket.IO mode, a
//!   renamed member, a trimmed message, a rejected one marked not sent with
//!   its reason on the sender's page (native and Socket.IO) and never shown
//!   to the other, and a kick through the server API shown on both pages
//!   with no reconnect (screenshot `target/screenshots/chat-page-moderated.png`).
//!
//! And, without a browser: the socket.io-client bundle the router serves is
//! byte for byte the npm package's build, so the vendored copy cannot drift.

use std::path::{Path, PathBuf};
use std::time::Duration;

use testkit::inproc::Cluster;
use testkit::{Http, Proc, eventually, free_port, wait_until};

/// `tests/`, where `browser/` lives.
fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `router up` with 3 nodes on a free port and `extra` flags, once it
/// answers and sees them.
async fn router_up(extra: &[&str]) -> (Proc, Http, u16) {
    let port = free_port();
    let up = Proc::bin("router")
        .args([
            "up",
            "--nodes",
            "3",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(extra)
        .spawn();
    let page = Http::new(format!("http://127.0.0.1:{port}"));
    let ready = wait_until(Duration::from_secs(20), async || {
        page.send(reqwest::Method::GET, "/readyz", None)
            .await
            .is_ok_and(|r| r.status == 200)
            && page.get("/nodes").await.body.as_array().map(Vec::len) == Some(3)
    })
    .await;
    if !ready {
        up.fail("router up did not come up");
    }
    (up, page, port)
}

/// Runs `tests/browser/<script> <page url> <screenshot>` to its end and
/// returns its output, which must say `"ok":true`; checks the screenshot.
async fn run_page_script(script: &str, up: &Proc, port: u16, shot: &str, extra: &[&str]) -> String {
    assert!(
        here().join("browser/node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run scripts/test (it runs npm ci in tests/browser)"
    );
    let shots = here().join("../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(shot);
    let _ = std::fs::remove_file(&shot);
    let mut browser = Proc::program(script, "node")
        .arg(here().join("browser").join(script))
        .arg(format!("http://127.0.0.1:{port}/"))
        .arg(&shot)
        .args(extra)
        .spawn();
    let status = browser
        .wait_exit(Duration::from_secs(90))
        .await
        .expect("the browser script ends");
    let log = browser.log();
    assert!(
        status.success(),
        "the browser script failed:\n{log}\nrouter up:\n{}",
        up.log_tail(40)
    );
    assert!(log.contains(r#""ok":true"#), "{log}");
    let png = std::fs::read(&shot).expect("the screenshot was saved");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "not a real screenshot"
    );
    log
}

#[tokio::test]
async fn two_browsers_chat_through_the_page_of_router_up() {
    let (up, page, port) = router_up(&[]).await;
    let log = run_page_script("chat.mjs", &up, port, "chat-page.png", &[]).await;
    // What the page showed is what the cluster says.
    let room = page.get("/rooms/lobby").await;
    assert!(
        log.contains(&format!(
            r#""node":"{}""#,
            room.body["node"].as_str().unwrap()
        )),
        "{log}"
    );
}

#[tokio::test]
async fn native_and_socketio_pages_chat_in_one_room() {
    // The script deletes the room at the end: that needs the admin token
    // (`router up` would make one up otherwise).
    const ADMIN: &str = "browser-admin-token-0123456789";
    let (up, page, port) = router_up(&["--admin-token", ADMIN]).await;
    let log = run_page_script(
        "chat-socketio.mjs",
        &up,
        port,
        "chat-page-socketio.png",
        &[ADMIN],
    )
    .await;
    let result: serde_json::Value = log
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no result line:\n{log}"));
    // Bob's (Socket.IO) message came first, ann's (native) next, in one stream.
    assert_eq!(result["ack_seq"], 1, "{log}");
    assert_eq!(result["native_seq"], 2, "{log}");
    assert_eq!(result["after_recovery_seq"], 3, "{log}");
    assert!(
        result["node"].as_str().is_some_and(|n| n.starts_with('i')),
        "{log}"
    );
    // The script deleted the room at the end.
    assert_eq!(page.get("/rooms/mixed").await.status, 404);
}

#[tokio::test]
async fn the_page_shows_refusals_rejected_messages_and_kicks_from_the_backend() {
    const HOOK_SECRET: &str = "browser-hook-secret-0123";
    const API_KEY: &str = "browser-api-key-0123456789";
    let data = tempfile::tempdir().unwrap();
    let backend = Proc::program("chat-backend", "node")
        .arg(here().join("../examples/chat-backend/server.js"))
        .env("HOOK_SECRET", HOOK_SECRET)
        .env("PORT", "0")
        .env("DATA_DIR", data.path())
        .spawn();
    let listening = wait_until(Duration::from_secs(10), async || {
        backend.log().contains("listening on http://")
    })
    .await;
    if !listening {
        backend.fail("the example backend did not start");
    }
    let log = backend.log();
    let url = log
        .split("listening on ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("its URL");
    let hook = |path: &str| format!("{url}/{path}");
    let (join, publish, events) = (hook("join"), hook("publish"), hook("events"));
    let (up, _page, port) = router_up(&[
        "--api-key",
        API_KEY,
        "--hook-secret",
        HOOK_SECRET,
        "--join-hook",
        &join,
        "--publish-hook",
        &publish,
        "--events-hook",
        &events,
    ])
    .await;
    let log = run_page_script(
        "chat-moderation.mjs",
        &up,
        port,
        "chat-page-moderated.png",
        &[API_KEY],
    )
    .await;
    assert!(log.contains(r#""renamed":"nina (guest)""#), "{log}");
    // The events feed of `router up`'s nodes reached the backend too.
    let file = data.path().join("messages.jsonl");
    let stored = async || std::fs::read_to_string(&file).unwrap_or_default();
    eventually(
        Duration::from_secs(10),
        "the last message stored",
        async || stored().await.contains("fine from nina"),
    )
    .await;
    let stored = stored().await;
    assert!(stored.contains(r#""args":["hello, trimmed"]"#), "{stored}");
    assert!(!stored.contains("spam"), "{stored}");
}

/// The bundle the page loads, as the router serves it, against the npm
/// package's own build of the version `tests/browser/package.json` pins.
/// Skipped only when node_modules is not installed.
#[tokio::test]
async fn vendored_socket_io_client_is_the_npm_build() {
    let npm = here().join("browser/node_modules/socket.io-client");
    if !npm.is_dir() {
        eprintln!("skipped: socket.io-client is not installed (npm ci in tests/browser)");
        return;
    }
    let version = read_json(&npm.join("package.json"))["version"]
        .as_str()
        .expect("socket.io-client's version")
        .to_owned();
    let pinned = read_json(&here().join("browser/package.json"));
    assert_eq!(
        pinned["dependencies"]["socket.io-client"], version,
        "node_modules is not the pinned socket.io-client: run npm ci in tests/browser"
    );
    let built = std::fs::read(npm.join("dist/socket.io.min.js")).expect("the npm build");

    let cluster = Cluster::start(1, 1).await;
    let router = cluster.router(0).http();
    let page = router.get("/").await.text;
    let src = page
        .split(r#"<script src=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page loads a script");
    assert_eq!(
        src,
        format!("/assets/socket.io-{version}.min.js"),
        "the bundle's path must name the vendored version (router/assets/vendor/README.md)"
    );
    let resp = reqwest::get(router.url(src)).await.expect("GET the bundle");
    assert_eq!(resp.status(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/javascript; charset=utf-8");
    assert!(header("cache-control").contains("max-age=31536000"));
    let served = resp.bytes().await.expect("the bundle's bytes");
    assert!(
        served[..] == built[..],
        "router/assets/vendor/socket.io.min.js ({} bytes) is not {} ({} bytes): \
         refresh it (router/assets/vendor/README.md)",
        served.len(),
        npm.join("dist/socket.io.min.js").display(),
        built.len()
    );
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
