//! The floor's writer thread: pre-built frames at the offered rate,
//! round-robin over blocking loopback sockets, one `write` per batch, in
//! bursts; its own CPU time over the loop.

use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::sys::{self, CpuTime};

/// Longest the writer sleeps between checks of the schedule.
const MAX_NAP: Duration = Duration::from_millis(1);

/// What the writer thread did.
#[derive(Debug, Default)]
pub(super) struct Written {
    pub(super) frames: u64,
    pub(super) writes: u64,
    pub(super) short_writes: u64,
    pub(super) write_errors: u64,
    pub(super) elapsed: Duration,
    pub(super) cpu: CpuTime,
}

/// How the writer paces its writes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    /// Frames/s in total.
    pub(super) rate: f64,
    pub(super) duration: Duration,
    /// Frames in each `write` (the batch).
    pub(super) frames_per_write: usize,
    /// Writes made back to back, to consecutive sockets.
    pub(super) burst: usize,
}

/// The writer thread: `rate` frames/s for `duration`, round-robin, one
/// `write` of `batch` (`frames_per_write` frames) at a time, `burst` writes
/// back to back whenever that many are due; its own CPU time over the loop.
pub(super) fn write_frames(
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
