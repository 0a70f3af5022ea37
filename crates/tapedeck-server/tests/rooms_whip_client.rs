//! A WHIP publisher that is not a browser: the load tool's str0m clients
//! (`tapedeck_testkit::loadgen`, what `tapedeck-loadgen` and
//! bench/rooms.sh run), each sending a VP8 clip and an Opus clip made by
//! ffmpeg here, paced in real time. Every frame sent must be in its
//! track file, placed where it was sent. And libdatachannel, the stack
//! OBS Studio's WHIP output is built on (tests/e2e/whip_ldc.mjs).

mod support;

use std::process::Command;

use serde_json::json;
use support::rooms::*;
use support::*;
use tapedeck_testkit::loadgen::{Load, publish};

/// The packets of `path`'s first stream.
fn packets(path: &std::path::Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "0", "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_str0m_publishers_are_recorded_frame_for_frame() {
    let s = start(|_| {}).await;
    let host = s.key("alice", false).await;
    let room_id = new_room(&s, &host).await;
    let tokens = vec![
        invite(&s, &host, &room_id, "Pub 1").await,
        invite(&s, &host, &room_id, "Pub 2").await,
    ];
    let (video, audio) = (s.data.join("clip.ivf"), s.data.join("clip.opus"));
    make_clips(&video, &audio);
    let rec = s
        .create(&host, json!({"source": {"kind": "room", "room": room_id}}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let sent = publish(&Load {
        whip: format!("{}/v1/rooms/{room_id}/whip", s.base),
        tokens,
        video,
        audio,
        seconds: 4,
        stagger_ms: 1000,
        call: false,
    })
    .await
    .unwrap();
    println!("{sent}");
    assert_eq!(sent["connected"], 2, "{sent}");
    assert_eq!(sent["failed"], json!([]), "{sent}");
    // Each was asked for a keyframe as its video track came in.
    assert!(sent["keyframe_requests"].as_u64().unwrap() >= 2, "{sent}");
    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    let tracks = done["tracks"].as_array().unwrap();
    println!("{}", serde_json::to_string(tracks).unwrap());
    assert_eq!(tracks.len(), 4, "{done}");
    let (mut video_frames, mut audio_frames) = (0, 0);
    let (mut starts, mut ends) = (vec![], vec![]);
    for t in tracks {
        let file = download_track(&s, &host, &id, t["id"].as_str().unwrap()).await;
        assert_eq!(decode_errors(&file), "", "{t}");
        let dur = duration_s(&file);
        if t["kind"] == "video" {
            let p = tapedeck_testkit::ffprobe(&file);
            assert_eq!((p.codec.as_str(), p.width, p.height), ("vp8", 640, 360));
            video_frames += p.frames;
            starts.push((t["participant"].clone(), t["start_s"].as_f64().unwrap()));
        } else {
            assert_eq!(codecs(&file), ["opus"]);
            audio_frames += packets(&file);
        }
        // Every publisher stops at the same moment, at least 4 s in.
        let start = t["start_s"].as_f64().unwrap();
        assert!(dur > 3.9, "{t}: {dur} s");
        ends.push(start + dur);
    }
    let spread = ends.iter().cloned().fold(f64::MIN, f64::max)
        - ends.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 0.3, "the tracks end together: {ends:?}");
    // Loopback loses nothing: every frame sent is in a file.
    let (sv, sa) = (
        sent["video_frames"].as_u64().unwrap(),
        sent["audio_frames"].as_u64().unwrap(),
    );
    assert!(
        video_frames + 4 >= sv && video_frames <= sv,
        "{video_frames} of {sv}"
    );
    assert!(
        audio_frames + 4 >= sa && audio_frames <= sa,
        "{audio_frames} of {sa}"
    );
    // Pub 2 started 1 s after Pub 1, and is placed so.
    starts.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(starts[0].0, "Pub 1", "{starts:?}");
    let offset = starts[1].1 - starts[0].1;
    assert!((offset - 1.0).abs() < 0.3, "{starts:?}");
}

/// A page that joins the call during a recording that was paused gets
/// `recording.live` with the time recorded so far, pauses left out (its
/// REC timer starts there), not the time since the recording started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_is_told_the_time_recorded_without_the_pauses() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let s = start(|_| {}).await;
    let host = s.key("alice", false).await;
    let room_id = new_room(&s, &host).await;
    let token = invite(&s, &host, &room_id, "Pub").await;
    let (video, audio) = (s.data.join("clip.ivf"), s.data.join("clip.opus"));
    make_clips(&video, &audio);
    let rec = s
        .create(&host, json!({"source": {"kind": "room", "room": room_id}}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let load = Load {
        whip: format!("{}/v1/rooms/{room_id}/whip", s.base),
        tokens: vec![token],
        video,
        audio,
        seconds: 8,
        stagger_ms: 0,
        call: false,
    };
    let publisher = tokio::spawn(async move { publish(&load).await });
    let t0 = std::time::Instant::now();
    let act = |a: &'static str| {
        let (s, host, id) = (&s, &host, &id);
        async move {
            let (st, r) = s
                .post(host, &format!("/v1/recordings/{id}/{a}"), json!({}))
                .await;
            assert_eq!(st, 200, "{a}: {r}");
        }
    };
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    act("pause").await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    act("resume").await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    let mut ws = connect(&s.ws_url(&format!("/v1/rooms/{room_id}/call"), &host)).await;
    let join =
        json!({"type": "join", "offer": offer(str0m::media::Direction::RecvOnly), "name": "Late"});
    ws.send(Message::Text(join.to_string().into()))
        .await
        .unwrap();
    let live = loop {
        let m = next_json(&mut ws).await;
        assert_ne!(m["type"], "error", "{m}");
        if m["event"] == "recording.live" {
            break m;
        }
    };
    let since_start = t0.elapsed().as_secs_f64();
    let recorded = live["recorded_s"].as_f64().unwrap();
    println!("recorded_s {recorded:.3} after {since_start:.3} s with 3 s paused");
    assert_eq!(live["recording"]["id"], id.as_str());
    // About 2 s before the pause and 1 s after it, of the 6 s since start.
    assert!(
        recorded > 1.5 && recorded < since_start - 2.5,
        "recorded_s {recorded} after {since_start} s"
    );
    let sent = publisher.await.unwrap().unwrap();
    assert_eq!(sent["connected"], 1, "{sent}");
}

/// A room recording started the instant a publisher connects, or long
/// after, has its video. The publisher behaves as a browser does: one
/// keyframe when it starts, then only when asked (its clip has no other).
/// When the recording starts just as it connects, the call's own keyframe
/// request has just gone out and the sender's limit (one a second) drops
/// the recording's; the recording must ask again until a keyframe comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_started_as_a_publisher_connects_has_its_video() {
    let s = start(|_| {}).await;
    let host = s.key("alice", false).await;
    let (video, audio) = (s.data.join("clip.ivf"), s.data.join("clip.opus"));
    make_clips(&video, &audio);
    // 12 s with a keyframe at its start only.
    let r = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=30",
        ])
        .args(["-t", "12", "-c:v", "libvpx", "-b:v", "300k", "-g", "1000"])
        .args(["-deadline", "realtime", "-cpu-used", "8"])
        .arg(&video)
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    // Eight starts at the instant of connecting (before the fix, about
    // half of them lost the video), one 2.5 s after.
    for wait_ms in [0, 0, 0, 0, 0, 0, 0, 0, 2500] {
        let room_id = new_room(&s, &host).await;
        let token = invite(&s, &host, &room_id, "Pub").await;
        let load = Load {
            whip: format!("{}/v1/rooms/{room_id}/whip", s.base),
            tokens: vec![token],
            video: video.clone(),
            audio: audio.clone(),
            seconds: if wait_ms > 0 { 7 } else { 4 },
            stagger_ms: 0,
            call: false,
        };
        let publisher = tokio::spawn(async move { publish(&load).await });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (_, r) = s.get(&host, &format!("/v1/rooms/{room_id}")).await;
            if r["participants"][0]["connected"] == true {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never connected: {r}");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
        let rec = s
            .create(&host, json!({"source": {"kind": "room", "room": room_id}}))
            .await;
        let id = rec["id"].as_str().unwrap().to_string();
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
            .await;
        let done = s.wait_status(&host, &id, "completed").await;
        let track = video_track(&done);
        let file = download_track(&s, &host, &id, track["id"].as_str().unwrap()).await;
        let p = tapedeck_testkit::ffprobe(&file);
        assert_eq!((p.codec.as_str(), p.width, p.height), ("vp8", 320, 240));
        // 2.5 s recorded; the video begins at most about a second in.
        assert!(
            p.frames >= 40,
            "{} frames after {wait_ms} ms: {done}",
            p.frames
        );
        assert_eq!(decode_errors(&file), "", "{track}");
        let sent = publisher.await.unwrap().unwrap();
        assert_eq!(sent["failed"], json!([]), "{sent}");
    }
}

