//! Reading what ffmpeg and ffprobe say: media info and CPU time.

use std::path::Path;
use std::time::Duration;

use tapedeck_core::recording::MediaInfo;

use super::{FfmpegError, Tools, run};

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

/// Probes a media file (demuxing only, no decoding) and hashes nothing: `sha256` is left empty.
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
    .chain([path.display().to_string()])
    .collect();
    let out = run(&tools.ffprobe, &args, Duration::from_secs(120))?;
    parse_probe(&String::from_utf8_lossy(&out)).map_err(|message| FfmpegError::Output {
        program: tools.ffprobe.display().to_string(),
        message,
    })
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
