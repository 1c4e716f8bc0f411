//! A request body with a deadline: once it passes, reading the body fails,
//! and the server answers 408 instead of whatever the handler made of the
//! failure. hyper bounds only the head; a client trickling its body one
//! byte a second would otherwise hold its connection (and a file
//! descriptor) for as long as it likes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

/// The error a body gives once its deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub(crate) struct Expired(pub(crate) Duration);

/// `Incoming` that fails once `limit` has passed since it was made (when
/// the head had arrived), and says so through its [`Flag`].
pub(crate) struct Deadline {
    inner: Incoming,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
    expired: Flag,
}

/// Whether a request's body ran out of time; shared by the body and the
/// code that answers the request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flag(Arc<AtomicBool>);

impl Flag {
    /// Whether the deadline passed while the body was read.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Deadline {
    /// `inner`, to be read within `limit` from now.
    pub(crate) fn new(inner: Incoming, limit: Duration, expired: Flag) -> Self {
        Self {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            expired,
        }
    }
}

impl Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired.set();
                Poll::Ready(Some(Err(Box::new(Expired(this.limit)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
