//! Spool files damaged in any way: read what is intact, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = b"TDSPOOL1".to_vec();
    bytes.extend_from_slice(data);
    if let Ok(r) = tapedeck_media::spool::SpoolReader::new(&bytes[..]) {
        for rec in r {
            assert!(rec.payload.len() <= tapedeck_media::spool::MAX_RECORD as usize);
        }
    }
});
