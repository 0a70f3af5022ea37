//! Files the passthrough sink was writing, cut or damaged in any way:
//! scanning them for recovery returns an error or what is intact, never
//! panics, never claims more than the bytes hold.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_units, good_end)) = tapedeck_media::sink::passthrough::scan_bytes(data) {
        assert!(good_end <= data.len() as u64);
    }
});
