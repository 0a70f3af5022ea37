//! Reads the clock barcode of `bench/pages/clock.html` back from a video, and
//! the smoothness numbers of `../shared/design/benchmarks.md` from it.
//!
//! The page draws 56 blocks across the top 3% of the frame: its rAF clock in
//! microseconds (32 bits), a frame counter (16 bits) and a check byte.

use std::path::Path;
use std::process::Command;

/// One decoded video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Page clock, microseconds (wrapping u32).
    pub clock_us: u32,
    /// Page frame counter.
    pub counter: u16,
}

/// The check byte: every byte of clock and counter xored with 0xA5.
pub fn check_byte(clock_us: u32, counter: u16) -> u32 {
    let c = clock_us ^ (clock_us >> 8) ^ (clock_us >> 16) ^ (clock_us >> 24);
    (c ^ u32::from(counter) ^ (u32::from(counter) >> 8) ^ 0xA5) & 0xff
}

/// Decodes one frame's strip: 56 blocks of 8x8 gray pixels side by side.
pub fn decode_strip(strip: &[u8]) -> Option<Mark> {
    if strip.len() < 56 * 8 * 8 {
        return None;
    }
    let row = 56 * 8;
    let mut bits = [0u8; 56];
    for (i, b) in bits.iter_mut().enumerate() {
        // Average the middle 4x4 pixels of the block.
        let mut sum = 0u32;
        for y in 2..6 {
            for x in 2..6 {
                sum += u32::from(strip[y * row + i * 8 + x]);
            }
        }
        *b = u8::from(sum / 16 < 128);
    }
    let take = |from: usize, n: usize| {
        bits[from..from + n]
            .iter()
            .fold(0u32, |a, b| (a << 1) | u32::from(*b))
    };
    let clock_us = take(0, 32);
    let counter = take(32, 16) as u16;
    let check = take(48, 8);
    (check_byte(clock_us, counter) == check).then_some(Mark { clock_us, counter })
}

/// Decodes every frame of `video`, resampled to `fps` as a viewer sees it.
pub fn decode_video(ffmpeg: &Path, video: &Path, fps: u32) -> std::io::Result<Vec<Option<Mark>>> {
    let out = Command::new(ffmpeg)
        .args(["-v", "error", "-i"])
        .arg(video)
        .args([
            "-vf",
            &format!("fps={fps},crop=iw:ih*0.03:0:0,scale=448:8:flags=area,format=gray"),
            "-f",
            "rawvideo",
            "-",
        ])
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).to_string(),
        ));
    }
    Ok(out.stdout.chunks_exact(448 * 8).map(decode_strip).collect())
}

/// Smoothness of a recording of the clock page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Smoothness {
    /// Video frames.
    pub frames: usize,
    /// Frames whose barcode did not decode.
    pub unreadable: usize,
    /// Distinct page frames per second of video.
    pub delivered_fps: f64,
    /// Frames repeating the previous page frame.
    pub holds: usize,
    /// Share of steps whose page-time advance is off the video's by more than half a frame.
    pub jerk: f64,
    /// Largest |page clock - video time| (both from the first frame), ms.
    pub max_clock_error_ms: f64,
}

