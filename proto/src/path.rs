//! The data-plane paths. `/iN/room/ID` is what the load balancer routes on
//! (one rule per instance); `/room/ID` is the legacy un-sharded path that only
//! the router understands and rewrites. A room's Socket.IO endpoint is under
//! its path (`/iN/room/ID/socket.io/`), so the same rules route it.

use std::fmt;

use crate::id::{IdError, InstanceId, RoomId};

/// A parsed room path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomPath {
    /// `/iN/room/ID`: the room on instance N.
    Sharded {
        /// The instance in the path.
        instance: InstanceId,
        /// The room in the path.
        room: RoomId,
    },
    /// `/room/ID`: the room wherever it lives.
    Legacy {
        /// The room in the path.
        room: RoomId,
    },
}

/// Why a path is not a room path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path has neither shape.
    #[error("not a room path: expected /iN/room/ID or /room/ID")]
    NotARoomPath,
    /// The shape is right but an id breaks its rule.
    #[error(transparent)]
    Id(#[from] IdError),
}

impl RoomPath {
    /// Parses a request path (without query string).
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let rest = path.strip_prefix('/').ok_or(PathError::NotARoomPath)?;
        let mut parts = rest.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("room"), Some(room), None, None) => Ok(Self::Legacy {
                room: room.parse()?,
            }),
            (Some(inst), Some("room"), Some(room), None) if inst.starts_with('i') => {
                Ok(Self::Sharded {
                    instance: inst.parse()?,
                    room: room.parse()?,
                })
            }
            _ => Err(PathError::NotARoomPath),
        }
    }

    /// The room named by the path.
    pub fn room(&self) -> &RoomId {
        match self {
            Self::Sharded { room, .. } | Self::Legacy { room } => room,
        }
    }
}

/// The sharded path of `room` on `instance`: `/iN/room/ID`.
pub fn sharded(instance: InstanceId, room: &RoomId) -> String {
    format!("/{instance}/room/{room}")
}

/// The last segment of a room's Socket.IO endpoint, under its path.
const SOCKETIO_SEGMENT: &str = "socket.io";

/// The Socket.IO endpoint of `room` on `instance`: `/iN/room/ID/socket.io/`,
/// what `socket.io-client` takes as its `path` option (the final slash is
/// the one it adds itself).
pub fn socketio(instance: InstanceId, room: &RoomId) -> String {
    format!("{}/{SOCKETIO_SEGMENT}/", sharded(instance, room))
}

/// The room path a Socket.IO endpoint path is under (`/iN/room/ID` of
/// `/iN/room/ID/socket.io/`, the final slash optional, as for `/room/ID`);
/// `None` for any other path. Not checked to be a room path.
pub fn socketio_base(path: &str) -> Option<&str> {
    path.strip_suffix('/')
        .unwrap_or(path)
        .strip_suffix(SOCKETIO_SEGMENT)?
        .strip_suffix('/')
        .filter(|base| !base.is_empty())
}

/// The legacy path of `room`: `/room/ID`.
pub fn legacy(room: &RoomId) -> String {
    format!("/room/{room}")
}

/// The `/iN/room/*` pattern a load balancer rule matches for `instance`.
pub fn instance_pattern(instance: InstanceId) -> String {
    format!("/{instance}/room/*")
}

impl fmt::Display for RoomPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sharded { instance, room } => f.write_str(&sharded(*instance, room)),
            Self::Legacy { room } => f.write_str(&legacy(room)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_both_shapes() {
        let p = RoomPath::parse("/i3/room/lobby").unwrap();
        assert_eq!(p.to_string(), "/i3/room/lobby");
        assert!(matches!(p, RoomPath::Sharded { instance, .. } if instance.number() == 3));
        let p = RoomPath::parse("/room/lobby").unwrap();
        assert_eq!(
            p,
            RoomPath::Legacy {
                room: "lobby".parse().unwrap()
            }
        );
    }

    #[test]
    fn refuses_other_shapes_and_bad_ids() {
        for bad in [
            "",
            "/",
            "/room",
            "/room/",
            "/room/a/b",
            "/i3/room",
            "/i3/rooms/a",
            "/x/room/a",
            "room/a",
            "/i3/room/a/",
        ] {
            assert!(RoomPath::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            RoomPath::parse("/i0/room/a"),
            Err(PathError::Id(IdError::Instance(_)))
        ));
        assert!(matches!(
            RoomPath::parse("/room/a%20b"),
            Err(PathError::Id(IdError::Room(_)))
        ));
    }

    #[test]
    fn socketio_endpoints_are_under_the_room_path() {
        let room: RoomId = "lobby".parse().unwrap();
        let path = socketio(InstanceId::new(2).unwrap(), &room);
        assert_eq!(path, "/i2/room/lobby/socket.io/");
        assert_eq!(socketio_base(&path), Some("/i2/room/lobby"));
        assert_eq!(socketio_base("/room/lobby/socket.io"), Some("/room/lobby"));
        for other in [
            "/i2/room/lobby",
            "/i2/room/lobby/socket.io//",
            "/i2/room/lobby/xsocket.io/",
            "/socket.io/",
            "socket.io",
        ] {
            assert_eq!(socketio_base(other), None, "{other:?}");
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(n in 1u16..=9999, room in "[A-Za-z0-9_-]{1,64}") {
            let instance = InstanceId::new(n).unwrap();
            let room: RoomId = room.parse().unwrap();
            let parsed = RoomPath::parse(&sharded(instance, &room)).unwrap();
            prop_assert_eq!(parsed, RoomPath::Sharded { instance, room: room.clone() });
            let base = socketio_base(&socketio(instance, &room)).map(RoomPath::parse);
            prop_assert_eq!(base, Some(Ok(RoomPath::Sharded { instance, room: room.clone() })));
            prop_assert_eq!(RoomPath::parse(&legacy(&room)).unwrap(), RoomPath::Legacy { room });
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,100}") {
            let _ = RoomPath::parse(&s);
        }
    }
}
