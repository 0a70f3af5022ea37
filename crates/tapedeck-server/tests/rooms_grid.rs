//! A room recorded as a grid: two people publish from Chromium over WHIP,
//! the second joining later; after stop ffmpeg composes them into one MP4
//! at the preset's size and rate, in join order, names drawn, black where
//! someone is not there yet, sound mixed, the one speaking framed (the
//! speaker timeline). A grid that cannot be made keeps the track files
//! and says why.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::rooms::*;
use support::*;

/// Whether the pixel is (near) black.
fn black(p: [u8; 3]) -> bool {
    p.iter().all(|&c| c < 30)
}

/// Whether any pixel of the rectangle is (near) white: drawn text.
fn has_white(f: &[u8], w: u32, x0: u32, y0: u32, x1: u32, y1: u32) -> bool {
    (y0..y1).any(|y| (x0..x1).any(|x| px(f, w, x, y).iter().all(|&c| c > 200)))
}

async fn publish(
    s: &Server,
    room: &str,
    token: &str,
    seconds: u32,
) -> tokio::task::JoinHandle<Value> {
    publish_muted(s, room, token, seconds, false).await
}

/// `muted`: the microphone's track disabled (silence is sent).
async fn publish_muted(
    s: &Server,
    room: &str,
    token: &str,
    seconds: u32,
    muted: bool,
) -> tokio::task::JoinHandle<Value> {
    let env = [("WHIP_MUTED", if muted { "1" } else { "0" }.to_string())];
    let args = vec![
        s.base.clone(),
        room.to_string(),
        token.to_string(),
        seconds.to_string(),
    ];
    tokio::spawn(async move { page_script_env("whip.mjs", args, &env).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_recording_composes_everyone_in_join_order_with_names() {
    let s = start(|_| {}).await;
    let host = s.key("alice", false).await;
    let room = new_room(&s, &host).await;
    let ann = invite(&s, &host, &room, "Ann").await;
    let bob = invite(&s, &host, &room, "Bob").await;
    let rec = s
        .create(
            &host,
            json!({"source": {"kind": "room", "room": room, "layout": "grid"},
                   "format": "mp4", "preset": "low"}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(rec["format"], "mp4");
    // Ann publishes long enough to overlap Bob's 3 s even when his browser
    // is slow to start (a loaded machine took 6.5 s to get him sending).
    let a = publish(&s, &room, &ann, 10).await;
    // Bob joins once Ann has been sending for a while.
    for _ in 0..300 {
        let (_, r) = s.get(&host, &format!("/v1/rooms/{room}")).await;
        if r["participants"][0]["frames_in"].as_u64().unwrap_or(0) > 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Bob's microphone is off: he is in the call and never speaks.
    let b = publish_muted(&s, &room, &bob, 3, true).await;
    assert_eq!(b.await.unwrap()["status"], 201);
    assert_eq!(a.await.unwrap()["status"], 201);
    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    println!("{}", serde_json::to_string_pretty(&done["tracks"]).unwrap());
    println!("speakers: {}", done["speakers"]);
    assert!(done["note"].is_null(), "{done}");
    // The speaker timeline: Ann's fake microphone beeps; Bob's is off.
    let speech = done["speakers"].as_array().cloned().unwrap_or_default();
    assert!(!speech.is_empty(), "{done}");
    assert!(
        speech.iter().all(|s| s["participant"] == "Ann"),
        "{speech:?}"
    );
    assert_eq!(done["stats"]["progress"], 1.0, "{done}");
    let tracks = done["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 4, "{done}");
    let start_of = |who: &str| {
        tracks
            .iter()
            .filter(|t| t["participant"] == who)
            .map(|t| t["start_s"].as_f64().unwrap())
            .fold(f64::MAX, f64::min)
    };
    let (ann_at, bob_at) = (start_of("Ann"), start_of("Bob"));
    assert!(bob_at > ann_at + 2.0, "Bob joined later: {ann_at} {bob_at}");
    let end_of = |who: &str| {
        tracks
            .iter()
            .filter(|t| who.is_empty() || t["participant"] == who)
            .map(|t| t["start_s"].as_f64().unwrap() + t["duration_s"].as_f64().unwrap())
            .fold(0.0, f64::max)
    };
    let end = end_of("");
    // Both sent for a while: the grid shows both in the middle of that.
    let both_until = end_of("Ann").min(end_of("Bob"));
    assert!(
        both_until > bob_at + 1.0,
        "Ann left at {both_until}, Bob came at {bob_at}"
    );

    // /media: H.264 and AAC at the preset's 854x480, 24 fps, as long as the tracks.
    let media = s.download(&host, &id, "mp4").await;
    assert_eq!(codecs(&media), ["aac", "h264"]);
    let p = tapedeck_testkit::ffprobe(&media);
    println!("grid: {p:?}, tracks end at {end} s");
    assert_eq!((p.width, p.height), (854, 480), "{p:?}");
    assert!((p.fps - 24.0).abs() < 0.01, "{p:?}");
    assert!((p.duration_s - end).abs() < 0.3, "{p:?} against {end}");
    assert!(
        (p.frames as f64 - end * 24.0).abs() <= 3.0,
        "{} frames for {end} s",
        p.frames
    );
    assert_eq!(decode_errors(&media), "");

    // Two cells side by side (426 wide): Ann, who joined first, on the left.
    let (w, h) = (854, 480);
    // A cell shows a picture when much of it is lit: the fake camera's
    // pattern moves, so any one pixel of it may be dark at a given instant.
    let lit = |f: &[u8], x0: u32| {
        let mut n = 0;
        for y in (40..400).step_by(8) {
            for x in (x0 + 8..x0 + 418).step_by(8) {
                n += usize::from(!black(px(f, w, x, y)));
            }
        }
        n
    };
    let cell = (360 / 8) * (410 / 8 + 1);
    let before_bob = frame_rgb(
        &media,
        (ann_at + bob_at) / 2.0 + 0.5,
        w as usize,
        h as usize,
    );
    assert!(
        lit(&before_bob, 0) > cell / 4,
        "Ann's picture: {} of {cell} lit",
        lit(&before_bob, 0)
    );
    assert_eq!(lit(&before_bob, 426), 0, "Bob not there yet");
    let both = frame_rgb(&media, (bob_at + both_until) / 2.0, w as usize, h as usize);
    assert!(
        lit(&both, 0) > cell / 4,
        "Ann's picture: {} of {cell} lit",
        lit(&both, 0)
    );
    assert!(
        lit(&both, 426) > cell / 4,
        "Bob's picture: {} of {cell} lit",
        lit(&both, 426)
    );
    // The one speaking (Ann, throughout) is framed in green; Bob is not.
    let green = |f: &[u8], x0: u32| {
        (x0 + 20..x0 + 400)
            .step_by(4)
            .filter(|&x| {
                let [r, g, b] = px(f, w, x, 2);
                g > 150 && r < 120 && b < 170
            })
            .count()
    };
    assert!(green(&both, 0) > 80, "Ann framed: {}", green(&both, 0));
    assert_eq!(green(&both, 426), 0, "Bob, silent, not framed");
    // Each name is drawn at the bottom of its cell, on the black below the picture.
    assert!(has_white(&both, w, 0, 400, 200, 478), "Ann's name");
    assert!(has_white(&both, w, 426, 400, 626, 478), "Bob's name");
    assert!(
        !has_white(&both, w, 200, 400, 426, 478),
        "nothing else drawn there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_that_cannot_be_made_keeps_the_tracks_and_says_so() {
    // An x264 preset that does not exist makes the composite fail (the
    // tracks need no encoder).
    let s = start(|c| c.encoder.x264_preset = "no-such-preset".into()).await;
    let host = s.key("alice", false).await;
    let room = new_room(&s, &host).await;
    let ann = invite(&s, &host, &room, "Ann").await;
    let rec = s
        .create(
            &host,
            json!({"source": {"kind": "room", "room": room, "layout": "grid"}, "format": "mp4"}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(
        publish(&s, &room, &ann, 3).await.await.unwrap()["status"],
        201
    );
    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    assert_eq!(done["note"]["code"], "grid_failed", "{done}");
    assert!(
        done["note"]["message"]
            .as_str()
            .unwrap()
            .contains("track files are intact"),
        "{done}"
    );
    assert_eq!(done["format"], "webm", "{done}");
    let media = s.download(&host, &id, "webm").await;
    assert_eq!(codecs(&media), ["opus", "vp8"]);
    let tracks = done["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "{done}");
    for t in tracks {
        let tid = t["id"].as_str().unwrap();
        let file = download_track(&s, &host, &id, tid).await;
        assert_eq!(decode_errors(&file), "", "{tid}");
        assert!(duration_s(&file) > 2.5, "{tid}");
    }
}
