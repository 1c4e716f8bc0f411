//! The live client's loop: joining, sending, reading, following `moved`,
//! getting back in after a loss and resuming, with everything recorded in
//! its [`ClientLog`] and published as its [`Progress`]. README "When is a
//! message accepted?" is the rule it follows; what the run's [`Expect`]
//! rules out is an anomaly.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{ClientLog, Config, Conn, Expect, Got, Progress, Segment, Shared};
use crate::WsClient;

/// How one connection ended.
enum End {
    Finished,
    Lost(String),
    Moved(String),
    Resync,
}

/// One live client's state while its task runs.
pub(super) struct Client {
    config: Config,
    shared: Arc<Shared>,
    progress: Arc<Mutex<Progress>>,
    home: usize,
    log: ClientLog,
    pending: BTreeSet<u64>,
    last_seq: u64,
    /// The stream of the current segment.
    stream: String,
    accepted: u64,
    accepted_here: usize,
    /// `room_moving` answers on the current connection.
    room_moving_here: usize,
    /// A `moved` path to try first on the next join.
    next_path: Option<String>,
    deadline: Instant,
}

impl Client {
    /// Client `id` of `room`, rejoining through router slot `home` of
    /// `shared` first, publishing to `progress`.
    pub(super) fn new(
        id: u64,
        room: String,
        home: usize,
        shared: Arc<Shared>,
        config: Config,
        progress: Arc<Mutex<Progress>>,
    ) -> Self {
        Self {
            config,
            shared,
            progress,
            home,
            log: ClientLog {
                id,
                room,
                ..ClientLog::default()
            },
            pending: BTreeSet::new(),
            last_seq: 0,
            stream: String::new(),
            accepted: 0,
            accepted_here: 0,
            room_moving_here: 0,
            next_path: None,
            deadline: Instant::now() + config.client_limit,
        }
    }

    /// Records `anomaly` unless the run expects faults, which explain it.
    fn unless_faults(&mut self, anomaly: String) {
        if self.config.expect == Expect::Moves {
            self.log.anomalies.push(anomaly);
        }
    }

