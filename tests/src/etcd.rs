//! [`Etcd`]: a real, throwaway, single-member etcd on free ports with a
//! fresh data directory, for tests that need the production backend. It can
//! be stopped and restarted on the same ports and data to simulate an
//! outage.

use std::path::{Path, PathBuf};
use std::time::Duration;

use store::kv::Kv;
use store::kv::etcd::EtcdKv;
use store::{Backend, Store};
use tempfile::TempDir;

use crate::port::free_port;
use crate::process::Proc;
use crate::wait::wait_until;

/// Where etcd is looked for when it is not on `PATH`.
const FALLBACK_BINARY: &str = "/usr/bin/etcd";

/// How long etcd may take to answer after it is started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a graceful stop may take before etcd is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The bound on each etcd request of a store made by [`Etcd::store`].
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// Attempts at finding two ports nobody else grabs first.
const PORT_ATTEMPTS: usize = 5;

/// Lines of etcd's log quoted when it fails.
const LOG_TAIL_LINES: usize = 40;

/// The etcd binary: the first `etcd` on `PATH`, else `/usr/bin/etcd`.
/// Panics if there is none: tests never silently skip.
pub fn etcd_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("etcd"))
            .find(|p| p.is_file())
    });
    let fallback = Path::new(FALLBACK_BINARY);
    match on_path {
        Some(p) => p,
        None if fallback.is_file() => fallback.to_path_buf(),
        None => panic!(
            "etcd not found on PATH or {FALLBACK_BINARY}: run scripts/test, which installs etcd-server"
        ),
    }
}

/// A running etcd. Dropping it kills the process and deletes its data.
pub struct Etcd {
    proc: Option<Proc>,
    client_port: u16,
    peer_port: u16,
    /// Holds `data/` and `etcd.log`; deleted on drop (after the process).
    dir: TempDir,
    /// Flags beyond the kit's own (e.g. a small `--quota-backend-bytes`).
    extra: Vec<String>,
}

impl Etcd {
    /// Starts etcd on free ports with an empty data dir and waits until it
    /// serves reads, at most [`READY_TIMEOUT`]; panics with its log tail if
    /// it does not.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`Etcd::start`] with extra etcd flags, kept across restarts.
    pub async fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("etcd-")
            .tempdir()
            .expect("create a temp dir for etcd");
        let mut etcd = Self {
            proc: None,
            client_port: 0,
            peer_port: 0,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        for attempt in 1..=PORT_ATTEMPTS {
            etcd.client_port = free_port();
            etcd.peer_port = free_port();
            if etcd.client_port == etcd.peer_port {
                continue;
            }
            match etcd.launch().await {
                Ok(()) => return etcd,
                Err(why) if attempt < PORT_ATTEMPTS && why.contains("address already in use") => {
                    // Someone took a port between free_port and etcd's bind.
                }
                Err(why) => etcd.fail(&why),
            }
        }
        panic!("etcd: no free ports after {PORT_ATTEMPTS} attempts")
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The data directory, kept across [`Etcd::restart`].
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// etcd's output so far, across restarts.
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Whether the process is running (started and not stopped).
    pub fn is_running(&self) -> bool {
        self.proc.is_some()
    }

    /// Stops etcd (SIGTERM, then SIGKILL after a bound) and waits for it to
    /// exit. Its ports and data stay reserved for [`Etcd::restart`].
    pub async fn stop(&mut self) {
        let Some(mut proc) = self.proc.take() else {
            return;
        };
        proc.signal_term();
        if proc.wait_exit(STOP_TIMEOUT).await.is_none() {
            proc.kill().await;
        }
    }

    /// Kills etcd (SIGKILL), as a crash would, and waits for it to exit.
    pub async fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill().await;
        }
    }

    /// Starts etcd again on the same ports and data (stopping it first if
    /// it runs) and waits until it serves reads.
    pub async fn restart(&mut self) {
        self.stop().await;
        if let Err(why) = self.launch().await {
            self.fail(&format!("restart failed: {why}"));
        }
    }

    /// A store client for this etcd under `prefix`, each request bounded by
    /// [`STORE_TIMEOUT`]. Each call opens its own connection, like a separate
    /// process would.
    pub async fn store(&self, prefix: &str) -> Store {
        self.store_with_timeout(prefix, STORE_TIMEOUT).await
    }

    /// [`Etcd::store`] with each request bounded by `timeout`.
    pub async fn store_with_timeout(&self, prefix: &str, timeout: Duration) -> Store {
        Store::new(Backend::Etcd(Box::new(self.kv(timeout).await)), prefix)
    }

    /// The raw key-value client, e.g. to read what a store wrote.
    pub async fn kv(&self, timeout: Duration) -> EtcdKv {
        // Connecting is lazy: this succeeds even while etcd is down.
        EtcdKv::connect(&[self.endpoint()], timeout)
            .await
            .unwrap_or_else(|e| panic!("connecting to etcd at {}: {e}", self.endpoint()))
    }

    /// Compacts etcd's history up to `revision` through etcd's own HTTP
    /// gateway (`/v3/kv/compaction`), as `etcdctl compact` or
    /// `--auto-compaction-*` would: watches that start below it are refused.
    pub async fn compact(&self, revision: i64) {
        let url = format!("{}/v3/kv/compaction", self.endpoint());
        let body = serde_json::json!({"revision": revision.to_string(), "physical": true});
        let resp = reqwest::Client::new()
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert!(
            resp.status().is_success(),
            "compaction at {revision} refused: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn fail(&self, why: &str) -> ! {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        panic!(
            "etcd at {}: {why}\n--- last {LOG_TAIL_LINES} lines of {} ---\n{}",
            self.endpoint(),
            self.log_path().display(),
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        )
    }

    /// Runs etcd on the chosen ports and waits until it answers; on failure,
    /// leaves it stopped and says why.
    async fn launch(&mut self) -> Result<(), String> {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let data = self.data_dir();
        let log_start = self.log().len();
        let proc = Proc::program("etcd", etcd_binary())
            .args(&self.extra)
            .arg("--name=default")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            // A short election timeout makes a lone member lead at once and
            // lowers etcd's minimum lease TTL to one second.
            .arg("--heartbeat-interval=100")
            .arg("--election-timeout=500")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .log_to(self.log_path())
            .spawn();
        self.proc = Some(proc);
        if self.wait_ready().await {
            return Ok(());
        }
        let mut proc = self.proc.take().expect("set above");
        let exited = proc.try_status();
        proc.kill().await;
        let log = self.log();
        let this_run = log.get(log_start..).unwrap_or_default();
        let why = match exited {
            Some(status) => format!("etcd exited with {status} before serving"),
            None => format!("etcd did not serve reads within {READY_TIMEOUT:?}"),
        };
        if this_run.contains("address already in use") {
            return Err(format!("{why}: address already in use"));
        }
        Err(why)
    }

    /// Polls a real linearizable read until it succeeds or etcd exits.
    async fn wait_ready(&mut self) -> bool {
        let endpoint = self.endpoint();
        let proc = self.proc.as_mut().expect("launched");
        let mut exited = false;
        wait_until(READY_TIMEOUT, async || {
            if proc.try_status().is_some() {
                exited = true;
                return true;
            }
            // A fresh client per attempt: no reconnect backoff to wait out.
            let Ok(kv) =
                EtcdKv::connect(std::slice::from_ref(&endpoint), Duration::from_secs(1)).await
            else {
                return false;
            };
            kv.get("/testkit/ready").await.is_ok()
        })
        .await
            && !exited
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // Dropping the Proc kills etcd before the TempDir removes its data.
        self.proc.take();
    }
}
