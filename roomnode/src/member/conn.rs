//! A member's TCP connection as tungstenite sees it: reads come straight
//! from the socket; writes (pings, pongs, errors, close frames) go into the
//! member's [`Outlet`], behind the room frames already there, so every byte
//! the member gets leaves in one order.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::member::outlet::Outlet;

/// The I/O under a member's WebSocket.
pub(crate) struct Conn {
    io: Arc<TcpStream>,
    outlet: Arc<Outlet>,
}

impl Conn {
    pub(crate) fn new(io: Arc<TcpStream>, outlet: Arc<Outlet>) -> Self {
        Self { io, outlet }
    }

    /// The member's outlet.
    pub(crate) fn outlet(&self) -> &Arc<Outlet> {
        &self.outlet
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.io.poll_read_ready(cx))?;
            match self.io.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // tungstenite hands over whole frames, so queueing all of it keeps
        // its frames whole among the room's. Written at once if the socket
        // takes it, as a plain socket would: tungstenite does not always
        // flush after its last frame (its reply to a client's close).
        self.outlet.queue(Bytes::copy_from_slice(buf))?;
        self.outlet.write_now();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outlet.poll_drained(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outlet.poll_drained(cx)
    }
}
