//! Room helpers: rooms, invites, and what a track file holds.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use super::Server;

/// Downloads track `tid` of recording `id` (200 asserted) into the
/// server's data folder; the file.
pub async fn download_track(s: &Server, token: &str, id: &str, tid: &str) -> std::path::PathBuf {
    let r = s
        .client()
        .get(format!("{}/v1/recordings/{id}/tracks/{tid}/media", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "track {tid} of {id}");
    let ext = match r.headers()["content-type"].to_str().unwrap() {
        "video/x-matroska" => "mkv",
        _ => "webm",
    };
    let file = s.data.join(format!("{id}-{tid}.{ext}"));
    std::fs::write(&file, r.bytes().await.unwrap()).unwrap();
    file
}

/// The first video track of a completed room recording `done`.
pub fn video_track(done: &Value) -> Value {
    done["tracks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["kind"] == "video"))
        .unwrap_or_else(|| panic!("no video track: {done}"))
        .clone()
}

/// A new room of `host`'s; its id.
pub async fn new_room(s: &Server, host: &str) -> String {
    let (st, room) = s.post(host, "/v1/rooms", json!({"name": "call"})).await;
    assert_eq!(st, 201, "{room}");
    room["id"].as_str().unwrap().to_string()
}

/// A join token for a guest called `name`.
pub async fn invite(s: &Server, host: &str, room: &str, name: &str) -> String {
    let (st, inv) = s
        .post(
            host,
            &format!("/v1/rooms/{room}/invites"),
            json!({"name": name}),
        )
        .await;
    assert_eq!(st, 201, "{inv}");
    inv["token"].as_str().unwrap().to_string()
}

/// `ffmpeg -v error` decoding every frame of `path`: what it printed.
pub fn decode_errors(path: &Path) -> String {
    // `-enc_time_base -1`: frames keep the file's millisecond times on
    // their way to the null muxer, which otherwise rounds two pictures 1 ms
    // apart (a browser's, retimed by the track file) to one frame time and
    // complains of the muxing, not of the decoding.
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg decode of {}", path.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Codec names of every stream of `path`, audio and video.
pub fn codecs(path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    let mut c: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    c.sort();
    c
}

/// The container duration of `path` in seconds (audio or video).
pub fn duration_s(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no duration for {}", path.display()))
}

/// The largest jump between consecutive packet times of `path`'s first
/// stream, seconds.
pub fn largest_gap(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "0",
            "-show_entries",
            "packet=pts_time",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

/// 2 s clips, looped by the publishers: VP8 640x360 at 30 fps with a key
/// frame every second, and a tone in 20 ms Opus frames.
pub fn make_clips(video: &std::path::Path, audio: &std::path::Path) {
    let ffmpeg = |args: &str, out: &std::path::Path| {
        let r = Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(args.split_whitespace())
            .arg(out)
            .output()
            .unwrap();
        assert!(r.status.success(), "ffmpeg {args}: {r:?}");
    };
    ffmpeg(
        "-f lavfi -i testsrc2=s=640x360:r=30 -t 2 -c:v libvpx -b:v 800k -g 30 \
         -deadline realtime -cpu-used 8",
        video,
    );
    ffmpeg(
        "-f lavfi -i sine=f=440:r=48000 -t 2 -ac 2 -c:a libopus -frame_duration 20",
        audio,
    );
}

/// An SDP offer with one audio section in `direction`, from a str0m
/// client (a call page joining without devices receives only; a WHIP
/// publisher sends).
pub fn offer(direction: str0m::media::Direction) -> String {
    let mut rtc = str0m::Rtc::new(std::time::Instant::now());
    let host = str0m::Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap();
    rtc.add_local_candidate(host);
    let mut change = rtc.sdp_api();
    change.add_media(str0m::media::MediaKind::Audio, direction, None, None, None);
    let (offer, _) = change.apply().unwrap();
    offer.to_sdp_string()
}
