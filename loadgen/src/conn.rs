//! One task per connection: connect (at most `--connect-concurrency` at
//! once), report how that went, then read deliveries and, for a sender, send
//! on schedule until the run stops; hand back what it counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{Interval, MissedTickBehavior};

use crate::body::{BodyWriter, Stamp};
use crate::clock;
use crate::errors::Errors;
use crate::net::{Endpoint, Sources};
use crate::session::{ConnectError, Incoming, Protocol, Session, TransportError};
use crate::stats::{Receipts, Shards, Tracker, Window};

/// The run's timeline, known once every connection attempt has finished.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Senders start (warm-up begins).
    pub start: Instant,
    /// The measured window, in clock ns.
    pub window: Window,
    /// No tick at or after this instant sends.
    pub send_end: Instant,
    /// Every connection closes.
    pub stop: Instant,
}

/// What every connection task shares.
pub struct Shared {
    /// Builds message bodies.
    pub body: BodyWriter,
    /// Delivery latency, µs.
    pub latency: Shards,
    /// How late each send was against its tick, µs (measured window only).
    pub send_lag: Shards,
    /// Bounds connection attempts in flight.
    pub connecting: Semaphore,
    /// Source addresses.
    pub sources: Sources,
    /// One attempt's limit.
    pub connect_timeout: Duration,
    /// Interval between a sender's messages.
    pub period: Duration,
    /// Senders in the whole run (to stagger their ticks).
    pub total_senders: u32,
}

/// One connection to make.
#[derive(Debug, Clone)]
pub struct ConnSpec {
    /// Its number in the run (0-based), for source and shard choice.
    pub index: usize,
    /// Its room's number.
    pub room: usize,
    /// Where it connects.
    pub endpoint: Arc<Endpoint>,
    /// What it speaks.
    pub protocol: Protocol,
    /// Its sender id when it sends.
    pub sender: Option<u32>,
    /// The first sender id of its room.
    pub first_sender: u32,
    /// Senders in its room.
    pub room_senders: usize,
}

/// How an attempt went, reported as soon as it finished.
#[derive(Debug)]
pub struct ConnectOutcome {
    /// The connection's room.
    pub room: usize,
    /// Time to an open session, or why not.
    pub result: Result<Duration, ConnectError>,
}

/// What a connection counted over the run.
#[derive(Debug, Default, Clone)]
pub struct ConnReport {
    /// Its room.
    pub room: usize,
    /// Whether it sends.
    pub sender: bool,
    /// Whether it connected.
    pub connected: bool,
    /// Messages it sent in all.
    pub sent: u64,
    /// Messages it sent in the measured window.
    pub sent_in_window: u64,
    /// What it received.
    pub receipts: Receipts,
    /// What went wrong after connecting.
    pub errors: Errors,
}

/// Runs one connection to the end of the run.
pub async fn run(
    spec: ConnSpec,
    shared: Arc<Shared>,
    outcomes: mpsc::Sender<ConnectOutcome>,
    mut schedule: watch::Receiver<Option<Schedule>>,
) -> ConnReport {
    let mut report = ConnReport {
        room: spec.room,
        sender: spec.sender.is_some(),
        ..ConnReport::default()
    };
    let opened = {
        // A closed semaphore means the run is over: give up quietly.
        let Ok(_permit) = shared.connecting.acquire().await else {
            return report;
        };
        let began = Instant::now();
        let source = shared.sources.pick(spec.index, &spec.endpoint.peer);
        Session::open(
            &spec.endpoint,
            source,
            spec.protocol.clone(),
            shared.connect_timeout,
        )
        .await
        .map(|s| (s, began.elapsed()))
    };
    let (result, session) = match opened {
        Ok((s, took)) => (Ok(took), Some(s)),
        Err(e) => (Err(e), None),
    };
    let _ = outcomes
        .send(ConnectOutcome {
            room: spec.room,
            result,
        })
        .await;
    drop(outcomes);
    let Some(session) = session else {
        return report;
    };
    report.connected = true;
    let mut conn = Conn {
        tracker: Tracker::new(spec.first_sender, spec.room_senders),
        spec,
        shared,
        report,
        seq: 0,
    };
    conn.drive(session, &mut schedule).await;
    conn.report.receipts = conn.tracker.receipts;
    conn.report
}

