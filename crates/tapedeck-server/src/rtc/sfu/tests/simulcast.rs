//! A publisher sending its picture in three simulcast layers: the
//! recording keeps the best one alive as one track, each receiver gets one
//! layer at a time, and both timelines go on across a switch.

use super::*;

impl Client {
    /// Writes one picture on each simulcast layer still on: a VP8 key
    /// frame carries its size. Each layer's RTP time starts at its own
    /// offset, as a browser's do.
    pub(super) fn send_layers(&mut self, now: Instant, vmid: Mid, key: bool) {
        let i = self.written - 1;
        let layers = self.layers.clone();
        for (n, (rid, width, height, bytes)) in layers.into_iter().enumerate() {
            if self.layers_off.contains(&rid) {
                continue;
            }
            let mut picture = if key {
                let mut p = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
                p.extend(width.to_le_bytes());
                p.extend(height.to_le_bytes());
                p
            } else {
                vec![0x11, 0x02, 0x00]
            };
            picture.resize(bytes, i as u8);
            let Some(w) = self.rtc.writer(vmid) else {
                return;
            };
            let pt = w
                .payload_params()
                .find(|p| p.spec().codec == Codec::Vp8)
                .map(|p| p.pt())
                .unwrap();
            let ticks = 1_000_000 * (n as u64 + 1) + i * 3_000;
            w.rid(rid.into())
                .write(pt, now, MediaTime::from_90khz(ticks), picture)
                .unwrap();
        }
    }
}

/// The recording's frames of `peer`'s picture: (size, RTP time µs).
fn recorded(w: &World, peer: PeerId) -> Vec<(usize, i64)> {
    w.media_of(room())
        .into_iter()
        .filter_map(|m| match m {
            RoomMedia::Frame(f) if f.peer == peer && f.codec == crate::rtc::TrackCodec::Vp8 => {
                Some((f.data.len(), f.rtp_us))
            }
            _ => None,
        })
        .collect()
}

const Q: usize = 250;
const H: usize = 900;
const F: usize = 3_000;

#[test]
fn the_recording_keeps_the_best_layer_alive_and_its_time_goes_on() {
    let mut w = World::new(limits());
    let ann = w.client("Ann");
    w.clients[ann].layers = vec![("q", 320, 180, Q), ("h", 640, 360, H), ("f", 1280, 720, F)];
    let bob = w.client("Bob");
    let ann_peer = w.join(ann, 4, false).unwrap();
    w.join(bob, 4, true).unwrap();
    w.run(1_000, false);
    let Ok(Reply::Tracks(_)) = w.sfu.handle(w.now, Input::Subscribe { room: room() }) else {
        panic!("subscribing lists the tracks");
    };
    w.run(3_000, true);
    let first = recorded(&w, ann_peer);
    assert!(first.len() > 60, "{} frames recorded", first.len());
    // One track: every recorded picture is the top layer's, none of the
    // others' (three layers sent, one kept).
    assert!(first.iter().all(|(n, _)| *n == F), "{first:?}");

    // The top layer stops (the sender's bandwidth fell): the recording
    // goes on with the middle one from its next key frame.
    w.clients[ann].layers_off = vec!["f"];
    w.run(3_000, true);
    // It comes back.
    w.clients[ann].layers_off = vec![];
    w.run(3_000, true);
    let all = recorded(&w, ann_peer);
    let sizes: Vec<usize> = all.iter().map(|(n, _)| *n).collect();
    let runs = sizes
        .chunk_by(|a, b| a == b)
        .map(|c| c[0])
        .collect::<Vec<_>>();
    assert_eq!(runs, [F, H, F], "the layers recorded, in turn");
    // Time only moves on, by about a frame (33 ms) between pictures, and
    // by no more than the wait for a key frame across a switch.
    for pair in all.windows(2) {
        let step = pair[1].1 - pair[0].1;
        assert!((1_000..=1_800_000).contains(&step), "a step of {step} µs");
    }
    let span = all.last().unwrap().1 - all[0].1;
    let (n, secs) = (all.len(), span as f64 / 1e6);
    assert!(
        (8.0..9.5).contains(&secs),
        "{n} pictures over {secs:.2} s of 9 s sent"
    );
}

#[test]
fn a_receiver_gets_one_layer_at_a_time_on_one_timeline() {
    let mut w = World::new(limits());
    let ann = w.client("Ann");
    w.clients[ann].layers = vec![("q", 320, 180, Q), ("h", 640, 360, H), ("f", 1280, 720, F)];
    let bob = w.client("Bob");
    w.join(ann, 4, false).unwrap();
    w.join(bob, 4, true).unwrap();
    w.run(1_000, false);
    w.run(6_000, true);
    // The top layer stops, then comes back.
    w.clients[ann].layers_off = vec!["f"];
    w.run(3_000, true);
    w.clients[ann].layers_off = vec![];
    w.run(3_000, true);
    let got = &w.clients[bob].pictures;
    assert!(got.len() > 250, "Bob got {} pictures", got.len());
    // One layer at a time: a receiver switches rarely, never back and
    // forth between layers frame by frame.
    let sizes: Vec<usize> = got.iter().map(|(_, n, _)| *n).collect();
    let runs: Vec<usize> = sizes.chunk_by(|a, b| a == b).map(|c| c[0]).collect();
    assert!(runs.len() <= 6, "switches: {runs:?}");
    // Only the layers that were sent.
    // (Which one his bandwidth buys is `simulcast::allocate`'s test: the
    // simulated network's estimate is not a real one.)
    assert!(runs.iter().all(|n| [Q, H, F].contains(n)), "{runs:?}");
    // His timeline goes on across the switches (one RTP clock, rising by
    // about a frame a picture).
    let mut max_step = 0;
    for pair in got.windows(2) {
        let (a, b) = (pair[0].2.numer(), pair[1].2.numer());
        assert!(b > a, "time went back: {a} to {b}");
        max_step = max_step.max(b - a);
    }
    assert!(max_step <= 90 * 1_800, "a step of {max_step} ticks");
}

#[test]
fn a_recording_started_as_the_publisher_connects_holds_only_the_top_layer() {
    let mut w = World::new(limits());
    let ann = w.client("Ann");
    w.clients[ann].layers = vec![("q", 320, 180, Q), ("h", 640, 360, H), ("f", 1280, 720, F)];
    let ann_peer = w.join(ann, 4, false).unwrap();
    // The recording is asked for before Ann's connection is up; she sends
    // all three layers from the instant it is (a key frame first, then one
    // a second; this sender does not answer requests).
    let Ok(Reply::Tracks(_)) = w.sfu.handle(w.now, Input::Subscribe { room: room() }) else {
        panic!("subscribing lists the tracks");
    };
    w.run(3_000, true);
    let got = recorded(&w, ann_peer);
    // Not the first layer to arrive: the top one, from its key frame one
    // second in (the layers settle first), to the end.
    assert!(got.iter().all(|(n, _)| *n == F), "{got:?}");
    assert!(got.len() >= 55, "{} of the top layer's pictures", got.len());
}
