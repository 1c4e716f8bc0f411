//! A member's way out: every byte the node sends a member passes through its
//! outlet, in order: room frames, `welcome` and replays, and what tungstenite
//! writes (pings, pongs, errors, close frames).
//!
//! Room frames are WebSocket frames built once per broadcast and shared by
//! every member (server frames are not masked, so the bytes are the same for
//! all). The broadcasting thread writes them straight to the member's
//! socket with a non-blocking `write`: an idle member costs one `write` and
//! nothing else, no queue, no task wake-up. Only what the socket does not
//! take at once waits here, and the member's own task writes it, every
//! waiting frame in one `writev`, when the socket drains. With a flush
//! window the broadcaster only queues, and the room writes each window's
//! frames together ([`Outlet::flush_held`]).
//!
//! A member with more than `--max-queue` room frames waiting is a slow
//! consumer: the room drops it ([`Outlet::end`] with `now`), never waits
//! for it.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::member::close::CloseReason;
use crate::metrics::Metrics;

/// Most frames gathered into one `writev` (Linux's `IOV_MAX`).
const MAX_IOVECS: usize = 1024;

/// A text frame as the server sends it, for any number of members.
pub(crate) fn text_frame(text: &str) -> Bytes {
    let frame = Frame::message(
        Bytes::copy_from_slice(text.as_bytes()),
        OpCode::Data(Data::Text),
        true,
    );
    let mut out = Vec::with_capacity(frame.len());
    frame
        .format(&mut out)
        .expect("writing to a Vec cannot fail");
    out.into()
}

/// How an outlet writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutletConfig {
    /// Room frames allowed to wait before the member counts as slow.
    pub(crate) max_queue: usize,
    /// Write room frames as they come (else the room's flush window writes
    /// them, [`Outlet::flush_held`]).
    pub(crate) direct: bool,
}

/// One member's outgoing bytes and socket.
pub(crate) struct Outlet {
    /// The socket; `None` for a member with no connection (tests, benches),
    /// whose frames only queue.
    io: Option<Arc<TcpStream>>,
    config: OutletConfig,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    /// Tells the member's task there is something to write or an end.
    wake: Notify,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Chunk>,
    /// Bytes of the first chunk already written.
    written: usize,
    /// Room frames in `queue`.
    frames: usize,
    /// The connection must end, after what is queued.
    ending: Option<CloseReason>,
    /// A write failed: the peer is gone, nothing more can be sent.
    broken: bool,
}

struct Chunk {
    bytes: Bytes,
    /// For a room frame: when the room accepted it (messages only).
    accepted: Option<Instant>,
    room_frame: bool,
}

/// A room frame was refused: the member has `--max-queue` frames waiting.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Overflow;

/// How a member's connection ends.
#[derive(Debug)]
pub(crate) enum End {
    /// The peer is gone or the socket failed: nothing more to say.
    Gone,
    /// Close with this reason.
    Close(CloseReason),
}

/// What a flush got done.
enum Flushed {
    /// Nothing left to write.
    Empty,
    /// The socket takes no more for now.
    Blocked,
    /// The socket failed.
    Broken,
}

