//! The sizes a room lives by, from the node's flags: history, members,
//! presence announcements, the join rate, the flush window.

use std::time::Duration;

use crate::config::Config;
use crate::room::history::HistoryLimits;

/// Sizes a room lives by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoomLimits {
    /// Messages and bytes kept for resume.
    pub(crate) history: HistoryLimits,
    /// Hold frames this long so each member gets a window's frames in one
    /// `write` (off: written as they come).
    pub(crate) flush_window: Option<Duration>,
    /// Most members at once.
    pub(crate) members: usize,
    /// Up to this many members, every join and leave is announced to
    /// everyone (`joined`/`left`); beyond it, a `members` count at most once
    /// per [`PRESENCE_INTERVAL`], so N joins cost O(N) frames, not O(N²).
    pub(crate) presence: usize,
    /// Joins per second admitted, sustained.
    pub(crate) join_rate: u32,
    /// Joins admitted at once above the rate.
    pub(crate) join_burst: u32,
}

/// How often a crowded room announces its member count when it changed.
pub(crate) const PRESENCE_INTERVAL: Duration = Duration::from_secs(1);

impl RoomLimits {
    /// Every room's limits on a node configured by `config`.
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            history: HistoryLimits {
                count: config.history,
                bytes: config.history_bytes,
            },
            members: config.max_members,
            presence: config.presence_limit,
            join_rate: config.room_join_rate,
            join_burst: config.room_join_burst,
            flush_window: config.flush_window(),
        }
    }
}
