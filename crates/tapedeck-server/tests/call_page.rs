//! The call page end to end: two people in Debian's Chromium (fake camera
//! and microphone) join a room on `/call/ROOM`, one with an API key (the
//! host), one with an invite link. The server forwards each one's media to
//! the other (both decode video and receive sound), the host records,
//! pauses, resumes and stops from the page (seeing what is recorded in a
//! live preview), the guest sees the REC timer,
//! and the recording plays as the call (both people in a grid, one sound)
//! and holds four track files (each person's VP8 and Opus)
//! that decode in full and last as long as the recording ran
//! (tests/e2e/call.mjs drives the pages).

mod support;

use serde_json::json;
use support::rooms::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_call_each_other_and_the_host_records_the_call() {
    let s = start(|_| {}).await;
    let host = s.key("ann", false).await;
    let room = new_room(&s, &host).await;
    let guest = invite(&s, &host, &room, "Bob (guest)").await;
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("call-page");
    std::fs::create_dir_all(&shots).unwrap();

    let out = page_script(
        "call.mjs",
        vec![
            s.base.clone(),
            room.clone(),
            host.clone(),
            guest,
            shots.display().to_string(),
        ],
    )
    .await;
    // One line: a failure's message then shows right after it.
    println!("{out}");
    println!("screenshots: {}", shots.display());
    assert_eq!(out["pageErrors"], json!([]), "{out}");
    assert!(out.get("guestErrors").is_none(), "{out}");
    // The host found the room under Calls on the home page, with an invite button.
    let listed = out["roomListed"].as_str().unwrap();
    assert!(
        listed.contains("host ann") && listed.contains("Invite a guest"),
        "{listed}"
    );
    // An invited guest's name is the invite's, and the guest has no host controls.
    assert_eq!(
        out["guestNameField"],
        json!({"value": "Bob (guest)", "disabled": true})
    );
    assert_eq!(out["guestIsHost"], false);
    // The lobby offered the camera and microphone to pick, with a meter.
    assert!(out["devices"]["cameras"].as_u64().unwrap() >= 1, "{out}");
    assert!(out["devices"]["mics"].as_u64().unwrap() >= 1, "{out}");
    // The people list names both (the host marked), and Bob was heard.
    let people = out["people"].as_array().unwrap();
    assert_eq!(people.len(), 2, "{out}");
    assert!(
        people
            .iter()
            .any(|p| p.as_str().unwrap().contains("Ann (host) (you) · host")),
        "{out}"
    );
    // Tiles grew with the window; on a phone the controls are on screen.
    let (w1, w2) = (
        out["tileWidth1280"].as_f64().unwrap(),
        out["tileWidth1600"].as_f64().unwrap(),
    );
    assert!(w1 >= 450.0 && w2 > w1 + 100.0, "{w1} -> {w2}");
    let bar = &out["barOnPhone"];
    assert!(
        bar["top"].as_f64().unwrap() >= 0.0
            && bar["bottom"].as_f64().unwrap() <= bar["height"].as_f64().unwrap(),
        "the control bar is off the screen: {bar}"
    );
    assert!(
        bar["pageHeight"].as_f64().unwrap() > bar["height"].as_f64().unwrap(),
        "the page is taller than the phone, so the bar is pinned: {bar}"
    );
    // An invite made inside the call, copied.
    let invite = out["invite"]["url"].as_str().unwrap();
    assert!(
        invite.contains(&format!("/call/{room}?token=jt_")),
        "{invite}"
    );
    assert_eq!(out["invite"]["clipboard"], invite);
    // Everyone is told while the room records.
    assert_eq!(out["guestNotice"], "This call is being recorded.");
    assert_eq!(out["guestNoticeAfter"], true);

    // Each sees and hears the other: video decoded, sound with energy.
    for (who, other) in [("host", "Bob (guest)"), ("guest", "Ann (host)")] {
        let r = &out[who];
        let names: Vec<&str> = r["tiles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&other), "{who} sees {names:?}");
        let remote = r["tiles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == other)
            .unwrap();
        assert!(remote["width"].as_u64().unwrap() > 0, "{who}: {remote}");
        assert_eq!(remote["paused"], false, "{who}: {remote}");
        let video = r["inbound"]["video"]["framesDecoded"].as_u64().unwrap_or(0);
        assert!(
            video > 100,
            "{who} decoded {video} frames of {other}'s video"
        );
        let energy = r["inbound"]["audio"]["audioEnergy"].as_f64().unwrap_or(0.0);
        assert!(energy > 0.0, "{who} heard silence from {other}: {r}");
    }

    // The REC timer showed for both, stood still while paused, and counted on.
    for who in ["host", "guest"] {
        let r = &out["recAfter3s"][who];
        assert_eq!(r["shown"], true, "{who}: {r}");
        assert!(
            ["0:02", "0:03", "0:04"].contains(&r["text"].as_str().unwrap()),
            "{who} after 3 s: {r}"
        );
    }
    assert_eq!(out["recPaused"]["paused"], true, "{out}");
    // The host saw the grid being recorded, playing (the live grid's
    // segments, 1280x720 as the page records); the guest was shown none.
    let p = &out["preview"];
    assert_eq!(p["shown"], true, "{out}");
    assert_eq!(
        (&p["width"], &p["height"]),
        (&json!(1280), &json!(720)),
        "{p}"
    );
    assert!(p["time"].as_f64().unwrap() > 0.5, "{p}");
    assert_eq!(out["guestPreviewShown"], false, "{out}");

    // The recording: four tracks, two people × (VP8, Opus), each decoding
    // in full and as long as the recording ran by the page's clock: between
    // what it surely recorded (from both pages showing REC to the host's
    // Pause click, and from both showing the resume to Stop) and what it
    // may have (from the Record click to the pages showing the pause, and
    // from the Resume click to REC gone), within 0.3 s (a track's first and
    // last packets). A busy machine delays the pages, not the bounds.
    let id = out["recordingId"].as_str().unwrap();
    let done = s.wait_status(&host, id, "completed").await;
    let recorded_s = out["recordedMs"].as_f64().unwrap() / 1000.0;
    let (least, most) = (
        out["recordedMinMs"].as_f64().unwrap() / 1000.0 - 0.3,
        out["recordedMaxMs"].as_f64().unwrap() / 1000.0 + 0.3,
    );
    let ran = |d: f64| (least..=most).contains(&d);
    let tracks = done["tracks"].as_array().unwrap();
    let mut who: Vec<(String, String)> = tracks
        .iter()
        .map(|t| {
            (
                t["participant"].as_str().unwrap().into(),
                t["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    who.sort();
    assert_eq!(
        who,
        [
            ("Ann (host)".into(), "audio".into()),
            ("Ann (host)".into(), "video".into()),
            ("Bob (guest)".into(), "audio".into()),
            ("Bob (guest)".into(), "video".into()),
        ],
        "{done}"
    );
    for t in tracks {
        let tid = t["id"].as_str().unwrap();
        let file = download_track(&s, &host, id, tid).await;
        assert_eq!(decode_errors(&file), "", "{tid} decodes cleanly");
        let dur = duration_s(&file);
        println!("{} {}: {dur} s", t["participant"], t["kind"]);
        assert!(
            ran(dur),
            "{tid} lasts {dur} s, the recording ran {least:.3}-{most:.3} s: {t}"
        );
        if t["kind"] == "video" {
            let p = tapedeck_testkit::ffprobe(&file);
            assert_eq!(codecs(&file), ["vp8"]);
            // The camera's 640x360, or a 16:9 step down Chrome chose.
            assert!(p.width * 9 == p.height * 16 && p.width >= 320, "{p:?}");
            // Chrome lowers its rate when the machine is busy; what it
            // sent has no hole (the pause was cut from the timeline).
            assert!(p.frames as f64 > recorded_s * 10.0, "{p:?}");
            let gap = largest_gap(&file);
            assert!(gap < 0.5, "{tid}: a {gap} s gap");
        } else {
            assert_eq!(codecs(&file), ["opus"]);
        }
    }
    // The recording plays as the call: one picture with both people, side
    // by side in a grid (each cell far from black), and one sound.
    assert_eq!(done["source"]["layout"], "grid", "{done}");
    let ext = done["format"].as_str().unwrap();
    let media = s.download(&host, id, ext).await;
    let mut streams = codecs(&media);
    streams.sort();
    assert_eq!(
        streams,
        ["aac", "h264"],
        "one picture and one sound: {done}"
    );
    let p = tapedeck_testkit::ffprobe(&media);
    let (w, h) = (p.width as usize, p.height as usize);
    assert!(ran(p.duration_s), "{p:?}, {least:.3}-{most:.3} s recorded");
    let rgb = frame_rgb(&media, p.duration_s / 2.0, w, h);
    let lit = |x0: usize, x1: usize| {
        (h / 4..3 * h / 4)
            .flat_map(|y| (x0..x1).map(move |x| (y * w + x) * 3))
            .filter(|&i| rgb[i..i + 3].iter().any(|&c| c > 40))
            .count()
    };
    let (left, right) = (lit(0, w / 2), lit(w / 2, w));
    println!(
        "lit pixels: left {left}, right {right} of {}",
        w / 2 * h / 2
    );
    assert!(
        left > w * h / 16 && right > w * h / 16,
        "left {left}, right {right}"
    );
    assert!(
        out["guestList"].as_str().unwrap().contains("Ready"),
        "{out}"
    );
    assert_eq!(out["guestEnded"], true);
    // Each person's tracks are listed on the home page and play one by
    // one: Bob's picture (a video of its own) and his sound.
    assert_eq!(
        out["trackButtons"].as_array().map(|b| b.len()),
        Some(4),
        "{out}"
    );
    let bob_video = tracks
        .iter()
        .find(|t| t["participant"] == "Bob (guest)" && t["kind"] == "video")
        .unwrap();
    let picture = &out["played"]["picture"];
    assert!(
        picture["src"].as_str().unwrap().ends_with(&format!(
            "/tracks/{}/media",
            bob_video["id"].as_str().unwrap()
        )),
        "{picture}"
    );
    assert!(picture["width"].as_u64().unwrap() > 0, "{picture}");
    assert!(
        picture["title"].as_str().unwrap().contains("Bob (guest)"),
        "{picture}"
    );
    assert_eq!(out["played"]["sound"]["width"], 0, "{out}");
    // Forwarding was counted.
    let m = s.client().get(format!("{}/metrics", s.base)).send().await;
    let text = m.unwrap().text().await.unwrap();
    let fwd = text
        .lines()
        .find(|l| l.starts_with("tapedeck_rtc{counter=\"frames_forwarded\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(fwd > 300, "{fwd} frames forwarded");
}

/// Why a join failed, and why a call ended, in words (tests/e2e/call_join.mjs):
/// a full room, an expired and a tampered invite, an unknown room and a
/// closed one each say which it is, with the code in a details line; a
/// guest whose room the host closed reads that the host ended the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_join_says_why_and_a_closed_room_says_the_host_ended_it() {
    let s = start(|_| {}).await;
    let host = s.key("ann", false).await;
    let (st, room) = s
        .post(
            &host,
            "/v1/rooms",
            json!({"name": "three seats", "max_participants": 3}),
        )
        .await;
    assert_eq!(st, 201, "{room}");
    let room = room["id"].as_str().unwrap().to_string();
    let cat = invite(&s, &host, &room, "Cat").await;
    let fay = invite(&s, &host, &room, "Fay").await;
    let dan = invite(&s, &host, &room, "Dan").await;
    let (st, expired) = s
        .post(
            &host,
            &format!("/v1/rooms/{room}/invites"),
            json!({"name": "Eve", "expires_in_s": 1}),
        )
        .await;
    assert_eq!(st, 201, "{expired}");
    let expired = expired["token"].as_str().unwrap().to_string();
    // A changed signature: the server did not sign this.
    let mut tampered = dan.clone();
    let last = if tampered.ends_with('0') { "1" } else { "0" };
    tampered.replace_range(tampered.len() - 1.., last);
    let unknown = tapedeck_core::RoomId::from_parts(1_700_000_000_000, 7).to_string();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    let out = page_script(
        "call_join.mjs",
        vec![
            s.base.clone(),
            room.clone(),
            host.clone(),
            cat,
            fay,
            dan,
            expired,
            tampered,
            unknown,
        ],
    )
    .await;
    // One line: a failure's message then shows right after it.
    println!("{out}");
    assert_eq!(out["pageErrors"], json!([]), "{out}");
    for (attempt, words, code) in [
        ("full", "This call is full.", "room_full"),
        ("expired", "This invite link has expired.", "invite_expired"),
        (
            "tampered",
            "This invite link does not work",
            "invite_invalid",
        ),
        ("unknown", "It is not there any more", "not_found"),
        ("closed", "This call has ended.", "room_closed"),
    ] {
        let a = &out[attempt];
        let text = a["text"].as_str().unwrap_or_default();
        assert!(text.starts_with(words), "{attempt}: {a}");
        let details = a["details"].as_str().unwrap_or_default();
        assert!(details.starts_with(code), "{attempt}: {a}");
        assert!(
            !text.contains(code),
            "{attempt}: the code is in the sentence: {a}"
        );
    }
    // The host reads that they ended it; nobody is offered to join again.
    assert_eq!(
        out["hostEnded"],
        json!({"title": "You ended the call for everyone.", "rejoin": false})
    );
    assert_eq!(out["catRejoin"], false);
    // Only the host has "End for everyone".
    assert_eq!(
        (&out["endShown"], &out["catSeesEnd"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(
        out["catEnded"],
        json!({"title": "The host ended the call.", "reason": "room_closed"})
    );
}
