//! An observer: a member that joins a failed-over room straight at its new
//! owner while the old owner is frozen (a member the old owner cannot know
//! of), and only reads. What it saw must be what the room's members saw in
//! the new stream after its welcome.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::WsClient;
use crate::traffic::{Config, Got, Shared};
use crate::ws::tungstenite::Message;

/// How often an observer looks whether it was told to finish.
const TICK: Duration = Duration::from_millis(100);

/// What an observer saw.
#[derive(Debug, Default)]
pub struct ObserverLog {
    /// The node that welcomed it.
    pub node: String,
    /// The stream it joined.
    pub stream: String,
    /// The seq of its welcome.
    pub welcome_seq: u64,
    /// Every message after the welcome.
    pub got: Vec<Got>,
    /// How it ended: `finished`, `closed …`, `eof`, `transport error …`.
    pub end: String,
    /// Seqs out of order, malformed or unexpected frames.
    pub anomalies: Vec<String>,
}

/// A running observer: its room, the last seq it saw, and its task.
#[derive(Debug)]
pub struct Observer {
    /// Its room.
    pub room: String,
    last: Arc<Mutex<u64>>,
    task: JoinHandle<ObserverLog>,
}

impl Observer {
    /// Starts reading on `ws`, welcomed with `welcome`, until `shared` says
    /// finish (or `config.client_limit` passes).
    pub fn spawn(
        room: String,
        ws: WsClient,
        welcome: Value,
        shared: Arc<Shared>,
        config: Config,
    ) -> Self {
        let last = Arc::new(Mutex::new(0));
        let task = tokio::spawn(observe(ws, welcome, shared, last.clone(), config));
        Self { room, last, task }
    }

    /// The last seq it saw.
    pub fn last_seq(&self) -> u64 {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Its log, once it finished (within `timeout`).
    pub async fn finish(self, timeout: Duration) -> ObserverLog {
        let room = self.room;
        tokio::time::timeout(timeout, self.task)
            .await
            .unwrap_or_else(|_| panic!("the observer of {room} did not finish"))
            .expect("observer task")
    }
}

async fn observe(
    mut ws: WsClient,
    welcome: Value,
    shared: Arc<Shared>,
    last: Arc<Mutex<u64>>,
    config: Config,
) -> ObserverLog {
    let mut log = ObserverLog {
        node: welcome["node"].as_str().unwrap_or_default().to_owned(),
        stream: welcome["stream"].as_str().unwrap_or_default().to_owned(),
        welcome_seq: welcome["seq"].as_u64().unwrap_or(0),
        ..ObserverLog::default()
    };
    let mut seq = log.welcome_seq;
    let mut tick = tokio::time::interval(TICK);
    let deadline = Instant::now() + config.client_limit;
    loop {
        *last.lock().unwrap_or_else(|e| e.into_inner()) = seq;
        tokio::select! {
            frame = ws.read_frame() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    match v["type"].as_str() {
                        Some("message") => {
                            let Some(got) = Got::from_message(&v) else {
                                log.anomalies.push(format!("malformed message {v}"));
                                continue;
                            };
                            if got.seq != seq + 1 {
                                log.anomalies.push(format!("seq {} after {seq}", got.seq));
                            }
                            seq = seq.max(got.seq);
                            log.got.push(got);
                        }
                        Some("joined" | "left") => {}
                        _ => log.anomalies.push(format!("unexpected frame {t}")),
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    log.end = format!("closed {f:?}");
                    return log;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    log.end = format!("transport error {e}");
                    return log;
                }
                None => {
                    log.end = "eof".into();
                    return log;
                }
            },
            _ = tick.tick() => {
                if shared.finishing() || Instant::now() > deadline {
                    log.end = "finished".into();
                    ws.hang_up(config.wait).await;
                    return log;
                }
            }
        }
    }
}
