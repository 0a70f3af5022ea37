//! Searching the list (`GET /v1/recordings?q=`): what a search is, and
//! whether a recording matches it. The server reads pages of the list and
//! keeps the matches (`library.rs`). And filtering it by the recordings'
//! own metadata (`?metadata.lead=42`), which the database does.

use crate::recording::Recording;
use crate::request::RequestError;

/// A list search: 1-100 characters, matched without case.
pub fn parse_search(q: &str) -> Result<String, RequestError> {
    let q = q.trim();
    if q.is_empty() || q.chars().count() > 100 {
        return Err(RequestError::Shape("q: must be 1 to 100 characters".into()));
    }
    Ok(q.to_lowercase())
}

/// One `metadata.KEY=VALUE` filter of the list: the recordings whose
/// metadata's top-level `key` is `value` (a string equal to it, or a
/// number or boolean written so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataFilter {
    /// 1-64 of `A-Z a-z 0-9 _ -`.
    pub key: String,
    /// 1-200 characters.
    pub value: String,
}

/// Filters a list takes at most.
pub const MAX_METADATA_FILTERS: usize = 5;

/// A `metadata.KEY` query parameter (`param`, with its prefix) and its value.
pub fn parse_metadata_filter(param: &str, value: &str) -> Result<MetadataFilter, RequestError> {
    let key = param.strip_prefix("metadata.").unwrap_or(param);
    let key_ok = (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !key_ok {
        return Err(RequestError::Shape(format!(
            "{param}: a metadata key is 1 to 64 letters, digits, `_` or `-`"
        )));
    }
    if value.is_empty() || value.chars().count() > 200 {
        return Err(RequestError::Shape(format!(
            "{param}: the value must be 1 to 200 characters"
        )));
    }
    Ok(MetadataFilter {
        key: key.into(),
        value: value.into(),
    })
}

impl MetadataFilter {
    /// Whether `r` passes: what the database's query decides, for
    /// tests and for lists filtered in memory.
    pub fn matches(&self, r: &Recording) -> bool {
        match r.metadata.get(&self.key) {
            Some(serde_json::Value::String(s)) => *s == self.value,
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                serde_json::to_string(v).is_ok_and(|text| text == self.value)
            }
            _ => false,
        }
    }
}

/// Whether search `q` (from [`parse_search`]) finds `r`: in its title, its
/// kind (as the API and the page name it), or its metadata's keys and values.
pub fn matches(r: &Recording, q: &str) -> bool {
    fn values(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::String(s) => out.push_str(s),
            serde_json::Value::Array(a) => a.iter().for_each(|x| values(x, out)),
            serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
                out.push_str(k);
                out.push('\n');
                values(x, out);
            }),
            other => out.push_str(&other.to_string()),
        }
        out.push('\n');
    }
    let kind = r.source.kind();
    let mut text = format!(
        "{}\n{}\n{}\n",
        r.title.as_deref().unwrap_or(""),
        kind.as_str(),
        kind.label()
    );
    values(&r.metadata, &mut text);
    text.to_lowercase().contains(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_finds_the_title_the_kind_and_the_metadata() {
        let mut r = crate::lifecycle::tests::rec();
        r.title = Some("Weekly Standup".into());
        r.metadata = serde_json::json!({"customer": "Acme", "tags": ["demo", 42]});
        for q in [
            "standup",
            "weekly st",
            "frames",
            "live camera",
            "acme",
            "customer",
            "demo",
            "42",
        ] {
            assert!(matches(&r, q), "{q}");
        }
        for q in ["monthly", "web page", "ann", "pending"] {
            assert!(!matches(&r, q), "{q}");
        }
    }

    #[test]
    fn a_metadata_filter_matches_strings_numbers_and_booleans_at_the_top() {
        let mut r = crate::lifecycle::tests::rec();
        r.metadata = serde_json::json!({"lead": 42, "demo": "Acme", "won": true,
            "deep": {"lead": "7"}, "tags": ["a"]});
        let f = |k: &str, v: &str| parse_metadata_filter(&format!("metadata.{k}"), v).unwrap();
        for (k, v) in [("lead", "42"), ("demo", "Acme"), ("won", "true")] {
            assert!(f(k, v).matches(&r), "{k}={v}");
        }
        for (k, v) in [
            ("lead", "4"),
            ("demo", "acme"),
            ("won", "1"),
            ("deep", "7"),
            ("tags", "a"),
            ("missing", "x"),
        ] {
            assert!(!f(k, v).matches(&r), "{k}={v}");
        }
        for (k, v) in [
            ("", "1"),
            ("a.b", "1"),
            ("a b", "1"),
            ("k", ""),
            ("k", &"x".repeat(201)),
        ] {
            assert!(
                parse_metadata_filter(&format!("metadata.{k}"), v).is_err(),
                "{k}"
            );
        }
        assert!(parse_metadata_filter(&format!("metadata.{}", "k".repeat(65)), "1").is_err());
    }

    #[test]
    fn a_search_is_one_to_a_hundred_characters() {
        assert_eq!(parse_search(" Demo ").unwrap(), "demo");
        assert!(parse_search("  ").is_err());
        assert!(parse_search(&"x".repeat(101)).is_err());
    }
}
