//! What a browser sends to sign in: the body of `POST /v1/session` and its
//! `Cookie` header. Neither may panic; a cookie found is part of the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_core::signin;

fuzz_target!(|data: &[u8]| {
    let _ = signin::parse_sign_in(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(v) = signin::cookie([s], "tapedeck_session") {
            assert!(s.contains(v));
        }
    }
});
