//! Live figures per node for the dashboard: each node's `/metrics`
//! (Prometheus text) fetched on demand, at most [`CONCURRENCY`] at a time,
//! each within [`TIMEOUT`] and all within [`DEADLINE`], the result kept for
//! [`FRESH_FOR`] so any number of open dashboards cost one scrape per
//! interval. Rates come from the difference between successive samples of
//! a node's counters. Nothing is scraped while nobody looks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use proto::InstanceId;
use proto::record::NodeRecord;
use serde::Serialize;
use tokio::time::Instant;

/// Scrapes in flight at once.
const CONCURRENCY: usize = 64;
/// Bound on one node's answer.
const TIMEOUT: Duration = Duration::from_millis(1500);
/// Bound on a whole round: nodes not done by then show as not answering.
const DEADLINE: Duration = Duration::from_secs(3);
/// How long a round's figures are served before the next round.
const FRESH_FOR: Duration = Duration::from_millis(1500);
/// Largest `/metrics` body read from a node.
const MAX_BODY: usize = 1 << 20;

/// The node metrics the dashboard shows (SPEC "Metrics").
const ROOMS: &str = "roomnode_rooms";
const ACTIVE_ROOMS: &str = "roomnode_active_rooms";
const CONNECTIONS: &str = "roomnode_connections";
const RECEIVED: &str = "roomnode_messages_received_total";
const DELIVERED: &str = "roomnode_messages_delivered_total";
const SLOW: &str = "roomnode_slow_consumers_total";
/// Replication health (docs/replication.md).
const WITHOUT_REPLICA: &str = "roomnode_rooms_without_replica";
const PENDING: &str = "roomnode_replication_pending";
const REPLICA_ROOMS: &str = "roomnode_replica_rooms";

/// One node's live figures, or why there are none.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Figures {
    /// `ok`, or `no_answer` (then only `error` is set).
    pub(crate) status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) sample: Option<Reading>,
}

/// What one answer said, with rates against the node's previous answer
/// (absent on the first).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Reading {
    pub(crate) rooms: f64,
    pub(crate) active_rooms: f64,
    pub(crate) connections: f64,
    pub(crate) messages_received_total: f64,
    pub(crate) messages_delivered_total: f64,
    pub(crate) slow_consumers_total: f64,
    /// Hosted rooms no replica protects.
    pub(crate) rooms_without_replica: f64,
    /// Messages waiting for their room's replica.
    pub(crate) replication_pending: f64,
    /// Copies held for other nodes' rooms.
    pub(crate) replica_rooms: f64,
    pub(crate) messages_in_per_sec: Option<f64>,
    pub(crate) messages_out_per_sec: Option<f64>,
}

/// Slow consumers a node disconnected since its previous sample.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlowDelta {
    pub(crate) node: InstanceId,
    pub(crate) count: u64,
}

/// The last round's figures, by node.
pub(crate) type Round = HashMap<InstanceId, Figures>;

/// The scraper and its cache. Cheap to share (held in an `Arc`).
pub(crate) struct Scraper {
    http: Client<HttpConnector, Empty<Bytes>>,
    /// The last round and when it ended.
    last: Mutex<Option<(Instant, Arc<Round>)>>,
    /// Each node's previous counters and when they were read.
    prev: Mutex<HashMap<InstanceId, (Instant, Reading)>>,
    /// One round at a time: callers that arrive meanwhile wait for it.
    round: tokio::sync::Mutex<()>,
}

