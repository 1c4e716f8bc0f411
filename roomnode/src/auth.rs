//! Credentials in requests: the `Authorization: Bearer` value, and the one
//! way secrets are compared (in constant time, so the comparison's duration
//! tells nothing about the secret).

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

/// The bearer credential of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
}

/// Whether `given` is `expected`, in time independent of where they differ.
pub fn secret_eq(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn reads_bearer_credentials_only() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        assert!(secret_eq("abc", "abc") && !secret_eq("abc", "abd") && !secret_eq("ab", "abc"));
    }
}
