//! `loadgen floor`: the kernel's share of a fan-out, without any server.
//!
//! N loopback TCP pairs; ONE writer thread writes pre-built WebSocket text
//! frames (server-to-client framing: `0x81`, length, payload — sized like
//! the node's `message` frame for `--payload`) at `--rate` frames/s in
//! total, round-robin over the sockets, one `write` per frame (or per
//! `--frames-per-write` K frames: K copies in one buffer, one `write`),
//! evenly spaced (or `--burst` B writes back to back, to B consecutive
//! sockets, like a node fanning a message out to a room); a reader task per
//! socket drains the other side.
//!
//! With `--relay` the writer's pairs are "upstream": ONE relay thread
//! (level-triggered epoll) does, for each readable upstream socket, one
//! `read` into a buffer and one `write` of those bytes to the matching
//! "downstream" pair, whose other side the readers drain — the kernel work
//! of a byte-moving proxy (the router's legacy path) per frame, measured
//! like the writer's.
//!
//! Fair accounting: on loopback the receiver's TCP path (softirq, queueing
//! to the reading socket, waking the reader) runs inside the sender's
//! `write`, so the writer thread's CPU (`getrusage(RUSAGE_THREAD)`, µs
//! precision) is what a node pays per frame it writes — the floor for
//! roomnode's CPU per delivery. The readers' CPU (this process's runtime
//! threads, from `/proc/self/task/*/stat`, clock-tick precision) is what
//! the clients pay, reported separately; the process total is given too.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use serde::Serialize;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use crate::body::{BodyWriter, Stamp};
use crate::config::FloorArgs;
use crate::net::{Sources, connect_tcp};
use crate::procstat;
use crate::sys::{self, CpuTime};

/// Name prefix of the tokio runtime's threads (set by `main`); the floor's
/// readers run there.
pub const RUNTIME_THREAD_NAME: &str = "lg-worker";
/// The writer thread's name.
const WRITER_THREAD_NAME: &str = "floor-writer";
/// The relay thread's name.
const RELAY_THREAD_NAME: &str = "floor-relay";
/// The relay's buffer (one `read` per readable socket moves at most this).
const RELAY_BUFFER: usize = 64 * 1024;
/// Events one `epoll_wait` of the relay returns at most.
const RELAY_EVENTS: usize = 1024;
/// The relay's `epoll_wait` timeout, ms (how soon it sees a stop).
const RELAY_POLL_MS: u16 = 100;
/// Connections opened at once while setting up.
const SETUP_CONCURRENCY: usize = 256;
/// The loopback listener's backlog (the kernel caps it at `somaxconn`).
const LISTEN_BACKLOG: u32 = 4 * SETUP_CONCURRENCY as u32;
/// Longest the setup may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// A write blocked longer than this fails (a reader that stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest the writer sleeps between checks of the schedule.
const MAX_NAP: Duration = Duration::from_millis(1);
/// Each reader's buffer.
const READ_BUFFER: usize = 16 * 1024;
/// After the writer ends, how long readers get to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What `floor` reports; field names are stable (`schema` changes if not).
#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    /// Version of this layout.
    pub schema: u32,
    /// `"floor"`.
    pub kind: &'static str,
    /// Loopback pairs.
    pub sockets: usize,
    /// `--payload`.
    pub payload_bytes: usize,
    /// Bytes per frame on the wire (header included).
    pub frame_bytes: usize,
    /// `--rate`, frames/s.
    pub rate_offered: f64,
    /// How long the writer ran, s.
    pub duration_s: f64,
    /// Frames written.
    pub frames_written: u64,
    /// Frames written / duration.
    pub rate_achieved: f64,
    /// Achieved below 99 % of offered.
    pub writer_lagged: bool,
    /// `--frames-per-write`: frames per `write` call.
    pub frames_per_write: usize,
    /// `write` calls the writer made (frames written / frames per write).
    pub writes: u64,
    /// `--burst`: writes made back to back (to consecutive sockets).
    pub burst: usize,
    /// Writes that wrote less than asked (completed with more writes).
    pub short_writes: u64,
    /// Writes that failed.
    pub write_errors: u64,
    /// Bytes the readers read.
    pub bytes_read: u64,
    /// The writer thread.
    pub writer: CpuShare,
    /// All reader threads.
    pub readers: CpuShare,
    /// The whole process (writer, readers, relay and the rest).
    pub process: CpuShare,
    /// With `--relay`: the relay thread; `null` without.
    pub relay: Option<RelayReport>,
    /// Unit of the readers' `/proc` times.
    pub clock_ticks_per_s: u64,
}

