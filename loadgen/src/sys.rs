//! What the generator asks of the kernel: more file descriptors, its own
//! CPU time (per thread or process) and the clock-tick rate of `/proc`.

use std::time::Duration;

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use nix::sys::time::TimeVal;
use nix::unistd::{SysconfVar, sysconf};

/// What `/proc` counts CPU time in when `sysconf` does not say (Linux's
/// `USER_HZ` is 100 on every mainstream architecture).
pub const FALLBACK_CLOCK_TICKS: u64 = 100;

/// Descriptors kept free for everything but the connections (runtime,
/// listeners, files, the HTTP client).
pub const SPARE_FDS: u64 = 64;

/// Fails, naming the limit, when `sockets` descriptors plus [`SPARE_FDS`]
/// would not fit under `limit` (0: unknown, not checked).
pub fn check_fds(sockets: u64, limit: u64) -> anyhow::Result<()> {
    let needed = sockets.saturating_add(SPARE_FDS);
    if limit != 0 && needed > limit {
        anyhow::bail!(
            "this needs about {needed} open files but the limit is {limit} \
             (raise the hard limit, e.g. `ulimit -Hn`, or use fewer connections)"
        );
    }
    Ok(())
}

/// Raises the soft open-file limit to the hard one; `(before, after)`.
pub fn raise_nofile() -> nix::Result<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok((soft, hard))
}

/// User and system CPU time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CpuTime {
    /// In user space.
    pub user: Duration,
    /// In the kernel (on loopback this includes the receiver's TCP path,
    /// which runs inside the sender's `write`).
    pub system: Duration,
}

impl CpuTime {
    /// User + system.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The time from `earlier` to `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// CPU seconds per item, in µs (0 with no items): CPU per frame or per
/// delivery.
pub fn us_per(cpu_s: f64, items: u64) -> f64 {
    if items == 0 {
        0.0
    } else {
        cpu_s * 1e6 / items as f64
    }
}

/// CPU seconds over `secs` of wall time, as a share of one core in %.
pub fn core_pct(cpu_s: f64, secs: f64) -> f64 {
    cpu_s / secs.max(1e-9) * 100.0
}

/// The calling thread's CPU time (`RUSAGE_THREAD`, µs precision).
pub fn thread_cpu() -> nix::Result<CpuTime> {
    usage(UsageWho::RUSAGE_THREAD)
}

/// The whole process's CPU time, all threads.
pub fn process_cpu() -> nix::Result<CpuTime> {
    usage(UsageWho::RUSAGE_SELF)
}

fn usage(who: UsageWho) -> nix::Result<CpuTime> {
    let u = getrusage(who)?;
    Ok(CpuTime {
        user: duration(u.user_time()),
        system: duration(u.system_time()),
    })
}

fn duration(tv: TimeVal) -> Duration {
    let secs = u64::try_from(tv.tv_sec()).unwrap_or(0);
    let micros = u64::try_from(tv.tv_usec()).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(micros)
}

/// Clock ticks per second of `/proc/<pid>/stat` (`sysconf(_SC_CLK_TCK)`,
/// [`FALLBACK_CLOCK_TICKS`] if unknown).
pub fn clock_ticks() -> u64 {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => u64::try_from(t).unwrap_or(FALLBACK_CLOCK_TICKS),
        _ => FALLBACK_CLOCK_TICKS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_checked_against_the_limit() {
        assert!(check_fds(1000, 20_000).is_ok());
        assert!(check_fds(1000, 1064).is_ok());
        let err = check_fds(1001, 1064).unwrap_err().to_string();
        assert!(err.contains("1065") && err.contains("1064"), "{err}");
        assert!(check_fds(u64::MAX, 0).is_ok(), "unknown limit");
    }

    #[test]
    fn cpu_time_is_measured() {
        let a = thread_cpu().unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = thread_cpu().unwrap();
        assert!(b.since(&a).total() > Duration::ZERO);
        assert!(process_cpu().unwrap().total() >= b.total());
        assert!(clock_ticks() > 0);
    }
}
