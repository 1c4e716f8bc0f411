//! The Socket.IO + Redis baseline: no room API (joining creates the room),
//! each room's members spread round-robin over the servers.

use std::sync::Arc;

use super::{Room, room_name};
use crate::config::Transport;
use crate::engineio;
use crate::net::Resolver;
use crate::session::Protocol;

/// The rooms of run `run`, reached through `servers` (`ws://host:port`).
pub async fn plan(servers: &[String], run: &str, rooms: usize) -> anyhow::Result<Vec<Room>> {
    let mut resolver = Resolver::default();
    let mut endpoints = Vec::with_capacity(servers.len());
    for s in servers {
        let url = format!("{}{}", s.trim_end_matches('/'), engineio::PATH_QUERY);
        endpoints.push(Arc::new(resolver.endpoint(url).await?));
    }
    Ok((0..rooms)
        .map(|k| {
            let name = room_name(run, k);
            Room {
                protocol: Protocol::SocketIo {
                    join: Some(name.as_str().into()),
                    transport: Transport::Websocket,
                },
                name,
                endpoints: endpoints.clone(),
                node: None,
                // The server emits to the whole room, the sender included.
                echo: true,
            }
        })
        .collect())
}
