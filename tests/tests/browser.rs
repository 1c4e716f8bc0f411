//! The chat page of `router up`, driven in the system's headless Chromium by
//! `tests/browser/chat.mjs` (playwright-core): two browser contexts create
//! and join one room, see the hosting node and the member count, and chat
//! both ways. The screenshot lands in `target/screenshots/chat-page.png`.

use std::path::PathBuf;
use std::time::Duration;

use testkit::{Http, Proc, free_port, wait_until};

#[tokio::test]
async fn two_browsers_chat_through_the_page_of_router_up() {
    let port = free_port();
    let up = Proc::bin("router")
        .args([
            "up",
            "--nodes",
            "3",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
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

    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = here.join("browser/chat.mjs");
    assert!(
        here.join("browser/node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run scripts/test (it runs npm ci in tests/browser)"
    );
    let shots = here.join("../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("chat-page.png");
    let _ = std::fs::remove_file(&shot);
    let mut browser = Proc::program("chat.mjs", "node")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}/"))
        .arg(&shot)
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
