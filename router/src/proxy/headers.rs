//! The headers of a proxied request and answer: the hop-by-hop ones stay
//! with the router (RFC 9110 §7.6.1), a WebSocket upgrade keeps its
//! `Upgrade`, the node gets its own `Host` and the client's address.

use std::net::SocketAddr;

use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, Uri, header};

/// Headers that concern one hop only and are not forwarded (RFC 9110 §7.6.1);
/// `connection` and `upgrade` are put back for a WebSocket upgrade.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `headers` ask for (or, on a 101, agree to) a WebSocket upgrade.
pub(super) fn is_websocket(headers: &HeaderMap) -> bool {
    let has = |name, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// `host:port` of an `http://host:port` node address.
pub(super) fn upstream_authority(addr: &str) -> Option<Authority> {
    let uri: Uri = addr.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let authority = uri.authority()?.clone();
    if authority.port().is_some() {
        Some(authority)
    } else {
        format!("{}:80", authority.host()).parse().ok()
    }
}

/// Drops the hop-by-hop headers and those the `Connection` header names;
/// for a WebSocket upgrade (the request, or the node's 101) keeps the
/// `Upgrade` and says `Connection: upgrade`.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap, websocket: bool) {
    let connection_tokens: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .filter(|t| !t.is_empty())
        .collect();
    let upgrade = headers.get(header::UPGRADE).cloned();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .map(str::to_owned)
        .chain(connection_tokens)
    {
        headers.remove(name.as_str());
    }
    if websocket && let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
}

/// `headers` as the node gets them from the client at `peer`.
pub(super) fn prepare_headers(
    headers: &mut HeaderMap,
    upstream: &Authority,
    peer: SocketAddr,
    websocket: bool,
) {
    strip_hop_by_hop(headers, websocket);
    if let Some(host) = headers.remove(header::HOST) {
        headers.insert("x-forwarded-host", host);
    }
    if let Ok(h) = HeaderValue::from_str(upstream.as_str()) {
        headers.insert(header::HOST, h);
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_become_authorities() {
        assert_eq!(
            upstream_authority("http://10.0.0.5:9000").unwrap().as_str(),
            "10.0.0.5:9000"
        );
        assert_eq!(
            upstream_authority("http://node-1").unwrap().as_str(),
            "node-1:80"
        );
        assert!(upstream_authority("https://node-1").is_none());
        assert!(upstream_authority("nonsense").is_none());
    }

    #[test]
    fn websocket_upgrades_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_websocket(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!is_websocket(&h));
    }

    #[test]
    fn a_nodes_hop_by_hop_headers_stay_with_the_router() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::SET_COOKIE, HeaderValue::from_static("io=x; Path=/"));
        h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<&str> = h.keys().map(axum::http::HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["access-control-allow-origin", "set-cookie"]);
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_but_the_upgrade_kept() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, x-secret"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("5"));
        h.insert(header::HOST, HeaderValue::from_static("public.example"));
        let up: Authority = "10.0.0.5:9000".parse().unwrap();
        prepare_headers(&mut h, &up, "1.2.3.4:5".parse().unwrap(), true);
        assert!(h.get("x-secret").is_none() && h.get("keep-alive").is_none());
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::HOST], "10.0.0.5:9000");
        assert_eq!(h["x-forwarded-host"], "public.example");
        assert_eq!(h["x-forwarded-for"], "1.2.3.4");
    }
}
