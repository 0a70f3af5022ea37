//! An uploaded WebM read by the fix-up's demuxer: its tracks, then every
//! block to the end. Nothing may panic or hold more than one block,
//! whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_media::fixup::Demuxer;

fuzz_target!(|data: &[u8]| {
    let Ok(mut d) = Demuxer::open(data) else {
        return;
    };
    let tracks = d.tracks().len();
    while let Ok(Some(b)) = d.next_block() {
        assert!(b.track < tracks);
        assert!(b.pts_us >= 0);
    }
});
