//! Live outputs end to end: a frames recording with HLS and pictures
//! played while it records by hls.js (served by the binary) in Debian's
//! Chromium, its barcode read from the player's picture; the VOD playlist
//! read by ffprobe after; pictures listed and fetched; time ranges cut
//! without re-encoding, live and completed, their first picture the one
//! asked for; bad outputs refused.

mod support;

use serde_json::{Value, json};
use support::pages::{LiveScript, page_script};
use support::*;
use tapedeck_testkit::barcode;

const FPS: u32 = 10;
const W: u32 = 640;
const H: u32 = 360;

/// Frame `i`: its barcode (clock = its time in µs, counter = i) on a
/// colour that changes each second.
fn frame(i: u32) -> Vec<u8> {
    let shade = [[200, 40, 40], [40, 160, 60], [40, 60, 200]][(i / FPS % 3) as usize];
    let rgb = barcode::picture(W, H, i * 1_000_000 / FPS, i as u16, shade);
    let img = image::RgbImage::from_raw(W, H, rgb).unwrap();
    let mut out = std::io::Cursor::new(vec![]);
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// Sends frames 0..n at FPS in real time; returns once all were counted.
async fn send_realtime(ws: &mut Ws, n: u32) {
    let start = std::time::Instant::now();
    for i in 0..n {
        let due = std::time::Duration::from_millis(u64::from(i) * 1000 / u64::from(FPS));
        tokio::time::sleep(due.saturating_sub(start.elapsed())).await;
        send_frame(ws, Some(f64::from(i) * 1000.0 / f64::from(FPS)), frame(i)).await;
    }
    progress_until(ws, |v| v["frames_received"] == n).await;
}

/// ffprobe's frame count and duration of `url` (a file or a URL).
fn probe(url: &str) -> (u64, f64) {
    let d = tapedeck_testkit::decode_count(url);
    (d.frames, d.duration_s)
}

/// The codecs of `url`'s streams, as ffprobe names them (each once).
fn codecs(url: &str) -> Vec<String> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .unwrap();
    // An HLS playlist lists its streams under its program too.
    let mut seen: Vec<String> = vec![];
    for c in String::from_utf8_lossy(&out.stdout).lines() {
        if !c.is_empty() && !seen.iter().any(|s| s == c) {
            seen.push(c.to_string());
        }
    }
    seen
}