/// What the relay thread did (`--relay`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RelayReport {
    /// Its CPU (`getrusage(RUSAGE_THREAD)`), per frame written upstream.
    #[serde(flatten)]
    pub cpu: CpuShare,
    /// `read` calls that returned bytes (each followed by one `write`).
    pub reads: u64,
    /// Frames written upstream per such `read` (above 1: reads found more
    /// than one frame waiting).
    pub frames_per_read: f64,
    /// `epoll_wait` calls that returned events.
    pub wakeups: u64,
    /// Bytes moved from upstream to downstream.
    pub bytes: u64,
    /// Downstream writes that wrote less than was read.
    pub short_writes: u64,
    /// Downstream writes that failed (that pair is then closed).
    pub write_errors: u64,
    /// Upstream reads that failed (that pair is then closed).
    pub read_errors: u64,
    /// Upstream sockets still open when the relay was stopped (0: every
    /// pair ended with the writer's EOF).
    pub unfinished: u64,
}

/// CPU time of one part over the run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuShare {
    /// User time, s (0 where only the total is known: the readers).
    pub user_s: f64,
    /// System time, s (0 where only the total is known).
    pub system_s: f64,
    /// User + system, s.
    pub cpu_s: f64,
    /// CPU µs per frame written.
    pub us_per_frame: f64,
    /// As % of one core.
    pub core_pct: f64,
}

impl CpuShare {
    /// `cpu_s` is `user_s + system_s` when those are known, else the total.
    fn new(user_s: f64, system_s: f64, cpu_s: f64, frames: u64, secs: f64) -> Self {
        Self {
            user_s,
            system_s,
            cpu_s,
            us_per_frame: sys::us_per(cpu_s, frames),
            core_pct: sys::core_pct(cpu_s, secs),
        }
    }

    fn of(cpu: CpuTime, frames: u64, secs: f64) -> Self {
        let (user, system) = (cpu.user.as_secs_f64(), cpu.system.as_secs_f64());
        Self::new(user, system, user + system, frames, secs)
    }
}

