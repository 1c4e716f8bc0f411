//! A session's polling requests: the GET that takes the queue or waits
//! for it, the POST that may not overlap another.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{CloseCause, Farewell, Mode, Packet, Session, Waiter};
use crate::engineio::query::Refusal;

/// What a poll gets.
pub(in crate::engineio) enum Poll {
    /// These packets, at once.
    Ready(Vec<Arc<Packet>>),
    /// Whatever comes on `rx` (the session keeps the sender as poll `id`).
    Wait(u64, oneshot::Receiver<Vec<Arc<Packet>>>),
    Refused(Refusal),
}

impl Session {
    /// A GET on the session.
    pub(in crate::engineio) fn poll(&self) -> Poll {
        let mut st = self.lock();
        self.check_pong(&mut st);
        if st.end.is_some() {
            if st.linger && !st.queue.is_empty() {
                return Poll::Ready(st.queue.drain(..).collect());
            }
            if std::mem::take(&mut st.linger) {
                self.released.cancel();
                return Poll::Ready(vec![self.core.close.clone()]);
            }
            if std::mem::take(&mut st.parting) {
                self.released.cancel();
                return Poll::Ready(vec![self.core.noop.clone()]);
            }
            return Poll::Refused(Refusal::UnknownSid);
        }
        match st.mode {
            Mode::WebSocket(_) => return Poll::Refused(Refusal::BadRequest),
            Mode::Probing { probed: true, .. } => return Poll::Ready(vec![self.core.noop.clone()]),
            Mode::Polling | Mode::Probing { .. } => {}
        }
        if st.poll.as_ref().is_some_and(|w| !w.tx.is_closed()) {
            self.end_locked(&mut st, CloseCause::ProtocolError, Farewell::Close);
            return Poll::Refused(Refusal::BadRequest);
        }
        if !st.queue.is_empty() {
            return Poll::Ready(st.queue.drain(..).collect());
        }
        let (tx, rx) = oneshot::channel();
        st.next_poll += 1;
        let id = st.next_poll;
        st.poll = Some(Waiter { id, tx });
        Poll::Wait(id, rx)
    }

    /// Withdraws poll `id` if it is still waiting; false if packets were
    /// already sent to it.
    pub(in crate::engineio) fn cancel_poll(&self, id: u64) -> bool {
        let mut st = self.lock();
        if st.poll.as_ref().is_some_and(|w| w.id == id) {
            st.poll = None;
            return true;
        }
        false
    }

    /// A POST begins; refused if the session cannot take one.
    pub(in crate::engineio) fn begin_post(&self) -> Result<(), Refusal> {
        let mut st = self.lock();
        self.check_pong(&mut st);
        if st.end.is_some() {
            return Err(Refusal::UnknownSid);
        }
        if matches!(st.mode, Mode::WebSocket(_)) {
            return Err(Refusal::BadRequest);
        }
        if st.posting {
            self.end_locked(&mut st, CloseCause::ProtocolError, Farewell::Close);
            return Err(Refusal::BadRequest);
        }
        st.posting = true;
        Ok(())
    }

    pub(in crate::engineio) fn end_post(&self) {
        self.lock().posting = false;
    }
}
