//! Searching the list (`GET /v1/recordings?q=`): what a search is, and
//! whether a recording matches it. The server reads pages of the list and
//! keeps the matches (`library.rs`).

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
    fn a_search_is_one_to_a_hundred_characters() {
        assert_eq!(parse_search(" Demo ").unwrap(), "demo");
        assert!(parse_search("  ").is_err());
        assert!(parse_search(&"x".repeat(101)).is_err());
    }
}
