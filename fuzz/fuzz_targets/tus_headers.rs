//! The tus headers a client sends: byte counts, the checksum and
//! `Upload-Metadata`. None may panic; metadata that parses writes back to
//! the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_core::upload;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = upload::parse_count("Upload-Offset", s);
    let _ = upload::parse_defer_length(s);
    let _ = upload::check_resumable(Some(s));
    if let Ok((algo, digest)) = upload::parse_checksum(s) {
        assert_eq!(digest.len(), algo.digest_len());
    }
    if let Ok(m) = upload::parse_metadata(s) {
        assert_eq!(upload::parse_metadata(&upload::format_metadata(&m)), Ok(m));
    }
});
