//! Connection state recovery (socket.io-client's `recovered`) over a
//! room's stream: the CONNECT answer's `pid` names the stream, and every
//! delivered event ends with its seq as the offset `"<seq>"`.
//!
//! socket.io-client decides `recovered` itself: true when the `pid` of the
//! new CONNECT answer equals the one it sent. So a recovery that cannot
//! happen (another stream, or history no longer reaching back to the
//! offset) must answer a `pid` different from the client's; it is the
//! stream with the seq it starts from, `<stream>~<seq>`, which still names
//! the stream for the next reconnect.

/// The separator between a stream and the seq in a `pid`.
const SEP: char = '~';

/// What a reconnecting client sent in its CONNECT payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume<'a> {
    /// The `pid` it was given.
    pub pid: &'a str,
    /// The seq of the last event it received.
    pub offset: u64,
}

impl<'a> Resume<'a> {
    /// The recovery request in a CONNECT payload, if it holds one: a `pid`
    /// string and an `offset` that is a seq.
    pub fn from_auth(auth: &'a serde_json::Value) -> Option<Self> {
        let pid = auth.get("pid")?.as_str()?;
        let offset = auth.get("offset")?.as_str()?.parse().ok()?;
        Some(Self { pid, offset })
    }

    /// The stream the client's `pid` names.
    pub fn stream(&self) -> &'a str {
        self.pid.split(SEP).next().unwrap_or(self.pid)
    }
}

/// The `pid` of a CONNECT answer: `stream` for a new session, the client's
/// own `pid` back after a recovery, and otherwise one that differs from
/// it (see the module doc).
pub fn answer_pid(
    stream: &str,
    resume: Option<&Resume<'_>>,
    recovered: bool,
    latest: u64,
) -> String {
    match resume {
        Some(r) if recovered => r.pid.to_owned(),
        Some(r) if r.pid == stream => format!("{stream}{SEP}{latest}"),
        _ => stream.to_owned(),
    }
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
        let auth = json!({"token": "t", "pid": "abc~4", "offset": "17"});
        let r = Resume::from_auth(&auth).unwrap();
        assert_eq!((r.pid, r.offset, r.stream()), ("abc~4", 17, "abc"));
        assert_eq!(Resume::from_auth(&json!({"pid": "abc"})), None);
        assert_eq!(
            Resume::from_auth(&json!({"pid": "abc", "offset": "x"})),
            None
        );
    }

    #[test]
    fn the_answer_pid_tells_the_client_whether_it_recovered() {
        let same = Resume {
            pid: "s1",
            offset: 3,
        };
        assert_eq!(answer_pid("s1", Some(&same), true, 9), "s1");
        assert_eq!(answer_pid("s1", Some(&same), false, 9), "s1~9");
        let marked = Resume {
            pid: "s1~9",
            offset: 12,
        };
        assert_eq!(answer_pid("s1", Some(&marked), true, 20), "s1~9");
        assert_eq!(answer_pid("s1", Some(&marked), false, 20), "s1");
        let other = Resume {
            pid: "s0",
            offset: 3,
        };
        assert_eq!(answer_pid("s1", Some(&other), false, 9), "s1");
        assert_eq!(answer_pid("s1", None, false, 9), "s1");
    }
}
