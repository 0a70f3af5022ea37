//! The frame timeline under random timestamps, wall clocks, pauses and
//! limits: no push returns more than a few steps (holds are counts, not
//! lists), and the output never passes the limit. Run under fuzz.sh's
//! memory limit, a timeline that buffered held ticks would be caught.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tapedeck_core::timeline::{Timeline, TimelineLimits};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let fps = u32::from(data[0] % 120) + 1;
    let cfr = data[1] & 1 == 1;
    let max_s = i64::from(u16::from_le_bytes([data[2], data[3]])) + 1;
    let mut t = Timeline::new(fps, cfr).with_limits(TimelineLimits {
        max_out_us: max_s * 1_000_000,
        max_ahead_us: 60_000_000,
    });
    let mut wall = 0i64;
    for (seq, chunk) in data[4..].chunks(9).enumerate() {
        if chunk.len() < 9 {
            break;
        }
        let src = i64::from_le_bytes(chunk[1..9].try_into().unwrap());
        match chunk[0] % 8 {
            0 => t.pause(),
            1 => t.resume(),
            2 => t.rebase(),
            _ => {
                wall = wall.saturating_add(i64::from(chunk[0]) * 10_000);
                let p = t.push_at(seq as u64, src, Some(wall));
                assert!(p.steps.len() <= 3, "{:?}", p.steps);
            }
        }
    }
    let end = t.end();
    assert!(end.len() <= 3);
    // The last frame may last up to 1 s past its start, which is before the limit.
    assert!(t.duration_us() <= (max_s + 1) * 1_000_000);
    if cfr {
        assert!(t.frames_out() as i64 <= (max_s + 1) * i64::from(fps));
    }
});