/// The text a node sends for one message with a `payload`-byte body.
pub fn message_text(payload: usize) -> String {
    let mut s =
        String::from(r#"{"type":"message","room":"lg-floor-0","seq":100000,"from":"m12","body":"#);
    BodyWriter::new(payload).write(
        &mut s,
        Stamp {
            s: 100,
            q: 1000,
            t: 10_000_000_000,
        },
    );
    s.push('}');
    s
}

/// An unmasked (server-to-client) WebSocket text frame carrying `payload`.
pub fn ws_text_frame(payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = Vec::with_capacity(len + 10);
    f.push(0x81); // FIN, text
    match len {
        0..=125 => f.push(len as u8),
        126..=0xFFFF => {
            f.push(126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            f.push(127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// What the writer thread did.
#[derive(Debug, Default)]
struct Written {
    frames: u64,
    writes: u64,
    short_writes: u64,
    write_errors: u64,
    elapsed: Duration,
    cpu: CpuTime,
}

/// Runs the floor measurement.
pub async fn run(args: &FloorArgs, nofile_limit: u64) -> anyhow::Result<FloorReport> {
    // Both ends of every pair live in this process; twice the pairs with
    // a relay.
    let pairs_needed = if args.relay { 2 } else { 1 } * args.sockets as u64;
    sys::check_fds(2 * pairs_needed, nofile_limit)?;
    let frame = ws_text_frame(message_text(args.payload).as_bytes());
    let frame_bytes = frame.len();
    let batch = frame.repeat(args.frames_per_write);
    let setup = async {
        let (writers, readers) = pairs(args.sockets, args.sources).await?;
        if !args.relay {
            return anyhow::Ok((writers, readers, None));
        }
        // Upstream: the writer's pairs, read by the relay (non-blocking).
        let mut upstream = Vec::with_capacity(readers.len());
        for r in readers {
            let s = r.into_std()?;
            s.set_nonblocking(true)?;
            upstream.push(s);
        }
        // Downstream: written by the relay, drained by the readers.
        let (downstream, readers) = pairs(args.sockets, args.sources).await?;
        Ok((writers, readers, Some((upstream, downstream))))
    };
    let (writers, readers, relay_socks) = tokio::time::timeout(SETUP_TIMEOUT, setup)
        .await
        .context("setting up the loopback pairs took too long")??;
    tracing::info!(
        sockets = args.sockets,
        frame_bytes,
        frames_per_write = args.frames_per_write,
        burst = args.burst,
        relay = args.relay,
        "pairs ready"
    );

    let bytes_read = Arc::new(AtomicU64::new(0));
    let mut reading = JoinSet::new();
    for mut r in readers {
        let total = Arc::clone(&bytes_read);
        reading.spawn(async move {
            let mut buf = vec![0u8; READ_BUFFER];
            let mut n = 0u64;
            while let Ok(got @ 1..) = r.read(&mut buf).await {
                n += got as u64;
            }
            total.fetch_add(n, Ordering::Relaxed);
        });
    }

    let ticks = sys::clock_ticks();
    let readers_before = procstat::own_threads_ticks(RUNTIME_THREAD_NAME)?;
    let process_before = sys::process_cpu()?;
    let began = Instant::now();
    let stop_relay = Arc::new(AtomicBool::new(false));
    let relaying = match relay_socks {
        None => None,
        Some((upstream, downstream)) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let stop = Arc::clone(&stop_relay);
            std::thread::Builder::new()
                .name(RELAY_THREAD_NAME.into())
                .spawn(move || {
                    let _ = tx.send(relay_frames(upstream, downstream, &stop));
                })
                .context("starting the relay thread")?;
            Some(rx)
        }
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let pace = Pace {
        rate: args.rate,
        duration: args.duration,
        frames_per_write: args.frames_per_write,
        burst: args.burst,
    };
    std::thread::Builder::new()
        .name(WRITER_THREAD_NAME.into())
        .spawn(move || {
            let _ = done_tx.send(write_frames(writers, &batch, pace));
        })
        .context("starting the writer thread")?;
    let written = done_rx.await.context("the writer thread died")?;
    // The writer's sockets are closed now (also when it failed): the relay
    // sees EOF on each upstream socket once it has moved what was written,
    // and closes the matching downstream one.
    let relayed = match relaying {
        None => None,
        Some(mut rx) => {
            let r = match tokio::time::timeout(DRAIN_TIMEOUT, &mut rx).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!("the relay did not finish relaying: stopping it");
                    stop_relay.store(true, Ordering::Relaxed);
                    rx.await
                }
            };
            Some(r.context("the relay thread died")??)
        }
    };
    let written = written?;
    // The last writer's sockets are closed now: readers see EOF once drained.
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while reading.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(left = reading.len(), "readers did not finish draining");
        reading.abort_all();
    }
    let wall = began.elapsed().as_secs_f64();
    let readers_after = procstat::own_threads_ticks(RUNTIME_THREAD_NAME)?;
    let process = sys::process_cpu()?.since(&process_before);

    let secs = written.elapsed.as_secs_f64();
    let frames = written.frames;
    let reader_cpu =
        procstat::ticks_to_duration(readers_after.0.saturating_sub(readers_before.0), ticks);
    let achieved = frames as f64 / secs.max(1e-9);
    Ok(FloorReport {
        schema: 1,
        kind: "floor",
        sockets: args.sockets,
        payload_bytes: args.payload,
        frame_bytes,
        rate_offered: args.rate,
        duration_s: secs,
        frames_written: frames,
        rate_achieved: achieved,
        writer_lagged: achieved < 0.99 * args.rate,
        frames_per_write: args.frames_per_write,
        writes: written.writes,
        burst: args.burst,
        short_writes: written.short_writes,
        write_errors: written.write_errors,
        bytes_read: bytes_read.load(Ordering::Relaxed),
        writer: CpuShare::of(written.cpu, frames, secs),
        readers: CpuShare::new(0.0, 0.0, reader_cpu.as_secs_f64(), frames, wall),
        process: CpuShare::of(process, frames, wall),
        relay: relayed.map(|r| RelayReport {
            cpu: CpuShare::of(r.cpu, frames, secs),
            reads: r.reads,
            frames_per_read: if r.reads == 0 {
                0.0
            } else {
                frames as f64 / r.reads as f64
            },
            wakeups: r.wakeups,
            bytes: r.bytes,
            short_writes: r.short_writes,
            write_errors: r.write_errors,
            read_errors: r.read_errors,
            unfinished: r.unfinished,
        }),
        clock_ticks_per_s: ticks,
    })
}

/// `n` connected pairs: (accepted sides as blocking std sockets for the
/// writer, connecting sides for the readers).
async fn pairs(
    n: usize,
    sources: u8,
) -> anyhow::Result<(Vec<std::net::TcpStream>, Vec<TcpStream>)> {
    // A backlog above the connects in flight: were the accept queue to
    // overflow, the kernel would drop the handshake's last ACK, the client
    // would count itself connected and the accept could wait for good.
    let listener = {
        let s = TcpSocket::new_v4().context("a listening socket")?;
        s.bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .context("binding a listener")?;
        s.listen(LISTEN_BACKLOG).context("listening")?
    };
    let addr = listener.local_addr()?;
    let accepting = tokio::spawn(async move {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let (s, _) = listener.accept().await?;
            out.push(s);
        }
        std::io::Result::Ok(out)
    });
    let sources = Sources::new(sources);
    let readers: Vec<TcpStream> = stream::iter(0..n)
        .map(|k| connect_tcp(addr, sources.pick(k, &addr)))
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect()
        .await
        .context("connecting a loopback pair")?;
    let accepted = accepting
        .await
        .context("accept task")?
        .context("accepting")?;
    if accepted.len() != n {
        bail!("accepted {} of {n} connections", accepted.len());
    }
    let mut writers = Vec::with_capacity(n);
    for s in accepted {
        let s = s.into_std()?;
        s.set_nonblocking(false)?;
        s.set_nodelay(true)?;
        s.set_write_timeout(Some(WRITE_TIMEOUT))?;
        writers.push(s);
    }
    Ok((writers, readers))
}

/// How the writer paces its writes.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Frames/s in total.
    rate: f64,
    duration: Duration,
    /// Frames in each `write` (the batch).
    frames_per_write: usize,
    /// Writes made back to back, to consecutive sockets.
    burst: usize,
}

/// The writer thread: `rate` frames/s for `duration`, round-robin, one
/// `write` of `batch` (`frames_per_write` frames) at a time, `burst` writes
/// back to back whenever that many are due; its own CPU time over the loop.
fn write_frames(
    mut socks: Vec<std::net::TcpStream>,
    batch: &[u8],
    pace: Pace,
) -> anyhow::Result<Written> {
    let cpu_before = sys::thread_cpu()?;
    let start = Instant::now();
    let end = start + pace.duration;
    let mut w = Written::default();
    let n = socks.len();
    let k = pace.frames_per_write.max(1) as u64;
    let burst = pace.burst.max(1) as u64;
    let mut next = 0usize;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let due = (now.duration_since(start).as_secs_f64() * pace.rate) as u64;
        while w.frames + k * burst <= due {
            for _ in 0..burst {
                let sock = &mut socks[next];
                next = (next + 1) % n;
                w.frames += k;
                w.writes += 1;
                match sock.write(batch) {
                    Ok(n) if n == batch.len() => {}
                    Ok(n) => {
                        w.short_writes += 1;
                        if sock.write_all(&batch[n..]).is_err() {
                            w.write_errors += 1;
                        }
                    }
                    Err(_) => w.write_errors += 1,
                }
            }
        }
        let next_due = start + Duration::from_secs_f64((w.frames + k * burst) as f64 / pace.rate);
        let now = Instant::now();
        if next_due > now {
            std::thread::sleep((next_due - now).min(MAX_NAP));
        }
    }
    w.elapsed = start.elapsed();
    w.cpu = sys::thread_cpu()?.since(&cpu_before);
    drop(socks);
    Ok(w)
}

