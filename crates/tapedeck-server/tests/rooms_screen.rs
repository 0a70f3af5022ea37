//! Screen share: on the call page (tests/e2e/call_screen.mjs, Debian's
//! Chromium with a fake screen) the host shares a screen; the guest sees it
//! as a tile of its own until the host stops. The recording lists the
//! screen's tracks with `source: "screen"` and `"screen_audio"`, and its
//! grid gives the screen the big cell with the people in a strip below.

mod support;

use serde_json::json;
use support::rooms::*;
use support::*;

/// Whether much of the rectangle is lit (not black).
fn lit(f: &[u8], w: u32, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> f64 {
    let (mut n, mut all) = (0, 0);
    for y in (y0..y1).step_by(6) {
        for x in (x0..x1).step_by(6) {
            all += 1;
            n += usize::from(px(f, w, x, y).iter().any(|&c| c > 40));
        }
    }
    n as f64 / all.max(1) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_screen_is_its_own_tile_its_own_track_and_the_grids_big_cell() {
    let s = start(|_| {}).await;
    let host = s.key("ann", false).await;
    let room = new_room(&s, &host).await;
    let guest = invite(&s, &host, &room, "Bob").await;
    let rec = s
        .create(
            &host,
            json!({"source": {"kind": "room", "room": room, "layout": "grid"},
                   "format": "mp4", "preset": "low"}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let out = page_script(
        "call_screen.mjs",
        vec![
            s.base.clone(),
            room.clone(),
            host.clone(),
            guest,
            "3".into(),
        ],
    )
    .await;
    println!("{out}");
    assert_eq!(out["pageErrors"], json!([]), "{out}");
    assert!(out.get("guestErrors").is_none(), "{out}");
    assert_eq!(out["screenTilesBefore"], 0);
    assert_eq!(
        out["hostButton"],
        json!({"text": "Stop sharing", "pressed": "true"})
    );
    let saw = &out["guestSaw"];
    assert_eq!(saw["name"], "Ann's screen", "{out}");
    assert!(saw["width"].as_u64().unwrap() >= 640, "{out}");
    assert_eq!(
        saw["tracks"],
        json!(["audio", "video"]),
        "its sound too: {out}"
    );
    assert_eq!(out["screenGone"], true);
    assert_eq!(out["hostButtonAfter"], "Share screen");

    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    let tracks = done["tracks"].as_array().unwrap();
    println!("{}", serde_json::to_string_pretty(tracks).unwrap());
    let sources = |who: &str| {
        let mut v: Vec<String> = tracks
            .iter()
            .filter(|t| t["participant"] == who)
            .map(|t| t["source"].as_str().unwrap_or("").to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        sources("Ann"),
        ["camera", "microphone", "screen", "screen_audio"],
        "{done}"
    );
    assert_eq!(sources("Bob"), ["camera", "microphone"], "{done}");
    let screen = tracks.iter().find(|t| t["source"] == "screen").unwrap();
    let file = download_track(&s, &host, &id, screen["id"].as_str().unwrap()).await;
    assert_eq!(decode_errors(&file), "");
    let p = tapedeck_testkit::ffprobe(&file);
    assert!(p.width >= 640 && p.duration_s > 2.0, "{p:?}");

    // The grid: 854x480, the screen's cell the top 360 rows (black before
    // the share, lit during it), the two people in the strip below.
    let media = s.download(&host, &id, "mp4").await;
    let g = tapedeck_testkit::ffprobe(&media);
    assert_eq!((g.width, g.height), (854, 480), "{g:?}");
    let at = screen["start_s"].as_f64().unwrap();
    let (w, h) = (854usize, 480usize);
    let before = frame_rgb(&media, at - 1.0, w, h);
    let during = frame_rgb(
        &media,
        at + screen["duration_s"].as_f64().unwrap() / 2.0,
        w,
        h,
    );
    let big = (20, 20, 834, 340);
    let (b, d) = (lit(&before, 854, big), lit(&during, 854, big));
    println!("screen cell lit: {b:.2} before the share, {d:.2} during it");
    assert!(b < 0.05, "black before the share: {b}");
    assert!(d > 0.3, "the screen during it: {d}");
    // Both people in the strip, during the share.
    for x0 in [0, 427] {
        let cell = (x0 + 20, 370, x0 + 400, 460);
        assert!(lit(&during, 854, cell) > 0.2, "a person at x {x0}");
    }
}
