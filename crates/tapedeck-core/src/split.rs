//! A deterministic web recording cut into ranges of output frames, each
//! rendered by its own browser at once: every browser plays the page and
//! its script in virtual time from the start, renders the frames before its
//! range without capturing them, then captures its range. The ranges'
//! files, each beginning with a keyframe, are joined without re-encoding.
//!
//! A range's browser also takes the picture of the next range's first
//! frame (the probe): two renders of that frame, one by each browser, are
//! the same picture when the page depends on virtual time only, and differ
//! when it depends on more (the network, `Math.random`), where a join would
//! show. [`plan`] splits only a recording given as a script of steps, and
//! only after its last `goto`.
//!
//! A range is what a job would carry between nodes: the page and script
//! (the recording's source), its first frame and its end.

use serde::{Deserialize, Serialize};

use crate::script::{Script, Step};
use crate::web::{Split, WebMode, WebSource};

/// Output frames `start..end` (`end` none: to the end of the script).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FrameRange {
    /// The first frame captured.
    pub start: u64,
    /// The first frame not captured; none: until the script ends.
    pub end: Option<u64>,
}

impl FrameRange {
    /// Every frame.
    pub const ALL: FrameRange = FrameRange {
        start: 0,
        end: None,
    };

    /// Whether frame `k` is captured.
    pub fn captures(&self, k: u64) -> bool {
        k >= self.start && self.end.is_none_or(|e| k < e)
    }

    /// Whether frame `k` is past the range (the browser may stop).
    pub fn is_past(&self, k: u64) -> bool {
        self.end.is_some_and(|e| k >= e)
    }

    /// How many frames it captures of a recording of `total` frames.
    pub fn len_of(&self, total: u64) -> u64 {
        self.end
            .unwrap_or(total)
            .min(total)
            .saturating_sub(self.start)
    }
}

/// Cuts a recording of about `planned` frames into `browsers` ranges (at
/// most), none shorter than `min_frames`, each starting on a multiple of
/// `align` (the encoder's keyframe interval, so that every range's file
/// begins where the one-file encode would put a keyframe too). The last
/// range is open: a script that runs longer than planned (an element
/// scrolled into view only if needed) still ends in it.
///
/// A browser that renders range `i` plays the frames before it without
/// capturing them (cheaper than capturing, not free): later ranges are
/// made shorter so that every browser finishes at about the same time.
/// `preroll_cost` is what one frame played before the range costs against
/// one captured (0.0 to 1.0).
pub fn split(
    planned: u64,
    browsers: u32,
    min_frames: u64,
    align: u64,
    preroll_cost: f64,
) -> Vec<FrameRange> {
    let align = align.max(1);
    let n = u64::from(browsers.max(1))
        .min(planned / min_frames.max(1))
        .max(1);
    if n == 1 {
        return vec![FrameRange::ALL];
    }
    // Browser i renders its range (length L_i) after playing the s_i frames
    // before it: time ~ c * s_i + L_i. Equal times: L_i = T - c * s_i,
    // s_{i+1} = s_i + L_i, so s_{i+1} = T + (1 - c) s_i from s_0 = 0; T is
    // chosen so that s_n = planned.
    let c = preroll_cost.clamp(0.0, 1.0);
    let r = 1.0 - c;
    // s_n = T * (1 + r + ... + r^(n-1)).
    let sum: f64 = (0..n).map(|i| r.powi(i as i32)).sum();
    let t = planned as f64 / sum;
    let mut starts = vec![0u64];
    let mut s = 0.0f64;
    for _ in 1..n {
        s = t + r * s;
        let aligned = ((s / align as f64).round() as u64) * align;
        let prev = *starts.last().unwrap_or(&0);
        if aligned >= prev + min_frames && aligned + min_frames <= planned {
            starts.push(aligned);
        }
    }
    let mut out: Vec<FrameRange> = starts
        .windows(2)
        .map(|w| FrameRange {
            start: w[0],
            end: Some(w[1]),
        })
        .collect();
    out.push(FrameRange {
        start: *starts.last().unwrap_or(&0),
        end: None,
    });
    out
}

/// How a recording may be split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitLimits {
    /// Browsers at most.
    pub browsers: u32,
    /// No range shorter than this many seconds.
    pub min_range_s: u32,
    /// Ranges start on multiples of this many frames (the keyframe interval).
    pub align: u64,
    /// What a frame played before a range costs against one captured.
    pub preroll_cost: f64,
    /// Frames at most (the recording's max duration); a script that
    /// reaches it is not split.
    pub max_frames: u64,
}

