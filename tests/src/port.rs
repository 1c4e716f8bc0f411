//! Free TCP ports for processes that must be told their port up front
//! (etcd's peer and client URLs, a binary's `--listen` flag).

use std::net::TcpListener;

/// A port on 127.0.0.1 that was free a moment ago: bound to port 0, read,
/// released. Another process may take it before the caller does; callers
/// that can tell (e.g. [`crate::Etcd`]) retry with a new port.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local_addr of a bound socket")
        .port()
}
