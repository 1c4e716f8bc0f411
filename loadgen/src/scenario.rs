//! `loadgen run`: plan the rooms, open every connection (bounded
//! concurrency), publish one schedule (warm-up, measured window, drain),
//! sample the server processes at the window's edges, collect what every
//! connection counted and build the report.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::body::{BodyWriter, Stamp};
use crate::clock;
use crate::config::{RunArgs, Target, Transport, WireProtocol};
use crate::conn::{self, ConnReport, ConnSpec, Schedule, Shared};
use crate::errors::Errors;
use crate::net::Sources;
use crate::procstat::{self, ProcSample};
use crate::report::{
    self, ConnectStats, Deliveries, GeneratorStats, PidStats, RunReport, SCHEMA, SendStats,
    ServerStats, Shape,
};
use crate::stats::{self, Loss, Percentiles, Receipts, Shards, Window};
use crate::sys::{self, CpuTime};
use crate::target::{self, Room};

/// Connect outcomes queued for the collector.
const OUTCOME_QUEUE: usize = 1024;
/// Between publishing the schedule and the first send.
const START_DELAY: Duration = Duration::from_millis(200);
/// After the stop, how long connections get to close before being aborted.
const FINISH_GRACE: Duration = Duration::from_secs(5);

/// Runs one scenario; `nofile_limit` is what the process runs with.
pub async fn run(args: &RunArgs, nofile_limit: u64) -> anyhow::Result<RunReport> {
    clock::epoch();
    sys::check_fds((args.rooms * args.members) as u64, nofile_limit)?;
    let run_id = args.run_id.clone().unwrap_or_else(fresh_run_id);
    // Check the pids before spending time on connections.
    for &pid in &args.pids {
        procstat::sample(pid).with_context(|| format!("--pids: cannot read /proc/{pid}"))?;
    }
    let rooms = match args.target {
        Target::Roomrouter => {
            target::roomrouter::plan(
                &args.api,
                target::roomrouter::Way {
                    connect: args.connect,
                    protocol: args.protocol,
                    transport: args.transport,
                },
                args.create_token.as_deref(),
                &run_id,
                args.rooms,
            )
            .await?
        }
        Target::Socketio => target::socketio::plan(&args.servers, &run_id, args.rooms).await?,
    };
    tracing::info!(rooms = rooms.len(), run = %run_id, "rooms ready");

    let shards = std::thread::available_parallelism().map_or(8, |n| n.get() * 4);
    let total_senders = u32::try_from(args.rooms * args.senders).context("too many senders")?;
    let shared = Arc::new(Shared {
        body: BodyWriter::new(args.payload),
        latency: Shards::new(shards),
        send_lag: Shards::new(shards),
        connecting: Semaphore::new(args.connect_concurrency),
        sources: Sources::new(args.sources),
        connect_timeout: args.connect_timeout,
        period: Duration::from_secs_f64(1.0 / args.rate),
        total_senders,
    });
    let (schedule_tx, schedule_rx) = watch::channel(None);
    let (outcome_tx, mut outcome_rx) = mpsc::channel(OUTCOME_QUEUE);
    let mut tasks = JoinSet::new();
    let connect_began = Instant::now();
    for spec in specs(&rooms, args.members, args.senders) {
        tasks.spawn(conn::run(
            spec,
            Arc::clone(&shared),
            outcome_tx.clone(),
            schedule_rx.clone(),
        ));
    }
    drop(outcome_tx);

    // Every task reports its attempt once, then drops its sender.
    let mut connect_time = stats::histogram();
    let mut connected_per_room = vec![0u64; rooms.len()];
    let mut connect_errors = Errors::default();
    let mut attempted = 0u64;
    let mut first_error = None;
    while let Some(o) = outcome_rx.recv().await {
        attempted += 1;
        match o.result {
            Ok(took) => {
                connected_per_room[o.room] += 1;
                connect_time.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
            }
            Err(e) => {
                tracing::debug!(room = o.room, error = %e, "connect failed");
                connect_errors.connect_failed(&e);
                first_error.get_or_insert_with(|| format!("{} ({e})", rooms[o.room].name));
            }
        }
    }
    let connect_wall = connect_began.elapsed();
    let connected: u64 = connected_per_room.iter().sum();
    tracing::info!(
        connected,
        attempted,
        secs = connect_wall.as_secs_f64(),
        "connected"
    );
    if connected == 0 {
        bail!(
            "no connection succeeded: {}; first: {}",
            report::error_line(&connect_errors),
            first_error.unwrap_or_default()
        );
    }

    let start = Instant::now() + START_DELAY;
    let warm_end = start + args.warmup;
    let send_end = warm_end + args.duration;
    let plan = Schedule {
        start,
        window: Window {
            from_ns: clock::ns_at(warm_end),
            to_ns: clock::ns_at(send_end),
        },
        send_end,
        stop: send_end + args.drain,
    };
    // Receivers are still alive (they hold receivers of the watch).
    let _ = schedule_tx.send(Some(plan));

    tokio::time::sleep_until(warm_end.into()).await;
    let before = Edge::sample(&args.pids);
    tracing::info!("warm-up over, measuring");
    tokio::time::sleep_until(send_end.into()).await;
    let after = Edge::sample(&args.pids);
    tracing::info!("window over, draining");

    let mut reports = Vec::with_capacity(tasks.len());
    let deadline = plan.stop + FINISH_GRACE;
    loop {
        match tokio::time::timeout_at(deadline.into(), tasks.join_next()).await {
            Ok(Some(Ok(r))) => reports.push(r),
            Ok(Some(Err(e))) => tracing::warn!(error = %e, "connection task failed"),
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    left = tasks.len(),
                    "connections did not finish; aborting them"
                );
                tasks.abort_all();
                break;
            }
        }
    }

    Ok(build(Inputs {
        args,
        run_id,
        rooms: &rooms,
        shared: &shared,
        reports: &reports,
        connected_per_room: &connected_per_room,
        connect_errors,
        connect_time,
        attempted,
        connect_wall,
        before,
        after,
        nofile_limit,
    }))
}

