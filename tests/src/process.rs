//! Child processes under test: a workspace binary (found by [`bin_path`]) or
//! any program, its stdout and stderr appended to one log file, killed when
//! its [`Proc`] drops so a failing test leaves nothing running.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// Environment variable naming the directory that holds the workspace
/// binaries, overriding the one found next to the test executable.
pub const BIN_DIR_ENV: &str = "ROOMROUTER_BIN_DIR";

/// How long [`Proc::kill`] waits for a SIGKILLed process to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// How many lines of log a panic message quotes.
const LOG_TAIL_LINES: usize = 40;

/// The resident memory (VmRSS) of process `pid`, KiB; `None` once it is
/// gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The path of workspace binary `name`: in `$ROOMROUTER_BIN_DIR` when set,
/// otherwise in `target/<profile>/`, found from the running test executable
/// (which sits in `target/<profile>/deps/`). Panics if it is not built.
pub fn bin_path(name: &str) -> PathBuf {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let dir = match std::env::var_os(BIN_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("path of the running test executable");
            let mut dir = exe
                .parent()
                .expect("the test executable lives in a directory")
                .to_path_buf();
            if dir.file_name() == Some(OsStr::new("deps")) {
                dir.pop();
            }
            dir
        }
    };
    let path = dir.join(file);
    assert!(
        path.is_file(),
        "binary {name} not built: run `cargo build --workspace --bins` first (scripts/test does); looked for {}",
        path.display()
    );
    path
}

/// What to run, before it runs. Made by [`Proc::bin`] or [`Proc::program`].
#[derive(Debug, Clone)]
pub struct ProcBuilder {
    label: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    log: Option<PathBuf>,
}

impl ProcBuilder {
    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the child (the rest is inherited).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Appends output to `path` instead of a log file in a fresh temp dir
    /// (e.g. to keep one log across restarts).
    pub fn log_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    /// Starts the process; panics if it cannot be started. Needs a tokio
    /// runtime (the child is reaped by it).
    pub fn spawn(self) -> Proc {
        let (log, dir) = match self.log {
            Some(path) => (path, None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix(&format!("{}-", self.label))
                    .tempdir()
                    .expect("create a temp dir for a process log");
                (dir.path().join(format!("{}.log", self.label)), Some(dir))
            }
        };
        let file = open_log(&log);
        let stderr = file.try_clone().expect("duplicate the log file handle");
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        Proc {
            label: self.label,
            child,
            log,
            _dir: dir,
        }
    }
}

fn open_log(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open log {}: {e}", path.display()))
}

/// A running child process. Dropping it kills the process (SIGKILL).
#[derive(Debug)]
pub struct Proc {
    label: String,
    child: Child,
    log: PathBuf,
    /// The temp dir holding the log, when the kit made one.
    _dir: Option<TempDir>,
}

impl Proc {
    /// Workspace binary `name` (see [`bin_path`]).
    pub fn bin(name: &str) -> ProcBuilder {
        Self::program(name, bin_path(name))
    }

    /// Any program, called `label` in logs and panic messages.
    pub fn program(label: &str, program: impl Into<PathBuf>) -> ProcBuilder {
        ProcBuilder {
            label: label.to_owned(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            log: None,
        }
    }

    /// Its name in messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Its process id, while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Where its output goes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything it has written so far (stdout and stderr interleaved).
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log.display()))
    }

    /// The last `lines` lines of [`Proc::log`], for panic messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The last `max` lines of [`Proc::log`] that contain any of `needles`,
    /// for panic messages (e.g. its fencing, its errors).
    pub fn log_grep(&self, needles: &[&str], max: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| needles.iter().any(|n| l.contains(n)))
            .collect();
        lines[lines.len().saturating_sub(max)..].join("\n")
    }

    /// Its resident memory (VmRSS), KiB, while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid()?)
    }

    /// Sends `signal`; false if the process is already gone.
    pub fn signal(&self, signal: Signal) -> bool {
        let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) else {
            return false;
        };
        kill(Pid::from_raw(pid), signal).is_ok()
    }

    /// Asks it to shut down (SIGTERM); see [`Proc::wait_exit`].
    pub fn signal_term(&self) -> bool {
        self.signal(Signal::SIGTERM)
    }

    /// Kills it (SIGKILL) and waits until it is reaped.
    pub async fn kill(&mut self) -> ExitStatus {
        // Fails only if it already exited, which the wait below reports.
        let _ = self.child.start_kill();
        match self.wait_exit(REAP_TIMEOUT).await {
            Some(status) => status,
            None => panic!(
                "{} (pid {:?}) did not die within {REAP_TIMEOUT:?} of SIGKILL",
                self.label,
                self.pid()
            ),
        }
    }

    /// Waits at most `timeout` for it to exit; its status, or `None` if it
    /// is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(e)) => panic!("waiting for {}: {e}", self.label),
            Err(_) => None,
        }
    }

    /// Waits for a command to end, at most `timeout` (failing with its log
    /// if it is still running); its exit status and output.
    pub async fn finish(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let Some(status) = self.wait_exit(timeout).await else {
            self.fail(&format!("still running after {timeout:?}"));
        };
        (status, self.log())
    }

    /// Its exit status if it has exited, without waiting.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("checking on {}: {e}", self.label))
    }

    /// Panics with its log tail: for a process that misbehaved.
    pub fn fail(&self, why: &str) -> ! {
        panic!(
            "{}: {why}\n--- last {LOG_TAIL_LINES} lines of {} ---\n{}",
            self.label,
            self.log.display(),
            self.log_tail(LOG_TAIL_LINES)
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // `kill_on_drop` also does this; doing it here makes it immediate
        // and independent of the runtime still running.
        let _ = self.child.start_kill();
    }
}