impl Scraper {
    pub(crate) fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(TIMEOUT));
        connector.set_nodelay(true);
        Self {
            http: Client::builder(TokioExecutor::new()).build(connector),
            last: Mutex::new(None),
            prev: Mutex::new(HashMap::new()),
            round: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<Arc<Round>> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
            .map(|(_, r)| r.clone())
    }

    /// The figures of `nodes`, from the cache when fresh; `slow` hears of
    /// slow-consumer disconnects seen by a new round.
    pub(crate) async fn figures(
        &self,
        nodes: &[NodeRecord],
        slow: impl FnOnce(Vec<SlowDelta>),
    ) -> Arc<Round> {
        if let Some(r) = self.cached() {
            return r;
        }
        let _round = self.round.lock().await;
        if let Some(r) = self.cached() {
            return r;
        }
        let mut answers: HashMap<InstanceId, Result<Reading, String>> = HashMap::new();
        let mut pending = futures_util::stream::iter(nodes.iter().cloned())
            .map(|n| async move { (n.id, self.scrape(&n.addr).await) })
            .buffer_unordered(CONCURRENCY);
        let deadline = Instant::now() + DEADLINE;
        while let Ok(Some((id, answer))) = tokio::time::timeout_at(deadline, pending.next()).await {
            answers.insert(id, answer);
        }
        drop(pending);
        let now = Instant::now();
        let mut slow_deltas = Vec::new();
        let mut round = Round::new();
        let mut prev = self.prev.lock().unwrap_or_else(|p| p.into_inner());
        for n in nodes {
            let figures = match answers.remove(&n.id) {
                Some(Ok(mut reading)) => {
                    if let Some((at, before)) = prev.get(&n.id) {
                        let secs = now.duration_since(*at).as_secs_f64();
                        let rate = |now: f64, then: f64| {
                            (secs > 0.0 && now >= then).then(|| (now - then) / secs)
                        };
                        reading.messages_in_per_sec = rate(
                            reading.messages_received_total,
                            before.messages_received_total,
                        );
                        reading.messages_out_per_sec = rate(
                            reading.messages_delivered_total,
                            before.messages_delivered_total,
                        );
                        let more = reading.slow_consumers_total - before.slow_consumers_total;
                        if more >= 1.0 {
                            slow_deltas.push(SlowDelta {
                                node: n.id,
                                count: more as u64,
                            });
                        }
                    }
                    prev.insert(n.id, (now, reading.clone()));
                    Figures {
                        status: "ok",
                        error: None,
                        sample: Some(reading),
                    }
                }
                Some(Err(e)) => no_answer(e),
                None => no_answer(format!("no answer within {DEADLINE:?}")),
            };
            round.insert(n.id, figures);
        }
        // Nodes gone from the registry take their history with them.
        prev.retain(|id, _| round.contains_key(id));
        drop(prev);
        let round = Arc::new(round);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, round.clone()));
        if !slow_deltas.is_empty() {
            slow(slow_deltas);
        }
        round
    }

    /// One node's `/metrics`, read.
    async fn scrape(&self, base: &str) -> Result<Reading, String> {
        let url = format!("{}/metrics", base.trim_end_matches('/'));
        let uri: hyper::Uri = url.parse().map_err(|e| format!("bad address {url}: {e}"))?;
        let call = async {
            let resp = self.http.get(uri).await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("/metrics answered {}", resp.status()));
            }
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok(body)
        };
        let body = tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| format!("no answer within {TIMEOUT:?}"))??;
        let text = std::str::from_utf8(&body).map_err(|e| e.to_string())?;
        Ok(reading(&sums(text)))
    }
}

fn no_answer(error: String) -> Figures {
    Figures {
        status: "no_answer",
        error: Some(error),
        sample: None,
    }
}

fn reading(sums: &HashMap<String, f64>) -> Reading {
    let get = |name: &str| sums.get(name).copied().unwrap_or(0.0);
    Reading {
        rooms: get(ROOMS),
        active_rooms: get(ACTIVE_ROOMS),
        connections: get(CONNECTIONS),
        messages_received_total: get(RECEIVED),
        messages_delivered_total: get(DELIVERED),
        slow_consumers_total: get(SLOW),
        rooms_without_replica: get(WITHOUT_REPLICA),
        replication_pending: get(PENDING),
        replica_rooms: get(REPLICA_ROOMS),
        messages_in_per_sec: None,
        messages_out_per_sec: None,
    }
}

/// Each metric's value summed over its series, from Prometheus text format
/// 0.0.4: `name{label="value",…} value [timestamp]`, comments skipped.
/// Label values may hold spaces, braces and escaped quotes.
fn sums(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or(line.len());
        let (name, mut rest) = line.split_at(name_end);
        if rest.starts_with('{') {
            let Some(end) = labels_end(rest) else {
                continue;
            };
            rest = &rest[end + 1..];
        }
        let Some(value) = rest.split_whitespace().next() else {
            continue;
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => match v.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        *out.entry(name.to_owned()).or_insert(0.0) += value;
    }
    out
}

/// Where the label set that `s` starts with (`{…}`) closes.
fn labels_end(s: &str) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in s.char_indices() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => quoted = !quoted,
            (false, _, '}') => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_series_and_skips_comments_and_odd_labels() {
        let text = "# HELP roomnode_rooms Rooms.\n# TYPE roomnode_rooms gauge\n\
            roomnode_rooms{node=\"i1\"} 12\n\
            roomnode_connections{node=\"i1\",odd=\"a} b \\\" c\"} 3 1700000000\n\
            roomnode_connections{node=\"i1\",kind=\"sio\"} 4\n\
            roomnode_messages_received_total 1.5e3\n\
            roomnode_latency_bucket{le=\"+Inf\"} 9\n\
            garbage{unclosed=\"x 5\n";
        let s = sums(text);
        assert_eq!(s["roomnode_rooms"], 12.0);
        assert_eq!(s["roomnode_connections"], 7.0);
        assert_eq!(s["roomnode_messages_received_total"], 1500.0);
        assert_eq!(s["roomnode_latency_bucket"], 9.0);
        assert!(!s.contains_key("garbage"));
        let r = reading(&s);
        assert_eq!(
            (r.rooms, r.connections, r.slow_consumers_total),
            (12.0, 7.0, 0.0)
        );
    }
}