/// Every connection of the run, room by room; the first `senders` members
/// of each room send, with ids `room × senders + j`.
fn specs(rooms: &[Room], members: usize, senders: usize) -> impl Iterator<Item = ConnSpec> + '_ {
    rooms.iter().enumerate().flat_map(move |(r, room)| {
        let first_sender = (r * senders) as u32;
        (0..members).map(move |m| ConnSpec {
            index: r * members + m,
            room: r,
            endpoint: Arc::clone(&room.endpoints[m % room.endpoints.len()]),
            protocol: room.protocol.clone(),
            sender: (m < senders).then(|| first_sender + m as u32),
            first_sender,
            room_senders: senders,
        })
    })
}

/// A fresh run id: the Unix time in ms, base 36 (unique enough per router).
fn fresh_run_id() -> String {
    let mut n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut s = Vec::new();
    while n > 0 {
        s.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_else(|_| "run".into())
}

/// One edge of the window: the server processes and this process.
struct Edge {
    at: Instant,
    procs: Vec<Option<ProcSample>>,
    own: Option<CpuTime>,
}

impl Edge {
    fn sample(pids: &[u32]) -> Self {
        Self {
            at: Instant::now(),
            procs: pids
                .iter()
                .map(|&pid| {
                    procstat::sample(pid)
                        .inspect_err(|e| tracing::warn!(pid, error = %e, "cannot sample"))
                        .ok()
                })
                .collect(),
            own: sys::process_cpu().ok(),
        }
    }
}

struct Inputs<'a> {
    args: &'a RunArgs,
    run_id: String,
    rooms: &'a [Room],
    shared: &'a Shared,
    reports: &'a [ConnReport],
    connected_per_room: &'a [u64],
    connect_errors: Errors,
    connect_time: hdrhistogram::Histogram<u64>,
    attempted: u64,
    connect_wall: Duration,
    before: Edge,
    after: Edge,
    nofile_limit: u64,
}

