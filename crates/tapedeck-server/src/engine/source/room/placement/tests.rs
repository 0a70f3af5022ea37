//! The placement's tests: sessions, pauses, keyframes, sender reports.

use super::*;
use std::time::Duration;
use tapedeck_core::track::TrackCodec;

fn info(peer: u64, who: &str, kind: TrackKind, mid: &str) -> TrackInfo {
    TrackInfo {
        peer: PeerId(peer),
        participant: who.into(),
        kind,
        source: crate::rtc::TrackSource::of(kind, mid == "2"),
        codec: Some(if kind == TrackKind::Video {
            TrackCodec::Vp8
        } else {
            TrackCodec::Opus
        }),
        mid: mid.into(),
    }
}

/// Writes what `p` decides and tells it the file grows by `len_us`.
fn put(p: &mut Placement, peer: u64, mid: &str, rtp_us: i64, at: Instant, key: bool) -> Decision {
    put_sent(p, peer, mid, (rtp_us, None), at, key)
}

/// [`put`] of a frame the sender's reports place at `sent` µs.
fn put_sent(
    p: &mut Placement,
    peer: u64,
    mid: &str,
    (rtp_us, sent): (i64, Option<i64>),
    at: Instant,
    key: bool,
) -> Decision {
    let f = Frame {
        peer: PeerId(peer),
        mid: mid.into(),
        rtp_us,
        sender_us: sent,
        arrived: at,
        audio_level: None,
        codec: TrackCodec::Opus,
        keyframe: key,
        contiguous: true,
        data: std::sync::Arc::from(&[][..]),
    };
    let d = p.frame(&f);
    if let Decision::Write { track, at_us } = d {
        p.written(track, at_us + 20_000);
    }
    d
}

