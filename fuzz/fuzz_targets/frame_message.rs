//! Text control messages and image sniffing on the frames socket.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tapedeck_core::frame_message::sniff_image(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(m) = tapedeck_core::frame_message::parse_control(s) {
            assert!(m.pts_ms.is_finite() && m.pts_ms >= 0.0);
        }
    }
});
