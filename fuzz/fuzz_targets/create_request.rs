//! `POST /v1/recordings` bodies: never panic; accepted ones have valid settings.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = tapedeck_core::request::parse_create(data) {
        assert!(v.video.width % 2 == 0 && v.video.height % 2 == 0 && v.video.fps >= 1);
        assert!(v.metadata.is_object());
    }
});
