//! Request heads the browser sends to the filtering proxy: never a panic; a
//! forwarded head is in origin form and closes the connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_media::web::proxy::{Target, parse_head};

fuzz_target!(|data: &[u8]| {
    if let Ok(Target::Forward { head, .. }) = parse_head(data) {
        let text = String::from_utf8(head).unwrap();
        let target = text.split(' ').nth(1).unwrap();
        assert!(target.starts_with('/'), "{text}");
        assert!(text.ends_with("Connection: close\r\n\r\n"));
    }
});
