//! The poster and the strip of thumbnails.

use std::path::Path;
use std::time::Duration;

use super::{FfmpegError, Tools, run};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A WebM whose pictures stop after 0.5 s while its sound runs to 6 s
    /// (a starved browser's recording): the frame at a quarter of the
    /// length does not exist, and the poster is the first picture.
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
