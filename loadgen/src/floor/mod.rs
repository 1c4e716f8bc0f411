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
//!
//! Layout: this file sets up the pairs and runs the measurement;
//! `writer.rs` is the writer thread, `relay.rs` the relay thread,
//! `report.rs` what is reported.

mod relay;
mod report;
#[cfg(test)]
mod tests;
mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use self::relay::relay_frames;
pub use self::report::{CpuShare, FloorReport, RelayReport};
use self::writer::{Pace, write_frames};
use crate::body::{BodyWriter, Stamp};
use crate::config::FloorArgs;
use crate::net::{Sources, connect_tcp};
use crate::procstat;
use crate::sys;

/// Name prefix of the tokio runtime's threads (set by `main`); the floor's
/// readers run there.
pub const RUNTIME_THREAD_NAME: &str = "lg-worker";
/// The writer thread's name.
const WRITER_THREAD_NAME: &str = "floor-writer";
/// The relay thread's name.
const RELAY_THREAD_NAME: &str = "floor-relay";
/// Connections opened at once while setting up.
const SETUP_CONCURRENCY: usize = 256;
/// The loopback listener's backlog (the kernel caps it at `somaxconn`).
const LISTEN_BACKLOG: u32 = 4 * SETUP_CONCURRENCY as u32;
/// Longest the setup may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// A write blocked longer than this fails (a reader that stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Each reader's buffer.
const READ_BUFFER: usize = 16 * 1024;
/// After the writer ends, how long readers get to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

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
