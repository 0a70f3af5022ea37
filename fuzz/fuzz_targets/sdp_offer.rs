//! WebRTC input: an SDP offer (what WHIP posts) answered as the server
//! answers it, and a depacketized frame read for its keyframe flag. Neither
//! may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use str0m::format::Codec;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let codec = [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1, Codec::Opus][usize::from(selector % 5)];
    let _ = tapedeck_media::rtc::is_keyframe(codec, rest);
    if let Ok(offer) = std::str::from_utf8(rest) {
        let _ = tapedeck_media::rtc::answer(
            offer,
            tapedeck_media::rtc::Endpoints {
                udp: "127.0.0.1:8700".parse().unwrap(),
                tcp: Some("127.0.0.1:8700".parse().unwrap()),
            },
            std::time::Instant::now(),
            if selector & 1 == 1 {
                tapedeck_media::rtc::Feedback::Reports
            } else {
                tapedeck_media::rtc::Feedback::None
            },
        );
    }
});
