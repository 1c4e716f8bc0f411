//! Each session's own task, from its opening to its removal: it pings
//! every `ping_interval` (counted from the last pong, as the reference
//! server does), ends the session when a pong is overdue or when it is not
//! connected within `connect_timeout`, and when the session ends, for
//! whatever reason, calls `on_close` and forgets it.

use std::sync::Arc;

use tokio::time::{Instant, sleep_until};

use super::engine::Engine;
use super::session::Session;

/// Where the heartbeat stands.
#[derive(Clone, Copy)]
enum Beat {
    /// The next ping goes at this time.
    Idle(Instant),
    /// A ping is out; its pong is due at this time.
    Awaiting(Instant),
}

/// Runs `session`'s heartbeat until it ends, then ends it for good.
pub(super) async fn run(session: Arc<Session>, engine: Engine) {
    let config = session.config().clone();
    let mut beat = Beat::Idle(session.opened() + config.ping_interval);
    let mut connect_by = Some(session.opened() + config.connect_timeout);
    loop {
        let (Beat::Idle(wake) | Beat::Awaiting(wake)) = beat;
        tokio::select! {
            biased;
            () = session.ended.cancelled() => break,
            () = session.pong.notified(), if matches!(beat, Beat::Awaiting(_)) => {
                beat = Beat::Idle(Instant::now() + config.ping_interval);
            }
            () = sleep_until(connect_by.unwrap_or(wake)), if connect_by.is_some() => {
                session.check_connected();
                connect_by = None;
            }
            () = sleep_until(wake) => match beat {
                Beat::Idle(at) => {
                    // Due a timeout after the ping was meant to go, so a
                    // poll made just after that deadline is refused; but
                    // never less than half a timeout after it really went.
                    let now = Instant::now();
                    let due = (at + config.ping_timeout).max(now + config.ping_timeout / 2);
                    session.ping(due);
                    beat = Beat::Awaiting(due);
                }
                // Ends the session unless the pong came just now (then its
                // notification is next, ahead of this branch).
                Beat::Awaiting(_) => session.expire(),
            },
        }
    }
    session.finish();
    if session.lingering() {
        // The client polls again at once: its close packet waits that long.
        let _ = tokio::time::timeout(config.ping_timeout, session.released.cancelled()).await;
    }
    engine.remove(&session);
}
