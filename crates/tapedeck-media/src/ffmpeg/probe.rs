//! Reading what ffmpeg and ffprobe say: media info and CPU time.

use std::path::Path;
use std::time::Duration;

use tapedeck_core::recording::MediaInfo;

use super::{FfmpegError, Tools, run_limited};

/// CPU seconds from ffmpeg's `-benchmark` line (`bench: utime=1.2s stime=0.3s rtime=...`).
pub fn parse_bench(stderr: &str) -> Option<f64> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("bench: utime="))?;
    let field = |name: &str| -> Option<f64> {
        let rest = line.split(name).nth(1)?;
        rest.split('s').next()?.parse().ok()
    };
    Some(field("utime=")? + field("stime=")?)
}

/// Probes a media file and hashes nothing: `sha256` is left empty. ffprobe
/// demuxes it all and decodes a picture or two for the stream's
/// parameters, under the decoding limit: a picture past
/// [`Tools::max_pixels`] is [`FfmpegError::PictureTooLarge`].
pub fn probe(tools: &Tools, path: &Path) -> Result<MediaInfo, FfmpegError> {
    let args: Vec<String> = [
        "-v",
        "error",
        "-count_packets",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
    ]
    .into_iter()
    .map(String::from)
    .chain(["-i".to_string(), path.display().to_string()])
    .collect();
    let out = run_limited(tools, &tools.ffprobe, &args, Duration::from_secs(120))?;
    parse_probe(&String::from_utf8_lossy(&out)).map_err(|message| FfmpegError::Output {
        program: tools.ffprobe.display().to_string(),
        message,
    })
}

/// The largest picture of a file's video streams, width by height; `None`
/// when it has none (sound only). Reads the streams' headers and decodes a
/// picture or two, under the decoding limit: a picture past
/// [`Tools::max_pixels`] is [`FfmpegError::PictureTooLarge`], refused
/// before it is allocated.
pub fn picture_size(tools: &Tools, path: &Path) -> Result<Option<(u32, u32)>, FfmpegError> {
    let args: Vec<String> = [
        "-v",
        "error",
        "-select_streams",
        "v",
        "-show_entries",
        "stream=width,height",
        "-of",
        "csv=p=0",
        "-i",
    ]
    .into_iter()
    .map(String::from)
    .chain([path.display().to_string()])
    .collect();
    let out = run_limited(tools, &tools.ffprobe, &args, Duration::from_secs(60))?;
    Ok(parse_sizes(&String::from_utf8_lossy(&out)))
}

/// The largest of ffprobe's `width,height` lines (one per video stream).
fn parse_sizes(csv: &str) -> Option<(u32, u32)> {
    csv.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.trim().split(',').map(|x| x.parse::<u32>().unwrap_or(0));
            (it.next().unwrap_or(0), it.next().unwrap_or(0))
        })
        .max_by_key(|(w, h)| u64::from(*w) * u64::from(*h))
}