/// The ranges `src` is rendered in at `fps` frames per second: one
/// ([`FrameRange::ALL`]) unless the source is deterministic, allows it
/// (`split: auto`) and is a script of steps; no range starts before a
/// second after the script's last `goto` (its page loads over the
/// network, in wall time).
pub fn plan(src: &WebSource, fps: u32, limits: SplitLimits) -> Vec<FrameRange> {
    let Some(script) = src.script.as_ref() else {
        return vec![FrameRange::ALL];
    };
    if src.mode != WebMode::Deterministic || src.split != Split::Auto || limits.browsers < 2 {
        return vec![FrameRange::ALL];
    }
    let fps = u64::from(fps.max(1));
    let planned = script.nominal_ms() * fps / 1000;
    if planned >= limits.max_frames {
        // The max duration ends it, not the script: one browser, whose
        // recording stops there as any other.
        return vec![FrameRange::ALL];
    }
    let safe_from = match script
        .0
        .iter()
        .rposition(|s| matches!(s, Step::Goto { .. }))
    {
        Some(i) => Script(script.0[..=i].to_vec()).nominal_ms() * fps / 1000 + fps,
        None => 0,
    };
    let min = u64::from(limits.min_range_s) * fps;
    let mut ranges = split(
        planned,
        limits.browsers,
        min,
        limits.align,
        limits.preroll_cost,
    );
    // A range that would start too early joins the one before.
    while ranges.len() > 1 && ranges[1].start < safe_from {
        let next = ranges.remove(1);
        ranges[0].end = next.end;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_browser_or_a_short_recording_is_one_range() {
        assert_eq!(split(1800, 1, 60, 120, 0.3), vec![FrameRange::ALL]);
        assert_eq!(split(100, 3, 60, 120, 0.3), vec![FrameRange::ALL]);
    }

    #[test]
    fn ranges_cover_every_frame_once_on_keyframe_boundaries() {
        for browsers in 2..=4 {
            for planned in [240u64, 1800, 3601] {
                let r = split(planned, browsers, 60, 120, 0.3);
                assert!(r.len() as u32 <= browsers, "{r:?}");
                assert_eq!(r[0].start, 0);
                assert_eq!(r.last().unwrap().end, None);
                for w in r.windows(2) {
                    assert_eq!(w[0].end, Some(w[1].start), "{r:?}");
                    assert_eq!(w[1].start % 120, 0, "{r:?}");
                    assert!(w[0].len_of(planned) >= 60, "{r:?}");
                }
                let covered: u64 = r.iter().map(|x| x.len_of(planned)).sum();
                assert_eq!(covered, planned, "{r:?}");
                for k in 0..planned {
                    assert_eq!(r.iter().filter(|x| x.captures(k)).count(), 1);
                }
            }
        }
    }

    #[test]
    fn later_ranges_are_shorter_by_what_playing_up_to_them_costs() {
        let r = split(1800, 2, 60, 30, 0.3);
        // T + 0.7 T = 1800: T = 1059 -> the first range ends at 1050.
        assert_eq!(r[0].end, Some(1050));
        // Free pre-roll: halves.
        let r = split(1800, 2, 60, 30, 0.0);
        assert_eq!(r[0].end, Some(900));
        // Both browsers finish together: c * s + L equal.
        let r = split(3000, 3, 60, 1, 0.25);
        let time = |x: &FrameRange| 0.25 * x.start as f64 + x.len_of(3000) as f64;
        let (a, b, c) = (time(&r[0]), time(&r[1]), time(&r[2]));
        assert!((a - b).abs() <= 2.0 && (b - c).abs() <= 2.0, "{r:?}");
    }

    fn web(script: serde_json::Value) -> WebSource {
        serde_json::from_value(serde_json::json!({"url": "https://example.org/", "script": script}))
            .unwrap()
    }

    const LIMITS: SplitLimits = SplitLimits {
        browsers: 3,
        min_range_s: 2,
        align: 30,
        preroll_cost: 0.1,
        max_frames: 3600 * 30,
    };

    #[test]
    fn a_script_is_split_after_its_last_goto_and_only_if_allowed() {
        let wait = |ms: u32| serde_json::json!({"type": "wait", "duration_ms": ms});
        let goto = serde_json::json!({"type": "goto", "url": "https://example.org/b"});
        let plain = web(serde_json::json!([wait(60_000)]));
        let r = plan(&plain, 30, LIMITS);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(r[0].start, 0);
        // After a goto at 40 s: no range starts before 41 s.
        let late = web(serde_json::json!([wait(40_000), goto, wait(20_000)]));
        let r = plan(&late, 30, LIMITS);
        assert!(r.len() >= 2 && r[1].start >= 41 * 30, "{r:?}");
        assert_eq!(r.iter().map(|x| x.len_of(1800)).sum::<u64>(), 1800);
        let mut off = plain.clone();
        off.split = Split::Off;
        assert_eq!(plan(&off, 30, LIMITS), vec![FrameRange::ALL]);
        let mut realtime = plain.clone();
        realtime.mode = WebMode::Realtime;
        assert_eq!(plan(&realtime, 30, LIMITS), vec![FrameRange::ALL]);
        let tour: WebSource = serde_json::from_value(
            serde_json::json!({"url": "https://example.org/", "auto": {"duration_s": 60}}),
        )
        .unwrap();
        assert_eq!(plan(&tour, 30, LIMITS), vec![FrameRange::ALL]);
        let one = SplitLimits {
            browsers: 1,
            ..LIMITS
        };
        assert_eq!(plan(&plain, 30, one), vec![FrameRange::ALL]);
        // A script as long as the max duration: the limit ends it, one browser.
        let capped = SplitLimits {
            max_frames: 1800,
            ..LIMITS
        };
        assert_eq!(plan(&plain, 30, capped), vec![FrameRange::ALL]);
    }
}
