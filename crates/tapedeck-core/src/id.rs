//! Recording identifiers: `rec_` followed by a ULID (sortable by creation time).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The id of one recording, `rec_<ulid>`; safe to use in paths and object keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordingId(ulid::Ulid);

/// The string was not a recording id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a recording id (expected rec_ followed by 26 base32 characters)")]
pub struct InvalidId(pub String);

impl crate::ErrorCode for InvalidId {
    fn code(&self) -> &'static str {
        "invalid_id"
    }
    fn status(&self) -> u16 {
        400
    }
}

impl RecordingId {
    /// A new id for a recording created at `unix_ms`, with `random` bits.
    pub fn from_parts(unix_ms: u64, random: u128) -> Self {
        Self(ulid::Ulid::from_parts(unix_ms, random))
    }
}

impl fmt::Display for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rec_{}", self.0.to_string().to_ascii_lowercase())
    }
}

/// The spelling of every recording id: `rec_` and a ULID in lower-case
/// Crockford base32 (no i, l, o, u; a first digit of at most 7).
pub const ID_PATTERN: &str = "^rec_[0-7][0-9a-hjkmnp-tv-z]{25}$";

impl FromStr for RecordingId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s
            .strip_prefix("rec_")
            .ok_or_else(|| InvalidId(truncate(s)))?;
        if body.len() != 26 {
            return Err(InvalidId(truncate(s)));
        }
        // Only the canonical spelling (what Display writes, [`ID_PATTERN`]):
        // the decoder also takes upper case, and a first digit over 7 loses
        // bits silently.
        ulid::Ulid::from_string(body)
            .ok()
            .map(Self)
            .filter(|id| id.to_string() == s)
            .ok_or_else(|| InvalidId(truncate(s)))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

impl Serialize for RecordingId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RecordingId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

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
