//! Credentials in requests: the `Authorization: Bearer` value, and the one
//! way secrets are compared (in constant time, so the comparison's duration
//! tells nothing about the secret).

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

/// The bearer credential of a request, if any. The scheme is matched
/// without regard to case and may be followed by several spaces (RFC 9110
/// 11.1, 11.4): `bearer abc` is `Bearer abc`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    let credential = credential.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
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
        for (value, want) in [
            ("bearer abc", Some("abc")),
            ("BEARER  abc", Some("abc")),
            ("BeArEr abc", Some("abc")),
            ("Bearer ", None),
            ("Bearerabc", None),
            ("Bearer_ abc", None),
        ] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(bearer(&h), want, "{value:?}");
        }
        assert!(secret_eq("abc", "abc") && !secret_eq("abc", "abd") && !secret_eq("ab", "abc"));
    }
}