/// What the relay thread did.
#[derive(Debug, Default)]
struct Relayed {
    reads: u64,
    wakeups: u64,
    bytes: u64,
    short_writes: u64,
    write_errors: u64,
    read_errors: u64,
    unfinished: u64,
    cpu: CpuTime,
}

/// The relay thread: a level-triggered epoll loop over the (non-blocking)
/// upstream sockets; for each readable one, ONE `read` into the buffer and
/// ONE `write` of those bytes to the matching (blocking) downstream socket
/// (completed if short). An upstream EOF closes the pair's downstream
/// side; it ends when every upstream socket has ended, or at `stop`. Its
/// own CPU time over the loop.
fn relay_frames(
    upstream: Vec<std::net::TcpStream>,
    downstream: Vec<std::net::TcpStream>,
    stop: &AtomicBool,
) -> anyhow::Result<Relayed> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("epoll_create1")?;
    for (i, s) in upstream.iter().enumerate() {
        epoll
            .add(s, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
            .context("epoll_ctl ADD")?;
    }
    // From here on: what the relay pays while relaying.
    let cpu_before = sys::thread_cpu()?;
    let mut up: Vec<Option<std::net::TcpStream>> = upstream.into_iter().map(Some).collect();
    let mut down: Vec<Option<std::net::TcpStream>> = downstream.into_iter().map(Some).collect();
    let mut open = up.len();
    let mut events = vec![EpollEvent::empty(); RELAY_EVENTS];
    let mut buf = vec![0u8; RELAY_BUFFER];
    let mut r = Relayed::default();
    while open > 0 && !stop.load(Ordering::Relaxed) {
        let got = match epoll.wait(&mut events, RELAY_POLL_MS) {
            Ok(got) => got,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).context("epoll_wait"),
        };
        if got > 0 {
            r.wakeups += 1;
        }
        for ev in &events[..got] {
            let i = ev.data() as usize;
            let (Some(src), Some(dst)) = (up[i].as_mut(), down[i].as_mut()) else {
                continue;
            };
            let end = match src.read(&mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    r.reads += 1;
                    r.bytes += n as u64;
                    match dst.write(&buf[..n]) {
                        Ok(m) if m == n => false,
                        Ok(m) => {
                            r.short_writes += 1;
                            let failed = dst.write_all(&buf[m..n]).is_err();
                            r.write_errors += u64::from(failed);
                            failed
                        }
                        Err(_) => {
                            r.write_errors += 1;
                            true
                        }
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    false
                }
                Err(_) => {
                    r.read_errors += 1;
                    true
                }
            };
            if end {
                if let Some(s) = up[i].take() {
                    let _ = epoll.delete(&s);
                }
                down[i] = None;
                open -= 1;
            }
        }
    }
    r.unfinished = open as u64;
    r.cpu = sys::thread_cpu()?.since(&cpu_before);
    Ok(r)
}

