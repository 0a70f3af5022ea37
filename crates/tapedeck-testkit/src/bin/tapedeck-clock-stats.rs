//! `tapedeck-clock-stats VIDEO --fps N [--ffmpeg PATH]`: the smoothness of a
//! video of `bench/pages/clock.html` as JSON, for `bench/web_bench.py` (a
//! benchmark tool, not part of the server).

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut video, mut fps, mut ffmpeg) = (None, None, PathBuf::from("ffmpeg"));
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fps" => fps = args.next().and_then(|v| v.parse::<u32>().ok()),
            "--ffmpeg" => ffmpeg = args.next().map(PathBuf::from).unwrap_or(ffmpeg),
            _ => video = Some(PathBuf::from(a)),
        }
    }
    let (Some(video), Some(fps)) = (video, fps.filter(|f| *f > 0)) else {
        eprintln!("usage: tapedeck-clock-stats VIDEO --fps N [--ffmpeg PATH]");
        std::process::exit(2);
    };
    let marks = match tapedeck_testkit::barcode::decode_video(&ffmpeg, &video, fps) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tapedeck-clock-stats: {e}");
            std::process::exit(1);
        }
    };
    let s = tapedeck_testkit::barcode::smoothness(&marks, fps);
    let samples: Vec<_> = marks
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.map(|m| serde_json::json!([i, m.clock_us, m.counter])))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "frames": s.frames, "unreadable": s.unreadable,
            "delivered_fps": s.delivered_fps, "holds": s.holds, "jerk": s.jerk,
            "max_clock_error_ms": s.max_clock_error_ms, "marks": samples,
        })
    );
}
