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

impl FromStr for RecordingId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s
            .strip_prefix("rec_")
            .ok_or_else(|| InvalidId(truncate(s)))?;
        if body.len() != 26 {
            return Err(InvalidId(truncate(s)));
        }
        ulid::Ulid::from_string(&body.to_ascii_uppercase())
            .map(Self)
            .map_err(|_| InvalidId(truncate(s)))
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
    }
}
