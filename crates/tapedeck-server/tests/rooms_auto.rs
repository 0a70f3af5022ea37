//! Rooms that record themselves: a recording starts when the first
//! participant publishes (Debian's Chromium over WHIP, tests/e2e/whip.mjs),
//! stops by itself once the call has been empty for `idle_stop_s`, and the
//! next one to publish starts the next; a room's `max_duration_s` ends
//! one; each is listed under the room like one the host started.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::rooms::*;
use support::*;

async fn room_recordings(s: &Server, host: &str, room: &str) -> Vec<Value> {
    let (st, r) = s.get(host, &format!("/v1/rooms/{room}/recordings")).await;
    assert_eq!(st, 200, "{r}");
    r["recordings"].as_array().cloned().unwrap_or_default()
}

/// Waits until the room lists `n` recordings; them, newest first.
async fn wait_listed(s: &Server, host: &str, room: &str, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        let recs = room_recordings(s, host, room).await;
        if recs.len() >= n {
            return recs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("room {room} never listed {n} recordings");
}

async fn new_auto_room(s: &Server, host: &str, body: Value) -> String {
    let (st, r) = s.post(host, "/v1/rooms", body).await;
    assert_eq!(st, 201, "{r}");
    assert!(r["auto_record"].is_object(), "{r}");
    r["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_records_itself_from_the_first_publisher_and_stops_once_empty() {
    let s = start(|_| {}).await;
    let host = s.key("ann", false).await;
    let room = new_auto_room(
        &s,
        &host,
        json!({"name": "standup", "auto_record": {"layout": "tracks"}, "idle_stop_s": 3}),
    )
    .await;
    assert!(room_recordings(&s, &host, &room).await.is_empty());
    let bob = invite(&s, &host, &room, "Bob").await;

    // Bob publishes for 5 s: the recording starts with him.
    let out = page_script(
        "whip.mjs",
        vec![s.base.clone(), room.clone(), bob.clone(), "5".into()],
    )
    .await;
    assert_eq!(out["status"], 201, "{out}");
    let left = Instant::now();
    let recs = wait_listed(&s, &host, &room, 1).await;
    let id = recs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(recs[0]["owner"], "ann", "the host's, like one she started");
    assert_eq!(recs[0]["title"], "standup");
    // Still recording right after he left; done once the call has been
    // empty for 3 s.
    let done = s.wait_status(&host, &id, "completed").await;
    let waited = left.elapsed().as_secs_f64();
    println!("stopped {waited:.1} s after the call emptied: {done}");
    assert_eq!(done["end_reason"], "idle", "{done}");
    assert!(waited >= 2.5, "stopped {waited} s after the call emptied");
    let tracks = done["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "{done}");
    for t in tracks {
        let file = download_track(&s, &host, &id, t["id"].as_str().unwrap()).await;
        assert_eq!(decode_errors(&file), "", "{t}");
        // From his first picture: the whole 5 s (connecting took some).
        let d = duration_s(&file);
        assert!(d > 4.0, "{t}: {d} s of his 5 s");
    }

    // Bob again: the next recording.
    let out = page_script(
        "whip.mjs",
        vec![s.base.clone(), room.clone(), bob, "2".into()],
    )
    .await;
    assert_eq!(out["status"], 201, "{out}");
    let recs = wait_listed(&s, &host, &room, 2).await;
    assert_eq!(recs.len(), 2, "one more, not one per track");
    let next = recs.iter().find(|r| r["id"] != id.as_str()).unwrap();
    let done = s
        .wait_status(&host, next["id"].as_str().unwrap(), "completed")
        .await;
    assert_eq!(done["end_reason"], "idle", "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_max_duration_ends_its_recordings_and_one_running_is_not_doubled() {
    let s = start(|_| {}).await;
    let host = s.key("ann", false).await;
    let room = new_auto_room(
        &s,
        &host,
        json!({"name": "capped", "auto_record": {"layout": "tracks"}, "max_duration_s": 2}),
    )
    .await;
    let bob = invite(&s, &host, &room, "Bob").await;
    let out = page_script(
        "whip.mjs",
        vec![s.base.clone(), room.clone(), bob, "5".into()],
    )
    .await;
    assert_eq!(out["status"], 201, "{out}");
    let recs = wait_listed(&s, &host, &room, 1).await;
    let id = recs[0]["id"].as_str().unwrap();
    let done = s.wait_status(&host, id, "completed").await;
    assert_eq!(done["end_reason"], "max_duration", "{done}");
    assert_eq!(done["max_duration_s"], 2, "{done}");
    // Capped, it did not start again while Bob went on publishing.
    assert_eq!(room_recordings(&s, &host, &room).await.len(), 1);

    // A recording the host starts is capped by the room too.
    let (st, rec) = s
        .post(
            &host,
            "/v1/recordings",
            json!({"source": {"kind": "room", "room": room}, "max_duration_s": 600}),
        )
        .await;
    assert_eq!(st, 201, "{rec}");
    assert_eq!(rec["max_duration_s"], 2, "{rec}");

    // A room that records itself starts none beside one the host runs.
    let other = new_auto_room(
        &s,
        &host,
        json!({"name": "hosted", "auto_record": {"layout": "tracks"}, "idle_stop_s": 60}),
    )
    .await;
    let (st, mine) = s
        .post(
            &host,
            "/v1/recordings",
            json!({"source": {"kind": "room", "room": other}}),
        )
        .await;
    assert_eq!(st, 201, "{mine}");
    let carl = invite(&s, &host, &other, "Carl").await;
    let out = page_script(
        "whip.mjs",
        vec![s.base.clone(), other.clone(), carl, "2".into()],
    )
    .await;
    assert_eq!(out["status"], 201, "{out}");
    let recs = room_recordings(&s, &host, &other).await;
    assert_eq!(recs.len(), 1, "only the host's: {recs:?}");
    let mine = mine["id"].as_str().unwrap();
    s.post(&host, &format!("/v1/recordings/{mine}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, mine, "completed").await;
    assert_eq!(done["tracks"].as_array().unwrap().len(), 2, "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_record_settings_are_checked_like_a_recording() {
    let s = start(|_| {}).await;
    let host = s.key("ann", false).await;
    for (body, says) in [
        (
            json!({"name": "x", "auto_record": {"layout": "mosaic"}}),
            "mosaic",
        ),
        (
            json!({"name": "x", "auto_record": {"source": {"kind": "frames"}}}),
            "takes no source",
        ),
        (json!({"name": "x", "auto_record": {"fps": 1000}}), "fps"),
        (json!({"name": "x", "idle_stop_s": 0}), "idle_stop_s"),
    ] {
        let (st, r) = s.post(&host, "/v1/rooms", body.clone()).await;
        assert_eq!(st, 422, "{body}: {r}");
        assert_eq!(r["error"]["code"], "invalid_settings", "{r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains(says),
            "{r}"
        );
    }
}
