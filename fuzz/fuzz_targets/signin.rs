//! What the web page sends beyond recordings: the body of `POST
//! /v1/session`, its `Cookie` header, a new title (`PATCH`), a list
//! search (`?q=`) and a metadata filter (`?metadata.KEY=VALUE`). None may
//! panic; a cookie found is part of the header; a title taken is 1-200
//! characters; a filter taken has a key of 1-64 safe characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_core::signin;

fuzz_target!(|data: &[u8]| {
    let _ = signin::parse_sign_in(data);
    if let Ok(t) = tapedeck_core::request::parse_rename(data) {
        assert!((1..=200).contains(&t.chars().count()));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = tapedeck_core::search::parse_search(s);
        let (param, value) = s.split_once('=').unwrap_or((s, ""));
        if let Ok(f) = tapedeck_core::search::parse_metadata_filter(param, value) {
            assert!((1..=64).contains(&f.key.len()));
            assert!(f.key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            assert!((1..=200).contains(&f.value.chars().count()));
        }
        if let Some(v) = signin::cookie([s], "tapedeck_session") {
            assert!(s.contains(v));
        }
    }
});
