//! Times in the API: RFC 3339 (UTC, milliseconds) strings for the unix
//! milliseconds the types hold, as serde `with` modules.

/// RFC 3339 (UTC, milliseconds) for unix-millisecond timestamps.
pub mod time_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::{Duration, UNIX_EPOCH};

    /// Formats unix milliseconds as RFC 3339.
    pub fn format(ms: i64) -> String {
        let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
        humantime::format_rfc3339_millis(t).to_string()
    }
    /// Parses RFC 3339 into unix milliseconds.
    pub fn parse(s: &str) -> Option<i64> {
        let t = humantime::parse_rfc3339_weak(s).ok()?;
        Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64)
    }
    pub(crate) fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*ms))
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
    }
}

/// Optional variant of [`time_ms`].
pub mod opt_time_ms {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_str(&super::time_ms::format(*ms)),
            None => s.serialize_none(),
        }
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| {
            super::time_ms::parse(&s)
                .ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
        })
        .transpose()
    }
}
