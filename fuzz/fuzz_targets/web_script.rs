//! Scripts from users (JSON or YAML text), played by the planner against a
//! fake page: never a panic, and every frame in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_core::player::{Answer, Player, Rect, Tick};
use tapedeck_core::script::Script;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(script) = Script::parse_text(text) else {
        return;
    };
    let mut p = Player::new(script, 30, 1280, 720);
    let mut expect = 0;
    for _ in 0..2000 {
        match p.poll() {
            Tick::Done => break,
            Tick::Frame(f) => {
                assert_eq!(f.index, expect);
                expect += 1;
            }
            Tick::Need(_) => {
                let rect = Some(Rect { x: 10.0, y: 2000.0, w: 50.0, h: 20.0 });
                let a = if expect % 2 == 0 {
                    Answer::Inspected { rect, scroll_height: 5000.0, scroll_y: 0.0 }
                } else {
                    Answer::Navigated
                };
                let _ = p.answer(a);
            }
        }
    }
});
