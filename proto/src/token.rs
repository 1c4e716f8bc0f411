//! Join tokens for private rooms: issued by routers, checked by nodes
//! without a store round trip. A token is `v1.<payload>.<signature>`, both
//! parts base64url without padding; the payload is the JSON [`Claims`], the
//! signature HMAC-SHA256 over the payload with the cluster secret. Nodes
//! accept the current and the previous secret, so the secret can rotate.
//!
//! A token names the room's incarnation (its record's `created_at`): a room
//! deleted and created again under the same id does not honour tokens of
//! the one before (except one re-created within the same second, which
//! `created_at`'s resolution cannot tell apart).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::id::RoomId;

type HmacSha256 = Hmac<Sha256>;

/// Format version prefix.
const VERSION: &str = "v1";

/// The cluster secret (or an admin token): `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() < 16 {
            Err("must be at least 16 characters".into())
        } else {
            Ok(Self(s.to_owned()))
        }
    }
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The one room it opens.
    pub room: RoomId,
    /// That room's `created_at`: the incarnation of the id it opens.
    #[serde(default)]
    pub created: u64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// The display name it binds the member to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why a token was refused; the `Display` text is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this format.
    #[error("malformed token")]
    Malformed,
    /// Signed with another secret, or altered.
    #[error("token signature does not verify")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Issued for another room.
    #[error("token is for another room")]
    WrongRoom,
    /// Issued for an earlier room with this id, since deleted.
    #[error("token is for an earlier room with this id, since deleted")]
    Revoked,
}

impl TokenError {
    /// The error code clients see (401 for a token that does not verify,
    /// 403 for one that does but opens something else).
    pub fn code(&self) -> crate::ErrorCode {
        use crate::ErrorCode;
        match self {
            Self::Malformed | Self::BadSignature => ErrorCode::InvalidToken,
            Self::Expired => ErrorCode::TokenExpired,
            Self::WrongRoom => ErrorCode::WrongRoom,
            Self::Revoked => ErrorCode::TokenRevoked,
        }
    }
}

fn mac(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length")
}

/// Signs `claims` with `secret`.
pub fn sign(secret: &[u8], claims: &Claims) -> String {
    let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let mut m = mac(secret);
    m.update(payload.as_bytes());
    let sig = B64.encode(m.finalize().into_bytes());
    format!("{VERSION}.{payload}.{sig}")
}

/// Checks `token` for `room`, created at `created`, at time `now` against
/// any of `secrets` (current first, then previous).
pub fn verify(
    secrets: &[&[u8]],
    token: &str,
    room: &RoomId,
    created: u64,
    now: u64,
) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(VERSION), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
    let signed = secrets.iter().any(|s| {
        let mut m = mac(s);
        m.update(payload.as_bytes());
        m.verify_slice(&sig).is_ok()
    });
    if !signed {
        return Err(TokenError::BadSignature);
    }
    let raw = B64.decode(payload).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&raw).map_err(|_| TokenError::Malformed)?;
    if &claims.room != room {
        return Err(TokenError::WrongRoom);
    }
    if claims.created != created {
        return Err(TokenError::Revoked);
    }
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn claims(room: &str, exp: u64) -> Claims {
        Claims {
            room: room.parse().unwrap(),
            created: 7,
            exp,
            name: Some("ann".into()),
        }
    }

    #[test]
    fn secrets_are_masked_and_not_too_short() {
        let s: Secret = "0123456789abcdef".parse().unwrap();
        assert!(!format!("{s:?}").contains("0123"));
        assert!("short".parse::<Secret>().is_err());
    }

    #[test]
    fn round_trips_and_refuses_what_it_must() {
        let room: RoomId = "r1".parse().unwrap();
        let t = sign(b"secret", &claims("r1", 100));
        assert_eq!(
            verify(&[b"secret"], &t, &room, 7, 99).unwrap(),
            claims("r1", 100)
        );
        assert_eq!(
            verify(&[b"other", b"secret"], &t, &room, 7, 99)
                .unwrap()
                .name
                .as_deref(),
            Some("ann")
        );
        assert_eq!(
            verify(&[b"other"], &t, &room, 7, 99),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&[b"secret"], &t, &room, 7, 100),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&[b"secret"], &t, &"r2".parse().unwrap(), 7, 1),
            Err(TokenError::WrongRoom)
        );
        assert_eq!(
            verify(&[b"secret"], "garbage", &room, 7, 1),
            Err(TokenError::Malformed)
        );
        // A payload swapped for another room's breaks the signature.
        let other = sign(b"secret", &claims("r2", 100));
        let forged = format!(
            "v1.{}.{}",
            other.split('.').nth(1).unwrap(),
            t.split('.').nth(2).unwrap()
        );
        assert_eq!(
            verify(&[b"secret"], &forged, &room, 7, 1),
            Err(TokenError::BadSignature)
        );
        // The same id, created again: the old incarnation's token is void.
        assert_eq!(
            verify(&[b"secret"], &t, &room, 8, 1),
            Err(TokenError::Revoked)
        );
    }

    proptest! {
        #[test]
        fn verify_never_panics(s in "\\PC{0,200}") {
            let _ = verify(&[b"k"], &s, &"r".parse().unwrap(), 7, 0);
        }

        #[test]
        fn any_altered_byte_is_refused(i in 0usize..100, b in 0u8..=255) {
            let t = sign(b"k", &claims("r", 10));
            let mut bytes = t.clone().into_bytes();
            let i = i % bytes.len();
            prop_assume!(bytes[i] != b);
            bytes[i] = b;
            if let Ok(s) = String::from_utf8(bytes) {
                prop_assert!(verify(&[b"k"], &s, &"r".parse().unwrap(), 7, 0).is_err() || s == t);
            }
        }
    }
}
