//! Connections per client address: a count per peer, and the slot that
//! holds one of them for as long as its connection lives, an upgraded
//! WebSocket included.
//!
//! The peer is whoever opened the TCP connection. Behind a load balancer
//! (an ALB, nginx, an ingress, or a router proxying to a node) that is the
//! balancer, for every client it serves: there the cap must be off or far
//! above what one balancer address carries. `X-Forwarded-For` is not used:
//! any client can write it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Open connections by client address, each at most `cap`.
#[derive(Debug)]
pub(crate) struct Peers {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection of a client address, counted until the last clone of
/// it drops. Requests carry it in their extensions: whatever takes over an
/// upgraded connection keeps a clone for as long as it serves it, so a
/// WebSocket counts against its client's cap like the HTTP connection it
/// came from.
#[derive(Debug, Clone)]
pub struct PeerSlot {
    _held: Arc<Held>,
}

#[derive(Debug)]
struct Held {
    peers: Arc<Peers>,
    key: IpAddr,
}

impl Peers {
    /// At most `cap` connections per client address (`cap` > 0).
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `ip`, or `None` when it has
    /// its cap already.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
        let key = key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            _held: Arc::new(Held {
                peers: self.clone(),
                key,
            }),
        })
    }

    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Entry::Occupied(mut e) = open.entry(self.key) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

/// What one client is: an IPv4 address (IPv4-mapped IPv6 included), or an
/// IPv6 /64, the block one subscriber usually holds whole.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_cap_until_its_slots_drop() {
        let peers = Peers::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = peers.admit(a).unwrap();
        let second = peers.admit(a).unwrap();
        assert!(peers.admit(a).is_none(), "a third from the same address");
        assert!(peers.admit(b).is_some(), "another address has its own cap");
        // A clone (an upgraded connection's) holds the same slot.
        let upgraded = second.clone();
        drop(second);
        assert!(peers.admit(a).is_none());
        drop(upgraded);
        let third = peers.admit(a).unwrap();
        drop((first, third));
        assert_eq!(peers.open(a), 0);
        assert!(peers.open.lock().unwrap().is_empty(), "no entry is left");
    }

    #[test]
    fn ipv6_clients_count_by_slash_64() {
        let peers = Peers::new(1);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _held = peers.admit(one).unwrap();
        assert!(peers.admit(same_64).is_none());
        assert!(peers.admit(other_64).is_some());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let _v4 = peers.admit("10.0.0.1".parse().unwrap()).unwrap();
        assert!(
            peers.admit(mapped).is_none(),
            "IPv4-mapped is the IPv4 address"
        );
    }
}
