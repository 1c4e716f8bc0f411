//! The floor's relay thread (`--relay`): the kernel work of a byte-moving
//! proxy, one `read` and one `write` per readable upstream socket in a
//! level-triggered epoll loop; its own CPU time over the loop.

use std::io::{ErrorKind, Read as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::sys::{self, CpuTime};

/// The relay's buffer (one `read` per readable socket moves at most this).
const RELAY_BUFFER: usize = 64 * 1024;
/// Events one `epoll_wait` of the relay returns at most.
const RELAY_EVENTS: usize = 1024;
/// The relay's `epoll_wait` timeout, ms (how soon it sees a stop).
const RELAY_POLL_MS: u16 = 100;

/// What the relay thread did.
#[derive(Debug, Default)]
pub(super) struct Relayed {
    pub(super) reads: u64,
    pub(super) wakeups: u64,
    pub(super) bytes: u64,
    pub(super) short_writes: u64,
    pub(super) write_errors: u64,
    pub(super) read_errors: u64,
    pub(super) unfinished: u64,
    pub(super) cpu: CpuTime,
}

/// The relay thread: a level-triggered epoll loop over the (non-blocking)
/// upstream sockets; for each readable one, ONE `read` into the buffer and
/// ONE `write` of those bytes to the matching (blocking) downstream socket
/// (completed if short). An upstream EOF closes the pair's downstream
/// side; it ends when every upstream socket has ended, or at `stop`. Its
/// own CPU time over the loop.
pub(super) fn relay_frames(
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
