//! A participant's depacketized video frame, read for what its track file's
//! header needs (size, avcC, av1C) and, for H.264, turned into
//! length-prefixed units. None of it may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_media::sink::passthrough::Codec;
use tapedeck_media::video_setup;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let codec = [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1][usize::from(selector % 4)];
    if let Some(s) = video_setup::setup(codec, rest) {
        assert!(s.width > 0 && s.height > 0);
    }
    let avc = video_setup::annexb_to_avc(rest);
    assert!(avc.len() <= rest.len() + 4 * rest.len().div_ceil(3));
});