impl Outlet {
    pub(crate) fn new(
        io: Option<Arc<TcpStream>>,
        config: OutletConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            io,
            config,
            metrics,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a room frame: written at once when nothing is waiting (and no
    /// flush window), else queued for the member's task.
    pub(crate) fn send(&self, frame: &Bytes, accepted: Option<Instant>) -> Result<(), Overflow> {
        let mut st = self.lock();
        if st.broken || st.ending.is_some() {
            return Ok(());
        }
        let mut written = 0;
        if st.queue.is_empty()
            && self.config.direct
            && let Some(io) = &self.io
        {
            match io.try_write(frame) {
                Ok(n) if n == frame.len() => {
                    drop(st);
                    self.delivered(accepted, Instant::now());
                    return Ok(());
                }
                Ok(n) => written = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    st.broken = true;
                    drop(st);
                    self.wake.notify_one();
                    return Ok(());
                }
            }
        } else if st.frames >= self.config.max_queue {
            return Err(Overflow);
        }
        let was_empty = st.queue.is_empty();
        st.queue.push_back(Chunk {
            bytes: frame.clone(),
            accepted,
            room_frame: true,
        });
        if was_empty {
            st.written = written;
        }
        st.frames += 1;
        drop(st);
        // Held frames wait for the room's flush; anything else means the
        // socket is full, and the task waits for it to drain.
        if was_empty && self.config.direct {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Writes the frames held for a flush window; what the socket does not
    /// take is left to the member's task.
    pub(crate) fn flush_held(&self) {
        if !matches!(self.flush(), Flushed::Empty) {
            self.wake.notify_one();
        }
    }

    /// Queues bytes that are not a room frame (the first frames of a
    /// member, tungstenite's own frames); the member's task writes them.
    pub(crate) fn queue(&self, bytes: Bytes) -> io::Result<()> {
        let mut st = self.lock();
        if st.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        st.queue.push_back(Chunk {
            bytes,
            accepted: None,
            room_frame: false,
        });
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// Ends the connection with `reason`: after what is queued, or, `now`,
    /// dropping the queued room frames (a slow consumer). A second end is
    /// ignored.
    pub(crate) fn end(&self, reason: CloseReason, now: bool) {
        let mut st = self.lock();
        if st.ending.is_some() {
            return;
        }
        if now {
            // A frame partly written must be finished, or the stream of
            // frames is corrupt; everything after it can go.
            let keep = usize::from(st.written > 0);
            st.queue.truncate(keep);
            st.frames = st.queue.iter().filter(|c| c.room_frame).count();
        }
        st.ending = Some(reason);
        drop(st);
        self.wake.notify_one();
    }

    /// Runs the member's writing: waits to be woken, then writes until the
    /// queue is empty. Resolves when the connection must end or the socket
    /// failed.
    pub(crate) async fn serve(&self) -> End {
        loop {
            self.wake.notified().await;
            if let Err(end) = self.drain().await {
                return end;
            }
            // Kept, not taken: room frames sent after the end are dropped.
            if let Some(reason) = self.lock().ending.clone() {
                return End::Close(reason);
            }
        }
    }

    /// Writes until nothing is queued.
    pub(crate) async fn drain(&self) -> Result<(), End> {
        loop {
            match self.flush() {
                Flushed::Empty => return Ok(()),
                Flushed::Broken => return Err(End::Gone),
                Flushed::Blocked => {
                    let io = self.io.as_ref().ok_or(End::Gone)?;
                    io.writable().await.map_err(|_| End::Gone)?;
                }
            }
        }
    }

    /// Shuts the socket's write half: the member gets an end of stream after
    /// what the kernel already holds, while its input can still be read.
    pub(crate) fn shut_write(&self) {
        let Some(io) = &self.io else { return };
        // tokio shuts a stream down only through `&mut`, and the socket is
        // shared: a duplicate descriptor shuts down the same socket.
        let shut = io
            .as_fd()
            .try_clone_to_owned()
            .map(std::net::TcpStream::from)
            .and_then(|dup| dup.shutdown(std::net::Shutdown::Write));
        if let Err(e) = shut {
            tracing::debug!(error = %e, "shutting the write half failed");
        }
    }

    /// Writes what the socket takes now, without waiting; the member's task
    /// writes the rest.
    pub(crate) fn write_now(&self) {
        let _ = self.flush();
    }

    /// Whether nothing is waiting to be written (for `poll_flush`).
    pub(crate) fn poll_drained(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        loop {
            match self.flush() {
                Flushed::Empty => return Poll::Ready(Ok(())),
                Flushed::Broken => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                Flushed::Blocked => match &self.io {
                    Some(io) => std::task::ready!(io.poll_write_ready(cx))?,
                    None => return Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
                },
            }
        }
    }

    /// Writes as much of the queue as the socket takes, in `writev`s of
    /// every waiting chunk.
    fn flush(&self) -> Flushed {
        let mut st = self.lock();
        if st.broken {
            return Flushed::Broken;
        }
        let Some(io) = &self.io else {
            return if st.queue.is_empty() {
                Flushed::Empty
            } else {
                Flushed::Blocked
            };
        };
        let mut delivered = Vec::new();
        let outcome = loop {
            if st.queue.is_empty() {
                break Flushed::Empty;
            }
            let skip = st.written;
            let slices: Vec<IoSlice<'_>> = st
                .queue
                .iter()
                .take(MAX_IOVECS)
                .enumerate()
                .map(|(i, c)| IoSlice::new(if i == 0 { &c.bytes[skip..] } else { &c.bytes }))
                .collect();
            let mut n = match io.try_write_vectored(&slices) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Flushed::Blocked,
                Err(_) => {
                    st.broken = true;
                    break Flushed::Broken;
                }
            };
            drop(slices);
            n += st.written;
            while let Some(first) = st.queue.front() {
                if n < first.bytes.len() {
                    break;
                }
                n -= first.bytes.len();
                let done = st.queue.pop_front().expect("front exists");
                if done.room_frame {
                    st.frames -= 1;
                    delivered.push(done.accepted);
                }
            }
            st.written = n;
        };
        drop(st);
        let now = Instant::now();
        for accepted in delivered {
            self.delivered(accepted, now);
        }
        outcome
    }

    /// Counts a room frame handed to the kernel.
    fn delivered(&self, accepted: Option<Instant>, now: Instant) {
        if let Some(at) = accepted {
            self.metrics.delivered.inc();
            self.metrics
                .delivery_latency
                .observe((now - at).as_secs_f64());
        }
    }

    /// Everything queued, as the texts of the frames (tests and benches:
    /// a member without a socket).
    #[cfg(test)]
    pub(crate) fn take_texts(&self) -> Vec<String> {
        let mut st = self.lock();
        st.frames = 0;
        st.written = 0;
        st.queue.drain(..).map(|c| frame_text(&c.bytes)).collect()
    }

    /// Drops everything queued; how many chunks there were (benches).
    pub(crate) fn clear(&self) -> usize {
        let mut st = self.lock();
        st.frames = 0;
        st.written = 0;
        let n = st.queue.len();
        st.queue.clear();
        n
    }

    /// How the connection ends, if it has been told to (tests).
    #[cfg(test)]
    pub(crate) fn ending(&self) -> Option<CloseReason> {
        self.lock().ending.clone()
    }
}

/// The payload of one unmasked text frame built by [`text_frame`].
#[cfg(test)]
fn frame_text(frame: &[u8]) -> String {
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
    let mut cursor = std::io::Cursor::new(frame);
    let (_, len) = FrameHeader::parse(&mut cursor)
        .ok()
        .flatten()
        .expect("a whole frame");
    let start = usize::try_from(cursor.position()).expect("small");
    let end = start + usize::try_from(len).expect("small");
    String::from_utf8_lossy(&frame[start..end]).into_owned()
}

#[cfg(test)]
mod tests;