fn build(i: Inputs<'_>) -> RunReport {
    let a = i.args;
    let window_s = a.duration.as_secs_f64();
    let mut errors = i.connect_errors;
    let mut receipts = Receipts::default();
    let mut sent_per_room = vec![0u64; i.rooms.len()];
    let (mut sent_total, mut sent_in_window) = (0, 0);
    for r in i.reports {
        errors.add(&r.errors);
        receipts.add(&r.receipts);
        sent_per_room[r.room] += r.sent_in_window;
        sent_total += r.sent;
        sent_in_window += r.sent_in_window;
    }
    let senders_connected = i.reports.iter().filter(|r| r.connected && r.sender).count() as u64;
    // Who gets each message: every connected member, or every other one
    // when the sender gets no echo (it is connected: it sent).
    let echo = i.rooms.iter().all(|r| r.echo);
    let receivers_per_room: Vec<u64> = i
        .connected_per_room
        .iter()
        .map(|&n| if echo { n } else { n.saturating_sub(1) })
        .collect();
    let receivers_per_message = if echo { a.members } else { a.members - 1 };
    let loss = Loss::new(
        stats::expected_deliveries(&sent_per_room, &receivers_per_room),
        receipts.measured,
    );
    let latency = Percentiles::of(&i.shared.latency.merged());
    let lag = Percentiles::of(&i.shared.send_lag.merged());
    let total_senders = (a.rooms * a.senders) as f64;
    let achieved = sent_in_window as f64 / window_s;
    let period_us = 1e6 / a.rate;
    let lagged = achieved < 0.99 * senders_connected as f64 * a.rate || lag.p99 as f64 > period_us;
    let connected: u64 = i.connected_per_room.iter().sum();
    let measured_s = i.after.at.duration_since(i.before.at).as_secs_f64();
    let server = server_stats(&a.pids, &i.before, &i.after, measured_s, receipts.measured);
    let own_cpu = match (i.before.own, i.after.own) {
        (Some(b), Some(e)) => e.since(&b).total().as_secs_f64(),
        _ => 0.0,
    };
    RunReport {
        schema: SCHEMA,
        kind: "run",
        target: a.target,
        connect_mode: (a.target == Target::Roomrouter).then_some(a.connect),
        protocol: match a.target {
            Target::Roomrouter => a.protocol,
            Target::Socketio => WireProtocol::Socketio,
        },
        transport: match (a.target, a.protocol) {
            (Target::Roomrouter, WireProtocol::Socketio) => Some(a.transport),
            (Target::Socketio, _) => Some(Transport::Websocket),
            (Target::Roomrouter, WireProtocol::Native) => None,
        },
        sender_echo: echo,
        run_id: i.run_id,
        shape: Shape {
            rooms: a.rooms,
            members: a.members,
            senders: a.senders,
            rate_per_sender: a.rate,
            payload_bytes: a.payload,
            body_bytes: i
                .shared
                .body
                .body(Stamp {
                    s: 100,
                    q: 1000,
                    t: 10_000_000_000,
                })
                .len(),
            warmup_s: a.warmup.as_secs_f64(),
            duration_s: window_s,
            drain_s: a.drain.as_secs_f64(),
            connections: a.rooms * a.members,
            sources: a.sources,
        },
        connect: ConnectStats {
            attempted: i.attempted,
            connected,
            failed: i.attempted - connected,
            wall_s: i.connect_wall.as_secs_f64(),
            rate_per_s: connected as f64 / i.connect_wall.as_secs_f64().max(1e-9),
            time_us: Percentiles::of(&i.connect_time),
        },
        send: SendStats {
            senders_connected,
            offered_per_s: total_senders * a.rate,
            achieved_per_s: achieved,
            sent_in_window,
            sent_total,
            lag_us: lag,
            generator_lagged: lagged,
        },
        deliveries: Deliveries {
            offered_per_s: total_senders * a.rate * receivers_per_message as f64,
            delivered_per_s: receipts.measured as f64 / window_s,
            expected: loss.expected,
            received: loss.received,
            lost: loss.lost,
            loss_ratio: loss.loss_ratio,
            surplus: loss.surplus,
            gaps: receipts.gaps,
            duplicates: receipts.duplicates,
            foreign: receipts.foreign,
            outside_window: receipts.outside,
        },
        latency_us: latency,
        errors,
        server,
        generator: GeneratorStats {
            cpu_s: own_cpu,
            core_pct: sys::core_pct(own_cpu, measured_s),
            nofile_limit: i.nofile_limit,
        },
    }
}

fn server_stats(
    pids: &[u32],
    before: &Edge,
    after: &Edge,
    measured_s: f64,
    delivered: u64,
) -> Option<ServerStats> {
    if pids.is_empty() {
        return None;
    }
    let ticks = sys::clock_ticks();
    let per: Vec<PidStats> = pids
        .iter()
        .zip(before.procs.iter().zip(&after.procs))
        .filter_map(|(&pid, (b, e))| {
            let (b, e) = (b.as_ref()?, e.as_ref()?);
            Some(PidStats {
                pid,
                cpu_s: procstat::ticks_to_duration(e.cpu_ticks.saturating_sub(b.cpu_ticks), ticks)
                    .as_secs_f64(),
                rss_kb_start: b.rss_kb,
                rss_kb_end: e.rss_kb,
            })
        })
        .collect();
    let cpu_s: f64 = per.iter().map(|p| p.cpu_s).sum();
    Some(ServerStats {
        clock_ticks_per_s: ticks,
        cpu_s,
        us_per_delivery: sys::us_per(cpu_s, delivered),
        core_pct: sys::core_pct(cpu_s, measured_s),
        rss_kb_end: per.iter().map(|p| p.rss_kb_end).sum(),
        pids: per,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Endpoint;
    use crate::session::Protocol;

    #[test]
    fn the_first_members_send_with_room_scoped_ids() {
        let ep = Arc::new(Endpoint {
            url: "ws://127.0.0.1:1/x".into(),
            peer: "127.0.0.1:1".parse().unwrap(),
        });
        let rooms: Vec<Room> = (0..2)
            .map(|k| Room {
                name: format!("r{k}"),
                endpoints: vec![Arc::clone(&ep)],
                protocol: Protocol::Roomrouter,
                node: None,
                echo: true,
            })
            .collect();
        let specs: Vec<ConnSpec> = specs(&rooms, 3, 2).collect();
        assert_eq!(specs.len(), 6);
        let senders: Vec<Option<u32>> = specs.iter().map(|s| s.sender).collect();
        assert_eq!(senders, [Some(0), Some(1), None, Some(2), Some(3), None]);
        assert_eq!(specs[4].first_sender, 2);
        assert_eq!(specs[4].index, 4);
        assert_eq!(specs[4].room, 1);
    }

    #[test]
    fn run_ids_are_room_id_safe() {
        let id = fresh_run_id();
        assert!(!id.is_empty() && id.len() <= 16, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
