//! URLs from pages and users against the address policy: never a panic, and
//! nothing but http(s)/ws(s) is ever sent to resolution.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_core::netpolicy::{NetPolicy, Verdict};

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let p = NetPolicy::default();
    if let Verdict::Resolve { host, .. } = p.check_url(url) {
        let scheme = url::Url::parse(url).unwrap().scheme().to_string();
        assert!(["http", "https", "ws", "wss"].contains(&scheme.as_str()));
        assert!(!host.is_empty());
    }
});
