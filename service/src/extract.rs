//! [`RoomPath`]: the room id of a route's `{room}` parameter, parsed, so
//! handlers take a [`RoomId`] and a malformed id is refused the same way
//! (400 with the id's rule) on every route.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use proto::{ErrorCode, RoomId};

use crate::error::ApiError;

/// Name of the path parameter that holds the room id (`/rooms/{room}`).
pub const ROOM_PARAM: &str = "room";

/// The room id of the route's `{room}` parameter. Rejects with
/// [`ApiError::bad_id`] when the id breaks its rule.
#[derive(Debug, Clone)]
pub struct RoomPath(pub RoomId);

impl<S: Send + Sync> FromRequestParts<S> for RoomPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| match e {
                // The text and code the framework's own `Path` refusal
                // gets from `json_errors`.
                axum::extract::rejection::RawPathParamsRejection::InvalidUtf8InPathParam(e) => {
                    ApiError::bad_request(ErrorCode::BadRequest, format!("Invalid URL: {e}"))
                }
                other => ApiError::internal(&other),
            })?;
        let raw = params
            .iter()
            .find_map(|(name, value)| (name == ROOM_PARAM).then_some(value))
            .ok_or_else(|| ApiError::internal(&"route has no {room} parameter"))?;
        raw.parse().map(Self).map_err(ApiError::bad_id)
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn call(uri: &str) -> (StatusCode, String) {
        let app = Router::new().route(
            "/{instance}/room/{room}",
            get(|RoomPath(r): RoomPath| async move { r.to_string() }),
        );
        let resp = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[test]
    fn the_internal_adopt_route_names_the_room_parameter() {
        let param = format!("{{{ROOM_PARAM}}}");
        assert!(proto::handoff::ADOPT_ONE_ROUTE.contains(&param));
    }

    #[tokio::test]
    async fn parses_the_room_parameter() {
        assert_eq!(
            call("/i1/room/lobby").await,
            (StatusCode::OK, "lobby".into())
        );
    }

    #[tokio::test]
    async fn refuses_a_bad_id_with_the_json_body() {
        let (status, body) = call("/i1/room/a%20b").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("\"error\":\"invalid_room_id\""), "{body}");
    }

    #[tokio::test]
    async fn refuses_invalid_utf8_as_the_framework_does() {
        let (status, body) = call("/i1/room/%FF").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.contains("Invalid URL: Invalid UTF-8 in `room`"),
            "{body}"
        );
    }
}
