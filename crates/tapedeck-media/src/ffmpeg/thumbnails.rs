//! The poster and the strip of thumbnails.

use std::path::Path;
use std::time::Duration;

use super::{FfmpegError, Tools, run_limited};

/// Writes a JPEG poster of the frame at `at_s`, at most 640 pixels wide;
/// of the first frame when no picture comes at or after `at_s` (a sparse
/// video whose sound runs on past its last picture).
pub fn poster(tools: &Tools, media: &Path, at_s: f64, out: &Path) -> Result<(), FfmpegError> {
    let _ = std::fs::remove_file(out);
    poster_at(tools, media, at_s, out)?;
    if std::fs::metadata(out).map_or(true, |m| m.len() == 0) && at_s > 0.0 {
        poster_at(tools, media, 0.0, out)?;
    }
    Ok(())
}

fn poster_at(tools: &Tools, media: &Path, at_s: f64, out: &Path) -> Result<(), FfmpegError> {
    let args: Vec<String> = vec![
        "-v".into(),
        "error".into(),
        "-ss".into(),
        format!("{at_s:.3}"),
        "-i".into(),
        media.display().to_string(),
        "-frames:v".into(),
        "1".into(),
        "-vf".into(),
        "scale='min(640,iw)':-2".into(),
        "-q:v".into(),
        "3".into(),
        "-y".into(),
        out.display().to_string(),
    ];
    run_limited(tools, &tools.ffmpeg, &args, Duration::from_secs(120)).map(|_| ())
}

/// Writes a strip of `count` thumbnails 160 pixels wide, evenly spread
/// over `duration_s`, side by side in one JPEG. When the video has a
/// keyframe at least every `keyframe_every_s` (tapedeck's own encodes:
/// every 4 s) and the thumbnails are at least that far apart, only
/// keyframes are decoded: each thumbnail is then within one keyframe
/// interval of its place, and an hour's strip costs a thousand decoded
/// pictures instead of a hundred thousand.
pub fn strip(
    tools: &Tools,
    media: &Path,
    duration_s: f64,
    count: u32,
    keyframe_every_s: Option<f64>,
    out: &Path,
) -> Result<(), FfmpegError> {
    let rate = f64::from(count) / duration_s.max(0.1);
    let keyframes_only =
        keyframe_every_s.is_some_and(|k| k > 0.0 && duration_s >= k * f64::from(count));
    let mut args: Vec<String> = vec!["-v".into(), "error".into()];
    if keyframes_only {
        args.extend(["-skip_frame".into(), "nokey".into()]);
    }
    args.extend([
        "-i".into(),
        media.display().to_string(),
        "-vf".into(),
        format!("fps={rate:.6},scale=160:-2,tile={count}x1"),
        "-frames:v".into(),
        "1".into(),
        "-q:v".into(),
        "4".into(),
        "-y".into(),
        out.display().to_string(),
    ]);
    run_limited(tools, &tools.ffmpeg, &args, Duration::from_secs(300)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A WebM whose pictures stop after 0.5 s while its sound runs to 6 s
    /// (a starved browser's recording): the frame at a quarter of the
    /// length does not exist, and the poster is the first picture.
    /// Mean luma of each of `count` tiles of a strip.
    fn tile_levels(strip: &Path, count: usize) -> Vec<f64> {
        let r = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(strip)
            .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
            .output()
            .unwrap();
        let px = r.stdout;
        let (w, h) = (160 * count, px.len() / (160 * count));
        (0..count)
            .map(|t| {
                let sum: u64 = (0..h)
                    .flat_map(|y| (t * 160..(t + 1) * 160).map(move |x| y * w + x))
                    .map(|i| u64::from(px[i]))
                    .sum();
                sum as f64 / (160 * h) as f64
            })
            .collect()
    }

    #[test]
    fn a_strip_from_keyframes_follows_the_time() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("ramp.mp4");
        // 100 s getting brighter by 2.4 levels a second, a keyframe every 4 s.
        let r = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("color=c=black:s=64x64:r=10:d=100,format=gray,geq=lum='16+T*2.4'")
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "40"])
            .args(["-pix_fmt", "yuv420p"])
            .arg(&media)
            .output()
            .unwrap();
        assert!(r.status.success(), "{r:?}");
        let tools = Tools::default();
        let (all, keys) = (dir.path().join("all.jpg"), dir.path().join("keys.jpg"));
        strip(&tools, &media, 100.0, 10, None, &all).unwrap();
        strip(&tools, &media, 100.0, 10, Some(4.0), &keys).unwrap();
        let (all, keys) = (tile_levels(&all, 10), tile_levels(&keys, 10));
        for t in 0..10 {
            // Tile t is near t * 10 s (+ half a tile): within one keyframe
            // interval (4 s, 9.6 levels) of the full decode's.
            assert!(
                (keys[t] - all[t]).abs() <= 12.0,
                "tile {t}: {keys:?} vs {all:?}"
            );
            if t > 0 {
                assert!(keys[t] > keys[t - 1] + 10.0, "tile {t}: {keys:?}");
            }
        }
    }

    #[test]
    fn a_poster_past_the_last_picture_is_the_first_picture() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("sparse.webm");
        let r = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "color=c=red:s=320x240:r=10:d=0.5",
            ])
            .args(["-f", "lavfi", "-i", "sine=f=440:d=6"])
            .args(["-c:v", "libvpx", "-c:a", "libopus"])
            .arg(&media)
            .output()
            .unwrap();
        assert!(r.status.success(), "{r:?}");
        let out = dir.path().join("poster.jpg");
        let tools = Tools::default();
        // At 1.5 s there is no picture: ffmpeg alone writes nothing.
        poster_at(&tools, &media, 1.5, &out).unwrap();
        assert!(!out.exists());
        poster(&tools, &media, 1.5, &out).unwrap();
        let p = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=width,height",
                "-of",
                "csv=p=0",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&p.stdout).trim(), "320,240");
    }
}
