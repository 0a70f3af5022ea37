//! The poster and the strip of thumbnails.

use std::path::Path;
use std::time::Duration;

use super::{FfmpegError, Tools, run};

/// Writes a JPEG poster of the frame at `at_s`, at most 640 pixels wide.
pub fn poster(tools: &Tools, media: &Path, at_s: f64, out: &Path) -> Result<(), FfmpegError> {
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
    run(&tools.ffmpeg, &args, Duration::from_secs(120)).map(|_| ())
}

/// Writes a strip of `count` small thumbnails spread over the video, side by side.
pub fn strip(
    tools: &Tools,
    media: &Path,
    duration_s: f64,
    count: u32,
    out: &Path,
) -> Result<(), FfmpegError> {
    let rate = f64::from(count) / duration_s.max(0.1);
    let args: Vec<String> = vec![
        "-v".into(),
        "error".into(),
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
    ];
    run(&tools.ffmpeg, &args, Duration::from_secs(300)).map(|_| ())
}
