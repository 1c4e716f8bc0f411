//! The room and node API: `POST/GET/DELETE /rooms…`, `GET /nodes`.
//! Reads come from the mirror; every change is one store transaction.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use proto::ErrorCode;
use proto::api::{CreateRoom, NodeView, RoomPage, RoomView};
use proto::record::RoomRecord;
use proto::token::{self, Claims};
use proto::wire::check_name;
use proto::{InstanceId, RoomId};
use rand::Rng;
use serde::{Deserialize, Serialize};
use service::error::ApiError;
use service::extract::RoomPath;
use store::Created;

use crate::app::App;
use crate::config::MAX_TOKEN_TTL_SECS;
use crate::ownership;

/// Longest page of `GET /rooms`.
const MAX_PAGE: usize = 1000;
/// Page size of `GET /rooms` without `limit`.
const DEFAULT_PAGE: usize = 100;
/// Length of a generated room id.
const GENERATED_ID_LEN: usize = 12;

/// `POST /rooms`: creates the room on its HRW owner, or returns the existing
/// one (200) — idempotent, and two routers racing agree on one owner.
pub(crate) async fn create(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: CreateRoom = json_body(&body, "{\"id\"?: string, \"private\"?: bool}")?;
    let id: RoomId = match req.id {
        Some(id) => id.parse().map_err(ApiError::bad_id)?,
        None => generate_id(),
    };
    if req.private && app.config().secret.is_none() {
        return Err(ApiError::bad_request(
            ErrorCode::PrivateRoomsDisabled,
            "this router has no --secret, so it cannot issue join tokens".into(),
        ));
    }
    let ws = app.ws_base(&headers);
    Ok(match ownership::create(&app, id, req.private).await? {
        Created::New(rec) => {
            let mut view = RoomView::new(&rec, &ws);
            if rec.private {
                view.token = Some(issue(&app, &rec, None, app.config().token_ttl)?.token);
            }
            (StatusCode::CREATED, Json(view)).into_response()
        }
        Created::Existing(rec) => (StatusCode::OK, Json(RoomView::new(&rec, &ws))).into_response(),
    })
}

/// A signed join token for `room`, this incarnation of it.
fn issue(
    app: &App,
    room: &RoomRecord,
    name: Option<String>,
    ttl_secs: u64,
) -> Result<IssuedToken, ApiError> {
    let secret = app.config().secret.as_ref().ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::PrivateRoomsDisabled,
            "this router has no --secret".into(),
        )
    })?;
    let expires_at = store::store::unix_now() + ttl_secs;
    let claims = Claims {
        room: room.id.clone(),
        created: room.created_at,
        exp: expires_at,
        name,
    };
    Ok(IssuedToken {
        token: token::sign(secret.expose().as_bytes(), &claims),
        expires_at,
    })
}

/// `POST /rooms/{id}/tokens` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MintToken {
    name: Option<String>,
    ttl_secs: Option<u64>,
}

/// `POST /rooms/{id}/tokens` answer.
#[derive(Debug, Serialize)]
pub(crate) struct IssuedToken {
    token: String,
    expires_at: u64,
}

/// `POST /rooms/{id}/tokens`: another join token for a private room.
pub(crate) async fn mint(
    State(app): State<App>,
    RoomPath(id): RoomPath,
    body: Bytes,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    let req: MintToken = json_body(&body, "{\"name\"?: string, \"ttl_secs\"?: int}")?;
    if let Some(name) = &req.name {
        check_name(name)?;
    }
    let ttl = req.ttl_secs.unwrap_or(app.config().token_ttl);
    if !(1..=MAX_TOKEN_TTL_SECS).contains(&ttl) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidTtl,
            format!("ttl_secs must be 1..={MAX_TOKEN_TTL_SECS}"),
        ));
    }
    let rec = ownership::find(&app, &id).await?;
    if !rec.private {
        return Err(ApiError::bad_request(
            ErrorCode::NotPrivate,
            format!("room {id} is public: joining needs no token"),
        ));
    }
    Ok((StatusCode::CREATED, Json(issue(&app, &rec, req.name, ttl)?)))
}

/// Parses a JSON body; an empty body is the type's default.
pub(crate) fn json_body<T: Default + serde::de::DeserializeOwned>(
    body: &[u8],
    shape: &str,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidBody, format!("body must be {shape}: {e}"))
    })
}

fn generate_id() -> RoomId {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let id: String = (0..GENERATED_ID_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    id.parse().expect("generated ids follow the rule")
}

/// `GET /rooms/{id}`.
pub(crate) async fn get(
    State(app): State<App>,
    headers: HeaderMap,
    RoomPath(id): RoomPath,
) -> Result<Json<RoomView>, ApiError> {
    let rec = ownership::locate(&app, &id).await?;
    Ok(Json(RoomView::new(&rec, &app.ws_base(&headers))))
}

/// `DELETE /rooms/{id}`: the owner sees the deletion through its watch and
/// closes the room's connections.
pub(crate) async fn delete(
    State(app): State<App>,
    RoomPath(id): RoomPath,
) -> Result<StatusCode, ApiError> {
    ownership::delete(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /rooms` query.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    node: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

/// `GET /rooms?node=iN&limit=&after=`: one page in id order.
pub(crate) async fn list(
    State(app): State<App>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RoomPage>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(ErrorCode::InvalidQuery, e.body_text()))?;
    let node: Option<InstanceId> = q
        .node
        .map(|n| n.parse())
        .transpose()
        .map_err(ApiError::bad_id)?;
    let after: Option<RoomId> = q
        .after
        .map(|a| a.parse())
        .transpose()
        .map_err(ApiError::bad_id)?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("limit must be 1..={MAX_PAGE}"),
        ));
    }
    // Pages come from the store, which keeps rooms in id order (and each
    // node's in its index): routers hold no ordered copy of a million ids.
    // One more than asked tells whether another page follows.
    let store = app.store();
    let mut records = match node {
        Some(n) => store.rooms_of(n, after.as_ref(), limit + 1).await?,
        None => store.rooms(after.as_ref(), limit + 1).await?,
    };
    let next = (records.len() > limit).then(|| {
        records.truncate(limit);
        records[limit - 1].id.clone()
    });
    let ws = app.ws_base(&headers);
    Ok(Json(RoomPage {
        rooms: records.iter().map(|r| RoomView::new(r, &ws)).collect(),
        next,
    }))
}

/// `GET /nodes`: live nodes with their room counts.
pub(crate) async fn nodes(State(app): State<App>) -> Json<Vec<NodeView>> {
    let counts = app.mirror().room_counts();
    let nodes = app.mirror().nodes();
    Json(
        nodes
            .nodes
            .values()
            .map(|n| NodeView {
                id: n.id,
                addr: n.addr.clone(),
                weight: n.weight,
                state: n.state,
                rooms: counts.get(&n.id).copied().unwrap_or(0),
            })
            .collect(),
    )
}
