//! WebRTC into a room with a real client: Debian's Chromium publishes its
//! fake camera and microphone over WHIP from a page on the server's origin
//! (tests/e2e/whip.mjs). The server answers, ICE and DTLS come up on the
//! one UDP port, and the room's subscribers (what room recordings read)
//! receive VP8 and Opus frames, starting with a keyframe.

mod support;

use std::time::Duration;
use support::rooms::*;

use serde_json::json;
use support::*;
use tapedeck_server::rtc::RoomMedia;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_publishes_over_whip_and_the_room_receives_its_media() {
    let s = start(|_| {}).await;
    let host = s.key("alice", false).await;
    let room_id = new_room(&s, &host).await;
    let guest = invite(&s, &host, &room_id, "Guest G.").await;

    // What a recording of the room would read.
    let mut media = s.state.rtc.subscribe(room_id.parse().unwrap(), 4096).await;
    let counter = tokio::spawn(async move {
        let mut tracks = vec![];
        let (mut audio, mut video, mut first_video_key) = (0u32, 0u32, None);
        let mut left = false;
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(60), media.recv()).await {
            match m {
                RoomMedia::Track(t) => tracks.push((t.participant, t.kind, t.mid)),
                RoomMedia::Frame(f) => {
                    let kind = tracks.iter().find(|(_, _, mid)| *mid == f.mid).map(|t| t.1);
                    if kind == Some(tapedeck_core::track::TrackKind::Video) {
                        first_video_key.get_or_insert(f.keyframe);
                        video += 1;
                    } else {
                        audio += 1;
                    }
                }
                RoomMedia::Left(_) => {
                    left = true;
                    break;
                }
            }
        }
        (tracks, audio, video, first_video_key, left)
    });

    // While the guest publishes, the room shows them with their tracks.
    let base = s.base.clone();
    let publisher = tokio::spawn(page_script(
        "whip.mjs",
        vec![base, room_id.clone(), guest.clone(), "4".into()],
    ));
    let mut seen = json!(null);
    for _ in 0..200 {
        let (_, r) = s.get(&host, &format!("/v1/rooms/{room_id}")).await;
        let p = &r["participants"][0];
        if p["connected"] == true && p["frames_in"].as_u64().unwrap_or(0) > 30 {
            seen = r;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Garbage at the media port from elsewhere (random bytes, fake STUN,
    // fake RTP) is counted as stray and harms no one: the call goes on.
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut x = 0x2545_f491_u32;
    for i in 0..1000u32 {
        let mut d = vec![0u8; 20 + (i as usize % 1200)];
        for b in d.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        match i % 3 {
            0 => d[0] = 0x00, // looks like STUN
            1 => d[0] = 0x80, // looks like RTP
            _ => {}
        }
        junk.send_to(&d, s.state.rtc.addr).unwrap();
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let p = &seen["participants"][0];
    assert_eq!(p["name"], "Guest G.", "{seen}");
    assert!(p.get("user").is_none(), "a guest has no API user: {seen}");
    let mut kinds: Vec<(String, String)> = p["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().unwrap().into(),
                t["codec"].as_str().unwrap().into(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("audio".into(), "opus".into()),
            ("video".into(), "vp8".into())
        ],
        "{seen}"
    );

    let out = publisher.await.unwrap();
    assert_eq!(out["status"], 201, "{out}");
    assert_eq!(out["deleteStatus"], 204, "{out}");
    assert!(
        out["location"]
            .as_str()
            .unwrap()
            .starts_with(&format!("/v1/rooms/{room_id}/whip/peer_")),
        "{out}"
    );
    let (tracks, audio, video, first_video_key, left) = counter.await.unwrap();
    println!("subscriber: {tracks:?} audio {audio} video {video} frames; publisher {out}");
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    assert!(tracks.iter().all(|t| t.0 == "Guest G."));
    // About 4 s at 30 fps and 50 Opus packets/s were sent; most must arrive.
    let sent_video = out["sent"]["video"]["frames"].as_u64().unwrap() as u32;
    assert!(
        video > sent_video / 2 && video > 60,
        "video {video} of {sent_video}"
    );
    assert!(audio > 100, "audio {audio}");
    assert_eq!(first_video_key, Some(true), "video starts with a keyframe");
    assert!(left, "DELETE on the Location ends the peer");
    let (_, after) = s.get(&host, &format!("/v1/rooms/{room_id}")).await;
    assert_eq!(after["participants"], json!([]), "{after}");
    // /metrics counts the media server's work.
    let m = s
        .client()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |name: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with(&format!("tapedeck_rtc{{counter=\"{name}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics:\n{m}"))
    };
    // Loopback UDP may drop some of the burst before the server reads it.
    assert!(count("datagrams_stray") >= 900, "{m}");
    assert!(
        count("datagrams_in") >= count("datagrams_stray") + 300,
        "{m}"
    );
    assert_eq!(count("peers"), 0);
    assert!(count("frames_out") >= u64::from(audio + video));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_refuses_what_it_cannot_use() {
    let s = start(|c| c.rtc.max_participants = 2).await;
    let host = s.key("alice", false).await;
    let (_, room) = s
        .post(
            &host,
            "/v1/rooms",
            json!({"name": "call", "max_participants": 2}),
        )
        .await;
    let id = room["id"].as_str().unwrap().to_string();
    let whip = |token: String, ctype: &'static str, body: &'static str| {
        let (c, url) = (s.client(), format!("{}/v1/rooms/{id}/whip", s.base));
        async move {
            let r = c
                .post(url)
                .bearer_auth(token)
                .header("content-type", ctype)
                .body(body)
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            (st, r.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let (st, e) = whip(host.clone(), "application/sdp", "v=0\r\nnot sdp").await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (400, &json!("invalid_sdp")),
        "{e}"
    );
    let (st, e) = whip(host.clone(), "application/json", "{}").await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (415, &json!("unsupported_media_type"))
    );
    let (st, _) = whip("jt_forged.1.x.y".into(), "application/sdp", "v=0").await;
    assert_eq!(st, 401);
    // A join token for another room opens nothing here.
    let (_, other) = s.post(&host, "/v1/rooms", json!({"name": "other"})).await;
    let (_, inv) = s
        .post(
            &host,
            &format!("/v1/rooms/{}/invites", other["id"].as_str().unwrap()),
            json!({"name": "x"}),
        )
        .await;
    let (st, _) = whip(
        inv["token"].as_str().unwrap().into(),
        "application/sdp",
        "v=0",
    )
    .await;
    assert_eq!(st, 401);
    // The server keeps serving: the room is still there and empty.
    let (st, r) = s.get(&host, &format!("/v1/rooms/{id}")).await;
    assert_eq!((st, &r["participants"]), (200, &json!([])));
    // A closed room takes no one.
    s.client()
        .delete(format!("{}/v1/rooms/{id}", s.base))
        .bearer_auth(&host)
        .send()
        .await
        .unwrap();
    let (st, e) = whip(host, "application/sdp", "v=0").await;
    assert_eq!((st, &e["error"]["code"]), (409, &json!("room_closed")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_recording_writes_each_track_as_it_arrived() {
    let s = start(|_| {}).await;
    let host = s.key("alice", false).await;
    let member = s.key("bob", false).await;
    let outsider = s.key("carol", false).await;
    let room_id = new_room(&s, &host).await;
    s.state
        .repo
        .add_member(room_id.parse().unwrap(), "bob", 0)
        .await
        .unwrap();
    let guest = invite(&s, &host, &room_id, "Guest G.").await;
    let body = json!({"source": {"kind": "room", "room": room_id}});

    // Only the host records: a participant gets 403, anyone else 404.
    let (st, e) = s.post(&member, "/v1/recordings", body.clone()).await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (403, &json!("not_room_host")),
        "{e}"
    );
    let (st, _) = s.post(&outsider, "/v1/recordings", body.clone()).await;
    assert_eq!(st, 404);

    // A track recording is WebM whatever format was asked for.
    let mut body = body;
    body["format"] = json!("mp4");
    let rec = s.create(&host, body).await;
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(rec["format"], "webm");
    let (_, listed) = s
        .get(&host, &format!("/v1/rooms/{room_id}/recordings"))
        .await;
    assert_eq!(listed["recordings"][0]["id"], id.as_str());

    // The guest publishes for 5 s; the host stops after.
    let out = page_script(
        "whip.mjs",
        vec![s.base.clone(), room_id.clone(), guest.clone(), "5".into()],
    )
    .await;
    assert_eq!(out["status"], 201, "{out}");
    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    println!("{}", serde_json::to_string_pretty(&done["tracks"]).unwrap());
    let tracks = done["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "{done}");
    let sent_video = out["sent"]["video"]["frames"].as_u64().unwrap();
    for t in tracks {
        assert_eq!(t["participant"], "Guest G.", "{t}");
        let tid = t["id"].as_str().unwrap();
        let file = download_track(&s, &host, &id, tid).await;
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            t["size_bytes"].as_u64().unwrap()
        );
        // Every frame decodes.
        assert_eq!(decode_errors(&file), "", "{tid} decodes cleanly");
        // Published for 5 s after connecting: the track holds that, within 0.5 s.
        let dur = t["duration_s"].as_f64().unwrap();
        assert!((dur - 5.0).abs() < 0.5, "{tid} lasts {dur} s: {t}");
        if t["kind"] == "video" {
            assert_eq!(codecs(&file), ["vp8"]);
            let p = tapedeck_testkit::ffprobe(&file);
            assert!((p.duration_s - dur).abs() < 0.1, "{p:?} vs {t}");
            // Every frame the browser sent after the first keyframe.
            assert!(
                p.frames + 5 >= sent_video && p.frames > 60,
                "{} of {sent_video} frames",
                p.frames
            );
            assert_eq!((p.width, p.height), (640, 360), "{p:?}");
        } else {
            assert_eq!(codecs(&file), ["opus"]);
        }
    }
    // Everyone in the room reads it; only the host controls it.
    let (st, seen) = s.get(&member, &format!("/v1/recordings/{id}")).await;
    assert_eq!((st, &seen["tracks"]), (200, &done["tracks"]));
    assert_eq!(
        s.delete(&member, &format!("/v1/recordings/{id}")).await,
        403
    );
    assert_eq!(
        s.get(&outsider, &format!("/v1/recordings/{id}")).await.0,
        404
    );
    // /media holds both tracks side by side, as received, each as long as
    // its track file. (Its decode is not held to zero warnings: once, under
    // load, ffmpeg's stream copy gave two Opus packets one timestamp there;
    // the track files above are the recording and decode cleanly.)
    let media = s.download(&host, &id, "webm").await;
    assert_eq!(codecs(&media), ["opus", "vp8"]);
    let p = tapedeck_testkit::ffprobe(&media);
    assert!(p.frames > 60, "{p:?}");
    let longest = tracks
        .iter()
        .map(|t| t["start_s"].as_f64().unwrap() + t["duration_s"].as_f64().unwrap())
        .fold(0.0, f64::max);
    // On the recording's timeline: from its start to the end of the last track.
    assert!(
        (p.duration_s - longest).abs() < 0.5,
        "{p:?} against tracks ending at {longest}"
    );
    assert_eq!(done["media"]["video_codec"], "vp8", "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_room_recording_has_no_gap_and_ends_when_the_room_closes() {
    let s = start(|_| {}).await;
    let host = s.key("alice", false).await;
    let room_id = new_room(&s, &host).await;
    let rec = s
        .create(&host, json!({"source": {"kind": "room", "room": room_id}}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    // The host publishes with their own API key for 6 s.
    let publisher = tokio::spawn(page_script(
        "whip.mjs",
        vec![s.base.clone(), room_id.clone(), host.clone(), "6".into()],
    ));
    for _ in 0..200 {
        let (_, r) = s.get(&host, &format!("/v1/rooms/{room_id}")).await;
        if r["participants"][0]["frames_in"].as_u64().unwrap_or(0) > 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (st, v) = s
        .post(&host, &format!("/v1/recordings/{id}/pause"), json!({}))
        .await;
    assert_eq!((st, &v["status"]), (200, &json!("paused")), "{v}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (st, _) = s
        .post(&host, &format!("/v1/recordings/{id}/resume"), json!({}))
        .await;
    assert_eq!(st, 200);
    let out = publisher.await.unwrap();
    assert_eq!(out["status"], 201, "{out}");
    // The host closes the room: its recording ends with that reason.
    let r = s
        .client()
        .delete(format!("{}/v1/rooms/{room_id}", s.base))
        .bearer_auth(&host)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let done = s.wait_status(&host, &id, "completed").await;
    assert_eq!(done["end_reason"], "room_closed", "{done}");
    let tracks = done["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "{done}");
    for t in tracks {
        // An API user's tracks carry their user name.
        assert_eq!(t["participant"], "alice");
        let tid = t["id"].as_str().unwrap();
        let r = s
            .client()
            .get(format!(
                "{}/v1/recordings/{id}/tracks/{tid}/media?token={host}",
                s.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let file = s.data.join(format!("{tid}.webm"));
        std::fs::write(&file, r.bytes().await.unwrap()).unwrap();
        assert_eq!(decode_errors(&file), "", "{tid}");
        // 6 s published, 2 s of it paused: about 4 s, without a gap.
        let dur = t["duration_s"].as_f64().unwrap();
        println!("paused recording: {tid} {} {dur} s", t["kind"]);
        assert!((dur - 4.0).abs() < 0.5, "{tid} lasts {dur} s: {t}");
        if t["kind"] == "video" {
            let p = tapedeck_testkit::ffprobe(&file);
            assert!((p.duration_s - dur).abs() < 0.1, "{p:?} vs {t}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiners_start_late_and_returners_continue_their_track() {
    let s = start(|_| {}).await;
    let host = s.key("alice", false).await;
    let room_id = new_room(&s, &host).await;
    let ann = invite(&s, &host, &room_id, "Ann").await;
    let ben = invite(&s, &host, &room_id, "Ben").await;
    let rec = s
        .create(&host, json!({"source": {"kind": "room", "room": room_id}}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();

    // Ann is in the call for 9 s.
    let first = tokio::spawn(page_script(
        "whip.mjs",
        vec![s.base.clone(), room_id.clone(), ann, "9".into()],
    ));
    for _ in 0..300 {
        let (_, r) = s.get(&host, &format!("/v1/rooms/{room_id}")).await;
        if r["participants"][0]["frames_in"].as_u64().unwrap_or(0) > 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ben joins 2 s later for 2 s, leaves, and comes back for 2 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let args = vec![s.base.clone(), room_id.clone(), ben, "2".into()];
    assert_eq!(page_script("whip.mjs", args.clone()).await["status"], 201);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(page_script("whip.mjs", args).await["status"], 201);
    assert_eq!(first.await.unwrap()["status"], 201);
    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    let tracks = done["tracks"].as_array().unwrap();
    println!("{}", serde_json::to_string(&done["tracks"]).unwrap());
    // Two people, two tracks each: Ben's return continued his own.
    assert_eq!(tracks.len(), 4, "{done}");
    let video = |who: &str| {
        tracks
            .iter()
            .find(|t| t["participant"] == who && t["kind"] == "video")
            .unwrap_or_else(|| panic!("{who}'s video in {done}"))
            .clone()
    };
    let (a, b) = (video("Ann"), video("Ben"));
    let start = |t: &serde_json::Value| t["start_s"].as_f64().unwrap();
    assert!(start(&b) > start(&a) + 1.5, "Ben joined later: {a} {b}");
    let tid = b["id"].as_str().unwrap();
    let file = download_track(&s, &host, &id, tid).await;
    assert_eq!(decode_errors(&file), "");
    // His file holds both visits with the time he was away between them.
    let gap = largest_gap(&file);
    let dur = b["duration_s"].as_f64().unwrap();
    println!("Ben's video: {dur} s, largest gap {gap:.2} s");
    assert!(gap > 1.0, "a gap where Ben was away: {gap}");
    assert!(
        dur > 4.0 + gap - 0.5,
        "both visits: {dur} s with a {gap} s gap"
    );
}

/// A participant sending `codec` (first in Chromium's preferences) is
/// recorded in it, as received: the track says so, the file is in
/// `container` and decodes in full at the camera's size, and `/media`
/// holds it beside the Opus track.
async fn records_as_received(codec: &str, want: &str, container: &str, media_ext: &str) {
    let s = start(|_| {}).await;
    let host = s.key("alice", false).await;
    let room_id = new_room(&s, &host).await;
    let guest = invite(&s, &host, &room_id, "Codec").await;
    let rec = s
        .create(&host, json!({"source": {"kind": "room", "room": room_id}}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let out = page_script(
        "whip.mjs",
        vec![s.base.clone(), room_id, guest, "4".into(), codec.into()],
    )
    .await;
    assert_eq!(out["status"], 201, "{out}");
    let sent = &out["sent"]["video"];
    assert_eq!(
        sent["codec"].as_str().map(str::to_lowercase),
        Some(format!("video/{want}")),
        "{out}"
    );
    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    let video = video_track(&done);
    assert_eq!(video["codec"], want, "{done}");
    assert_eq!(video["container"], container, "{done}");
    let tid = video["id"].as_str().unwrap();
    let file = download_track(&s, &host, &id, tid).await;
    assert_eq!(codecs(&file), [want]);
    assert_eq!(decode_errors(&file), "");
    let p = tapedeck_testkit::ffprobe(&file);
    assert!(p.width * 9 == p.height * 16 && p.width >= 320, "{p:?}");
    // All but a few of the frames the browser encoded.
    let frames = sent["frames"].as_u64().unwrap();
    assert!(
        p.frames + 5 >= frames && p.frames > 40,
        "{p:?} of {frames} sent"
    );
    assert_eq!(done["format"], media_ext, "{done}");
    let media = s.download(&host, &id, media_ext).await;
    let mut both = vec!["opus", want];
    both.sort();
    assert_eq!(codecs(&media), both);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vp9_track_is_written_as_it_arrived() {
    records_as_received("VP9", "vp9", "webm", "webm").await;
}

/// H.264 goes to Matroska (WebM cannot hold it), Annex B turned into
/// length-prefixed units with an avcC from the stream's SPS and PPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_track_is_written_as_it_arrived_in_matroska() {
    records_as_received("H264", "h264", "mkv", "mkv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_av1_track_is_written_as_it_arrived() {
    records_as_received("AV1", "av1", "webm", "webm").await;
}
