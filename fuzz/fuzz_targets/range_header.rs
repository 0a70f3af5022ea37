//! HTTP Range headers: accepted ranges lie inside the object.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, u64)| {
    let (h, total) = input;
    if let Ok(Some(r)) = tapedeck_core::range::parse_range(Some(h), total) {
        assert!(r.start < r.end && r.end <= total);
    }
});