    fn publish(&self, connected: bool) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        p.connected = connected;
        if let Some(c) = self.log.conns.last() {
            p.via = c.via;
            p.node.clone_from(&c.node);
        }
        p.stream.clone_from(&self.stream);
        p.last_seq = self.last_seq;
        p.pending = self.pending.len();
        p.accepted = self.accepted;
        p.accepted_here = self.accepted_here;
        p.connections = self.log.conns.len();
        if p.anomalies.len() != self.log.anomalies.len() {
            p.anomalies.clone_from(&self.log.anomalies);
        }
    }

    fn segment(&mut self) -> &mut Segment {
        self.log
            .segments
            .last_mut()
            .expect("a segment after the first join")
    }

    fn end_conn(&mut self, why: &str) {
        if let Some(c) = self.log.conns.last_mut() {
            c.ended = Some((Instant::now(), why.to_owned()));
        }
    }

    /// A connection ended with bodies pending: those no `room_moving`
    /// answered were left unanswered.
    fn count_unanswered(&mut self) {
        self.log.unanswered += self.pending.len().saturating_sub(self.room_moving_here);
    }

    /// Sends body `n`; false if the connection is gone (the body stays
    /// pending and is settled by the next replay).
    async fn send_body(&mut self, ws: &mut WsClient, n: u64) -> bool {
        let frame = json!({"type": "send", "body": {"c": self.log.id, "n": n}}).to_string();
        let wait = self.config.wait;
        match ws.try_send(Message::text(frame), wait).await {
            Some(Ok(())) => true,
            Some(Err(_)) => {
                self.log.failed_sends += 1;
                false
            }
            None => {
                self.log
                    .anomalies
                    .push(format!("sending n={n} blocked for {wait:?}"));
                false
            }
        }
    }

    /// After a replay: every own body still unseen was not accepted, so it
    /// is sent again.
    async fn resend_pending(&mut self, ws: &mut WsClient) {
        let again: Vec<u64> = self.pending.iter().copied().collect();
        for n in again {
            self.log.resent.push(n);
            if !self.send_body(ws, n).await {
                return;
            }
        }
    }

    /// Joins the room through a live router (home first), the `moved` path
    /// first, with `since`/`stream` once it has a stream, retrying with
    /// back-off until [`Config::rejoin_limit`].
    async fn connect(&mut self) -> Option<(WsClient, Value, usize)> {
        let limit = self.config.rejoin_limit;
        let give_up = Instant::now() + limit;
        let mut pause = Duration::from_millis(50);
        let mut last = String::new();
        loop {
            let query = if self.stream.is_empty() {
                String::new()
            } else {
                format!("?since={}&stream={}", self.last_seq, self.stream)
            };
            let mut paths: Vec<String> = self.next_path.iter().cloned().collect();
            paths.push(format!("/room/{}", self.log.room));
            for (slot, base) in self.shared.routers_from(self.home) {
                for path in &paths {
                    let url = format!("{base}{path}{query}");
                    match WsClient::try_join(&url, self.config.join_timeout).await {
                        Ok((ws, welcome)) => {
                            if let Some(node) =
                                path.strip_prefix('/').and_then(|p| p.split('/').next())
                                && path.starts_with("/i")
                                && welcome["node"] != node
                            {
                                self.unless_faults(format!(
                                    "rejoined {path} but the welcome says {welcome}"
                                ));
                            }
                            self.next_path = None;
                            return Some((ws, welcome, slot));
                        }
                        Err(e) => {
                            self.log.join_failures += 1;
                            if self.log.join_failures == 1 {
                                self.unless_faults(format!("first rejoin refused: {e}"));
                            }
                            last = e;
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= give_up || self.shared.finishing() {
                self.log
                    .anomalies
                    .push(format!("could not rejoin within {limit:?}; last: {last}"));
                return None;
            }
            // Back-off between a client's attempts, not a wait for a
            // state: the bound above ends it.
            tokio::time::sleep(pause.min(give_up - now)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Reads what follows `moved` up to the close, at most
    /// [`Config::wait`]: its code.
    async fn close_after_moved(&mut self, ws: &mut WsClient) -> Option<u16> {
        let deadline = Instant::now() + self.config.wait;
        loop {
            match tokio::time::timeout_at(deadline, ws.read_frame()).await {
                Err(_) => {
                    self.unless_faults("no close after moved".into());
                    return None;
                }
                Ok(Some(Ok(Message::Close(f)))) => return f.map(|f| u16::from(f.code)),
                Ok(Some(Ok(Message::Text(t)))) => {
                    self.unless_faults(format!("frame after moved: {t}"));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return None,
            }
        }
    }

    /// Sends and reads on `first` and every connection after it until told
    /// to finish, or until it cannot get back in.
    pub(super) async fn run(mut self, first: (WsClient, Value)) -> ClientLog {
        let mut tick = tokio::time::interval(self.config.send_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut ws, mut welcome) = first;
        let mut via = self.home;
        loop {
            let end = self.serve(&mut ws, &welcome, via, &mut tick).await;
            self.publish(false);
            match end {
                End::Finished => {
                    self.end_conn("finished");
                    ws.hang_up(self.config.wait).await;
                    return self.log;
                }
                End::Moved(path) => {
                    // `moved` is the last frame: a close (1000) follows.
                    let code = self.close_after_moved(&mut ws).await;
                    self.log.moved_to.push(path.clone());
                    self.log.move_closes.push(code);
                    self.end_conn(&format!("moved {path}"));
                    self.count_unanswered();
                    self.next_path = Some(path);
                }
                End::Lost(why) => {
                    self.unless_faults(format!("connection ended without moved: {why}"));
                    self.end_conn(&why);
                    self.count_unanswered();
                }
                End::Resync => {}
            }
            let Some((again, w, slot)) = self.connect().await else {
                return self.log;
            };
            (ws, welcome, via) = (again, w, slot);
        }
    }

    /// Serves one connection until it ends.
    async fn serve(
        &mut self,
        ws: &mut WsClient,
        welcome: &Value,
        via: usize,
        tick: &mut tokio::time::Interval,
    ) -> End {
        let node = welcome["node"].as_str().unwrap_or_default().to_owned();
        let stream = welcome["stream"].as_str().unwrap_or_default().to_owned();
        let latest = welcome["seq"].as_u64().unwrap_or(0);
        self.log.conns.push(Conn {
            via,
            node: node.clone(),
            ended: None,
        });
        self.accepted_here = 0;
        self.room_moving_here = 0;
        let mut expect_gap = false;
        if self.stream.is_empty() {
            if latest != 0 {
                self.log
                    .anomalies
                    .push(format!("first welcome is not at seq 0: {welcome}"));
            }
            self.stream.clone_from(&stream);
            self.log.segments.push(Segment {
                stream: stream.clone(),
                ..Segment::default()
            });
        } else if stream != self.stream {
            // History lost (the room failed over): a new stream from seq 1.
            self.unless_faults(format!("stream changed across the move: {welcome}"));
            self.log.stream_changes += 1;
            self.stream.clone_from(&stream);
            self.last_seq = 0;
            self.log.segments.push(Segment {
                stream: stream.clone(),
                ..Segment::default()
            });
            expect_gap = true;
            if latest > 0 {
                // Messages 1..=latest of the new stream came before this
                // join: read the gap, then join again with since=0 to have
                // them replayed.
                match ws.try_recv_json(self.config.wait).await {
                    Ok(v) if v["type"] == "error" && v["code"] == "history_gap" => {
                        self.log.history_gaps += 1;
                    }
                    other => self.log.anomalies.push(format!(
                        "stream changed to {stream} but no history_gap followed the welcome: {other:?}"
                    )),
                }
                ws.hang_up(self.config.wait).await;
                self.segment().nodes.insert(node);
                self.log.resyncs += 1;
                self.end_conn("resync");
                return End::Resync;
            }
        }
        self.segment().nodes.insert(node);
        if latest < self.last_seq {
            self.log.anomalies.push(format!(
                "welcome at seq {latest}, behind the {} already seen: {welcome}",
                self.last_seq
            ));
        }
        let mut replay_until = if latest > self.last_seq {
            Some(latest)
        } else {
            self.resend_pending(ws).await;
            None
        };
        loop {
            self.publish(true);
            tokio::select! {
                frame = ws.read_frame() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(end) = self
                            .on_text(ws, &text, &mut replay_until, &mut expect_gap)
                            .await
                        {
                            return end;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        self.log.anomalies.push("binary frame".into());
                    }
                    Some(Ok(Message::Close(f))) => {
                        return End::Lost(match f {
                            Some(f) => format!("close {}", u16::from(f.code)),
                            None => "close without code".into(),
                        });
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return End::Lost(format!("transport error: {e}")),
                    None => return End::Lost("eof".into()),
                },
                _ = tick.tick() => {
                    if self.shared.finishing() {
                        return End::Finished;
                    }
                    if Instant::now() > self.deadline {
                        let limit = self.config.client_limit;
                        self.log
                            .anomalies
                            .push(format!("never told to finish within {limit:?}"));
                        return End::Finished;
                    }
                    if !self.shared.stop_sending.load(Ordering::SeqCst) && replay_until.is_none() {
                        let n = self.log.sent;
                        self.log.sent += 1;
                        self.log.sent_at.push(Instant::now());
                        self.pending.insert(n);
                        // Pending before it is on the wire, so the test's
                        // drain never sees a body in flight as settled.
                        self.publish(true);
                        if !self.send_body(ws, n).await {
                            // The read side says how it ended.
                            continue;
                        }
                    }
                }
            }
        }
    }

    /// Handles one text frame; `Some` when the connection is over.
    async fn on_text(
        &mut self,
        ws: &mut WsClient,
        text: &str,
        replay_until: &mut Option<u64>,
        expect_gap: &mut bool,
    ) -> Option<End> {
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.log
                    .anomalies
                    .push(format!("non-JSON frame ({e}): {text}"));
                return None;
            }
        };
        match v["type"].as_str() {
            Some("message") => {
                let Some(got @ Got { seq, c, n }) = Got::from_message(&v) else {
                    self.log.anomalies.push(format!("malformed message {v}"));
                    return None;
                };
                if seq != self.last_seq + 1 {
                    self.log.anomalies.push(format!(
                        "seq {seq} after {} in stream {} (room {})",
                        self.last_seq, self.stream, self.log.room
                    ));
                }
                self.last_seq = self.last_seq.max(seq);
                let segment = self.segment();
                segment.got.push(got);
                segment.arrived.push(Instant::now());
                if c == self.log.id {
                    if self.pending.remove(&n) {
                        self.accepted += 1;
                        self.accepted_here += 1;
                    } else {
                        self.log
                            .anomalies
                            .push(format!("own body n={n} delivered again at seq {seq}"));
                    }
                }
                if replay_until.is_some_and(|until| seq >= until) {
                    *replay_until = None;
                    self.resend_pending(ws).await;
                }
            }
            Some("error") if v["code"] == "history_gap" => {
                self.log.history_gaps += 1;
                if !std::mem::take(expect_gap) {
                    self.log
                        .anomalies
                        .push(format!("history_gap without a stream change: {v}"));
                }
            }
            Some("error") if v["code"] == "unavailable" => {
                self.log.unavailable += 1;
                self.unless_faults(format!("error frame {v}"));
            }
            Some("error") if v["code"] == "room_moving" => {
                self.log.room_moving += 1;
                self.room_moving_here += 1;
            }
            // Refused, like `room_moving`: the body stays pending and goes
            // again after the reconnect that follows (the room's owner
            // lost it) or the next replay.
            Some("error") if v["code"] == "not_accepted" => {
                self.log.not_accepted += 1;
                self.room_moving_here += 1;
                self.unless_faults(format!("error frame {v}"));
            }
            Some("error") => self.log.anomalies.push(format!("error frame {v}")),
            // `moved` is the last frame; the close follows.
            Some("moved") => {
                return Some(End::Moved(
                    v["path"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            Some("joined" | "left") => {}
            _ => self.log.anomalies.push(format!("unexpected frame {v}")),
        }
        None
    }
}
