//! The call page's socket: a message as sent (JSON with a `type`), and the
//! SDP answer in an `answer` message. Neither may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_core::room::{CallMessage, parse_call_message};

fuzz_target!(|data: &[u8]| {
    if let Ok(CallMessage::Answer { sdp }) = parse_call_message(data) {
        let _ = tapedeck_media::rtc::parse_answer(&sdp);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tapedeck_media::rtc::parse_answer(text);
    }
});
