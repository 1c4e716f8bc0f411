//! roomrouter: rooms are created with `POST /rooms`, and members reach the
//! owner one of three ways ([`ConnectMode`]): through the router's legacy
//! path, through its per-instance prefix, or straight to the node's
//! advertised address (what an ALB rule does); natively at the room's path
//! or as Socket.IO members at `<path>/socket.io/` ([`WireProtocol`]), over
//! WebSocket or long-polling.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use proto::api::{NodeView, RoomView};

use super::{Room, room_name};
use crate::config::{ConnectMode, Transport, WireProtocol};
use crate::engineio;
use crate::net::{Resolver, ws_origin};
use crate::session::Protocol;

/// Room creations in flight at once.
const CREATE_CONCURRENCY: usize = 32;
/// One API request's limit.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// How members of roomrouter rooms connect.
#[derive(Debug, Clone, Copy)]
pub struct Way {
    /// Through the router or straight to the node.
    pub connect: ConnectMode,
    /// Native or Socket.IO.
    pub protocol: WireProtocol,
    /// Socket.IO's transport.
    pub transport: Transport,
}

impl Way {
    /// The URL of a room whose path (native, from the router's origin or
    /// the node's: `ws://host:port/…`) is `ws_url`.
    fn url(self, ws_url: String) -> String {
        match (self.protocol, self.transport) {
            (WireProtocol::Native, _) => ws_url,
            (WireProtocol::Socketio, Transport::Websocket) => {
                format!(
                    "{ws_url}{}{}",
                    engineio::NODE_SUFFIX,
                    engineio::QUERY_WEBSOCKET
                )
            }
            (WireProtocol::Socketio, Transport::Polling) => {
                let http = ws_url.replacen("ws://", "http://", 1);
                format!("{http}{}{}", engineio::NODE_SUFFIX, engineio::QUERY_POLLING)
            }
        }
    }

    /// What members speak.
    fn protocol(self) -> Protocol {
        match self.protocol {
            WireProtocol::Native => Protocol::Roomrouter,
            WireProtocol::Socketio => Protocol::SocketIo {
                join: None,
                transport: self.transport,
            },
        }
    }
}

/// Creates the rooms of run `run` through `api` and says where to connect.
pub async fn plan(
    api: &str,
    way: Way,
    create_token: Option<&str>,
    run: &str,
    rooms: usize,
) -> anyhow::Result<Vec<Room>> {
    let mode = way.connect;
    let api = api.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(API_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let nodes: HashMap<String, String> = if mode == ConnectMode::Direct {
        let nodes: Vec<NodeView> = http
            .get(format!("{api}/nodes"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("GET /nodes")?
            .json()
            .await
            .context("GET /nodes: body")?;
        let mut map = HashMap::new();
        for n in nodes {
            map.insert(
                n.id.to_string(),
                ws_origin(&n.addr).with_context(|| format!("node {}", n.id))?,
            );
        }
        map
    } else {
        HashMap::new()
    };
    let views: Vec<RoomView> = stream::iter(0..rooms)
        .map(|k| create(&http, api, create_token, room_name(run, k)))
        .buffered(CREATE_CONCURRENCY)
        .try_collect()
        .await?;
    let router = ws_origin(api)?;
    let mut resolver = Resolver::default();
    let mut out = Vec::with_capacity(rooms);
    for v in views {
        let node = v.node.to_string();
        let url = match mode {
            ConnectMode::Legacy => format!("{router}{}", proto::path::legacy(&v.id)),
            ConnectMode::Instance => format!("{router}{}", v.path),
            ConnectMode::Direct => {
                let origin = nodes.get(&node).with_context(|| {
                    format!("room {} is on {node}, which GET /nodes did not list", v.id)
                })?;
                format!("{origin}{}", v.path)
            }
        };
        out.push(Room {
            name: v.id.to_string(),
            endpoints: vec![Arc::new(resolver.endpoint(way.url(url)).await?)],
            protocol: way.protocol(),
            node: Some(node),
            // A native sender gets its message back; a Socket.IO one does not.
            echo: way.protocol == WireProtocol::Native,
        });
    }
    Ok(out)
}

/// `POST /rooms {"id"}`: 201 for a new room, 200 for an existing one.
async fn create(
    http: &reqwest::Client,
    api: &str,
    token: Option<&str>,
    id: String,
) -> anyhow::Result<RoomView> {
    let mut req = http
        .post(format!("{api}/rooms"))
        .json(&serde_json::json!({ "id": id }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("POST /rooms {id}"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        bail!(
            "POST /rooms {id}: {status}: {}",
            body.chars().take(200).collect::<String>()
        );
    }
    resp.json()
        .await
        .with_context(|| format!("POST /rooms {id}: body"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socketio_members_use_the_rooms_socketio_path() {
        let way = |protocol, transport| Way {
            connect: ConnectMode::Direct,
            protocol,
            transport,
        };
        let room = || "ws://127.0.0.1:9001/i1/room/r".to_owned();
        assert_eq!(
            way(WireProtocol::Native, Transport::Websocket).url(room()),
            "ws://127.0.0.1:9001/i1/room/r"
        );
        assert_eq!(
            way(WireProtocol::Socketio, Transport::Websocket).url(room()),
            "ws://127.0.0.1:9001/i1/room/r/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            way(WireProtocol::Socketio, Transport::Polling).url(room()),
            "http://127.0.0.1:9001/i1/room/r/socket.io/?EIO=4&transport=polling"
        );
        assert!(matches!(
            way(WireProtocol::Socketio, Transport::Polling).protocol(),
            Protocol::SocketIo {
                join: None,
                transport: Transport::Polling
            }
        ));
    }
}
