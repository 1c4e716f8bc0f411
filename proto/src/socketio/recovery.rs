//! Connection state recovery (socket.io-client's `recovered`) over a
//! room's stream: the CONNECT answer's `pid` names the stream and the
//! member, and every delivered event ends with its seq as the offset
//! `"<seq>"`.
//!
//! socket.io-client decides `recovered` itself: true when the `pid` of the
//! new CONNECT answer equals the one it sent. The `pid` is
//! `<stream>~<member>`: a recovered client gets its own `pid` back and
//! keeps its member id (as Socket.IO keeps a recovered socket's id), so the
//! replay can leave out the events it sent itself, which it never received
//! live either. A recovery that cannot happen (another stream, or history
//! no longer reaching back to the offset) answers a new `pid` with the new
//! member id, which always differs from the client's.

/// The separator between the stream and the member in a `pid`.
const SEP: char = '~';

/// What a reconnecting client sent in its CONNECT payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume<'a> {
    /// The stream its `pid` names.
    pub stream: &'a str,
    /// The member its `pid` names.
    pub member: &'a str,
    /// The seq of the last event it received.
    pub offset: u64,
}

impl<'a> Resume<'a> {
    /// The recovery request in a CONNECT payload, if it holds one: a `pid`
    /// of ours and an `offset` that is a seq.
    pub fn from_auth(auth: &'a serde_json::Value) -> Option<Self> {
        let pid = auth.get("pid")?.as_str()?;
        let offset = auth.get("offset")?.as_str()?.parse().ok()?;
        let (stream, member) = pid.split_once(SEP)?;
        Some(Self {
            stream,
            member,
            offset,
        })
    }
}

/// The `pid` of a CONNECT answer for `member` of `stream`.
pub fn pid(stream: &str, member: &str) -> String {
    format!("{stream}{SEP}{member}")
}

/// The offset an event carries as its last argument.
pub fn offset(seq: u64) -> String {
    seq.to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_the_resume_request() {
        let auth = json!({"token": "t", "pid": pid("abc", "m4"), "offset": "17"});
        let r = Resume::from_auth(&auth).unwrap();
        assert_eq!((r.stream, r.member, r.offset), ("abc", "m4", 17));
        assert_eq!(Resume::from_auth(&json!({"pid": "abc~m4"})), None);
        assert_eq!(
            Resume::from_auth(&json!({"pid": "abc~m4", "offset": "x"})),
            None
        );
        // Not a pid of ours (another server's, or a stale format).
        assert_eq!(
            Resume::from_auth(&json!({"pid": "abc", "offset": "3"})),
            None
        );
    }

    #[test]
    fn the_offset_is_the_seq_as_a_string() {
        assert_eq!(offset(0), "0");
        assert_eq!(offset(18_446_744_073_709_551_615), "18446744073709551615");
    }
}
