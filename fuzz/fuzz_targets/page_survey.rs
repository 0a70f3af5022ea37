//! A page's survey (it comes from the page, so from outside) turned into
//! tours and templates: never a panic, always a valid script.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_core::script::Script;
use tapedeck_core::tour::{self, Survey, Template};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = serde_json::from_slice::<Survey>(data) else {
        return;
    };
    for script in [
        tour::auto(&s, 20),
        tour::template(Template::HeroShowcase, &s),
        tour::template(Template::FeaturesTour, &s),
        tour::template(Template::FullPageScroll, &s),
    ] {
        let v = serde_json::to_value(&script).unwrap();
        Script::from_value(&v).unwrap();
    }
});
