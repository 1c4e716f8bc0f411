//! The vocabulary of HTTP error answers: every code a router or node can
//! put in `{"error":"<code>","message":"<text>"}`, each with its one status,
//! so the same refusal reads the same everywhere.

macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident = $text:literal, $status:literal;)+) => {
        /// An error answer's code; [`ErrorCode::status`] is its HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)+
        }

        impl ErrorCode {
            /// Every code, for documentation and tests.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$name,)+];

            /// The code as clients see it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => $text,)+
                }
            }

            /// The HTTP status that goes with it.
            pub const fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$name => $status,)+
                }
            }
        }
    };
}

error_codes! {
    /// The room moved: `Location` names its path.
    Moved = "moved", 307;
    /// A body that is not the JSON the endpoint takes.
    InvalidBody = "invalid_body", 400;
    /// A query string the endpoint cannot read.
    InvalidQuery = "invalid_query", 400;
    /// A room id that breaks its rule.
    InvalidRoomId = "invalid_room_id", 400;
    /// An instance id that breaks its rule.
    InvalidInstanceId = "invalid_instance_id", 400;
    /// A display name over its limit.
    InvalidName = "invalid_name", 400;
    /// A token lifetime out of range.
    InvalidTtl = "invalid_ttl", 400;
    /// Tokens asked for a public room.
    NotPrivate = "not_private", 400;
    /// A handoff naming too many rooms.
    BatchTooLarge = "batch_too_large", 400;
    /// A move to the node that has the rooms already.
    SameNode = "same_node", 400;
    /// A snapshot sent for another room.
    Mismatch = "mismatch", 400;
    /// The framework could not read the request.
    BadRequest = "bad_request", 400;
    /// No credential where one is needed.
    Unauthorized = "unauthorized", 401;
    /// A private room joined without a token.
    TokenRequired = "token_required", 401;
    /// A token that is not one, or not signed by the cluster.
    InvalidToken = "invalid_token", 401;
    /// A token past its expiry.
    TokenExpired = "token_expired", 401;
    /// A wrong credential.
    Forbidden = "forbidden", 403;
    /// A token for another room.
    WrongRoom = "wrong_room", 403;
    /// A token for an earlier room with this id, since deleted.
    TokenRevoked = "token_revoked", 403;
    /// A page from an origin not on `--allowed-origins`.
    OriginNotAllowed = "origin_not_allowed", 403;
    /// Admin endpoints on a router without `--admin-token`.
    AdminDisabled = "admin_disabled", 403;
    /// Private rooms where no `--secret` is set.
    PrivateRoomsDisabled = "private_rooms_disabled", 403;
    /// Moving rooms where no `--secret` is set.
    InternalDisabled = "internal_disabled", 403;
    /// No such endpoint.
    NotFound = "not_found", 404;
    /// No such room.
    UnknownRoom = "unknown_room", 404;
    /// The application's join hook refused the member.
    JoinRefused = "join_refused", 403;
    /// No such member in the room.
    UnknownMember = "unknown_member", 404;
    /// A node asked for another instance's path.
    WrongInstance = "wrong_instance", 404;
    /// A method the endpoint does not have.
    MethodNotAllowed = "method_not_allowed", 405;
    /// A request body not finished within its deadline.
    RequestTimeout = "request_timeout", 408;
    /// A record changed under the request.
    Conflict = "conflict", 409;
    /// A room no longer at the epoch a move was planned at.
    Stale = "stale", 409;
    /// A move's target is draining.
    TargetDraining = "target_draining", 409;
    /// A move's target is not registered.
    TargetUnavailable = "target_unavailable", 409;
    /// A body over the endpoint's limit.
    BodyTooLarge = "body_too_large", 413;
    /// A request line over its limit.
    UriTooLong = "uri_too_long", 414;
    /// A body of a type the endpoint does not take.
    UnsupportedMediaType = "unsupported_media_type", 415;
    /// A join without a WebSocket upgrade (or over HTTP/1.0).
    UpgradeRequired = "upgrade_required", 426;
    /// Too many or too large headers.
    HeadersTooLarge = "headers_too_large", 431;
    /// Something failed inside; the log says what.
    Internal = "internal", 500;
    /// The node behind the router refused the connection.
    UpstreamUnreachable = "upstream_unreachable", 502;
    /// The coordination store does not answer.
    StoreUnavailable = "store_unavailable", 503;
    /// The coordination store refuses writes (its space quota is spent).
    StoreFull = "store_full", 503;
    /// This process's view of the store is still loading.
    StoreViewLoading = "store_view_loading", 503;
    /// This process's view of the store is not confirmed lately.
    StoreViewStale = "store_view_stale", 503;
    /// No active node to place a room on.
    NoNodes = "no_nodes", 503;
    /// The room's node is not registered.
    NodeUnavailable = "node_unavailable", 503;
    /// The node serves its limit of connections.
    NodeFull = "node_full", 503;
    /// The room has its limit of members.
    RoomFull = "room_full", 503;
    /// The room is moving to another node.
    RoomMoving = "room_moving", 503;
    /// The room's replica did not confirm the message in time: it was not
    /// accepted; send it again.
    NotAccepted = "not_accepted", 503;
    /// The application's hook did not answer (and `--hook-failure closed`).
    HookUnavailable = "hook_unavailable", 503;
    /// The node takes no new rooms.
    Draining = "draining", 503;
    /// The node is shutting down.
    ShuttingDown = "shutting_down", 503;
    /// The node lost its registration and is registering again.
    Fenced = "fenced", 503;
    /// Too many joins in progress on the node (`Retry-After`).
    TooManyHandshakes = "too_many_handshakes", 503;
    /// Too many joins of one room this second (`Retry-After`).
    JoinRateLimited = "join_rate_limited", 503;
    /// The node behind the router did not answer in time.
    UpstreamTimeout = "upstream_timeout", 504;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_errors() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(text.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert!((300..600).contains(&code.status()), "{text}");
        }
        assert_eq!(
            crate::wire::code::ROOM_MOVING,
            ErrorCode::RoomMoving.as_str()
        );
    }
}
