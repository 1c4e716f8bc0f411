//! Identifiers: instance ids (`i1`..`i9999`) and room ids (1–64 of
//! `[A-Za-z0-9_-]`). Both parse from strings and refuse anything else with an
//! error that names the rule, so a 400 can tell the user exactly what to fix.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;

/// Largest instance number (`i9999`).
pub const MAX_INSTANCE: u16 = 9999;
/// Longest room id, in characters.
pub const MAX_ROOM_ID_LEN: usize = 64;

/// Why an id was refused. The `Display` text is the rule, shown to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Instance ids are `i` followed by 1..=9999 without leading zeros.
    #[error(
        "invalid instance id {0:?}: must be \"i\" followed by a number 1..=9999 without leading zeros (e.g. i1, i12)"
    )]
    Instance(String),
    /// Room ids are 1 to 64 characters from `[A-Za-z0-9_-]`.
    #[error("invalid room id {0:?}: must be 1 to 64 characters from [A-Za-z0-9_-]")]
    Room(String),
}

/// A room node's identity, fixed by configuration (`--id`), never by address:
/// placement hashes it, so a node restarted elsewhere keeps its rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(u16);

impl InstanceId {
    /// The instance with number `n`, if `n` is in 1..=9999.
    pub fn new(n: u16) -> Option<Self> {
        (1..=MAX_INSTANCE).contains(&n).then_some(Self(n))
    }

    /// The number N of `iN`.
    pub fn number(self) -> u16 {
        self.0
    }
}

impl FromStr for InstanceId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IdError::Instance(s.to_owned());
        let digits = s.strip_prefix('i').ok_or_else(err)?;
        if digits.is_empty()
            || digits.len() > 4
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        digits.parse().ok().and_then(Self::new).ok_or_else(err)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

/// A room's id: safe in a URL path segment and an etcd key as it is.
///
/// Cheap to clone, so records holding one are too (the router's cached room
/// lookup hands out a copy of the record every time): a [`SmolStr`] keeps
/// ids of up to 23 bytes inline, with no allocation, and shares one heap
/// copy of longer ones. Equality, order and hash are those of the text
/// (placement hashes room ids, so the hash must stay the text's).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(SmolStr);

impl RoomId {
    /// Checks the rule without allocating.
    pub fn is_valid(s: &str) -> bool {
        (1..=MAX_ROOM_ID_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RoomId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Self::is_valid(s) {
            Ok(Self(SmolStr::new(s)))
        } else {
            Err(IdError::Room(s.chars().take(80).collect()))
        }
    }
}

impl TryFrom<String> for RoomId {
    type Error = IdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if Self::is_valid(&s) {
            Ok(Self(SmolStr::new(&s)))
        } else {
            Err(IdError::Room(s.chars().take(80).collect()))
        }
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for RoomId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

macro_rules! serde_via_str {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_via_str!(InstanceId);
serde_via_str!(RoomId);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::hash::{Hash, Hasher};

    #[test]
    fn instance_ids_follow_the_rule() {
        for ok in ["i1", "i12", "i9999", "i100"] {
            assert_eq!(ok.parse::<InstanceId>().unwrap().to_string(), ok);
        }
        for bad in [
            "", "i", "i0", "i01", "i10000", "1", "I1", "i-1", "i+1", "i1a", " i1", "i٣",
        ] {
            assert!(bad.parse::<InstanceId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn room_ids_follow_the_rule() {
        let longest = "a".repeat(64);
        for ok in ["a", "A-z_09", longest.as_str()] {
            assert_eq!(ok.parse::<RoomId>().unwrap().as_str(), ok);
        }
        let too_long = "a".repeat(65);
        for bad in ["", "a b", "a/b", "é", "a.b", "a%20", too_long.as_str()] {
            let err = bad.parse::<RoomId>().unwrap_err();
            assert!(err.to_string().contains("[A-Za-z0-9_-]"), "{err}");
        }
    }

    #[test]
    fn ids_serialize_as_strings() {
        let id: InstanceId = serde_json::from_str("\"i7\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"i7\"");
        assert!(serde_json::from_str::<RoomId>("\"a b\"").is_err());
    }

    /// The hash `str` gives `s`, with std's hasher and with placement's.
    fn str_hashes(s: &str) -> (u64, u64) {
        let mut std = std::hash::DefaultHasher::new();
        s.hash(&mut std);
        let mut sip = siphasher::sip::SipHasher13::new_with_keys(1, 2);
        s.hash(&mut sip);
        (std.finish(), sip.finish())
    }

    fn id_hashes(id: &RoomId) -> (u64, u64) {
        let mut std = std::hash::DefaultHasher::new();
        id.hash(&mut std);
        let mut sip = siphasher::sip::SipHasher13::new_with_keys(1, 2);
        id.hash(&mut sip);
        (std.finish(), sip.finish())
    }

    #[test]
    fn room_ids_behave_as_their_text_inline_or_not() {
        // Either side of the inline limit, and the longest.
        let texts = [
            "a".to_owned(),
            "b".repeat(23),
            "c".repeat(24),
            "d".repeat(MAX_ROOM_ID_LEN),
        ];
        for t in &texts {
            let id: RoomId = t.parse().unwrap();
            assert_eq!(id.as_str(), t);
            assert_eq!(id.as_ref(), t);
            assert_eq!(id.to_string(), *t);
            assert_eq!(format!("{id:?}"), format!("RoomId({t:?})"));
            assert_eq!(id_hashes(&id), str_hashes(t));
            assert_eq!(serde_json::to_string(&id).unwrap(), format!("{t:?}"));
            let back: RoomId = serde_json::from_str(&format!("{t:?}")).unwrap();
            assert_eq!(back, id);
            assert_eq!(RoomId::try_from(t.clone()).unwrap(), id);
            assert_eq!(id.clone(), id);
        }
        assert!(RoomId::try_from("a/b".to_owned()).is_err());
        assert!(RoomId::try_from("e".repeat(MAX_ROOM_ID_LEN + 1)).is_err());
    }

    proptest! {
        #[test]
        fn room_ids_compare_and_hash_as_their_text(
            a in "[a-c_-]{1,30}",
            b in "[a-c_-]{1,30}",
        ) {
            let (x, y): (RoomId, RoomId) = (a.parse().unwrap(), b.parse().unwrap());
            prop_assert_eq!(x == y, a == b);
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            prop_assert_eq!(x.partial_cmp(&y), a.partial_cmp(&b));
            prop_assert_eq!(id_hashes(&x), str_hashes(&a));
        }

        #[test]
        fn instance_id_round_trips(n in 1u16..=9999) {
            let id = InstanceId::new(n).unwrap();
            prop_assert_eq!(id.to_string().parse::<InstanceId>().unwrap(), id);
        }

        #[test]
        fn room_id_validation_matches_regex(s in "\\PC{0,70}") {
            let expected = !s.is_empty() && s.len() <= 64
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            prop_assert_eq!(s.parse::<RoomId>().is_ok(), expected);
        }
    }
}
