//! Frame bytes from the socket through the checks, decoder and letterbox.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tapedeck_media::picture::{FrameLimits, Picture};

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits { max_bytes: 1 << 20, max_width: 1024, max_height: 1024 };
    let mut p = Picture::new(64, 48, limits);
    if let Ok(out) = p.convert(data) {
        assert_eq!(out.len(), 64 * 48 * 3 / 2);
    }
});
