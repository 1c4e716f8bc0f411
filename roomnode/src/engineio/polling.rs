//! The `polling` transport: the handshake's answer, the long GET that
//! carries the server's packets, and the POST that carries the client's.
//!
//! A GET answers at once with everything queued, or waits for the next
//! packet (a ping comes every `ping_interval`, so the wait is bounded by
//! it; it is also bounded here). A POST's body, at most `max_payload`
//! bytes, is decoded whole before any of its packets counts: a malformed
//! payload delivers nothing and ends the session.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::Arc;
use tokio::time::Instant;

use super::CloseCause;
use super::packet::{self, Packet};
use super::query::Refusal;
use super::session::{Farewell, Poll, Received, Session};

/// Bound on receiving a POST's body.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

const PAYLOAD_TYPE: &str = "text/plain; charset=UTF-8";

/// The handshake's answer: the open packet.
pub(super) fn opened(open_packet: &str) -> Response {
    payload(open_packet.to_owned())
}

fn payload(body: String) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PAYLOAD_TYPE));
    resp
}

/// A GET: the packets waiting, or the next ones.
pub(super) async fn get(session: &Arc<Session>) -> Response {
    let packets = match session.poll() {
        Poll::Refused(refusal) => return refusal.into_response(),
        Poll::Ready(packets) => packets,
        Poll::Wait(id, mut rx) => {
            let config = session.config();
            // A ping comes within an interval; past that, something is off.
            let longest = config.ping_interval + config.ping_timeout;
            match tokio::time::timeout(longest, &mut rx).await {
                Ok(Ok(packets)) => packets,
                Ok(Err(_)) => vec![session.core().noop.clone()],
                Err(_) if session.cancel_poll(id) => vec![session.core().noop.clone()],
                // Answered as the wait ended.
                Err(_) => rx
                    .try_recv()
                    .unwrap_or_else(|_| vec![session.core().noop.clone()]),
            }
        }
    };
    delivered(session, &packets);
    payload(packet::encode_payload(&packets))
}

/// Counts the messages a poll hands over, as a WebSocket's outlet does.
fn delivered(session: &Session, packets: &[Arc<Packet>]) {
    let metrics = &session.core().metrics;
    let now = Instant::now();
    for at in packets.iter().filter_map(|p| p.accepted()) {
        metrics.delivered.inc();
        metrics.delivery_latency.observe((now - at).as_secs_f64());
    }
}

/// A POST: the client's packets, in order; answered `ok`.
pub(super) async fn post(session: &Arc<Session>, headers: &HeaderMap, body: Body) -> Response {
    if let Err(refusal) = session.begin_post() {
        return refusal.into_response();
    }
    let resp = take_post(session, headers, body).await;
    session.end_post();
    resp
}

async fn take_post(session: &Arc<Session>, headers: &HeaderMap, body: Body) -> Response {
    let max = session.config().max_payload;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        session.end(CloseCause::TooLarge, Farewell::Close);
        return Refusal::TooLarge.into_response();
    }
    let read = tokio::time::timeout(POST_TIMEOUT, Limited::new(body, max).collect()).await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            session.end(CloseCause::TooLarge, Farewell::Close);
            return Refusal::TooLarge.into_response();
        }
        Ok(Err(_)) | Err(_) => {
            session.end(CloseCause::TransportError, Farewell::Close);
            return Refusal::BadRequest.into_response();
        }
    };
    let decoded = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| packet::decode_payload(text).ok());
    let Some(packets) = decoded else {
        session.end(CloseCause::ProtocolError, Farewell::Close);
        return Refusal::BadRequest.into_response();
    };
    for p in packets {
        if session.receive(p) == Received::Ended {
            break;
        }
    }
    let mut resp = (StatusCode::OK, "ok").into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    resp
}