/// Reads ffprobe's JSON (`-show_format -show_streams -count_packets`). A
/// file with sound only gives an empty `video_codec` and a 0 × 0 size.
pub fn parse_probe(json: &str) -> Result<MediaInfo, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let streams = v["streams"].as_array().ok_or("no streams")?;
    // A file with sound only (a call where nobody sent video) has no
    // picture: its video fields are empty and zero.
    let none = serde_json::Value::Null;
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .or_else(|| streams.iter().find(|s| s["codec_type"] == "audio"))
        .ok_or("no video or audio stream")?;
    let has_video = video["codec_type"] == "video";
    let video = if has_video { video } else { &none };
    let audio_duration = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .map_or(&none, |a| &a["duration"]);
    let num = |x: &serde_json::Value| -> Option<f64> { x.as_str()?.parse().ok() };
    let rate = |x: &serde_json::Value| -> Option<f64> {
        let (n, d) = x.as_str()?.split_once('/')?;
        let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
        (d > 0.0).then_some(n / d)
    };
    let duration_s = num(&v["format"]["duration"])
        .or_else(|| num(&video["duration"]))
        .or_else(|| num(audio_duration))
        .ok_or("no duration")?;
    let frames = num(&video["nb_read_packets"])
        .or_else(|| num(&video["nb_frames"]))
        .map(|f| f as u64);
    let fps = rate(&video["avg_frame_rate"])
        .filter(|f| *f > 0.0)
        .or_else(|| frames.map(|f| f as f64 / duration_s.max(1e-9)))
        .unwrap_or(0.0);
    Ok(MediaInfo {
        container: v["format"]["format_name"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        video_codec: video["codec_name"].as_str().unwrap_or("").to_string(),
        audio_codec: streams
            .iter()
            .find(|s| s["codec_type"] == "audio")
            .and_then(|a| a["codec_name"].as_str())
            .map(String::from),
        width: video["width"].as_u64().unwrap_or(0) as u32,
        height: video["height"].as_u64().unwrap_or(0) as u32,
        fps,
        frames,
        duration_s,
        sha256: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_line() {
        let s = "frame=1\nbench: utime=1.250s stime=0.250s rtime=3.000s\nbench: maxrss=7kB\n";
        assert_eq!(parse_bench(s), Some(1.5));
        assert_eq!(parse_bench("nothing"), None);
    }

    #[test]
    fn probe_fixture() {
        let j = r#"{"streams":[{"codec_type":"video","codec_name":"h264","width":1280,"height":720,
            "avg_frame_rate":"30/1","nb_frames":"300","nb_read_packets":"300"}],
            "format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"10.000000"}}"#;
        let m = parse_probe(j).unwrap();
        assert_eq!(
            (m.video_codec.as_str(), m.width, m.height, m.frames),
            ("h264", 1280, 720, Some(300))
        );
        assert_eq!(m.audio_codec, None);
        let j = r#"{"streams":[{"codec_type":"video","codec_name":"h264","width":8,"height":8,
            "avg_frame_rate":"30/1"},{"codec_type":"audio","codec_name":"aac"}],
            "format":{"format_name":"mp4","duration":"1.0"}}"#;
        assert_eq!(parse_probe(j).unwrap().audio_codec.as_deref(), Some("aac"));
        assert!((m.fps - 30.0).abs() < 1e-9 && (m.duration_s - 10.0).abs() < 1e-9);
        assert!(parse_probe(r#"{"streams":[],"format":{}}"#).is_err());
    }

    #[test]
    fn sizes_and_refusals() {
        assert_eq!(parse_sizes("640,480\n1920,1080\n"), Some((1920, 1080)));
        assert_eq!(parse_sizes("\n"), None);
        let refusal = "[vp8 @ 0x55] [IMGUTILS @ 0x7f] Picture size 16000x16000 exceeds \
                       specified max pixel count 33177600, see the documentation";
        assert_eq!(super::super::refused_picture(refusal), Some((16000, 16000)));
        assert_eq!(
            super::super::refused_picture("Picture size 8x8 is odd"),
            None
        );
    }

    /// A VP8 WebM of 256x256 pictures whose keyframe headers and track
    /// header are rewritten to say 16000x16000 (encoding real ones takes
    /// 11 GB): probing refuses the picture before decoding it, names its
    /// size, and without the limit ffprobe reads the size it declares.
    #[test]
    fn a_picture_past_the_limit_is_refused_with_its_size() {
        let dir = std::env::temp_dir().join(format!("tapedeck-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("huge.webm");
        std::fs::write(
            &file,
            tapedeck_testkit::media::declared_size_webm(16000, 16000),
        )
        .unwrap();
        let tools = Tools::default();
        match picture_size(&tools, &file) {
            Err(FfmpegError::PictureTooLarge {
                width,
                height,
                limit,
            }) => {
                assert_eq!((width, height, limit), (16000, 16000, 7680 * 4320));
            }
            other => panic!("not refused: {other:?}"),
        }
        assert!(matches!(
            probe(&tools, &file),
            Err(FfmpegError::PictureTooLarge { width: 16000, .. })
        ));
        let small = dir.join("small.webm");
        std::fs::write(
            &small,
            tapedeck_testkit::media::declared_size_webm(256, 256),
        )
        .unwrap();
        assert_eq!(picture_size(&tools, &small).unwrap(), Some((256, 256)));
        assert_eq!(probe(&tools, &small).unwrap().width, 256);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sound_only() {
        let j = r#"{"streams":[{"codec_type":"audio","codec_name":"opus","duration":"9.5"}],
            "format":{"format_name":"matroska,webm"}}"#;
        let m = parse_probe(j).unwrap();
        assert_eq!(
            (m.video_codec.as_str(), m.width, m.height, m.frames, m.fps),
            ("", 0, 0, None, 0.0)
        );
        assert_eq!(m.audio_codec.as_deref(), Some("opus"));
        assert!((m.duration_s - 9.5).abs() < 1e-9);
    }
}
