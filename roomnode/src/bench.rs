//! A room in isolation, for the micro-benchmarks (`cargo bench -p
//! roomnode`): not part of the node's API.

use std::sync::Arc;

use proto::record::RoomRecord;
use serde_json::value::RawValue;
use tokio::sync::mpsc::Receiver;

use crate::metrics::Metrics;
use crate::room::{JoinRequest, Outbound, Room, RoomLimits};

/// A room with `members` members whose queues the caller drains.
pub struct BenchRoom {
    room: Room,
    sender: u64,
    queues: Vec<Receiver<Outbound>>,
}

impl BenchRoom {
    /// A room of `members` members, each with a queue of `queue` frames.
    pub fn new(members: usize, queue: usize) -> Self {
        let rec = RoomRecord {
            id: "bench".parse().expect("valid id"),
            node: "i1".parse().expect("valid id"),
            epoch: 1,
            private: false,
            created_at: 0,
        };
        let limits = RoomLimits {
            history: 1000,
            queue,
            members: members + 1,
        };
        let room = Room::new(&rec, limits, Arc::new(Metrics::new(rec.node)));
        let mut queues = Vec::with_capacity(members);
        let mut sender = 0;
        for _ in 0..members {
            let m = room
                .join(JoinRequest {
                    name: None,
                    since: None,
                    stream: None,
                })
                .expect("room has space");
            sender = m.key;
            queues.push(m.rx);
        }
        let mut bench = Self {
            room,
            sender,
            queues,
        };
        bench.drain();
        bench
    }

    /// One message from a member to everyone: encoded once, queued to all.
    pub fn broadcast(&self, body: &RawValue) {
        self.room.send(self.sender, body).expect("room is open");
    }

    /// Empties every member's queue; how many frames there were.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        for q in &mut self.queues {
            while q.try_recv().is_ok() {
                n += 1;
            }
        }
        n
    }
}
