//! Other processes' (and this one's threads') CPU time and memory from
//! `/proc`: `utime + stime` (fields 14 and 15 of `stat`, in clock ticks) and
//! `VmRSS` of `status`.

use std::io;
use std::time::Duration;

/// One process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// The process.
    pub pid: u32,
    /// `utime + stime`, clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size, KiB.
    pub rss_kb: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let bad = |what| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}: no {what}"),
        )
    };
    Ok(ProcSample {
        pid,
        cpu_ticks: stat_ticks(&stat).ok_or_else(|| bad("utime/stime"))?,
        rss_kb: vm_rss_kb(&status).ok_or_else(|| bad("VmRSS"))?,
    })
}

/// Ticks as a duration at `ticks_per_s`.
pub fn ticks_to_duration(ticks: u64, ticks_per_s: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / ticks_per_s.max(1) as f64)
}

/// `utime + stime` from a `stat` line. The command name (field 2) is in
/// parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the last `)`.
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, so utime (14) is the 12th, stime the 13th.
    let mut fields = after.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The command name of a `stat` line (between the first `(` and last `)`).
pub fn stat_comm(stat: &str) -> Option<&str> {
    stat.get(stat.find('(')? + 1..stat.rfind(')')?)
}

/// `VmRSS` in KiB from a `status` file (absent for kernel threads).
pub fn vm_rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Σ `utime + stime` (ticks) of this process's threads whose name starts
/// with `prefix`, and how many there were.
pub fn own_threads_ticks(prefix: &str) -> io::Result<(u64, usize)> {
    let mut ticks = 0;
    let mut threads = 0;
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Ok(stat) = std::fs::read_to_string(entry?.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        if stat_comm(&stat).is_some_and(|c| c.starts_with(prefix))
            && let Some(t) = stat_ticks(&stat)
        {
            ticks += t;
            threads += 1;
        }
    }
    Ok((ticks, threads))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let stat = "4242 (we ird) (name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    150 37 0 0 20 0 9 0 12345 123456789 2000 18446744073709551615";
        assert_eq!(stat_comm(stat), Some("we ird) (name"));
        assert_eq!(stat_ticks(stat), Some(187));
        assert_eq!(stat_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn vm_rss() {
        let status = "Name:\troomnode\nVmPeak:\t  99999 kB\nVmRSS:\t   23456 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_kb(status), Some(23456));
        assert_eq!(vm_rss_kb("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let me = sample(std::process::id()).unwrap();
        assert!(me.rss_kb > 0);
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2500));
    }
}
