//! HTTP `Range` headers (outside input), for media downloads.

use std::ops::Range;

/// The range asks for bytes the object does not have (416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses a single-range `Range` header against an object of `total` bytes,
/// as RFC 9110 §14.2 says: `Ok(None)` is the whole object, for no header and
/// for one this server ignores (malformed, another unit, several ranges, a
/// last byte before the first); `Err` is a valid range that starts past the
/// end, or an empty suffix (416).
pub fn parse_range(h: Option<&str>, total: u64) -> Result<Option<Range<u64>>, Unsatisfiable> {
    let Some(spec) = h.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if a.is_empty() {
        // A suffix: the last `b` bytes.
        let Some(n) = digits(b).then(|| b.parse::<u64>().ok()).flatten() else {
            return Ok(None);
        };
        if n == 0 || total == 0 {
            return Err(Unsatisfiable);
        }
        return Ok(Some(total.saturating_sub(n)..total));
    }
    let Some(start) = digits(a).then(|| a.parse::<u64>().ok()).flatten() else {
        return Ok(None);
    };
    let end = if b.is_empty() {
        total
    } else {
        let Some(last) = digits(b).then(|| b.parse::<u64>().ok()).flatten() else {
            return Ok(None);
        };
        if last < start {
            return Ok(None);
        }
        last.saturating_add(1).min(total)
    };
    if start >= total {
        return Err(Unsatisfiable);
    }
    Ok(Some(start..end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some(0..10)));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some(90..100)));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some(90..100)));
        assert_eq!(parse_range(Some("bytes=95-200"), 100), Ok(Some(95..100)));
        // Beyond the end, or an empty suffix: 416.
        for bad in ["bytes=100-", "bytes=100-200", "bytes=-0"] {
            assert_eq!(parse_range(Some(bad), 100), Err(Unsatisfiable), "{bad}");
        }
        // Not a range this server serves: ignored, the whole file.
        for ignored in [
            "",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=+1-2",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse_range(Some(ignored), 100), Ok(None), "{ignored}");
        }
    }

    proptest! {
        #[test]
        fn range_never_panics_and_stays_inside(h in ".{0,40}", total in 0u64..10_000) {
            if let Ok(Some(r)) = parse_range(Some(&h), total) {
                prop_assert!(r.start < r.end && r.end <= total);
            }
        }
    }
}