/// A connected member's state.
struct Conn {
    spec: ConnSpec,
    shared: Arc<Shared>,
    tracker: Tracker,
    report: ConnReport,
    seq: u64,
}

impl Conn {
    async fn drive(
        &mut self,
        mut session: Session,
        schedule: &mut watch::Receiver<Option<Schedule>>,
    ) {
        let mut plan: Option<Schedule> = None;
        let mut ticker: Option<Interval> = None;
        // Far in the future until the schedule is known.
        let stop = tokio::time::sleep(Duration::from_secs(86_400 * 365));
        tokio::pin!(stop);
        let mut closed = false;
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                changed = schedule.changed(), if plan.is_none() => {
                    if changed.is_err() {
                        break; // the run was abandoned
                    }
                    plan = *schedule.borrow_and_update();
                    if let Some(p) = plan {
                        stop.as_mut().reset(p.stop.into());
                        ticker = self.ticker(&p);
                    }
                }
                at = tick(&mut ticker) => {
                    let Some(p) = plan else { continue };
                    if at >= p.send_end {
                        ticker = None;
                        continue;
                    }
                    if let Err(e) = self.send(&mut session, at, &p).await {
                        tracing::debug!(room = self.spec.room, error = %e, "send failed");
                        self.report.errors.send_errors += 1;
                        closed = true;
                        break;
                    }
                }
                read = session.next() => {
                    match read {
                        Ok(Incoming::Delivery(stamp)) => self.deliver(stamp, plan),
                        Ok(Incoming::ErrorFrame(code)) => self.report.errors.error_frame(&code),
                        Ok(Incoming::Closed(code)) => {
                            self.report.errors.closed(code);
                            closed = true;
                            break;
                        }
                        Ok(Incoming::Other) => {}
                        Ok(Incoming::Unparsed) => self.report.errors.unparsed_frames += 1,
                        Err(e) => {
                            tracing::debug!(room = self.spec.room, error = %e, "read failed");
                            self.report.errors.read_errors += 1;
                            closed = true;
                            break;
                        }
                    }
                }
            }
        }
        if !closed {
            session.close().await;
        }
    }

    /// A sender's ticker, staggered so senders do not all fire at once.
    fn ticker(&self, plan: &Schedule) -> Option<Interval> {
        let sender = self.spec.sender?;
        let period = self.shared.period;
        let offset =
            period.mul_f64(f64::from(sender) / f64::from(self.shared.total_senders.max(1)));
        let mut t = tokio::time::interval_at((plan.start + offset).into(), period);
        // Catch up after a stall so the offered rate stays the offered rate;
        // the lag is measured and reported.
        t.set_missed_tick_behavior(MissedTickBehavior::Burst);
        Some(t)
    }

    async fn send(
        &mut self,
        session: &mut Session,
        at: Instant,
        plan: &Schedule,
    ) -> Result<(), TransportError> {
        let Some(s) = self.spec.sender else {
            return Ok(());
        };
        let now = Instant::now();
        let t = clock::ns_at(now);
        self.seq += 1;
        let stamp = Stamp { s, q: self.seq, t };
        session.send(&self.shared.body, stamp).await?;
        self.report.sent += 1;
        if plan.window.contains(t) {
            self.report.sent_in_window += 1;
            let lag = now.saturating_duration_since(at);
            self.shared.send_lag.record(
                self.spec.index,
                u64::try_from(lag.as_micros()).unwrap_or(u64::MAX),
            );
        }
        Ok(())
    }

    fn deliver(&mut self, stamp: Stamp, plan: Option<Schedule>) {
        let now = clock::now_ns();
        if let Some(us) = self.tracker.observe(stamp, now, plan.map(|p| p.window)) {
            self.shared.latency.record(self.spec.index, us);
        }
    }
}

/// The next tick of `ticker`, or never.
async fn tick(ticker: &mut Option<Interval>) -> Instant {
    match ticker {
        Some(t) => t.tick().await.into_std(),
        None => std::future::pending().await,
    }
}