impl FloorReport {
    /// The human table.
    pub fn table(&self) -> String {
        format!(
            "loadgen floor  {} sockets, frame {} B (payload {} B), offered {:.0}/s, achieved {:.0}/s over {:.2} s{}\n\
             writer         {:.3} µs/frame (user {:.2} s, sys {:.2} s; {:.1} % of a core)\n\
             readers        {:.3} µs/frame ({:.2} s; {:.1} % of a core)\n\
             process        {:.3} µs/frame ({:.2} s)\n\
             io             {} frames in {} writes ({} per write, {} per burst), {} bytes read of {} written, {} short writes, {} write errors\n{}",
            self.sockets,
            self.frame_bytes,
            self.payload_bytes,
            self.rate_offered,
            self.rate_achieved,
            self.duration_s,
            if self.writer_lagged {
                "  ** WRITER LAGGED **"
            } else {
                ""
            },
            self.writer.us_per_frame,
            self.writer.user_s,
            self.writer.system_s,
            self.writer.core_pct,
            self.readers.us_per_frame,
            self.readers.cpu_s,
            self.readers.core_pct,
            self.process.us_per_frame,
            self.process.cpu_s,
            self.frames_written,
            self.writes,
            self.frames_per_write,
            self.burst,
            self.bytes_read,
            self.frames_written * self.frame_bytes as u64,
            self.short_writes,
            self.write_errors,
            self.relay.map(|r| r.table()).unwrap_or_default(),
        )
    }
}

