//! A recording's `outputs` (JSON from a create request, an upload's
//! metadata or `POST .../outputs`) and the stream URLs in them: never
//! panic; an accepted stream URL has an endpoint, a target and a redacted
//! form that hides its path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_core::netpolicy::NetPolicy;
use tapedeck_core::output;
use tapedeck_core::recording::SourceSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        if let Ok(s) = std::str::from_utf8(data) {
            let _ = output::endpoint(s);
            let _ = output::check_endpoint(&NetPolicy::default(), s);
            let _ = output::target(s, Some("203.0.113.5".parse().unwrap()));
        }
        return;
    };
    let frames = SourceSpec::Frames { input_fps: None };
    for format in [tapedeck_core::Format::Mp4, tapedeck_core::Format::Webm] {
        if let Ok(list) = output::parse_list(value.clone(), &frames, format) {
            assert!(list.len() <= output::MAX_OUTPUTS);
            for o in &list {
                if let Some(url) = o.stream_url() {
                    assert!(output::endpoint(url).is_some(), "{url}");
                    let r = output::redacted(url);
                    assert!(r.ends_with("/…"), "{r}");
                    let _ = output::check_endpoint(&NetPolicy::default(), url);
                    let _ = output::target(url, Some("203.0.113.5".parse().unwrap()));
                }
            }
        }
    }
    let _ = output::parse_one(value, None, &frames, &[]);
});
