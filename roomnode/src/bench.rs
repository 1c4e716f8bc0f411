//! A room in isolation, for the micro-benchmarks (`cargo bench -p
//! roomnode`): not part of the node's API.

use std::sync::Arc;

use proto::record::RoomRecord;
use serde_json::value::RawValue;

use crate::member::outlet::{Outlet, OutletConfig};
use crate::metrics::Metrics;
use crate::room::history::HistoryLimits;
use crate::room::limits::RoomLimits;
use crate::room::{JoinRequest, Room};

/// A room with `members` members without sockets, whose queues the caller
/// drains.
pub struct BenchRoom {
    room: Arc<Room>,
    sender: u64,
    outlets: Vec<Arc<Outlet>>,
}

impl BenchRoom {
    /// A room of `members` members, each holding up to `queue` frames.
    pub fn new(members: usize, queue: usize) -> Self {
        let rec = RoomRecord::new(
            "bench".parse().expect("valid id"),
            "i1".parse().expect("valid id"),
            false,
            0,
        );
        let limits = RoomLimits {
            history: HistoryLimits {
                count: 1000,
                bytes: usize::MAX,
            },
            members: members + 1,
            presence: crate::config::DEFAULT_PRESENCE_LIMIT,
            join_rate: u32::MAX,
            join_burst: u32::MAX,
            flush_window: None,
        };
        let metrics = Arc::new(Metrics::new(rec.node));
        let room = Room::new(&rec, limits, metrics.clone());
        let config = OutletConfig {
            max_queue: queue,
            direct: true,
        };
        let mut outlets = Vec::with_capacity(members);
        let mut sender = 0;
        for _ in 0..members {
            let outlet = Arc::new(Outlet::new(None, config, metrics.clone()));
            let req = JoinRequest {
                name: None,
                since: None,
                stream: None,
            };
            sender = room.join(req, &outlet).expect("room has space");
            outlets.push(outlet);
        }
        let mut bench = Self {
            room,
            sender,
            outlets,
        };
        bench.drain();
        bench
    }

    /// One message from a member to everyone: framed once, queued to all.
    pub fn broadcast(&self, body: &RawValue) {
        self.room.send(self.sender, body).expect("room is open");
    }

    /// Empties every member's queue; how many frames there were.
    pub fn drain(&mut self) -> usize {
        self.outlets.iter().map(|o| o.clear()).sum()
    }
}
