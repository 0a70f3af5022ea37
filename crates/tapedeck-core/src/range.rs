//! HTTP `Range` headers (outside input), for media downloads.

use std::ops::Range;

/// The header is malformed or asks for bytes the object does not have (416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses a single-range `Range` header against an object of `total` bytes.
/// `Ok(None)`: no header (whole object); `Err`: unsatisfiable or malformed (416).
pub fn parse_range(h: Option<&str>, total: u64) -> Result<Option<Range<u64>>, Unsatisfiable> {
    let Some(h) = h else { return Ok(None) };
    let spec = h.trim().strip_prefix("bytes=").ok_or(Unsatisfiable)?;
    if spec.contains(',') {
        return Err(Unsatisfiable);
    }
    let (a, b) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| Unsatisfiable)?;
        if n == 0 {
            return Err(Unsatisfiable);
        }
        total.saturating_sub(n)..total
    } else {
        let start: u64 = a.parse().map_err(|_| Unsatisfiable)?;
        let end = if b.is_empty() {
            total
        } else {
            b.parse::<u64>()
                .map_err(|_| Unsatisfiable)?
                .saturating_add(1)
                .min(total)
        };
        start..end
    };
    if r.start >= r.end || r.start >= total {
        return Err(Unsatisfiable);
    }
    Ok(Some(r))
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
        for bad in [
            "bytes=100-",
            "bytes=5-1",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=-0",
        ] {
            assert_eq!(parse_range(Some(bad), 100), Err(Unsatisfiable), "{bad}");
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