fn ms(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

#[test]
fn a_session_starts_where_it_arrives_and_follows_rtp_time() {
    let t0 = Instant::now();
    let mut p = Placement::new(t0);
    p.track(&info(1, "Ann", TrackKind::Audio, "0"));
    // First frame at 500 ms with RTP 7 s; the next 20 ms of RTP later
    // lies 20 ms later, however late it arrives (jitter).
    assert_eq!(
        put(&mut p, 1, "0", 7_000_000, ms(t0, 500), true),
        Decision::Write {
            track: 0,
            at_us: 500_000
        }
    );
    assert_eq!(
        put(&mut p, 1, "0", 7_020_000, ms(t0, 590), true),
        Decision::Write {
            track: 0,
            at_us: 520_000
        }
    );
}

#[test]
fn video_waits_for_a_keyframe_and_sound_does_not() {
    let t0 = Instant::now();
    let mut p = Placement::new(t0);
    p.track(&info(1, "Ann", TrackKind::Video, "1"));
    p.track(&info(1, "Ann", TrackKind::Audio, "0"));
    assert_eq!(p.waiting_for_keyframes(), [(PeerId(1), "1".to_string())]);
    assert_eq!(
        put(&mut p, 1, "1", 0, ms(t0, 100), false),
        Decision::Skip(Skip::WaitingForKey)
    );
    assert!(matches!(
        put(&mut p, 1, "0", 0, ms(t0, 100), false),
        Decision::Write { .. }
    ));
    // The key frame lies where its RTP time says, from the session's
    // first frame (the one skipped).
    assert_eq!(
        put(&mut p, 1, "1", 66_000, ms(t0, 170), true),
        Decision::Write {
            track: 0,
            at_us: 166_000
        }
    );
    assert!(matches!(
        put(&mut p, 1, "1", 99_000, ms(t0, 200), false),
        Decision::Write { .. }
    ));
    assert!(p.waiting_for_keyframes().is_empty());
}

#[test]
fn a_pause_cuts_the_same_time_from_every_track() {
    let t0 = Instant::now();
    let mut p = Placement::new(t0);
    p.track(&info(1, "Ann", TrackKind::Audio, "0"));
    p.track(&info(2, "Bob", TrackKind::Video, "1"));
    put(&mut p, 1, "0", 0, ms(t0, 0), true);
    put(&mut p, 2, "1", 0, ms(t0, 0), true);
    p.pause(ms(t0, 1_000));
    assert_eq!(
        put(&mut p, 1, "0", 1_500_000, ms(t0, 1_500), true),
        Decision::Skip(Skip::Paused)
    );
    assert!(
        p.waiting_for_keyframes().is_empty(),
        "no keyframe asked for while paused"
    );
    // A second pause while paused changes nothing.
    p.pause(ms(t0, 2_000));
    p.resume(ms(t0, 4_000));
    // 3 s were paused: a frame arriving at 4.2 s lies at 1.2 s, on
    // every track; video waits for a keyframe again.
    assert_eq!(
        put(&mut p, 1, "0", 4_200_000, ms(t0, 4_200), true),
        Decision::Write {
            track: 0,
            at_us: 1_200_000
        }
    );
    assert_eq!(
        put(&mut p, 2, "1", 4_200_000, ms(t0, 4_200), false),
        Decision::Skip(Skip::WaitingForKey)
    );
    assert_eq!(
        put(&mut p, 2, "1", 4_233_000, ms(t0, 4_240), true),
        Decision::Write {
            track: 1,
            at_us: 1_233_000
        }
    );
    // A resume without a pause changes nothing.
    p.resume(ms(t0, 9_000));
    assert_eq!(
        put(&mut p, 1, "0", 4_220_000, ms(t0, 9_000), true),
        Decision::Write {
            track: 0,
            at_us: 1_220_000
        }
    );
}

/// A person's camera and shared screen are two files (the screen once
/// went into the camera's, its RTP time placing it hours away), and
/// their second session live at once (a WHIP camera beside the page)
/// gets files of its own; one that comes back after leaving goes on in
/// the first.
#[test]
fn each_source_and_each_live_session_has_its_own_file() {
    let mut p = Placement::new(Instant::now());
    let (cam, _) = p.track(&info(1, "Ann", TrackKind::Video, "1"));
    let (screen, new) = p.track(&info(1, "Ann", TrackKind::Video, "2"));
    assert!(
        new && screen != cam,
        "the screen (mid 2 in `info`) is a file of its own"
    );
    let (whip_cam, new) = p.track(&info(2, "Ann", TrackKind::Video, "1"));
    assert!(new && whip_cam != cam, "a second live session");
    p.left(PeerId(1));
    let (back, new) = p.track(&info(3, "Ann", TrackKind::Video, "1"));
    assert!(
        !new && back == cam,
        "back after leaving: the first camera file"
    );
}

#[test]
fn a_participant_who_comes_back_continues_their_file_after_a_gap() {
    let t0 = Instant::now();
    let mut p = Placement::new(t0);
    assert_eq!(p.track(&info(1, "Ann", TrackKind::Audio, "0")), (0, true));
    put(&mut p, 1, "0", 0, ms(t0, 0), true);
    put(&mut p, 1, "0", 980_000, ms(t0, 980), true);
    p.left(PeerId(1));
    assert_eq!(
        put(&mut p, 1, "0", 1_000_000, ms(t0, 1_000), true),
        Decision::Skip(Skip::Unknown)
    );
    // Back 3 s later as another peer: the same file, at her arrival.
    assert_eq!(p.track(&info(7, "Ann", TrackKind::Audio, "0")), (0, false));
    assert_eq!(
        put(&mut p, 7, "0", 50, ms(t0, 4_000), true),
        Decision::Write {
            track: 0,
            at_us: 4_000_000
        }
    );
    // Back "before" her file ends (a clock that disagrees): after it.
    p.left(PeerId(7));
    p.track(&info(8, "Ann", TrackKind::Audio, "0"));
    assert_eq!(
        put(&mut p, 8, "0", 0, ms(t0, 3_000), true),
        Decision::Write {
            track: 0,
            at_us: 4_020_000
        }
    );
    assert_eq!(p.end_us(), 4_040_000);
}

/// A participant's picture arrives 300 ms later than its sound
/// captured at the same instant (a longer path, a jitter buffer):
/// placed by arrival they would be 300 ms apart; placed by the sender's
/// clock they lie together, and stay so.
/// A screen shared 5 s into the call whose first frames carry a report
/// hours off (one sent before the track had sent anything): placed
/// where they arrive, and the camera's sync is untouched.
#[test]
fn a_report_far_from_the_frames_arrival_is_not_followed() {
    let t0 = Instant::now();
    let mut p = Placement::new(t0);
    p.track(&info(1, "Ann", TrackKind::Audio, "0"));
    p.track(&info(1, "Ann", TrackKind::Video, "2"));
    let sent = |ms: i64| Some(1_000_000_000_000 + ms * 1000);
    let at = |d: Decision| match d {
        Decision::Write { at_us, .. } => at_us,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        at(put_sent(&mut p, 1, "0", (0, sent(0)), ms(t0, 100), true)),
        100_000
    );
    // Three hours off.
    let off = sent(5_000 + 3 * 3_600_000);
    let s0 = at(put_sent(&mut p, 1, "2", (0, off), ms(t0, 5_100), true));
    assert_eq!(s0, 5_100_000, "where it arrived");
    let s1 = at(put_sent(
        &mut p,
        1,
        "2",
        (33_000, off.map(|s| s + 33_000)),
        ms(t0, 5_133),
        false,
    ));
    assert_eq!(s1, 5_133_000, "then by RTP time");
    // The microphone still follows its reports.
    assert_eq!(
        at(put_sent(
            &mut p,
            1,
            "0",
            (5_020_000, sent(5_020)),
            ms(t0, 5_300),
            true
        )),
        5_120_000
    );
}

#[test]
fn sender_reports_put_sound_and_picture_captured_together_together() {
    let t0 = Instant::now();
    let mut p = Placement::new(t0);
    p.track(&info(1, "Ann", TrackKind::Audio, "0"));
    p.track(&info(1, "Ann", TrackKind::Video, "1"));
    // Sender's clock: 1e12 µs at capture time 0. Audio and video RTP
    // times start anywhere.
    let sent = |ms: i64| Some(1_000_000_000_000 + ms * 1000);
    let at = |d: Decision| match d {
        Decision::Write { at_us, .. } => at_us,
        other => panic!("{other:?}"),
    };
    let a0 = at(put_sent(
        &mut p,
        1,
        "0",
        (5_000_000, sent(0)),
        ms(t0, 100),
        true,
    ));
    let v0 = at(put_sent(
        &mut p,
        1,
        "1",
        (9_000_000, sent(0)),
        ms(t0, 400),
        true,
    ));
    assert_eq!((a0, v0), (100_000, 100_000));
    for k in 1..100i64 {
        let a = at(put_sent(
            &mut p,
            1,
            "0",
            (5_000_000 + k * 20_000, sent(k * 20)),
            ms(t0, 100 + k as u64 * 20),
            true,
        ));
        let v = at(put_sent(
            &mut p,
            1,
            "1",
            (9_000_000 + k * 20_000, sent(k * 20)),
            ms(t0, 400 + k as u64 * 20),
            false,
        ));
        assert_eq!(a, v, "frame {k}");
    }
    // Before its first report a track follows arrival; its place
    // moves to the sender's clock once the report comes.
    p.track(&info(2, "Bob", TrackKind::Audio, "0"));
    p.track(&info(2, "Bob", TrackKind::Video, "1"));
    assert_eq!(
        at(put_sent(&mut p, 2, "0", (0, sent(0)), ms(t0, 1_000), true)),
        1_000_000
    );
    assert_eq!(
        at(put_sent(&mut p, 2, "1", (0, None), ms(t0, 1_250), true)),
        1_250_000
    );
    assert_eq!(
        at(put_sent(
            &mut p,
            2,
            "1",
            (40_000, sent(40)),
            ms(t0, 1_290),
            false
        )),
        1_040_000
    );
    // After a pause every session is placed anew, still in sync.
    p.pause(ms(t0, 3_000));
    p.resume(ms(t0, 5_000));
    let a = at(put_sent(
        &mut p,
        1,
        "0",
        (5_000_000 + 4_800_000, sent(4_800)),
        ms(t0, 4_900),
        true,
    ));
    let v = at(put_sent(
        &mut p,
        1,
        "1",
        (9_000_000 + 4_800_000, sent(4_800)),
        ms(t0, 5_150),
        true,
    ));
    assert_eq!((a, v), (2_900_000, 2_900_000));
    // A second pause; the first frame after it a picture held up 300 ms
    // on its way: the session's clock goes on (the paused 2 s cut), so it
    // is not placed by its late arrival, and sound and picture stay as
    // before (an offset set again from it moved them 300 ms).
    p.pause(ms(t0, 6_000));
    p.resume(ms(t0, 8_000));
    let v = at(put_sent(
        &mut p,
        1,
        "1",
        (9_000_000 + 8_000_000, sent(8_000)),
        ms(t0, 8_400),
        true,
    ));
    let a = at(put_sent(
        &mut p,
        1,
        "0",
        (5_000_000 + 8_000_000, sent(8_000)),
        ms(t0, 8_120),
        true,
    ));
    assert_eq!((a, v), (4_100_000, 4_100_000));
}

/// The sender's sound clock runs 100 ppm fast against its picture
/// clock (both against its wall clock): over an hour RTP time alone
/// would put them 360 ms apart; the reports (one a second per track)
/// keep them within 40 ms.
#[test]
fn a_100_ppm_skew_between_sound_and_picture_clocks_stays_in_sync_over_an_hour() {
    let t0 = Instant::now();
    let hour_ms = 3_600_000i64;
    // RTP µs of each clock at wall ms `w`: sound 100 ppm fast.
    let audio_rtp = |w: i64| w * 1000 + w / 10;
    let video_rtp = |w: i64| w * 1000;
    let run = |reports: bool| {
        let mut p = Placement::new(t0);
        p.track(&info(1, "Ann", TrackKind::Audio, "0"));
        p.track(&info(1, "Ann", TrackKind::Video, "1"));
        let (mut last_a, mut last_v) = (0, 0);
        let mut sr_a = (0i64, 0i64);
        let mut sr_v = (0i64, 0i64);
        for w in (0..=hour_ms).step_by(20) {
            if w % 1000 == 0 {
                // The reports: the wall clock and each RTP clock now.
                sr_a = (w * 1000, audio_rtp(w));
                sr_v = (w * 1000, video_rtp(w));
            }
            let sent = |(ntp, rtp): (i64, i64), r: i64| reports.then_some(ntp + (r - rtp));
            // Arrival: 30 ms for sound, 80 ms for picture, each with
            // some jitter.
            let arr_a = ms(t0, (w + 30 + (w / 20) % 7) as u64);
            let arr_v = ms(t0, (w + 80 + (w / 20) % 11) as u64);
            let d = put_sent(
                &mut p,
                1,
                "0",
                (audio_rtp(w), sent(sr_a, audio_rtp(w))),
                arr_a,
                true,
            );
            if let Decision::Write { at_us, .. } = d {
                last_a = at_us;
            }
            if w % 40 == 0 {
                let d = put_sent(
                    &mut p,
                    1,
                    "1",
                    (video_rtp(w), sent(sr_v, video_rtp(w))),
                    arr_v,
                    true,
                );
                if let Decision::Write { at_us, .. } = d {
                    last_v = at_us;
                }
            }
        }
        // Both last frames were captured at the same wall instant.
        (last_a - last_v).abs()
    };
    let synced = run(true);
    assert!(synced <= 40_000, "{synced} µs apart after an hour");
    let unsynced = run(false);
    assert!(unsynced > 300_000, "RTP alone: {unsynced} µs apart");
}
