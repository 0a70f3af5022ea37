//! Spool files damaged in any way: read what is intact, never panic; web
//! frame records in it (overlay + page) are replayed or refused, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = b"TDSPOOL1".to_vec();
    bytes.extend_from_slice(data);
    if let Ok(r) = tapedeck_media::spool::SpoolReader::new(&bytes[..]) {
        let mut replay = tapedeck_media::web::spooled::Replay::default();
        for rec in r {
            assert!(rec.payload.len() <= tapedeck_media::spool::MAX_RECORD as usize);
            let _ = replay.picture(&rec.payload);
        }
    }
    // A bare web record, as the compositor writes it.
    let mut rec = b"TDWB".to_vec();
    rec.extend_from_slice(data);
    let _ = tapedeck_media::web::spooled::Replay::default().picture(&rec);
});