/// Fetches a range of `id` into a file: its frame count, duration, and
/// the counter of its first picture.
async fn range(
    s: &Server,
    key: &str,
    id: &str,
    q: &str,
    dir: &std::path::Path,
) -> (u64, f64, Option<u16>) {
    let r = s
        .client()
        .get(format!("{}/v1/recordings/{id}/media?{q}", s.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "{q}: {}",
        r.text().await.unwrap_or_default()
    );
    assert_eq!(header(&r, "content-type"), "video/mp4");
    let path = dir.join(format!("range-{}.mp4", q.replace(['=', '&', '.'], "_")));
    std::fs::write(&path, r.bytes().await.unwrap()).unwrap();
    let (frames, duration) = probe(&path.display().to_string());
    let marks = barcode::decode_video(std::path::Path::new("ffmpeg"), &path, FPS).unwrap();
    (
        frames,
        duration,
        marks.first().copied().flatten().map(|m| m.counter),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_frames_recording_plays_in_hls_js_and_is_kept_as_vod() {
    let s = start(|_| {}).await;
    let key = s.key("ann", false).await;
    let rec = s
        .create(
            &key,
            json!({"source": {"kind": "frames"}, "width": W, "height": H, "fps": FPS,
                   "outputs": [{"kind": "hls", "segment_s": 1}, {"kind": "images", "every_s": 2, "width": 320}]}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(rec["outputs"][0]["id"], "o1", "{rec}");
    assert_eq!(rec["outputs"][0]["state"], "pending", "{rec}");
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &key)).await;
    // Frames in real time: the playlist grows as they come.
    let total = 32 * FPS;
    let pusher = tokio::spawn(async move {
        send_realtime(&mut ws, total).await;
    });

    // hls.js plays it while it records.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (_, live) = s.get(&key, &format!("/v1/recordings/{id}")).await;
    assert_eq!(live["status"], "recording", "{live}");
    assert_eq!(live["outputs"][0]["state"], "active", "{live}");
    let player = LiveScript::start(
        "hls_live.mjs",
        vec![s.base.clone(), id.clone(), key.clone(), "14".into()],
    );

    // A range of the recording while it records, from its segments.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let dir = tempfile::tempdir().unwrap();
    let (frames, duration, first) = range(&s, &key, &id, "start=3&duration=2", dir.path()).await;
    assert_eq!(first, Some(30), "the live range's first picture is at 3 s");
    assert_eq!(frames, 20, "2 s at {FPS} fps");
    assert!((duration - 2.0).abs() < 0.05, "{duration}");

    let readings = player.finish().await;
    assert_eq!(readings["errors"], json!([]), "{readings}");
    // The web page: "Watch live" in the list opens the watch page, which
    // plays it (hls.js there too).
    let page = page_script(
        "watch_live.mjs",
        vec![s.base.clone(), key.clone(), id.clone(), "4".into()],
    )
    .await;
    assert_eq!(page["pageErrors"], json!([]), "{page}");
    let seen: Vec<u64> = page["counters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(seen.len() >= 4 && seen.last() > seen.first(), "{page}");
    let (_, now) = s.get(&key, &format!("/v1/recordings/{id}")).await;
    assert_eq!(now["status"], "recording", "the page played it live: {now}");
    pusher.await.unwrap();
    s.post(&key, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&key, &id, "completed").await;
    assert_eq!(done["outputs"][0]["state"], "completed", "{done}");
    assert_eq!(done["outputs"][1]["state"], "completed", "{done}");
    let frames_total = done["media"]["frames"].as_u64().unwrap();
    let duration_s = done["duration_s"].as_f64().unwrap();

    // The VOD playlist: every picture of the file.
    let url = format!("{}/v1/recordings/{id}/hls/index.m3u8?token={key}", s.base);
    let text = String::from_utf8(s.bytes(None, &url).await).unwrap();
    assert!(
        text.contains("#EXT-X-PLAYLIST-TYPE:VOD") && text.contains("#EXT-X-ENDLIST"),
        "{text}"
    );
    assert!(text.contains(&format!("s00000.m4s?token={key}")), "{text}");
    // A query token that did not let the caller in (a bearer header did)
    // is not carried into the playlist.
    let other = format!(
        "{}/v1/recordings/{id}/hls/index.m3u8?token=not-a-key",
        s.base
    );
    let text2 = String::from_utf8(s.bytes(Some(&key), &other).await).unwrap();
    assert!(
        text2.contains("s00000.m4s") && !text2.contains("not-a-key"),
        "{text2}"
    );
    let (vod_frames, vod_duration) = probe(&url);
    assert_eq!(vod_frames, frames_total, "{text}");
    assert!(
        (vod_duration - duration_s).abs() < 0.1,
        "{vod_duration} vs {duration_s}"
    );

    // Pictures every 2 s, 320 wide.
    let (st, images) = s.get(&key, &format!("/v1/recordings/{id}/images")).await;
    assert_eq!(st, 200, "{images}");
    let list = images["images"].as_array().unwrap();
    assert_eq!(list.len(), (duration_s / 2.0).ceil() as usize, "{images}");
    assert_eq!(list[1]["at_s"], 2);
    let jpeg = s.bytes(Some(&key), list[1]["url"].as_str().unwrap()).await;
    let img = image::load_from_memory(&jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (320, 180));

    // A range of the completed file: exact, not re-encoded.
    let (frames, duration, first) = range(&s, &key, &id, "start=2.5&duration=3", dir.path()).await;
    assert_eq!(first, Some(25), "the range's first picture is at 2.5 s");
    assert_eq!(frames, 30);
    assert!((duration - 3.0).abs() < 0.05, "{duration}");

    // What the player showed while it recorded: barcodes that move on,
    // never more than two segments (and one of slack) behind the edge.
    let mut counters = vec![];
    let mut behind = vec![];
    let lines = readings["lines"].as_array().cloned().unwrap_or_default();
    for r in &lines {
        if let Some(c) = r["counter"].as_u64() {
            counters.push(c);
            if let (Some(e), Some(cur)) = (r["edge"].as_f64(), r["current"].as_f64()) {
                behind.push(e - cur);
            }
        }
    }
    assert!(counters.len() >= 10, "{readings}");
    assert!(counters.windows(2).all(|w| w[1] >= w[0]), "{counters:?}");
    assert!(counters.last() > counters.first(), "{counters:?}");
    behind.sort_by(f64::total_cmp);
    let median = behind[behind.len() / 2];
    eprintln!(
        "hls.js: {} pictures read, from {:?} to {:?}; median {median:.2} s behind the live edge",
        counters.len(),
        counters.first(),
        counters.last()
    );
    assert!(
        median <= 3.0,
        "median {median} s behind the live edge: {behind:?}"
    );

    // Other users, bad names and bad ranges.
    let bob = s.key("bob", false).await;
    let (st, _) = s
        .get(&bob, &format!("/v1/recordings/{id}/hls/index.m3u8"))
        .await;
    assert_eq!(st, 404);
    let (st, _) = s.get(&bob, &format!("/v1/recordings/{id}/images")).await;
    assert_eq!(st, 404);
    for bad in ["hls/..%2Findex.m3u8", "hls/x.m4s", "images/..%2F00001.jpg"] {
        let (st, e) = s.get(&key, &format!("/v1/recordings/{id}/{bad}")).await;
        assert_eq!(
            (st, &e["error"]["code"]),
            (404, &json!("not_found")),
            "{bad}: {e}"
        );
    }
    let (st, e) = s
        .get(&key, &format!("/v1/recordings/{id}/media?start=9999"))
        .await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (416, &json!("range_not_satisfiable")),
        "{e}"
    );
    for bad in [
        "start=-1",
        "start=abc",
        "start=1&duration=0",
        "start=1&duration=1e-320",
        "start=NaN",
    ] {
        let (st, e) = s
            .get(&key, &format!("/v1/recordings/{id}/media?{bad}"))
            .await;
        assert_eq!(
            (st, &e["error"]["code"]),
            (400, &json!("invalid_query")),
            "{bad}: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_outputs_are_refused_with_a_code() {
    let s = start(|_| {}).await;
    let key = s.key("ann", false).await;
    let many: Vec<Value> = (0..10_000)
        .map(|i| json!({"kind": "rtmp", "url": format!("rtmp://live.example.org/a/{i}")}))
        .collect();
    for (outputs, field) in [
        (
            json!([{"kind": "rtmp", "url": "file:///etc/passwd"}]),
            "outputs[0].url",
        ),
        (
            json!([{"kind": "srt", "url": "srt://example.org"}]),
            "outputs[0].url",
        ),
        (
            json!([{"kind": "rtmp", "url": "rtmp://127.0.0.1/live/k"}]),
            "outputs[0].url",
        ),
        (
            json!([{"kind": "srt", "url": "srt://[::1]:9000"}]),
            "outputs[0].url",
        ),
        (
            json!([{"kind": "rtmp", "url": "rtmp://localhost/live/k"}]),
            "outputs[0].url",
        ),
        (json!([{"kind": "hls"}, {"kind": "hls"}]), "outputs[1].kind"),
        (
            json!([{"kind": "images", "every_s": 0}]),
            "outputs[0].every_s",
        ),
        (Value::Array(many), "outputs"),
    ] {
        let (st, e) = s
            .post(
                &key,
                "/v1/recordings",
                json!({"source": {"kind": "frames"}, "outputs": outputs}),
            )
            .await;
        assert_eq!(
            (st, &e["error"]["code"]),
            (422, &json!("invalid_output")),
            "{e}"
        );
        assert!(
            e["error"]["message"].as_str().unwrap().contains(field),
            "{e}"
        );
    }
    // A recording without the output has none of its files.
    let rec = s.create(&key, json!({"source": {"kind": "frames"}})).await;
    let id = rec["id"].as_str().unwrap();
    let (st, _) = s
        .get(&key, &format!("/v1/recordings/{id}/hls/index.m3u8"))
        .await;
    assert_eq!(st, 404);
    // Nor does it take a stream later, pending or not: its encode writes
    // no live segments to push from.
    let outs = format!("/v1/recordings/{id}/outputs");
    let (st, e) = s
        .post(
            &key,
            &outs,
            json!({"kind": "rtmp", "url": "rtmp://8.8.8.8/live/k"}),
        )
        .await;
    assert_eq!((st, &e["error"]["code"]), (409, &json!("not_ready")), "{e}");
    // A range's start or duration is given once.
    let (st, e) = s
        .get(&key, &format!("/v1/recordings/{id}/media?start=1&start=2"))
        .await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (400, &json!("invalid_query")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("start is given 2 times"),
        "{e}"
    );

    // Removed streams stay listed but free their place among the 8.
    let rec = s
        .create(
            &key,
            json!({"source": {"kind": "frames"}, "outputs": [{"kind": "hls"}]}),
        )
        .await;
    let outs = format!("/v1/recordings/{}/outputs", rec["id"].as_str().unwrap());
    let add = |i: u32| json!({"kind": "rtmp", "url": format!("rtmp://8.8.8.8/live/k{i}")});
    for i in 0..7 {
        let (st, o) = s.post(&key, &outs, add(i)).await;
        assert_eq!(st, 201, "{o}");
    }
    let (st, e) = s.post(&key, &outs, add(7)).await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (422, &json!("invalid_output")),
        "{e}"
    );
    for oid in ["o2", "o3"] {
        assert_eq!(s.delete(&key, &format!("{outs}/{oid}")).await, 204);
    }
    let (st, o) = s.post(&key, &outs, add(8)).await;
    assert_eq!(st, 201, "{o}");
}

/// Polls `id` until output `oid` is in `state`; the recording then.
async fn output_state(s: &Server, key: &str, id: &str, oid: &str, state: &str) -> Value {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(45);
    loop {
        let (_, rec) = s.get(key, &format!("/v1/recordings/{id}")).await;
        let outs = rec["outputs"].as_array().cloned().unwrap_or_default();
        if outs.iter().any(|o| o["id"] == oid && o["state"] == state) {
            return rec;
        }
        assert!(
            std::time::Instant::now() < until,
            "{oid} never {state}: {}",
            rec["outputs"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_go_out_over_rtmp_and_srt_added_removed_and_retried() {
    use tapedeck_testkit::receivers::{NginxRtmp, SrtListener};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("nginx")).unwrap();
    let mut nginx = NginxRtmp::start(&dir.path().join("nginx"));
    let mut srt = SrtListener::start(&dir.path().join("srt.ts"));
    let allowed = vec![
        format!("127.0.0.1:{}", nginx.port),
        format!("127.0.0.1:{}", srt.port),
    ];
    let s = start(move |c| c.outputs.allowed_hosts = allowed).await;
    let key = s.key("ann", false).await;
    // Another loopback port is still refused.
    let (st, e) = s
        .post(
            &key,
            "/v1/recordings",
            json!({"source": {"kind": "frames"}, "outputs": [{"kind": "rtmp", "url": "rtmp://127.0.0.1:1/live/x"}]}),
        )
        .await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (422, &json!("invalid_output")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("outputs.allow_private_networks"),
        "{e}"
    );

    let rec = s
        .create(
            &key,
            json!({"source": {"kind": "frames"}, "width": W, "height": H, "fps": FPS,
                   "outputs": [{"kind": "rtmp", "url": nginx.url("cam")}]}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &key)).await;
    let total = 40 * FPS;
    let pusher = tokio::spawn(async move {
        send_realtime(&mut ws, total).await;
    });
    output_state(&s, &key, &id, "o1", "active").await;

    // An SRT output added while it records, then removed.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let path = format!("/v1/recordings/{id}/outputs");
    let (st, o2) = s
        .post(&key, &path, json!({"kind": "srt", "url": srt.url()}))
        .await;
    assert_eq!((st, &o2["id"]), (201, &json!("o2")), "{o2}");
    output_state(&s, &key, &id, "o2", "active").await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(s.delete(&key, &format!("{path}/o2")).await, 204);
    output_state(&s, &key, &id, "o2", "stopped").await;
    assert!(
        srt.ended(std::time::Duration::from_secs(15)),
        "the SRT listener saw its caller go"
    );
    let got = tapedeck_testkit::decode_count(&srt.file.display().to_string());
    assert_eq!(got.codec, "h264", "{got:?}");
    assert!(got.frames >= 2 * u64::from(FPS), "{got:?}");
    let marks = barcode::decode_video(std::path::Path::new("ffmpeg"), &srt.file, FPS).unwrap();
    assert!(
        marks.iter().flatten().count() as u64 >= 2 * u64::from(FPS),
        "barcodes over SRT"
    );

    // The RTMP server killed mid-stream: retried with backoff, then
    // pushing again once it is back; the recording goes on.
    nginx.kill();
    let retrying = output_state(&s, &key, &id, "o1", "retrying").await;
    let o1 = &retrying["outputs"][0];
    assert!(
        o1["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{o1}"
    );
    assert_eq!(retrying["status"], "recording");
    nginx.restart();
    output_state(&s, &key, &id, "o1", "active").await;
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;

    // Checks of adding and removing.
    let (st, e) = s
        .post(
            &key,
            &path,
            json!({"kind": "rtmp", "url": "file:///etc/passwd"}),
        )
        .await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (422, &json!("invalid_output")),
        "{e}"
    );
    let (st, e) = s.post(&key, &path, json!({"kind": "hls"})).await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (409, &json!("invalid_transition")),
        "{e}"
    );
    assert_eq!(s.delete(&key, &format!("{path}/o9")).await, 404);
    let bob = s.key("bob", false).await;
    let (st, _) = s
        .post(&bob, &path, json!({"kind": "srt", "url": srt.url()}))
        .await;
    assert_eq!(st, 404);

    pusher.await.unwrap();
    s.post(&key, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&key, &id, "completed").await;
    assert_eq!(done["media"]["frames"], json!(total), "{done}");
    assert_eq!(done["outputs"][0]["state"], "stopped", "{done}");
    let (st, e) = s
        .post(&key, &path, json!({"kind": "srt", "url": srt.url()}))
        .await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (409, &json!("invalid_transition")),
        "{e}"
    );

    // A variable-rate recording's stream goes from its live segments.
    let vfr = s
        .create(
            &key,
            json!({"source": {"kind": "frames"}, "width": W, "height": H, "fps": FPS, "cfr": false,
                   "outputs": [{"kind": "rtmp", "url": nginx.url("vfr")}]}),
        )
        .await;
    let vid = vfr["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{vid}/frames"), &key)).await;
    let n = 12 * FPS;
    send_realtime(&mut ws, n).await;
    output_state(&s, &key, &vid, "o1", "active").await;
    s.post(&key, &format!("/v1/recordings/{vid}/stop"), json!({}))
        .await;
    s.wait_status(&key, &vid, "completed").await;
    // A WebM recording is VP9: no stream.
    let (st, e) = s
        .post(
            &key,
            "/v1/recordings",
            json!({"source": {"kind": "frames"}, "format": "webm", "outputs": [{"kind": "rtmp", "url": nginx.url("x")}]}),
        )
        .await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (422, &json!("invalid_output")),
        "{e}"
    );

    // What nginx recorded: a file before the kill and one after, H.264,
    // the barcodes moving on in the last; the variable-rate one.
    nginx.kill();
    let all = nginx.recorded();
    let (vfr_files, files): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|p| p.file_name().unwrap().to_string_lossy().starts_with("vfr"));
    assert_eq!(vfr_files.len(), 1, "{vfr_files:?}");
    let got = tapedeck_testkit::decode_count(&vfr_files[0].display().to_string());
    assert_eq!(got.codec, "h264", "{got:?}");
    assert!(got.frames > 2 * u64::from(FPS), "{got:?}");
    assert!(files.len() >= 2, "{files:?}");
    for f in &files {
        let got = tapedeck_testkit::decode_count(&f.display().to_string());
        assert_eq!(got.codec, "h264", "{f:?}: {got:?}");
        assert!(got.frames > u64::from(FPS), "{f:?}: {got:?}");
    }
    let last =
        barcode::decode_video(std::path::Path::new("ffmpeg"), files.last().unwrap(), FPS).unwrap();
    let counters: Vec<u16> = last.iter().flatten().map(|m| m.counter).collect();
    assert!(counters.len() as u64 > u64::from(FPS), "{counters:?}");
    assert!(counters.windows(2).all(|w| w[1] >= w[0]), "{counters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_gets_hls_and_pictures_from_its_file() {
    use base64::Engine;
    let s = start(|_| {}).await;
    let key = s.key("ann", false).await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(live_webm(dir.path(), 7)).unwrap();
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let outputs = r#"[{"kind": "hls"}, {"kind": "images", "every_s": 3, "width": 160}]"#;
    let r = tus_request(
        &s.base,
        &key,
        "POST",
        "/v1/uploads",
        &[
            ("Upload-Length", bytes.len().to_string()),
            (
                "Upload-Metadata",
                format!("filename {},outputs {}", b64("clip.webm"), b64(outputs)),
            ),
            ("Content-Type", "application/offset+octet-stream".into()),
        ],
        bytes.clone(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let id = header(&r, "location")
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let done = s.wait_status(&key, &id, "completed").await;
    assert_eq!(done["outputs"][0]["state"], "completed", "{done}");
    // Every picture of the file in CMAF segments.
    let url = format!("{}/v1/recordings/{id}/hls/index.m3u8?token={key}", s.base);
    let got = tapedeck_testkit::decode_count(&url);
    assert_eq!(
        got.codec, "h264",
        "VP8 is not in CMAF: encoded for HLS: {got:?}"
    );
    assert_eq!(
        got.frames,
        done["media"]["frames"].as_u64().unwrap(),
        "{got:?}"
    );
    let (_, images) = s.get(&key, &format!("/v1/recordings/{id}/images")).await;
    assert_eq!(images["images"].as_array().unwrap().len(), 3, "{images}");
    // A stream has nothing to stream from an upload; bad JSON is named.
    for (outputs, code) in [
        (
            r#"[{"kind": "srt", "url": "srt://x.org:9000"}]"#,
            "invalid_output",
        ),
        ("[{", "invalid_request"),
    ] {
        let r = tus_request(
            &s.base,
            &key,
            "POST",
            "/v1/uploads",
            &[
                ("Upload-Length", "10".into()),
                ("Upload-Metadata", format!("outputs {}", b64(outputs))),
            ],
            vec![],
        )
        .await;
        let st = r.status().as_u16();
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], code, "{st} {e}");
    }
}

/// A call's grid composed while the call runs: hls.js plays it live (the
/// publisher's barcode read off the player's picture), its segments carry
/// the sound, nginx records an RTMP push of it, pictures come every 2 s;
/// after stop the VOD is cut from the grid made then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_grid_plays_live_in_hls_js_and_streams_over_rtmp() {
    call_grid_live(None).await;
}

/// The same from an H.264 camera (its decoder reads Annex B, not IVF).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_grid_from_an_h264_camera_plays_live() {
    call_grid_live(Some("H264")).await;
}

