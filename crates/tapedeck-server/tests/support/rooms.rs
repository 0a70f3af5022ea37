//! Room helpers: rooms, invites, and what a track file holds.

use std::path::Path;
use std::process::Command;

use serde_json::json;

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
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
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
