//! A session request's query (`EIO`, `transport`, `sid`) and Engine.IO's
//! refusals, with its own JSON bodies (`{"code":1,"message":"Session ID
//! unknown"}`), which its clients and the official test suite expect.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Transport;

/// What a request names.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Query<'a> {
    pub(super) transport: Transport,
    /// The session, absent on a handshake.
    pub(super) sid: Option<&'a str>,
}

/// Reads `EIO`, `transport` and `sid`; any other parameter (`t`, the
/// client's own) is ignored. The first of a repeated parameter counts.
pub(super) fn parse(raw: Option<&str>) -> Result<Query<'_>, Refusal> {
    let (mut eio, mut transport, mut sid) = (None, None, None);
    for pair in raw.unwrap_or("").split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "EIO" => &mut eio,
            "transport" => &mut transport,
            "sid" => &mut sid,
            _ => continue,
        };
        slot.get_or_insert(value);
    }
    let transport = match transport {
        Some("polling") => Transport::Polling,
        Some("websocket") => Transport::WebSocket,
        _ => return Err(Refusal::TransportUnknown),
    };
    if eio != Some("4") {
        return Err(Refusal::UnsupportedVersion);
    }
    let sid = sid.filter(|s| !s.is_empty());
    Ok(Query { transport, sid })
}

/// Why Engine.IO refuses a request, with its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 0: `transport` is neither `polling` nor `websocket`.
    TransportUnknown,
    /// 1: no such session (never was, ended, or another room's).
    UnknownSid,
    /// 2: a handshake that is not a GET.
    BadHandshakeMethod,
    /// 3: a request the session's state does not allow.
    BadRequest,
    /// 4: a page from an origin that is not allowed.
    Forbidden,
    /// 5: `EIO` is not 4.
    UnsupportedVersion,
    /// 3, with 413: a POST over `maxPayload`.
    TooLarge,
    /// 3, with 503: too many sessions waiting to connect, or shutting down.
    Busy,
}

impl Refusal {
    fn parts(self) -> (StatusCode, u8, &'static str) {
        match self {
            Self::TransportUnknown => (StatusCode::BAD_REQUEST, 0, "Transport unknown"),
            Self::UnknownSid => (StatusCode::BAD_REQUEST, 1, "Session ID unknown"),
            Self::BadHandshakeMethod => (StatusCode::BAD_REQUEST, 2, "Bad handshake method"),
            Self::BadRequest => (StatusCode::BAD_REQUEST, 3, "Bad request"),
            Self::Forbidden => (StatusCode::FORBIDDEN, 4, "Forbidden"),
            Self::UnsupportedVersion => {
                (StatusCode::BAD_REQUEST, 5, "Unsupported protocol version")
            }
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, 3, "Payload too large"),
            Self::Busy => (StatusCode::SERVICE_UNAVAILABLE, 3, "Server busy, retry"),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let body = serde_json::json!({ "code": code, "message": message }).to_string();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self == Self::Busy {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_version_transport_and_session() {
        let q = parse(Some("EIO=4&transport=polling&t=Nx1&sid=abc")).unwrap();
        assert_eq!(q.transport, Transport::Polling);
        assert_eq!(q.sid, Some("abc"));
        let q = parse(Some("transport=websocket&EIO=4&sid=")).unwrap();
        assert_eq!((q.transport, q.sid), (Transport::WebSocket, None));
    }

    #[test]
    fn a_bad_query_is_refused_with_its_code() {
        for (raw, want) in [
            (None, Refusal::TransportUnknown),
            (Some("EIO=4"), Refusal::TransportUnknown),
            (Some("EIO=4&transport=abc"), Refusal::TransportUnknown),
            (Some("transport=polling"), Refusal::UnsupportedVersion),
            (
                Some("EIO=abc&transport=polling"),
                Refusal::UnsupportedVersion,
            ),
            (
                Some("EIO=3&transport=websocket"),
                Refusal::UnsupportedVersion,
            ),
        ] {
            assert_eq!(parse(raw), Err(want), "{raw:?}");
        }
    }
}
