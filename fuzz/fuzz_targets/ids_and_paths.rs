//! Instance ids, room ids, room paths and etcd keys on any text.
//!
//! Input: bytes, converted lossily to text. The whole text, and each of its
//! lines, is parsed as a room path, an instance id and a room id; the first
//! line is also a key prefix and the rest of the text a key under it. The
//! first two bytes are also an instance number.
//!
//! Properties: nothing panics, and whatever parses is canonical: formatting
//! it gives back the very text that was parsed (so two different strings
//! never name the same room or node: no aliases past a load balancer's
//! path rules), and parsing the formatted text gives the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::keys::{Key, Keys};
use proto::path::{self, RoomPath};
use proto::{InstanceId, RoomId};

fn instance(s: &str) -> Option<InstanceId> {
    let id = s.parse::<InstanceId>().ok()?;
    assert_eq!(id.to_string(), s, "instance id {s:?} is not canonical");
    assert_eq!(id.to_string().parse::<InstanceId>().unwrap(), id);
    assert!((1..=proto::id::MAX_INSTANCE).contains(&id.number()));
    assert_eq!(InstanceId::new(id.number()), Some(id));
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(serde_json::from_str::<InstanceId>(&json).unwrap(), id);
    Some(id)
}

/// `s` as a room id, checked; `message`: also check the error's text (it
/// costs most of the time, so only for the whole input).
fn room(s: &str, message: bool) -> Option<RoomId> {
    let parsed = s.parse::<RoomId>();
    assert_eq!(parsed.is_ok(), RoomId::is_valid(s), "{s:?}");
    assert_eq!(
        RoomId::try_from(s.to_owned()).ok(),
        parsed.clone().ok(),
        "TryFrom<String> and FromStr disagree on {s:?}"
    );
    if let (Err(e), true) = (&parsed, message) {
        // The message states the rule, and stays short for any input.
        let msg = e.to_string();
        assert!(msg.contains("[A-Za-z0-9_-]"), "{msg}");
        assert!(
            msg.len() < 80 * 10 + 200,
            "error message too long: {}",
            msg.len()
        );
    }
    let id = parsed.ok()?;
    assert_eq!(id.as_str(), s);
    assert_eq!(id.to_string().parse::<RoomId>().unwrap(), id);
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(serde_json::from_str::<RoomId>(&json).unwrap(), id);
    Some(id)
}

fn room_path(s: &str) {
    let Ok(p) = RoomPath::parse(s) else {
        return;
    };
    assert_eq!(p.to_string(), s, "room path {s:?} is not canonical");
    assert_eq!(RoomPath::parse(&p.to_string()).unwrap(), p);
    match &p {
        RoomPath::Sharded { instance, room } => {
            assert_eq!(path::sharded(*instance, room), s);
            assert_eq!(
                path::instance_pattern(*instance).trim_end_matches('*'),
                &s[..s.len() - room.as_str().len()]
            );
        }
        RoomPath::Legacy { room } => assert_eq!(path::legacy(room), s),
    }
}

fn formatted_round_trips(i: InstanceId, r: &RoomId) {
    assert_eq!(
        RoomPath::parse(&path::sharded(i, r)).unwrap(),
        RoomPath::Sharded {
            instance: i,
            room: r.clone()
        }
    );
    assert_eq!(
        RoomPath::parse(&path::legacy(r)).unwrap(),
        RoomPath::Legacy { room: r.clone() }
    );
}

fn keys(prefix: &str, key: &str, i: InstanceId, r: &RoomId) {
    let keys = Keys::new(prefix);
    // Keys this prefix builds read back as what they were built from, and
    // stay inside the prefix's ranges.
    assert_eq!(keys.parse(&keys.node(i)), Some(Key::Node(i)), "{prefix:?}");
    assert_eq!(
        keys.parse(&keys.room(r)),
        Some(Key::Room(r.clone())),
        "{prefix:?}"
    );
    assert_eq!(
        keys.parse(&keys.owned(i, r)),
        Some(Key::Owned(i, r.clone())),
        "{prefix:?}"
    );
    assert!(keys.node(i).starts_with(&keys.nodes()));
    assert!(keys.room(r).starts_with(&keys.rooms()));
    assert!(keys.owned(i, r).starts_with(&keys.owned_by(i)));
    assert!(keys.nodes().starts_with(&keys.all()));
    assert!(keys.rooms().starts_with(&keys.all()));
    // A key that parses is exactly the key built from what it names.
    match keys.parse(key) {
        Some(Key::Node(n)) => {
            assert_eq!(
                keys.node(n),
                key,
                "node key {key:?} under {prefix:?} is not canonical"
            );
        }
        Some(Key::Room(id)) => {
            assert_eq!(
                keys.room(&id),
                key,
                "room key {key:?} under {prefix:?} is not canonical"
            );
        }
        Some(Key::Owned(n, id)) => {
            assert_eq!(
                keys.owned(n, &id),
                key,
                "index key {key:?} under {prefix:?} is not canonical"
            );
        }
        None => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text: &str = &text;

    let default_instance = InstanceId::new(1).unwrap();
    let default_room: RoomId = "r".parse().unwrap();
    let mut last_instance = default_instance;
    let mut last_room = default_room.clone();

    for (n, s) in std::iter::once(text).chain(text.lines()).enumerate() {
        room_path(s);
        if let Some(i) = instance(s) {
            last_instance = i;
        }
        if let Some(r) = room(s, n == 0) {
            last_room = r;
        }
        // Each segment too: the parts a path is split into.
        for seg in s.split('/') {
            if let Some(i) = instance(seg) {
                last_instance = i;
            }
            if let Some(r) = room(seg, false) {
                last_room = r;
            }
        }
    }

    if let [a, b, ..] = data {
        let n = u16::from_le_bytes([*a, *b]);
        match InstanceId::new(n) {
            Some(i) => {
                assert_eq!(instance(&i.to_string()), Some(i));
                formatted_round_trips(i, &last_room);
            }
            None => assert!(n == 0 || n > proto::id::MAX_INSTANCE),
        }
    }
    formatted_round_trips(last_instance, &last_room);

    let (prefix, key) = text.split_once('\n').unwrap_or((text, ""));
    keys(prefix, key, last_instance, &last_room);
    keys(prefix, text, last_instance, &last_room);
    keys(proto::keys::DEFAULT_PREFIX, key, last_instance, &last_room);
});