impl RelayReport {
    /// The relay's lines of the human table.
    fn table(&self) -> String {
        format!(
            "relay          {:.3} µs/frame (user {:.2} s, sys {:.2} s; {:.1} % of a core)\n\
             relay io       {} reads ({:.2} frames/read), {} wakeups, {} bytes, {} short writes, \
             {} write errors, {} read errors, {} unfinished\n",
            self.cpu.us_per_frame,
            self.cpu.user_s,
            self.cpu.system_s,
            self.cpu.core_pct,
            self.reads,
            self.frames_per_read,
            self.wakeups,
            self.bytes,
            self.short_writes,
            self.write_errors,
            self.read_errors,
            self.unfinished,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_websocket_server_framing() {
        assert_eq!(ws_text_frame(b"hi"), [0x81, 2, b'h', b'i']);
        let mid = ws_text_frame(&[b'x'; 300]);
        assert_eq!(&mid[..4], &[0x81, 126, 0x01, 0x2C]);
        assert_eq!(mid.len(), 304);
        let big = ws_text_frame(&vec![b'x'; 70_000]);
        assert_eq!(&big[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(big[2..10].try_into().unwrap()), 70_000);
    }

    #[test]
    fn message_text_is_a_node_message() {
        let text = message_text(64);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "message");
        assert!(v["body"]["p"].is_string());
    }

    #[tokio::test]
    async fn a_small_floor_runs() {
        let args = FloorArgs {
            sockets: 4,
            rate: 2000.0,
            payload: 64,
            duration: Duration::from_millis(300),
            sources: 2,
            frames_per_write: 1,
            burst: 1,
            relay: false,
            json: None,
        };
        let r = run(&args, 0).await.unwrap();
        assert!(r.frames_written > 300, "{r:?}");
        assert_eq!(r.write_errors, 0);
        assert_eq!(r.writes, r.frames_written);
        assert_eq!(r.bytes_read, r.frames_written * r.frame_bytes as u64);
        assert!(r.relay.is_none());
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["relay"].is_null() && v["frames_per_write"] == 1, "{v}");
    }

    #[tokio::test]
    async fn frames_go_k_per_write() {
        let args = FloorArgs {
            sockets: 3,
            rate: 4000.0,
            payload: 64,
            duration: Duration::from_millis(300),
            sources: 1,
            frames_per_write: 4,
            burst: 3,
            relay: false,
            json: None,
        };
        let r = run(&args, 0).await.unwrap();
        assert!(r.frames_written > 600, "{r:?}");
        assert_eq!(r.frames_written, 4 * r.writes, "{r:?}");
        assert_eq!(r.writes % 3, 0, "whole bursts: {r:?}");
        assert_eq!(r.write_errors, 0);
        assert_eq!(r.bytes_read, r.frames_written * r.frame_bytes as u64);
    }

    #[tokio::test]
    async fn a_small_relay_moves_every_byte() {
        let args = FloorArgs {
            sockets: 5,
            rate: 3000.0,
            payload: 200,
            duration: Duration::from_millis(300),
            sources: 1,
            frames_per_write: 2,
            burst: 5,
            relay: true,
            json: None,
        };
        let r = run(&args, 0).await.unwrap();
        let relay = r.relay.expect("a relay report");
        let written = r.frames_written * r.frame_bytes as u64;
        assert!(r.frames_written > 400, "{r:?}");
        assert_eq!(relay.bytes, written, "{r:?}");
        assert_eq!(r.bytes_read, written, "{r:?}");
        assert_eq!(relay.unfinished, 0);
        assert_eq!(relay.write_errors + relay.read_errors + r.write_errors, 0);
        assert!(relay.reads > 0 && relay.wakeups > 0 && relay.frames_per_read > 0.0);
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["relay"]["us_per_frame"].is_number(), "{v}");
        assert!(v["relay"]["reads"].is_number(), "{v}");
    }
}
