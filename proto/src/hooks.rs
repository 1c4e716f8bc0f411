//! The hooks a node calls on the application's backend (SPEC "Server API
//! and hooks for the application's backend"): the bodies, the answers and
//! the signature. Each hook is an HTTP POST of JSON, signed with the hook
//! secret: `X-Roomrouter-Signature: sha256=<hex HMAC-SHA256 of the raw
//! body>`.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::Sha256;

/// The header that carries a hook request's signature.
pub const SIGNATURE_HEADER: &str = "x-roomrouter-signature";

/// The signature header's value for `body`: `sha256=<hex>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Whether `header` is the signature of `body` (constant time).
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(given) = decode_hex(hex) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Which protocol a joining member speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The native WebSocket protocol.
    Native,
    /// Socket.IO.
    Socketio,
}

/// The client's credentials a join hook sees.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinHeaders {
    /// `Authorization`, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// `Cookie`, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
}

/// The join hook's request: before a member is admitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Always `join`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The room.
    pub room: String,
    /// The name the client asked for (or its token gave).
    #[serde(default)]
    pub name: Option<String>,
    /// The join's query parameters (for Socket.IO: the first request's,
    /// and the CONNECT's `auth` under `auth`).
    pub query: BTreeMap<String, serde_json::Value>,
    /// The client's credentials.
    pub headers: JoinHeaders,
    /// `native` or `socketio`.
    pub protocol: Protocol,
}

/// The join hook's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinAnswer {
    /// Whether the member is admitted.
    pub allow: bool,
    /// The name to admit it under (allowed joins).
    #[serde(default)]
    pub name: Option<String>,
    /// Why not (refused joins).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The publish hook's request: before a message is accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishRequest {
    /// Always `publish`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The room.
    pub room: String,
    /// The sender's member id.
    pub member: String,
    /// The sender's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The body as sent (a Socket.IO event's native body).
    pub body: Box<RawValue>,
    /// A Socket.IO event's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// The publish hook's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishAnswer {
    /// Whether the message is accepted.
    pub allow: bool,
    /// A body to accept instead of the one sent.
    #[serde(default)]
    pub body: Option<Box<RawValue>>,
    /// Why not (rejected messages).
    #[serde(default)]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_body_and_secret() {
        let sig = signature(b"s3cret", b"{\"a\":1}");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
        assert!(verify(b"s3cret", b"{\"a\":1}", &sig));
        assert!(!verify(b"s3cret", b"{\"a\":2}", &sig));
        assert!(!verify(b"other", b"{\"a\":1}", &sig));
        assert!(!verify(b"s3cret", b"{\"a\":1}", &sig[7..]));
        assert!(!verify(b"s3cret", b"{\"a\":1}", "sha256=zz"));
    }

    #[test]
    fn answers_read_with_their_optional_fields() {
        let a: JoinAnswer = serde_json::from_str(r#"{"allow":true,"name":"Ann"}"#).unwrap();
        assert_eq!((a.allow, a.name.as_deref()), (true, Some("Ann")));
        let p: PublishAnswer = serde_json::from_str(r#"{"allow":true,"body":{"x":1}}"#).unwrap();
        assert_eq!(p.body.unwrap().get(), r#"{"x":1}"#);
    }
}
