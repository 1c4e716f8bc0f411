//! Cross-origin polling: a page served from another origin reaches a room
//! with XHR/fetch, with credentials (socket.io-client's `withCredentials`).
//! An allowed origin (any, when the list is empty) is echoed back with
//! `Access-Control-Allow-Credentials` (a `*` would forbid credentials); a
//! refused one gets 403, WebSocket handshakes included, as on the native
//! path. A request without `Origin` is not a browser's cross-origin
//! request and passes.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::query::Refusal;

/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE: &str = "86400";

/// The request's origin, if it has one and it is allowed.
pub(super) fn check(
    headers: &HeaderMap,
    allowed: &[String],
) -> Result<Option<HeaderValue>, Refusal> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(None);
    };
    let ok = allowed.is_empty()
        || origin
            .to_str()
            .is_ok_and(|o| allowed.iter().any(|a| a == o));
    if ok {
        Ok(Some(origin.clone()))
    } else {
        Err(Refusal::Forbidden)
    }
}

/// Lets the page read `resp`.
pub(super) fn allow(resp: &mut Response, origin: Option<HeaderValue>) {
    let Some(origin) = origin else { return };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The answer to an `OPTIONS` preflight from an allowed origin.
pub(super) fn preflight(headers: &HeaderMap, origin: Option<HeaderValue>) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    let asked = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("content-type"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    allow(&mut resp, origin);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origin(o: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        h
    }

    #[test]
    fn origins_are_echoed_when_allowed_and_refused_otherwise() {
        let allowed = vec!["https://app.example".to_owned()];
        assert_eq!(check(&HeaderMap::new(), &allowed), Ok(None));
        let ok = check(&with_origin("https://app.example"), &allowed).unwrap();
        assert_eq!(ok.unwrap(), "https://app.example");
        assert_eq!(
            check(&with_origin("https://evil.example"), &allowed),
            Err(Refusal::Forbidden)
        );
        let any = check(&with_origin("https://evil.example"), &[]).unwrap();
        assert_eq!(any.unwrap(), "https://evil.example");
    }
}
