//! Frame bytes from the socket through the checks, decoders and letterbox:
//! at a fixed output size (the general path), and at the frame's own size
//! (a 4:2:0 JPEG then goes through libjpeg-turbo straight to I420).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tapedeck_media::picture::{FrameLimits, Picture, check};

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits { max_bytes: 1 << 20, max_width: 1024, max_height: 1024 };
    let mut p = Picture::new(64, 48, limits);
    if let Ok(out) = p.convert(data) {
        assert_eq!(out.len(), 64 * 48 * 3 / 2);
    }
    if let Ok((_, w, h)) = check(data, &limits)
        && w % 2 == 0
        && h % 2 == 0
        && w * h <= 256 * 256
    {
        let mut own = Picture::new(w, h, limits);
        if let Ok(out) = own.convert(data) {
            assert_eq!(out.len(), (w * h * 3 / 2) as usize);
            own.recycle(out);
            let _ = own.convert(data);
        }
    }
});
