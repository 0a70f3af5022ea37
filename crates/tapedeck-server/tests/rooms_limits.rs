//! Limits on calls refuse with a stable code and harm no one already in:
//! a full room (`max_participants`, 403 `room_full`), a full media server
//! (`rtc.max_peers`, 429 `too_many_peers`), and a user's concurrent
//! recordings (room recordings count like the others, 429
//! `too_many_recordings`). The publisher already in the call is recorded
//! throughout, frame for frame.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::rooms::*;
use support::*;
use tapedeck_testkit::loadgen::{Load, publish};

/// A WHIP POST of `sdp` with `token`: status and body (JSON on error).
async fn whip(s: &Server, room: &str, token: &str, sdp: &str) -> (u16, Value) {
    let r = s
        .client()
        .post(format!("{}/v1/rooms/{room}/whip", s.base))
        .bearer_auth(token)
        .header("content-type", "application/sdp")
        .body(sdp.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_rooms_and_a_full_server_refuse_with_a_code_and_harm_no_one() {
    let s = start(|c| {
        c.rtc.max_peers = 3;
        c.limits.max_concurrent_per_user = 1;
    })
    .await;
    let host = s.key("alice", false).await;
    let (st, one) = s
        .post(
            &host,
            "/v1/rooms",
            json!({"name": "one", "max_participants": 2}),
        )
        .await;
    assert_eq!(st, 201, "{one}");
    let one = one["id"].as_str().unwrap().to_string();
    let two = new_room(&s, &host).await;
    let (video, audio) = (s.data.join("clip.ivf"), s.data.join("clip.opus"));
    make_clips(&video, &audio);
    let rec = s
        .create(&host, json!({"source": {"kind": "room", "room": one}}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();

    // Ann is in room one, recorded, for 5 s.
    let load = Load {
        whip: format!("{}/v1/rooms/{one}/whip", s.base),
        tokens: vec![invite(&s, &host, &one, "Ann").await],
        video,
        audio,
        seconds: 5,
        stagger_ms: 0,
        call: false,
    };
    let ann = tokio::spawn(async move { publish(&load).await });
    for _ in 0..200 {
        let (_, r) = s.get(&host, &format!("/v1/rooms/{one}")).await;
        if r["participants"][0]["frames_in"].as_u64().unwrap_or(0) > 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Room one holds two participants: Bob is the second, Carl is refused
    // (before his offer is even read).
    let bob = invite(&s, &host, &one, "Bob").await;
    let (st, answer) = whip(&s, &one, &bob, &offer(str0m::media::Direction::SendOnly)).await;
    assert_eq!(st, 201, "{answer}");
    let carl = invite(&s, &host, &one, "Carl").await;
    let (st, e) = whip(&s, &one, &carl, "v=0\r\n").await;
    assert_eq!((st, &e["error"]["code"]), (403, &json!("room_full")), "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 of its 2"),
        "{e}"
    );

    // The server holds three peers: Cy takes the third, Di is refused.
    let cy = invite(&s, &host, &two, "Cy").await;
    let (st, answer) = whip(&s, &two, &cy, &offer(str0m::media::Direction::SendOnly)).await;
    assert_eq!(st, 201, "{answer}");
    let di = invite(&s, &host, &two, "Di").await;
    let (st, e) = whip(&s, &two, &di, &offer(str0m::media::Direction::SendOnly)).await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (429, &json!("too_many_peers")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rtc.max_peers")
    );

    // Alice records room one already: room two's recording is refused.
    let (st, e) = s
        .post(
            &host,
            "/v1/recordings",
            json!({"source": {"kind": "room", "room": two}}),
        )
        .await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (429, &json!("too_many_recordings")),
        "{e}"
    );

    // Ann was not harmed: every frame she sent is in her track files.
    let sent = ann.await.unwrap().unwrap();
    assert_eq!(sent["connected"], 1, "{sent}");
    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    let video = video_track(&done);
    let file = download_track(&s, &host, &id, video["id"].as_str().unwrap()).await;
    assert_eq!(decode_errors(&file), "");
    let p = tapedeck_testkit::ffprobe(&file);
    let sv = sent["video_frames"].as_u64().unwrap();
    assert!(p.frames + 4 >= sv && p.frames <= sv, "{p:?} of {sv}");
}

/// Sessions whose ICE never completes cannot take the server's slots: one
/// caller (API key or join token) holds at most
/// `rtc.max_connecting_per_caller` of them, each is dropped
/// `rtc.connect_timeout_s` after its offer, and a guest's many sessions
/// are one participant of the room, so the host still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_never_connect_take_no_one_elses_slots() {
    let s = start(|c| {
        c.rtc.max_peers = 10;
        c.rtc.max_connecting_per_caller = 3;
        c.rtc.connect_timeout_s = 2;
    })
    .await;
    let mallory = s.key("mallory", false).await;
    let alice = s.key("alice", false).await;
    let sdp = offer(str0m::media::Direction::SendOnly);
    let hers = new_room(&s, &mallory).await;
    // An offer past every limit gets the API's JSON error, not plain text.
    let (st, e) = whip(&s, &hers, &mallory, &"a".repeat(3 << 20)).await;
    assert_eq!((st, &e["error"]["code"]), (413, &json!("too_large")), "{e}");
    // A malformed one names the problem, not a memory address.
    let (st, e) = whip(&s, &hers, &mallory, "v=0\r\nm=video x\r\n").await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (400, &json!("invalid_sdp")),
        "{e}"
    );
    assert!(!e.to_string().contains("0x"), "{e}");
    for i in 0..3 {
        let (st, e) = whip(&s, &hers, &mallory, &sdp).await;
        assert_eq!(st, 201, "offer {i}: {e}");
    }
    let (st, e) = whip(&s, &hers, &mallory, &sdp).await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (429, &json!("too_many_connecting")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rtc.max_connecting_per_caller"),
        "{e}"
    );

    // A guest of Alice's three-person room opens sessions that never connect:
    // they are one participant, and Alice still gets in; a second guest
    // too, a third is refused.
    let (st, room) = s
        .post(
            &alice,
            "/v1/rooms",
            json!({"name": "two", "max_participants": 3}),
        )
        .await;
    assert_eq!(st, 201, "{room}");
    let room = room["id"].as_str().unwrap().to_string();
    let guest = invite(&s, &alice, &room, "Guest").await;
    for _ in 0..3 {
        let (st, e) = whip(&s, &room, &guest, &sdp).await;
        assert_eq!(st, 201, "{e}");
    }
    let (st, e) = whip(&s, &room, &guest, &sdp).await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (429, &json!("too_many_connecting"))
    );
    let (st, e) = whip(&s, &room, &alice, &sdp).await;
    assert_eq!(st, 201, "the host is refused: {e}");
    let other = invite(&s, &alice, &room, "Other").await;
    let (st, e) = whip(&s, &room, &other, &sdp).await;
    assert_eq!(st, 201, "{e}");
    let third = invite(&s, &alice, &room, "Third").await;
    let (st, e) = whip(&s, &room, &third, &sdp).await;
    assert_eq!((st, &e["error"]["code"]), (403, &json!("room_full")), "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3 of its 3"),
        "{e}"
    );

    // None of them connects: within the timeout they are gone, and the
    // slots are free again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, a) = s.get(&alice, &format!("/v1/rooms/{room}")).await;
        let (_, m) = s.get(&mallory, &format!("/v1/rooms/{hers}")).await;
        let left = a["participants"].as_array().unwrap().len()
            + m["participants"].as_array().unwrap().len();
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sessions that never connected are still there: {a} {m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (st, e) = whip(&s, &hers, &mallory, &sdp).await;
    assert_eq!(st, 201, "{e}");
    assert!(
        s.metrics()
            .await
            .contains("tapedeck_rtc{counter=\"peers_timed_out\"} 8"),
        "{}",
        s.metrics().await
    );
}
