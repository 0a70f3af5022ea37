//! Text messages (controls and images as data URLs) and image sniffing on the frames socket.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tapedeck_core::frame_message::{TextMessage, parse_control, parse_text, sniff_image};

fuzz_target!(|data: &[u8]| {
    let _ = sniff_image(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(m) = parse_control(s) {
            assert!(m.pts_ms.is_finite() && m.pts_ms >= 0.0);
        }
        match parse_text(s, 4096) {
            Ok(TextMessage::Control(c)) => assert!(c.pts_ms.is_finite() && c.pts_ms >= 0.0),
            Ok(TextMessage::Image { pts_ms, bytes }) => {
                assert!(bytes.len() <= 4096);
                assert!(pts_ms.is_none_or(|p| p.is_finite() && p >= 0.0));
            }
            Err(_) => {}
        }
    }
});
