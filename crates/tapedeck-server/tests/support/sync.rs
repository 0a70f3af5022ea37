//! Lip sync, read back from recorded files: when the picture flashes white
//! and when the sound beeps (tests/e2e/whip_sync.mjs makes both at the same
//! instants), and how far apart each flash and its beep ended up.

use std::path::Path;
use std::process::Command;

/// The instants (seconds, the file's own time) the picture of `path`'s
/// first video stream turns white: a frame whose mean luma is over 128
/// after one under 64.
pub fn flash_times(path: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!(
            "movie=filename={}:s=dv,signalstats",
            path.display()
        ))
        .args([
            "-show_entries",
            "frame=pts_time:frame_tags=lavfi.signalstats.YAVG",
            "-of",
            "csv=p=0",
        ])
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut times = vec![];
    let mut dark = false;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split(',');
        let (Some(t), Some(y)) = (f.next(), f.next()) else {
            continue;
        };
        let (Ok(t), Ok(y)) = (t.parse::<f64>(), y.parse::<f64>()) else {
            continue;
        };
        if y > 128.0 && dark {
            times.push(t);
        }
        dark = y < 64.0;
    }
    times
}

/// The instants (seconds, the file's own time) the sound of `path`'s
/// first audio stream begins a beep: loud after at least 0.3 s quiet.
/// Decoded at 8 kHz with silence where the stream has none, so a sample's
/// index is its time.
pub fn beep_times(path: &Path) -> Vec<f64> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:a:0",
            "-af",
            "aresample=8000:async=1:first_pts=0",
            "-ac",
            "1",
            "-f",
            "s16le",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<i16> = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut times = vec![];
    let mut quiet_since = 0usize;
    for (i, s) in samples.iter().enumerate() {
        let loud = s.unsigned_abs() > 3000;
        if loud {
            if i - quiet_since >= 2400 {
                times.push(i as f64 / 8000.0);
            }
            quiet_since = i + 1;
        }
    }
    times
}

/// For each flash, how much later its beep came (seconds; negative:
/// earlier), pairing each with the nearest beep within 0.4 s.
pub fn offsets(flashes: &[f64], beeps: &[f64]) -> Vec<f64> {
    flashes
        .iter()
        .filter_map(|f| {
            beeps
                .iter()
                .map(|b| b - f)
                .filter(|d| d.abs() < 0.4)
                .min_by(|a, b| a.abs().total_cmp(&b.abs()))
        })
        .collect()
}