/// A call in which nobody sends video is recorded as its sound: the
/// recording completes with the audio (`note: no_video`), not fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_video_keeps_its_sound() {
    let s = start(|_| {}).await;
    let host = s.key("alice", false).await;
    let (video, audio) = (s.data.join("clip.ivf"), s.data.join("clip.opus"));
    make_clips(&video, &audio);
    // A "video" clip whose frames are not VP8 keyframes a decoder could
    // start at: nothing is written to a video track.
    let mut ivf = std::fs::read(&video).unwrap();
    let header = u16::from_le_bytes([ivf[6], ivf[7]]) as usize;
    let mut at = header;
    while at + 12 <= ivf.len() {
        let n = u32::from_le_bytes(ivf[at..at + 4].try_into().unwrap()) as usize;
        if n > 0 {
            // Bit 0 of the first byte: 1 is an inter frame.
            ivf[at + 12] |= 1;
        }
        at += 12 + n;
    }
    std::fs::write(&video, ivf).unwrap();
    let room_id = new_room(&s, &host).await;
    let token = invite(&s, &host, &room_id, "Pub").await;
    let rec = s
        .create(&host, json!({"source": {"kind": "room", "room": room_id}}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let sent = publish(&Load {
        whip: format!("{}/v1/rooms/{room_id}/whip", s.base),
        tokens: vec![token],
        video,
        audio,
        seconds: 3,
        stagger_ms: 0,
        call: false,
    })
    .await
    .unwrap();
    assert_eq!(sent["connected"], 1, "{sent}");
    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    assert_eq!(done["note"]["code"], "no_video", "{done}");
    let tracks = done["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 1, "{done}");
    assert_eq!(tracks[0]["kind"], "audio");
    let media = s.download(&host, &id, "webm").await;
    assert_eq!(codecs(&media), ["opus"]);
    let dur = duration_s(&media);
    assert!(dur > 2.5, "{dur} s");
}

/// libdatachannel (node-datachannel's prebuilt binding: OBS Studio's WHIP
/// output uses this library) publishes H.264 and Opus that ffmpeg encoded
/// to RTP, passed on packet by packet: its DTLS and SDP are taken, and the
/// recording holds both, decoding cleanly at the picture's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libdatachannel_publishes_h264_and_opus_and_is_recorded() {
    let s = start(|_| {}).await;
    let host = s.key("alice", false).await;
    let room_id = new_room(&s, &host).await;
    let token = invite(&s, &host, &room_id, "OBS").await;
    let rec = s
        .create(&host, json!({"source": {"kind": "room", "room": room_id}}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let whip = format!("{}/v1/rooms/{room_id}/whip", s.base);
    let out = page_script("whip_ldc.mjs", vec![whip, token, "5".into()]).await;
    assert_eq!(out["status"], 201, "{out}");
    assert_eq!(out["errors"], json!([]), "{out}");
    assert_eq!(out["deleted"], 204, "{out}");
    // 5 s of 30 fps and 50 Opus frames a second, in packets.
    assert!(out["packets"]["video"].as_u64() > Some(150), "{out}");
    assert!(out["packets"]["audio"].as_u64() > Some(240), "{out}");
    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    let video = video_track(&done);
    assert_eq!(video["codec"], "h264", "{done}");
    let file = download_track(&s, &host, &id, video["id"].as_str().unwrap()).await;
    assert_eq!(decode_errors(&file), "");
    let p = tapedeck_testkit::ffprobe(&file);
    println!("libdatachannel's picture as recorded: {p:?}; sent {out}");
    assert_eq!((p.width, p.height), (640, 360), "{p:?}");
    // 150 pictures encoded; the first key frame comes at once.
    assert!(p.frames >= 140, "{p:?}");
    let audio = done["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "audio")
        .unwrap_or_else(|| panic!("no sound track: {done}"));
    assert_eq!(audio["codec"], "opus", "{done}");
    let file = download_track(&s, &host, &id, audio["id"].as_str().unwrap()).await;
    assert_eq!(decode_errors(&file), "");
    let n = packets(&file);
    println!("its sound as recorded: {n} Opus packets");
    assert!(n >= 240, "{audio}");
}
