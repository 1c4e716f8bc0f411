//! The join hook for every protocol: the backend admits a member (under
//! the name it gives, if it gives one) or refuses it with a reason.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};
use proto::hooks::{JoinHeaders, JoinRequest, Protocol};
use proto::{ErrorCode, RoomId};
use serde_json::Value;
use service::error::ApiError;

use crate::hooks::Verdict;
use crate::node::Node;

/// A join, as the hook sees it.
pub(crate) struct Join<'a> {
    pub(crate) room: &'a RoomId,
    /// The name the member asked for (or its token gave).
    pub(crate) name: Option<String>,
    pub(crate) query: BTreeMap<String, Value>,
    pub(crate) headers: JoinHeaders,
    pub(crate) protocol: Protocol,
}

/// The member's name after the hook: its own, or the one the backend
/// gives. A refusal is 403 `join_refused` with the backend's reason; a
/// failed call with `--hook-failure closed` is 503 `hook_unavailable`.
/// Without a join hook, the name as it is.
pub(crate) async fn ask(node: &Node, join: Join<'_>) -> Result<Option<String>, ApiError> {
    let Some(hooks) = node.hooks().filter(|h| h.has_join()) else {
        return Ok(join.name);
    };
    let req = JoinRequest {
        kind: "join".into(),
        room: join.room.to_string(),
        name: join.name.clone(),
        query: join.query,
        headers: join.headers,
        protocol: join.protocol,
    };
    match hooks.join(&req).await {
        Verdict::Answer(a) if a.allow => Ok(a.name.or(join.name)),
        Verdict::Answer(a) => Err(ApiError::new(
            ErrorCode::JoinRefused,
            a.reason
                .unwrap_or_else(|| "the application refused this join".into()),
        )),
        Verdict::FailedOpen => Ok(join.name),
        Verdict::FailedClosed(why) => Err(ApiError::busy(ErrorCode::HookUnavailable, why, 1)),
    }
}

/// The credentials a join hook sees: `Authorization` and `Cookie`, copied
/// (a request's `HeaderMap` would keep hyper's whole read buffer alive).
pub(crate) fn credentials(headers: &HeaderMap) -> JoinHeaders {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    JoinHeaders {
        authorization: text(header::AUTHORIZATION),
        cookie: text(header::COOKIE),
    }
}

/// A query string's parameters, as strings.
pub(crate) fn query_map(query: Option<&str>) -> BTreeMap<String, Value> {
    let Some(q) = query else {
        return BTreeMap::new();
    };
    let uri = format!("/?{q}").parse::<axum::http::Uri>();
    uri.ok()
        .and_then(|u| axum::extract::Query::<BTreeMap<String, String>>::try_from_uri(&u).ok())
        .map(|q| {
            q.0.into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect()
        })
        .unwrap_or_default()
}
