//! Stream copies: files put together or rewrapped without decoding.

use std::path::Path;
use std::time::Duration;

use tapedeck_core::Format;

use super::{FfmpegError, Tools, run_limited};

/// Puts each input at its start (seconds) in one file, by stream copy;
/// WebM or Matroska, as `out` is named.
pub fn side_by_side(tools: &Tools, inputs: &[(f64, &Path)], out: &Path) -> Result<(), FfmpegError> {
    crate::process::run(
        "ffmpeg",
        &tools.ffmpeg,
        &side_by_side_args(inputs, out),
        Duration::from_secs(600),
    )
    .map(|_| ())
}

/// The arguments of [`side_by_side`].
pub fn side_by_side_args(inputs: &[(f64, &Path)], out: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec!["-y".into(), "-v".into(), "error".into()];
    for (start_s, path) in inputs {
        args.extend([
            "-itsoffset".into(),
            format!("{start_s:.6}"),
            "-i".into(),
            path.display().to_string(),
        ]);
    }
    for i in 0..inputs.len() {
        args.extend(["-map".into(), format!("{i}:0")]);
    }
    args.extend(["-c".into(), "copy".into(), out.display().to_string()]);
    args
}

/// Rewraps every stream of `input` into `format` at `out` by stream copy
/// (MP4 with its index at the front), decoding nothing: media from outside
/// is still read under the picture limit.
pub fn remux(tools: &Tools, input: &Path, format: Format, out: &Path) -> Result<(), FfmpegError> {
    let mut args: Vec<String> = vec!["-y".into(), "-v".into(), "error".into(), "-i".into()];
    args.push(input.display().to_string());
    args.extend(["-map", "0", "-c", "copy"].map(String::from));
    if format == Format::Mp4 {
        args.extend(["-movflags", "+faststart"].map(String::from));
    }
    args.push(out.display().to_string());
    run_limited(tools, &tools.ffmpeg, &args, Duration::from_secs(3600)).map(|_| ())
}

/// Joins files of the same encoding (the ranges of one recording, each
/// beginning with a keyframe) end to end into `out` (its format as named)
/// by stream copy, through ffmpeg's concat demuxer and a list written
/// beside `out`.
pub fn join(tools: &Tools, parts: &[&Path], format: Format, out: &Path) -> Result<(), FfmpegError> {
    let list = out.with_extension("parts.txt");
    std::fs::write(&list, join_list(parts)).map_err(|e| FfmpegError::Io {
        program: "ffmpeg".into(),
        source: e,
    })?;
    let mut args: Vec<String> = ["-y", "-v", "error", "-f", "concat", "-safe", "0", "-i"]
        .map(String::from)
        .to_vec();
    args.push(list.display().to_string());
    args.extend(["-map", "0", "-c", "copy"].map(String::from));
    if format == Format::Mp4 {
        args.extend(["-movflags", "+faststart"].map(String::from));
    }
    args.push(out.display().to_string());
    let r = crate::process::run("ffmpeg", &tools.ffmpeg, &args, Duration::from_secs(3600));
    let _ = std::fs::remove_file(&list);
    r.map(|_| ())
}

/// The concat demuxer's list of `parts`: one `file` line each, absolute
/// (the demuxer reads a relative one from the list's own folder), quoted
/// as the demuxer reads them (a `'` closes, is escaped, and opens again).
fn join_list(parts: &[&Path]) -> String {
    parts
        .iter()
        .map(|p| {
            let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            format!(
                "file '{}'\n",
                p.display().to_string().replace('\'', "'\\''")
            )
        })
        .collect()
}

/// `duration_s` of `input` (a file or a URL ffmpeg reads) from `start_s`,
/// as an MP4 at `out`, without decoding: the packets from the keyframe
/// before `start_s`, and an edit list that makes playback begin exactly at
/// `start_s` (ffmpeg writes it for an input seek with stream copy).
pub fn clip(
    tools: &Tools,
    input: &str,
    start_s: f64,
    duration_s: f64,
    out: &Path,
) -> Result<(), FfmpegError> {
    let args: Vec<String> = vec![
        "-hide_banner".into(),
        "-nostats".into(),
        "-loglevel".into(),
        "error".into(),
        "-ss".into(),
        format!("{start_s:.6}"),
        "-i".into(),
        input.into(),
        "-t".into(),
        format!("{duration_s:.6}"),
        "-map".into(),
        "0".into(),
        "-c".into(),
        "copy".into(),
        "-movflags".into(),
        "+faststart".into(),
        "-f".into(),
        "mp4".into(),
        "-y".into(),
        out.display().to_string(),
    ];
    run_limited(tools, &tools.ffmpeg, &args, Duration::from_secs(600)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_input_is_placed_at_its_start_and_copied() {
        let (a, b) = (Path::new("/w/t1.webm"), Path::new("/w/t2.webm"));
        let args = side_by_side_args(&[(0.0, a), (1.25, b)], Path::new("/w/media.webm"));
        let text = args.join(" ");
        assert!(text.contains("-itsoffset 0.000000 -i /w/t1.webm"), "{text}");
        assert!(text.contains("-itsoffset 1.250000 -i /w/t2.webm"), "{text}");
        assert!(
            text.ends_with("-map 0:0 -map 1:0 -c copy /w/media.webm"),
            "{text}"
        );
    }

    #[test]
    fn the_join_list_names_each_part_quoted() {
        let list = join_list(&[Path::new("/w/r0.mkv"), Path::new("/w/it's.mkv")]);
        assert_eq!(list, "file '/w/r0.mkv'\nfile '/w/it'\\''s.mkv'\n");
        // A relative part is named from the current folder, not the list's.
        let here = std::env::current_dir().unwrap();
        let list = join_list(&[Path::new("work/r0.mkv")]);
        assert_eq!(
            list,
            format!("file '{}'\n", here.join("work/r0.mkv").display())
        );
    }
}
