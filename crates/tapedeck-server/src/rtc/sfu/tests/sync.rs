//! Lip sync through the media server: a str0m publisher's frames, with
//! the sender reports str0m sends, placed on a recording's timeline.

use super::*;

impl World {
    /// `frames` pictures of every connected sender, one each 1/30 s of
    /// simulated time (a lighter [`World::run`] for long runs).
    fn stream(&mut self, frames: u64) {
        for _ in 0..frames {
            self.now += Duration::from_micros(33_333);
            let now = self.now;
            for c in &mut self.clients {
                let _ = c.rtc.handle_input(RtcInput::Timeout(now));
                if c.connected {
                    c.send_frame(now, 30);
                }
            }
            if now >= self.server_wake {
                let _ = self.sfu.handle(now, Input::Timeout);
            }
            self.settle();
        }
    }
}

/// A publisher whose sound clock runs 100 ppm fast against its picture
/// clock, for an hour: placed by the sender reports str0m sends, sound and
/// picture written at the same instant lie within 40 ms of each other at
/// the end (RTP time alone would put them 360 ms apart).
#[test]
fn sound_and_picture_clocks_100_ppm_apart_stay_in_sync_for_an_hour() {
    use crate::engine::source::room::placement::{Decision, Placement};
    let mut w = World::new(limits());
    let ann = w.client("Ann");
    w.clients[ann].audio_ppm = 100;
    let ann_peer = w.join(ann, 4, false).unwrap();
    w.run(1_000, false);
    let Ok(Reply::Tracks(tracks)) = w.sfu.handle(w.now, Input::Subscribe { room: room() }) else {
        panic!("subscribing lists the tracks");
    };
    let mut synced = Placement::new(w.now);
    let mut unsynced = Placement::new(w.now);
    for t in &tracks {
        synced.track(t);
        unsynced.track(t);
    }
    let (amid, vmid) = w.clients[ann].sends.unwrap();
    // Frame index → where each placement put the sound and the picture
    // written at that instant (the last minute's).
    let mut at: std::collections::HashMap<(u64, bool, bool), i64> = Default::default();
    let mut reported = 0u64;
    let (mut sounds, mut pictures) = (0u64, 0u64);
    for minute in 0..60u64 {
        w.stream(1_800);
        for e in w.events.drain(..) {
            let Event::Media(_, RoomMedia::Frame(f)) = e else {
                continue;
            };
            if f.peer != ann_peer {
                continue;
            }
            reported += u64::from(f.sender_us.is_some());
            let audio = f.mid == amid.to_string();
            assert!(audio || f.mid == vmid.to_string());
            // The k-th sound and k-th picture were written at one instant
            // (the simulated network loses and reorders nothing).
            let count = if audio { &mut sounds } else { &mut pictures };
            let index = *count;
            *count += 1;
            for (p, by_sr) in [(&mut synced, true), (&mut unsynced, false)] {
                let f = crate::rtc::Frame {
                    sender_us: f.sender_us.filter(|_| by_sr),
                    ..f.clone()
                };
                if let Decision::Write { track, at_us } = p.frame(&f) {
                    p.written(track, at_us + 1);
                    if minute == 59 {
                        at.insert((index, audio, by_sr), at_us);
                    }
                }
            }
        }
    }
    assert!(reported > 100_000, "frames placed by a report: {reported}");
    let offset = |by_sr: bool| {
        let (i, v) = at
            .iter()
            .filter(|((_, a, s), _)| !*a && *s == by_sr)
            .map(|((i, _, _), v)| (*i, *v))
            .max()
            .unwrap();
        let a = at[&(i, true, by_sr)];
        (a - v).abs()
    };
    let (with, without) = (offset(true), offset(false));
    println!(
        "{sounds} sounds, {pictures} pictures, {reported} placed by a report; \
         sound to picture after an hour: {with} µs by the reports, {without} µs by RTP time"
    );
    assert!(with <= 40_000, "{with} µs apart after an hour");
    assert!(without > 300_000, "by RTP time alone: {without} µs apart");
}