/// A call with Ann publishing (her camera in `codec`, else Chromium's
/// first choice, VP8) and a grid recording with live outputs.
async fn call_grid_live(codec: Option<&str>) {
    use support::rooms::{invite, new_room};
    use tapedeck_testkit::receivers::{NginxRtmp, SrtListener};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("nginx")).unwrap();
    let mut nginx = NginxRtmp::start(&dir.path().join("nginx"));
    let mut srt = SrtListener::start(&dir.path().join("call.ts"));
    let allowed = vec![
        format!("127.0.0.1:{}", nginx.port),
        format!("127.0.0.1:{}", srt.port),
    ];
    let s = start(move |c| c.outputs.allowed_hosts = allowed).await;
    let host = s.key("alice", false).await;
    let room = new_room(&s, &host).await;
    let ann = invite(&s, &host, &room, "Ann").await;
    let rec = s
        .create(
            &host,
            json!({"source": {"kind": "room", "room": room, "layout": "grid"},
                   "width": 640, "height": 360, "fps": 15,
                   "outputs": [{"kind": "hls", "segment_s": 1},
                               {"kind": "images", "every_s": 2, "width": 320},
                               {"kind": "rtmp", "url": nginx.url("call")},
                               {"kind": "srt", "url": srt.url()}]}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    // Ann sends the barcode (muted: a speaking frame would cover it).
    let publisher = {
        let mut args = vec![s.base.clone(), room.clone(), ann, "26".into()];
        args.extend(codec.map(str::to_string));
        let env = [
            ("WHIP_BARCODE", "1".to_string()),
            ("WHIP_MUTED", "1".to_string()),
        ];
        tokio::spawn(async move { page_script_env("whip.mjs", args, &env).await })
    };
    output_state(&s, &host, &id, "o1", "active").await;
    output_state(&s, &host, &id, "o3", "active").await;
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let player = LiveScript::start(
        "hls_live.mjs",
        vec![s.base.clone(), id.clone(), host.clone(), "12".into()],
    );
    // The live segments carry the call's sound too.
    let live_url = format!("{}/v1/recordings/{id}/hls/index.m3u8?token={host}", s.base);
    let live_codecs = codecs(&live_url);
    assert_eq!(live_codecs, ["h264", "aac"], "{live_codecs:?}");
    let readings = player.finish().await;
    let (_, live) = s.get(&host, &format!("/v1/recordings/{id}")).await;
    assert_eq!(
        live["status"], "recording",
        "played while recording: {live}"
    );
    let published = publisher.await.unwrap();
    assert_eq!(published["status"], 201, "{published}");
    let sent = published["sent"]["video"]["codec"].as_str().unwrap_or("");
    assert_eq!(
        sent,
        format!("video/{}", codec.unwrap_or("VP8")),
        "{published}"
    );
    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    assert_eq!(done["outputs"][0]["state"], "completed", "{done}");
    assert_eq!(done["outputs"][1]["state"], "completed", "{done}");
    assert_eq!(done["outputs"][2]["state"], "stopped", "{done}");

    // What the player showed while the call ran: Ann's barcodes, moving on.
    assert_eq!(readings["errors"], json!([]), "{readings}");
    let lines = readings["lines"].as_array().cloned().unwrap_or_default();
    let counters: Vec<u64> = lines.iter().filter_map(|r| r["counter"].as_u64()).collect();
    let mut behind: Vec<f64> = lines
        .iter()
        .filter_map(|r| Some(r["edge"].as_f64()? - r["current"].as_f64()?))
        .collect();
    behind.sort_by(f64::total_cmp);
    eprintln!(
        "the live grid in hls.js: {} of {} readings, median {:.2} s behind the live edge",
        counters.len(),
        lines.len(),
        behind.get(behind.len() / 2).copied().unwrap_or(-1.0)
    );
    assert!(counters.len() >= 10, "{readings}");
    assert!(counters.windows(2).all(|w| w[1] >= w[0]), "{counters:?}");
    assert!(
        counters.last().unwrap() > &(counters[0] + 60),
        "{counters:?}"
    );

    // The VOD: the grid's every picture, its sound too.
    let url = format!("{}/v1/recordings/{id}/hls/index.m3u8?token={host}", s.base);
    let (vod_frames, vod_duration) = probe(&url);
    assert_eq!(
        vod_frames,
        done["media"]["frames"].as_u64().unwrap(),
        "{done}"
    );
    let duration_s = done["duration_s"].as_f64().unwrap();
    assert!(
        (vod_duration - duration_s).abs() < 0.2,
        "{vod_duration} vs {duration_s}"
    );
    assert_eq!(codecs(&url), ["h264", "aac"]);
    let (_, images) = s.get(&host, &format!("/v1/recordings/{id}/images")).await;
    let n = images["images"].as_array().map_or(0, Vec::len);
    assert!(
        n as f64 >= duration_s / 2.0 - 1.0,
        "{n} pictures for {duration_s} s"
    );

    // The SRT listener got the grid with its sound, and ended with it.
    assert!(
        srt.ended(std::time::Duration::from_secs(20)),
        "the SRT push never ended"
    );
    let ts = dir.path().join("call.ts").display().to_string();
    assert_eq!(codecs(&ts), ["h264", "aac"]);
    let got = tapedeck_testkit::decode_count(&ts);
    assert!(
        got.frames as f64 > duration_s * 15.0 / 2.0,
        "{got:?} over {duration_s} s"
    );

    // nginx recorded the grid as it was pushed: H.264, Ann's barcodes.
    nginx.kill();
    let files = nginx.recorded();
    assert_eq!(files.len(), 1, "{files:?}");
    let got = tapedeck_testkit::decode_count(&files[0].display().to_string());
    assert_eq!(got.codec, "h264", "{got:?}");
    let marks = barcode::decode_video(std::path::Path::new("ffmpeg"), &files[0], 15).unwrap();
    let read: Vec<u16> = marks.iter().flatten().map(|m| m.counter).collect();
    // Smooth: Ann sends 30 pictures a second, the grid is 15, so each of
    // its pictures is about two of hers on (a grid fed in bursts would
    // repeat pictures, then jump).
    let steps: Vec<i64> = read
        .windows(2)
        .map(|w| i64::from(w[1]) - i64::from(w[0]))
        .collect();
    let even = steps.iter().filter(|d| (1..=3).contains(*d)).count();
    eprintln!(
        "nginx: {} of {} pictures read; {even} of {} steps of 1-3 of Ann's pictures, the largest {:?}",
        read.len(),
        marks.len(),
        steps.len(),
        steps.iter().max()
    );
    assert!(even * 10 >= steps.len() * 9, "{steps:?}");
    assert!(
        read.len() > 60,
        "{} of {} pictures read",
        read.len(),
        marks.len()
    );
    assert!(read.windows(2).all(|w| w[1] >= w[0]), "{read:?}");
}
