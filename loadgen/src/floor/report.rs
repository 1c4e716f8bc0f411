//! What `loadgen floor` reports: [`FloorReport`] (JSON, field names
//! stable) and its human table, with the relay's part and the CPU shares.

use serde::Serialize;

use crate::sys::{self, CpuTime};

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
    pub(super) fn new(user_s: f64, system_s: f64, cpu_s: f64, frames: u64, secs: f64) -> Self {
        Self {
            user_s,
            system_s,
            cpu_s,
            us_per_frame: sys::us_per(cpu_s, frames),
            core_pct: sys::core_pct(cpu_s, secs),
        }
    }

    pub(super) fn of(cpu: CpuTime, frames: u64, secs: f64) -> Self {
        let (user, system) = (cpu.user.as_secs_f64(), cpu.system.as_secs_f64());
        Self::new(user, system, user + system, frames, secs)
    }
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