/// Computes [`Smoothness`] from decoded marks at `fps`.
pub fn smoothness(marks: &[Option<Mark>], fps: u32) -> Smoothness {
    let frame_ms = 1000.0 / f64::from(fps);
    let good: Vec<(usize, Mark)> = marks
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.map(|m| (i, m)))
        .collect();
    let mut s = Smoothness {
        frames: marks.len(),
        unreadable: marks.len() - good.len(),
        ..Default::default()
    };
    if good.len() < 2 {
        return s;
    }
    let mut distinct = std::collections::HashSet::new();
    let mut steps = 0usize;
    let mut jerky = 0usize;
    let (i0, m0) = good[0];
    for w in good.windows(2) {
        let ((ia, a), (ib, b)) = (w[0], w[1]);
        distinct.insert(a.counter);
        if ib != ia + 1 {
            continue;
        }
        steps += 1;
        if b.counter == a.counter {
            s.holds += 1;
        }
        let page_ms = f64::from(b.clock_us.wrapping_sub(a.clock_us)) / 1000.0;
        if (page_ms - frame_ms).abs() > frame_ms / 2.0 {
            jerky += 1;
        }
    }
    distinct.insert(good[good.len() - 1].1.counter);
    for (i, m) in &good {
        let page = f64::from(m.clock_us.wrapping_sub(m0.clock_us)) / 1000.0;
        let video = (*i - i0) as f64 * frame_ms;
        s.max_clock_error_ms = s.max_clock_error_ms.max((page - video).abs());
    }
    s.delivered_fps = distinct.len() as f64 / (marks.len() as f64 / f64::from(fps));
    s.jerk = if steps > 0 {
        jerky as f64 / steps as f64
    } else {
        0.0
    };
    s
}

/// Draws the clock page's barcode of `clock_us` and `counter` across the
/// top 3% of a `width` x `height` RGB picture (what [`decode_video`]
/// reads): 56 blocks, a set bit black, a clear one white; the rest of the
/// picture `background`. For pictures sent as frames.
pub fn picture(
    width: u32,
    height: u32,
    clock_us: u32,
    counter: u16,
    background: [u8; 3],
) -> Vec<u8> {
    let check = check_byte(clock_us, counter);
    let bits: Vec<bool> = (0..56)
        .map(|i| match i {
            0..=31 => clock_us >> (31 - i) & 1 == 1,
            32..=47 => counter >> (47 - i) & 1 == 1,
            _ => check >> (55 - i) & 1 == 1,
        })
        .collect();
    let strip = (height * 3).div_ceil(100).max(8);
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let px = if y < strip {
                let block = ((x * 56) / width) as usize;
                if bits[block] {
                    [0, 0, 0]
                } else {
                    [255, 255, 255]
                }
            } else {
                background
            };
            rgb.extend_from_slice(&px);
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(clock: u32, counter: u16) -> Vec<u8> {
        let check = check_byte(clock, counter);
        let mut bits = Vec::new();
        for i in (0..32).rev() {
            bits.push((clock >> i) & 1);
        }
        for i in (0..16).rev() {
            bits.push((u32::from(counter) >> i) & 1);
        }
        for i in (0..8).rev() {
            bits.push((check >> i) & 1);
        }
        let mut out = vec![0u8; 448 * 8];
        for y in 0..8 {
            for x in 0..448 {
                out[y * 448 + x] = if bits[x / 8] == 1 { 10 } else { 245 };
            }
        }
        out
    }

    #[test]
    fn decodes_and_measures() {
        assert_eq!(
            decode_strip(&strip(123_456_789, 77)),
            Some(Mark {
                clock_us: 123_456_789,
                counter: 77
            })
        );
        let mut bad = strip(5, 6);
        for y in 0..8 {
            bad[y * 448..y * 448 + 8].fill(0);
        }
        assert_eq!(
            decode_strip(&bad),
            None,
            "a flipped bit fails the check byte"
        );
        // 30 fps, perfect: then one hold and one jump.
        let perfect: Vec<_> = (0..30u32)
            .map(|i| {
                Some(Mark {
                    clock_us: 1_000_000 + i * 33_333,
                    counter: i as u16,
                })
            })
            .collect();
        let s = smoothness(&perfect, 30);
        assert_eq!((s.holds, s.jerk, s.delivered_fps), (0, 0.0, 30.0));
        assert!(s.max_clock_error_ms < 0.05);
        let mut held = perfect.clone();
        held[10] = held[9];
        let s = smoothness(&held, 30);
        assert_eq!(s.holds, 1);
        assert!((s.jerk - 2.0 / 29.0).abs() < 1e-9);
    }
}
