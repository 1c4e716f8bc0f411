//! The echo engine served for the official protocol suites, which are run
//! by hand with node (they are not in this repository):
//!
//! ```text
//! ENGINEIO_SUITE_ADDR=127.0.0.1:3000 cargo nextest run -p roomnode \
//!     serve_for_the_official_suite --run-ignored only --no-capture
//! ```
//!
//! then, in a copy of engine.io-protocol's `test-suite/` with its npm
//! packages installed, `npx mocha test-suite.js` (its URL is
//! `http://localhost:3000`).

use std::time::Duration;

use super::{Harness, config};

#[tokio::test]
#[ignore = "serves for ENGINEIO_SUITE_SECS (default 120) for the official suite, run by hand"]
async fn serve_for_the_official_suite() {
    let addr = std::env::var("ENGINEIO_SUITE_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:0".into())
        .parse()
        .expect("ENGINEIO_SUITE_ADDR is host:port");
    let secs = std::env::var("ENGINEIO_SUITE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let h = Harness::start_on(addr, config(), true).await;
    println!("serving the echo engine on http://{}", h.addr);
    tokio::time::sleep(Duration::from_secs(secs)).await;
}
