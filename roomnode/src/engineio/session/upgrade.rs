//! A WebSocket taking a session over: a fresh one attaching, or a probe
//! (`2probe`, then `5`) moving a polling session's queue onto itself; and
//! letting go of it when it is done.

use std::sync::Arc;

use super::{CloseCause, Farewell, Mode, Outlet, Session, State, close_reason};

impl Session {
    /// A fresh WebSocket is ready: what was queued goes out on it.
    pub(in crate::engineio) fn attach(&self, outlet: &Arc<Outlet>) {
        let mut st = self.lock();
        if let Some(cause) = st.end {
            let flush = std::mem::take(&mut st.linger);
            if flush {
                for p in st.queue.drain(..) {
                    let _ = outlet.send(p.frame(), p.accepted());
                }
                let _ = outlet.queue(self.core.close.frame().clone());
                self.released.cancel();
            }
            let farewell = if flush {
                Farewell::Flush
            } else {
                Farewell::Silent
            };
            outlet.end(close_reason(cause, farewell), !flush);
            return;
        }
        st.mode = Mode::WebSocket(Some(outlet.clone()));
        self.move_queue(&mut st, outlet);
    }

    /// Sends the queue through the outlet that now carries the session.
    /// It holds no message yet, so only pings beyond `max_queue` could
    /// overflow it.
    fn move_queue(&self, st: &mut State, outlet: &Outlet) {
        let overflow = st
            .queue
            .drain(..)
            .any(|p| outlet.send(p.frame(), p.accepted()).is_err());
        if overflow {
            self.end_locked(st, CloseCause::SlowConsumer, Farewell::Close);
        }
    }

    /// Whether a WebSocket may probe this session now.
    pub(in crate::engineio) fn can_probe(&self) -> bool {
        let st = self.lock();
        st.end.is_none() && matches!(st.mode, Mode::Polling)
    }

    /// A WebSocket starts probing; false if the session cannot upgrade.
    pub(in crate::engineio) fn begin_probe(&self, outlet: &Arc<Outlet>) -> bool {
        let mut st = self.lock();
        if st.end.is_some() || !matches!(st.mode, Mode::Polling) {
            return false;
        }
        st.mode = Mode::Probing {
            outlet: outlet.clone(),
            probed: false,
        };
        true
    }

    /// The probe came (`2probe`): a pending poll gets `6`, so that the
    /// client can pause polling and send `5`.
    pub(in crate::engineio) fn probed(&self, by: &Arc<Outlet>) -> bool {
        let mut st = self.lock();
        if st.end.is_some() {
            return false;
        }
        match &mut st.mode {
            Mode::Probing { outlet, probed } if Arc::ptr_eq(outlet, by) => *probed = true,
            _ => return false,
        }
        if let Some(w) = st.poll.take() {
            let _ = w.tx.send(vec![self.core.noop.clone()]);
        }
        true
    }

    /// `5`: the session moves to the WebSocket, with what was queued.
    pub(in crate::engineio) fn complete_upgrade(&self, by: &Arc<Outlet>) -> bool {
        let mut st = self.lock();
        if st.end.is_some() {
            return false;
        }
        match &st.mode {
            Mode::Probing { outlet, probed } if *probed && Arc::ptr_eq(outlet, by) => {}
            _ => return false,
        }
        if let Some(w) = st.poll.take() {
            let _ = w.tx.send(vec![self.core.noop.clone()]);
        }
        st.mode = Mode::WebSocket(Some(by.clone()));
        self.move_queue(&mut st, by);
        true
    }

    /// The WebSocket `by` is done: a probe that failed or gave up leaves
    /// the session to polling; a session it carried (ended by now) lets go
    /// of it, so that the socket closes even while the session is still
    /// referenced.
    pub(in crate::engineio) fn detach(&self, by: &Arc<Outlet>) {
        let mut st = self.lock();
        match &st.mode {
            Mode::Probing { outlet, .. } if Arc::ptr_eq(outlet, by) => {
                st.mode = Mode::Polling;
                self.hand_off(&mut st);
            }
            Mode::WebSocket(Some(outlet)) if Arc::ptr_eq(outlet, by) => {
                self.end_locked(&mut st, CloseCause::TransportError, Farewell::Silent);
                st.mode = Mode::WebSocket(None);
            }
            _ => {}
        }
    }
}
