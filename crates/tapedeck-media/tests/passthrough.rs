//! The passthrough sink against ffmpeg: units taken from clips ffmpeg makes
//! (VP8, VP9 or AV1 + Opus in WebM, H.264 + Opus in Matroska) are written
//! without re-encoding, and ffprobe and a full decode check the result.

use std::path::Path;
use std::process::Command;

use tapedeck_media::sink::passthrough::{
    Codec, Container, PassthroughSink, Placed, Track, Unit, recover,
};
use tapedeck_testkit::run_ok;

/// One packet of a clip, as ffprobe shows it.
struct Packet {
    stream: usize,
    pts_us: i64,
    key: bool,
    data: Vec<u8>,
}

/// ffprobe's hexdump (`-show_data`) back to bytes.
fn unhex(dump: &str) -> Vec<u8> {
    let mut out = vec![];
    for line in dump.lines().filter(|l| l.len() > 10) {
        let hex: String = line[10..].chars().take(40).filter(|c| *c != ' ').collect();
        for i in (0..hex.len()).step_by(2) {
            out.push(u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
        }
    }
    out
}

/// A 2 s clip made by ffmpeg: `video` codec args, Opus audio, 30 fps, a
/// keyframe every 15 frames; its tracks and packets in file order.
fn clip(dir: &Path, name: &str, video: &[&str]) -> (Vec<Track>, Vec<Packet>) {
    let path = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30",
    ])
    .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
    .args(["-t", "2", "-pix_fmt", "yuv420p", "-g", "15"])
    .args(video)
    .args(["-c:a", "libopus", "-b:a", "48k"])
    .arg(&path);
    run_ok(&mut cmd, "ffmpeg making a clip");
    let out = run_ok(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_streams",
                "-show_packets",
                "-show_data",
                "-of",
                "json",
            ])
            .arg(&path),
        "ffprobe reading the clip's packets",
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tracks = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let private = s["extradata"].as_str().map(unhex);
            let t = match s["codec_name"].as_str().unwrap() {
                "vp8" => Track::video(Codec::Vp8, 320, 240),
                "vp9" => Track::video(Codec::Vp9, 320, 240),
                "av1" => Track::video(Codec::Av1, 320, 240),
                "h264" => Track::video(Codec::H264, 320, 240),
                "opus" => Track::opus(48_000, 1),
                other => panic!("unexpected codec {other}"),
            };
            match private {
                Some(p) if !p.is_empty() => t.with_private(p),
                _ => t,
            }
        })
        .collect();
    let packets = v["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Packet {
            stream: p["stream_index"].as_u64().unwrap() as usize,
            pts_us: (p["pts_time"].as_str().unwrap().parse::<f64>().unwrap() * 1e6).round() as i64,
            key: p["flags"].as_str().unwrap().starts_with('K'),
            data: unhex(p["data"].as_str().unwrap()),
        })
        .collect();
    (tracks, packets)
}

struct Probe {
    codecs: Vec<String>,
    duration_s: f64,
    video_frames: u64,
}

/// ffprobe's view, and a decode of every frame that must print no error.
fn check(path: &Path) -> Probe {
    let out = run_ok(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-show_streams",
                "-show_format",
                "-of",
                "json",
            ])
            .arg(path),
        "ffprobe on the passthrough file",
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = v["streams"].as_array().unwrap();
    let decode = run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-xerror", "-i"])
            .arg(path)
            .args(["-f", "null", "-"]),
        "decoding every frame",
    );
    assert!(
        decode.stderr.is_empty(),
        "decoding printed errors: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
    Probe {
        codecs: streams
            .iter()
            .map(|s| s["codec_name"].as_str().unwrap().to_string())
            .collect(),
        duration_s: v["format"]["duration"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap(),
        video_frames: streams
            .iter()
            .find(|s| s["codec_type"] == "video")
            .and_then(|s| s["nb_read_frames"].as_str())
            .unwrap()
            .parse()
            .unwrap(),
    }
}

fn write_all(sink: &mut PassthroughSink, packets: &[Packet]) -> u64 {
    let mut written = 0;
    for p in packets {
        let placed = sink
            .write(Unit {
                track: p.stream,
                pts_us: p.pts_us,
                keyframe: p.key,
                data: &p.data,
            })
            .unwrap();
        written += u64::from(placed == Placed::Written);
    }
    written
}

fn round_trip(video: &[&str], container: Container, codec: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (tracks, packets) = clip(
        dir.path(),
        &format!("clip.{}", container.extension()),
        video,
    );
    assert_eq!(Container::for_tracks(&tracks), container);
    let out = dir.path().join(format!("out.{}", container.extension()));
    let mut sink = PassthroughSink::create(&out, container, tracks).unwrap();
    assert_eq!(write_all(&mut sink, &packets), packets.len() as u64);
    let s = sink.finalize().unwrap();
    let p = check(&out);
    assert_eq!(p.codecs, [codec, "opus"]);
    assert_eq!(p.video_frames, 60);
    assert!(
        (p.duration_s - 2.0).abs() <= 1.0 / 30.0,
        "duration {} s",
        p.duration_s
    );
    assert!((s.duration_ms / 1000.0 - p.duration_s).abs() < 0.002);
    // Cues were written: ffprobe can seek straight to 1.5 s.
    let seek = run_ok(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-read_intervals",
                "1.5%+0.1",
                "-select_streams",
                "v",
                "-show_entries",
                "packet=pts_time,flags",
                "-of",
                "csv=p=0",
            ])
            .arg(&out),
        "seeking",
    );
    let first = String::from_utf8_lossy(&seek.stdout);
    let t: f64 = first
        .lines()
        .next()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.9..=1.5).contains(&t), "seek to 1.5 s landed at {t}");
}

