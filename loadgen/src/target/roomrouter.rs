//! roomrouter: rooms are created with `POST /rooms`, and members reach the
//! owner one of three ways ([`ConnectMode`]): through the router's legacy
//! path, through its per-instance prefix, or straight to the node's
//! advertised address (what an ALB rule does).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use proto::api::{NodeView, RoomView};

use super::{Room, room_name};
use crate::config::ConnectMode;
use crate::net::{Resolver, ws_origin};
use crate::session::Protocol;

/// Room creations in flight at once.
const CREATE_CONCURRENCY: usize = 32;
/// One API request's limit.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates the rooms of run `run` through `api` and says where to connect.
pub async fn plan(
    api: &str,
    mode: ConnectMode,
    create_token: Option<&str>,
    run: &str,
    rooms: usize,
) -> anyhow::Result<Vec<Room>> {
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
            endpoints: vec![Arc::new(resolver.endpoint(url).await?)],
            protocol: Protocol::Roomrouter,
            node: Some(node),
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
