//! Identifiers: `rec_` (recordings) and `room_` (rooms) followed by a ULID
//! (sortable by creation time).

use crate::codes::Code;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The string was not an id of the kind asked for.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{value}` is not a {kind} id (expected {prefix} followed by 26 lower-case base32 characters)"
)]
pub struct InvalidId {
    /// What was expected: `recording`, `room`.
    pub kind: &'static str,
    /// Its prefix.
    pub prefix: &'static str,
    /// What was given (at most 64 characters of it).
    pub value: String,
}

impl crate::ErrorCode for InvalidId {
    fn code(&self) -> Code {
        Code::InvalidId
    }
}

impl From<InvalidId> for crate::Problem {
    fn from(e: InvalidId) -> Self {
        crate::Problem::from_code(e)
    }
}

/// An id type: a prefix and a ULID in lower-case Crockford base32, sortable
/// by creation time and safe in paths and object keys. Only the canonical
/// spelling parses (what `Display` writes): the ULID decoder also takes
/// upper case, and a first digit over 7 loses bits silently.
macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal, $pattern:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(ulid::Ulid);

        #[doc = concat!("The spelling of every ", $kind, " id: `", $prefix, "` and a ULID in lower-case Crockford base32 (no i, l, o, u; a first digit of at most 7).")]
        pub const $pattern: &str = concat!("^", $prefix, "[0-7][0-9a-hjkmnp-tv-z]{25}$");

        impl $name {
            /// A new id for something created at `unix_ms`, with `random` bits.
            pub fn from_parts(unix_ms: u64, random: u128) -> Self {
                Self(ulid::Ulid::from_parts(unix_ms, random))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0.to_string().to_ascii_lowercase())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bad = || InvalidId {
                    kind: $kind,
                    prefix: $prefix,
                    value: s.chars().take(64).collect(),
                };
                let body = s.strip_prefix($prefix).ok_or_else(bad)?;
                if body.len() != 26 {
                    return Err(bad());
                }
                ulid::Ulid::from_string(body)
                    .ok()
                    .map(Self)
                    .filter(|id| id.to_string() == s)
                    .ok_or_else(bad)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// The id of one recording, `rec_<ulid>`.
    RecordingId,
    "rec_",
    "recording",
    ID_PATTERN
);

prefixed_id!(
    /// The id of one room, `room_<ulid>`.
    RoomId,
    "room_",
    "room",
    ROOM_ID_PATTERN
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let id = RecordingId::from_parts(1_700_000_000_000, 42);
        let s = id.to_string();
        assert!(s.starts_with("rec_") && s.len() == 30);
        assert_eq!(s.parse::<RecordingId>().unwrap(), id);
        for bad in [
            "",
            "rec_",
            "abc",
            "rec_../../etc/passwd",
            "rec_01ARZ3NDEKTSV4RRFFQ69G5FA!",
        ] {
            assert!(bad.parse::<RecordingId>().is_err(), "{bad}");
        }
        // Only the canonical spelling: not upper case, not a first digit
        // over 7 (which would decode to another id), not i/l/o/u.
        let upper = format!("rec_{}", s[4..].to_ascii_uppercase());
        assert!(upper.parse::<RecordingId>().is_err());
        let over = format!("rec_8{}", &s[5..]);
        assert!(over.parse::<RecordingId>().is_err());
        assert_eq!(ID_PATTERN, "^rec_[0-7][0-9a-hjkmnp-tv-z]{25}$");
        let ell = format!("rec_0{}l", &s[5..29]);
        assert!(ell.parse::<RecordingId>().is_err());
        // Rooms have their own prefix; one kind's id is not the other's.
        let room = RoomId::from_parts(1_700_000_000_000, 42);
        assert!(room.to_string().starts_with("room_"));
        assert_eq!(room.to_string().parse::<RoomId>().unwrap(), room);
        assert!(s.parse::<RoomId>().is_err());
        assert_eq!(ROOM_ID_PATTERN, "^room_[0-7][0-9a-hjkmnp-tv-z]{25}$");
    }

    proptest::proptest! {
        /// Every id the server makes has the documented spelling, and parses back.
        #[test]
        fn ids_match_the_documented_pattern(ms in 0u64..(1 << 48), r in proptest::num::u128::ANY) {
            let id = RecordingId::from_parts(ms, r);
            let s = id.to_string();
            let body = s.strip_prefix("rec_").unwrap();
            proptest::prop_assert_eq!(body.len(), 26);
            proptest::prop_assert!(body.starts_with(|c: char| ('0'..='7').contains(&c)));
            let alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
            proptest::prop_assert!(body.chars().all(|c| alphabet.contains(c)));
            proptest::prop_assert_eq!(s.parse::<RecordingId>().unwrap(), id);
        }
    }
}