#[test]
fn vp8_and_opus_round_trip_into_webm() {
    round_trip(&["-c:v", "libvpx", "-b:v", "300k"], Container::Webm, "vp8");
}

#[test]
fn vp9_and_opus_round_trip_into_webm() {
    round_trip(
        &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "300k",
        ],
        Container::Webm,
        "vp9",
    );
}

#[test]
fn av1_and_opus_round_trip_into_webm() {
    round_trip(
        &[
            "-c:v",
            "libaom-av1",
            "-usage",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "300k",
        ],
        Container::Webm,
        "av1",
    );
}

#[test]
fn h264_and_opus_round_trip_into_matroska() {
    round_trip(
        &["-c:v", "libx264", "-bf", "0", "-preset", "veryfast"],
        Container::Matroska,
        "h264",
    );
}

#[test]
fn a_pause_leaves_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (tracks, packets) = clip(dir.path(), "clip.webm", &["-c:v", "libvpx", "-b:v", "300k"]);
    let out = dir.path().join("out.webm");
    let mut sink = PassthroughSink::create(&out, Container::Webm, tracks).unwrap();
    // Paused from 0.5 s to 1.0 s of the clip: the video resumes at the
    // keyframe at 1.0 s, so half a second of the clip is left out.
    let (before, rest): (Vec<_>, Vec<_>) = packets.into_iter().partition(|p| p.pts_us < 500_000);
    write_all(&mut sink, &before);
    sink.pause();
    let (during, after): (Vec<_>, Vec<_>) = rest.into_iter().partition(|p| p.pts_us < 990_000);
    assert_eq!(write_all(&mut sink, &during), 0);
    sink.resume();
    write_all(&mut sink, &after);
    sink.finalize().unwrap();
    let p = check(&out);
    assert_eq!(p.video_frames, 45);
    assert!(
        (p.duration_s - 1.5).abs() <= 1.0 / 30.0 + 0.02,
        "duration {} s",
        p.duration_s
    );
}

#[test]
fn a_file_cut_by_a_crash_plays_and_recovery_finalizes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (tracks, packets) = clip(
        dir.path(),
        "clip.mkv",
        &["-c:v", "libx264", "-bf", "0", "-preset", "veryfast"],
    );
    let out = dir.path().join("out.mkv");
    let mut sink = PassthroughSink::create(&out, Container::Matroska, tracks).unwrap();
    write_all(&mut sink, &packets);
    // The process dies: the last cluster is never written, and the one before
    // it is cut in the middle.
    drop(sink);
    let len = std::fs::metadata(&out).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&out)
        .unwrap()
        .set_len(len - 300)
        .unwrap();
    // Before recovery it plays (no duration, no cues) up to the cut.
    let cut = run_ok(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v",
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(&out),
        "ffprobe on the cut file",
    );
    let frames_cut: u64 = String::from_utf8_lossy(&cut.stdout).trim().parse().unwrap();
    assert!(frames_cut >= 30, "the cut file plays {frames_cut} frames");
    let s = recover(&out).unwrap();
    let p = check(&out);
    assert_eq!(p.codecs, ["h264", "opus"]);
    // What is left is whole clusters: every kept frame decodes, and the
    // duration is where the kept frames end.
    assert!(
        p.video_frames >= 30 && p.video_frames < 60,
        "{} frames kept",
        p.video_frames
    );
    assert!(
        (p.duration_s - p.video_frames as f64 / 30.0).abs() <= 1.0 / 30.0 + 0.03,
        "{} s for {} frames",
        p.duration_s,
        p.video_frames
    );
    assert!((s.duration_ms / 1000.0 - p.duration_s).abs() < 0.002);
}
