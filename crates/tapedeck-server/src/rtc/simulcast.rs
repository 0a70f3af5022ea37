//! Simulcast (RFC 8853): a sender's video as several layers, each its own
//! RTP stream named by a rid, at its own size and bitrate. Sans-IO, no
//! clock of its own: which layer a reader follows (the recording keeps the
//! best one alive; each receiver gets the best its bandwidth carries),
//! switched only at a key frame of the layer switched to, with the
//! reader's timestamps going on across the switch.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use str0m::media::Rid;

/// A layer that sent nothing this long is gone (its sender dropped it for
/// lack of bandwidth or CPU). Chromium's layers send at least 5 frames a
/// second while they run.
pub const LAYER_GONE: Duration = Duration::from_millis(700);

/// How long after a track's first frame its layers are taken as known: a
/// sender's layers start within a few frames of each other, and following
/// the first one to arrive would switch at once to the next.
pub const LAYERS_SETTLE: Duration = Duration::from_millis(300);

/// The span each layer's bitrate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// A receiver's share of its bandwidth estimate that its forwarded media
/// may take to go up a layer; the rest is headroom for the estimate's
/// error and RTCP.
const USE_OF_ESTIMATE: f64 = 0.85;

/// The share a layer it already gets may take before it goes down: the
/// gap to [`USE_OF_ESTIMATE`] keeps an estimate that wavers around a
/// layer's rate from switching it up and down every second.
const KEEP_OF_ESTIMATE: f64 = 0.95;

/// How far (µs) the layers' sender reports may place a switch from where
/// its frame arrived before they are not believed.
const MAX_CLOCK_SKEW_US: u64 = 5_000_000;

/// What a receiver is assumed to need for each forwarded audio track.
pub const AUDIO_BPS: u64 = 48_000;

/// A stream's bitrate: bytes received over the last [`RATE_WINDOW`].
#[derive(Debug, Default, Clone)]
pub struct Rate {
    window: VecDeque<(Instant, usize)>,
    bytes: u64,
    first_at: Option<Instant>,
}

impl Rate {
    /// `bytes` arrived at `now`.
    pub fn add(&mut self, bytes: usize, now: Instant) {
        self.first_at.get_or_insert(now);
        self.window.push_back((now, bytes));
        self.bytes += bytes as u64;
        while let Some(&(at, b)) = self.window.front() {
            if now.saturating_duration_since(at) <= RATE_WINDOW {
                break;
            }
            self.window.pop_front();
            self.bytes -= b as u64;
        }
    }

    /// Bits per second over the last two seconds, or since the stream
    /// began if that is less (at least [`LAYERS_SETTLE`]).
    pub fn bps(&self, now: Instant) -> u64 {
        let span = self
            .first_at
            .map_or(RATE_WINDOW, |t| now.saturating_duration_since(t))
            .clamp(LAYERS_SETTLE, RATE_WINDOW);
        let bytes: u64 = self
            .window
            .iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) <= RATE_WINDOW)
            .map(|(_, b)| *b as u64)
            .sum();
        bytes * 8 * 1000 / span.as_millis().max(1) as u64
    }
}

/// One layer as it arrives.
#[derive(Debug, Clone)]
struct Layer {
    rid: Rid,
    /// Width × height of its last key frame (0 before one came).
    pixels: u64,
    last_at: Instant,
    rate: Rate,
    /// Its frames' sender time minus RTP time (µs), from its sender
    /// reports: the same capture instant lines up across layers by it.
    clock: Option<i64>,
}

/// The layers of one simulcast track.
#[derive(Debug, Default, Clone)]
pub struct Layers {
    layers: Vec<Layer>,
    first_at: Option<Instant>,
}

impl Layers {
    /// A frame of layer `rid` arrived: `pixels` from a key frame's header,
    /// `clock` its sender time minus RTP time when its reports give one.
    pub fn frame(
        &mut self,
        rid: Rid,
        pixels: Option<u64>,
        bytes: usize,
        clock: Option<i64>,
        now: Instant,
    ) {
        self.first_at.get_or_insert(now);
        let l = match self.layers.iter().position(|l| l.rid == rid) {
            Some(i) => &mut self.layers[i],
            None => {
                // At most a handful of layers: RFC 8853 allows any number,
                // browsers send three. More are ignored.
                if self.layers.len() >= 8 {
                    return;
                }
                self.layers.push(Layer {
                    rid,
                    pixels: 0,
                    last_at: now,
                    rate: Rate::default(),
                    clock: None,
                });
                let i = self.layers.len() - 1;
                &mut self.layers[i]
            }
        };
        if let Some(p) = pixels {
            l.pixels = p;
        }
        if clock.is_some() {
            l.clock = clock;
        }
        l.last_at = now;
        l.rate.add(bytes, now);
    }

    /// Whether its layers have had time to show themselves.
    pub fn settled(&self, now: Instant) -> bool {
        self.first_at
            .is_some_and(|t| now.saturating_duration_since(t) >= LAYERS_SETTLE)
    }

    /// The layers alive at `now`, best first: most pixels, then the
    /// highest bitrate (which tells them apart before their key frames).
    pub fn ranked(&self, now: Instant) -> Vec<Rid> {
        let mut live: Vec<&Layer> = self
            .layers
            .iter()
            .filter(|l| now.saturating_duration_since(l.last_at) < LAYER_GONE)
            .collect();
        live.sort_by(|a, b| {
            (b.pixels, b.rate.bytes)
                .cmp(&(a.pixels, a.rate.bytes))
                .then_with(|| (*a.rid).cmp(&*b.rid))
        });
        live.into_iter().map(|l| l.rid).collect()
    }

    /// Layer `rid`'s bitrate (bits per second; see [`Rate::bps`]).
    pub fn rate_bps(&self, rid: Rid, now: Instant) -> u64 {
        self.layers
            .iter()
            .find(|l| l.rid == rid)
            .map_or(0, |l| l.rate.bps(now))
    }

    /// The layers' sender-time offsets, for [`Follow::frame`].
    pub fn clocks(&self) -> Clocks {
        Clocks(self.layers.iter().map(|l| (l.rid, l.clock)).collect())
    }
}

/// Each layer's sender time minus RTP time, as [`Layers::clocks`] gave.
#[derive(Debug, Default, Clone)]
pub struct Clocks(Vec<(Rid, Option<i64>)>);

impl Clocks {
    fn of(&self, rid: Rid) -> Option<i64> {
        self.0.iter().find(|(r, _)| *r == rid).and_then(|(_, c)| *c)
    }
}

/// One reader of a simulcast track (the recording, or a receiver): the
/// layer it follows, and its timeline, which goes on across a switch.
#[derive(Debug, Default, Clone)]
pub struct Follow {
    current: Option<Rid>,
    /// The layer to switch to at its next key frame.
    target: Option<Rid>,
    /// Added to the current layer's RTP time (µs).
    offset_us: i64,
    /// The last frame passed: its time on this reader's timeline (µs) and
    /// when it arrived.
    last: Option<(i64, Instant)>,
}

impl Follow {
    /// The layer it follows now.
    pub fn current(&self) -> Option<Rid> {
        self.current
    }

    /// The layer it waits to switch to (a key frame of it is wanted).
    pub fn target(&self) -> Option<Rid> {
        self.target
    }

    /// Follows `rid` from its next key frame (now, if already on it).
    pub fn want(&mut self, rid: Rid) {
        self.target = (self.current != Some(rid)).then_some(rid);
    }

    /// A frame of layer `rid`, RTP time `rtp_us`: its time on this
    /// reader's timeline, or None when the reader does not take it.
    pub fn frame(
        &mut self,
        rid: Rid,
        keyframe: bool,
        rtp_us: i64,
        arrived: Instant,
        clocks: &Clocks,
    ) -> Option<i64> {
        if self.target == Some(rid) && keyframe {
            self.offset_us = match (self.current, self.last) {
                (Some(cur), Some((last_us, last_at))) => {
                    let by_clock = clocks
                        .of(rid)
                        .zip(clocks.of(cur))
                        .map(|(new, old)| self.offset_us.saturating_add(new.saturating_sub(old)));
                    // Without both layers' reports: as far on as it arrived.
                    let by_arrival = last_us
                        .saturating_add(
                            arrived.saturating_duration_since(last_at).as_micros() as i64
                        )
                        .saturating_sub(rtp_us);
                    // Reports that put the switch seconds from where it
                    // arrived are not this sender's clock: arrival places it.
                    let offset = by_clock
                        .filter(|c| c.abs_diff(by_arrival) < MAX_CLOCK_SKEW_US)
                        .unwrap_or(by_arrival);
                    // Never at or before the frame passed last.
                    offset.max(last_us.saturating_add(1_000).saturating_sub(rtp_us))
                }
                (_, Some((last_us, _))) => last_us.saturating_add(1_000).saturating_sub(rtp_us),
                _ => 0,
            };
            self.current = Some(rid);
            self.target = None;
        }
        if self.current != Some(rid) {
            return None;
        }
        // Saturating: the times come from the sender (RTP, its reports).
        let at = rtp_us.saturating_add(self.offset_us);
        self.last = Some((at, arrived));
        Some(at)
    }
}

/// The layers a receiver gets, and what its bandwidth estimator is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// For each video track, the index of its layer (0: the best).
    pub picks: Vec<usize>,
}

/// A receiver's video tracks to fit in its bandwidth: for each, its
/// layers' bitrates, best first (one entry for a track without layers),
/// and the layer it gets now (if any). All start on their lowest, then the
/// tracks are raised in turn, one layer at a time, while the sum fits in
/// `estimate_bps` (less the audio's share and headroom; a little more
/// room to keep a layer than to go up to it).
pub fn allocate(
    estimate_bps: u64,
    audio_tracks: usize,
    videos: &[(Vec<u64>, Option<usize>)],
) -> Allocation {
    let up = (estimate_bps as f64 * USE_OF_ESTIMATE) as u64;
    let keep = (estimate_bps as f64 * KEEP_OF_ESTIMATE) as u64;
    let (videos, now): (Vec<&Vec<u64>>, Vec<Option<usize>>) =
        videos.iter().map(|(v, n)| (v, *n)).unzip();
    let audio = audio_tracks as u64 * AUDIO_BPS;
    let mut used = audio;
    let mut pick: Vec<usize> = videos.iter().map(|l| l.len().saturating_sub(1)).collect();
    for (v, &i) in videos.iter().zip(&pick) {
        used += v.get(i).copied().unwrap_or(0);
    }
    loop {
        let mut raised = false;
        for (t, v) in videos.iter().enumerate() {
            if pick[t] == 0 {
                continue;
            }
            let more = v[pick[t] - 1].saturating_sub(v[pick[t]]);
            let budget = if now[t].is_some_and(|n| n < pick[t]) {
                keep
            } else {
                up
            };
            if used + more <= budget {
                used += more;
                pick[t] -= 1;
                raised = true;
            }
        }
        if !raised {
            break;
        }
    }
    Allocation { picks: pick }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// Three layers at 30 fps for `ms`, key frames at 0 (sizes known).
    fn feed(l: &mut Layers, t0: Instant, from_ms: u64, to_ms: u64, rids: &[(&str, u64, usize)]) {
        let mut ms = from_ms;
        while ms < to_ms {
            for &(rid, pixels, bytes) in rids {
                let key = ms == 0;
                l.frame(rid.into(), key.then_some(pixels), bytes, None, at(t0, ms));
            }
            ms += 33;
        }
    }

    #[test]
    fn the_best_layer_is_the_largest_alive() {
        let t0 = Instant::now();
        let mut l = Layers::default();
        let all = [
            ("q", 320 * 180, 300),
            ("h", 640 * 360, 1_000),
            ("f", 1280 * 720, 4_000),
        ];
        feed(&mut l, t0, 0, 2_000, &all);
        let r: Vec<String> = l
            .ranked(at(t0, 2_000))
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(r, ["f", "h", "q"]);
        // f's bitrate: 4,000 bytes 30 times a second.
        let f = l.rate_bps("f".into(), at(t0, 2_000));
        assert!((900_000..1_000_000).contains(&f), "{f}");
        // The top layer stops: after 700 ms it is gone.
        feed(&mut l, t0, 2_000, 3_000, &all[..2]);
        let r: Vec<String> = l
            .ranked(at(t0, 3_000))
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(r, ["h", "q"]);
    }

    #[test]
    fn a_switch_waits_for_a_key_frame_and_the_timeline_goes_on() {
        let t0 = Instant::now();
        let clocks = Clocks::default();
        let mut f = Follow::default();
        f.want("h".into());
        // Not a key frame: nothing yet.
        assert_eq!(
            f.frame("h".into(), false, 1_000_000, at(t0, 0), &clocks),
            None
        );
        assert_eq!(
            f.frame("h".into(), true, 1_033_000, at(t0, 33), &clocks),
            Some(1_033_000)
        );
        assert_eq!(
            f.frame("q".into(), true, 9_000_000, at(t0, 33), &clocks),
            None
        );
        f.want("f".into());
        // h goes on until f's key frame.
        assert_eq!(
            f.frame("h".into(), false, 1_066_000, at(t0, 66), &clocks),
            Some(1_066_000)
        );
        assert_eq!(
            f.frame("f".into(), false, 5_000_000, at(t0, 70), &clocks),
            None
        );
        // f's RTP clock starts elsewhere: placed by arrival, 33 ms on.
        assert_eq!(
            f.frame("f".into(), true, 5_033_000, at(t0, 99), &clocks),
            Some(1_099_000)
        );
        assert_eq!(
            f.frame("f".into(), false, 5_066_000, at(t0, 133), &clocks),
            Some(1_132_000)
        );
        assert_eq!(
            f.frame("h".into(), false, 1_099_000, at(t0, 99), &clocks),
            None
        );
        assert_eq!(f.current().map(|r| r.to_string()).as_deref(), Some("f"));
    }

    /// Follows h (its key frame at RTP 1 s, at t0), then switches to f at
    /// f's key frame of RTP time `f_rtp_us` arriving `f_ms` after: where
    /// that frame goes, with each layer's clock (sender minus RTP time).
    fn switch_h_to_f(h: i64, f: i64, f_rtp_us: i64, f_ms: u64) -> (Follow, Option<i64>) {
        let t0 = Instant::now();
        let clocks = Clocks(vec![("h".into(), Some(h)), ("f".into(), Some(f))]);
        let mut follow = Follow::default();
        follow.want("h".into());
        assert_eq!(
            follow.frame("h".into(), true, 1_000_000, t0, &clocks),
            Some(1_000_000)
        );
        follow.want("f".into());
        let at = follow.frame("f".into(), true, f_rtp_us, at(t0, f_ms), &clocks);
        (follow, at)
    }

    #[test]
    fn with_sender_reports_a_switch_lines_the_layers_up_by_them() {
        // h's RTP time + 50 s is the sender's time; f's + 10 s. f's frame
        // of capture 41.033 s (sender time 51.033 s) arrives late: placed
        // by the reports, not by arrival.
        let (_, at) = switch_h_to_f(50_000_000, 10_000_000, 41_033_000, 200);
        assert_eq!(at, Some(1_033_000));
    }

    #[test]
    fn reports_that_place_a_switch_seconds_away_are_not_followed() {
        // f's reports claim its frames were taken an hour from h's.
        let (mut follow, at) = switch_h_to_f(0, 3_600_000_000, 7_000_000, 40);
        assert_eq!(at, Some(1_040_000));
        // Times near the ends of i64 saturate rather than wrap.
        let later = Instant::now() + Duration::from_millis(80);
        let clocks = Clocks::default();
        assert!(
            follow
                .frame("f".into(), false, i64::MAX, later, &clocks)
                .is_some()
        );
    }

    /// Tracks none of which has a layer yet.
    fn fresh(v: &[Vec<u64>]) -> Vec<(Vec<u64>, Option<usize>)> {
        v.iter().map(|l| (l.clone(), None)).collect()
    }

    #[test]
    fn bandwidth_buys_layers_in_turn() {
        let cam = vec![1_500_000, 500_000, 150_000];
        let picks = |est, audio, v: &[Vec<u64>]| allocate(est, audio, &fresh(v)).picks;
        // Plenty: both cameras at the top.
        assert_eq!(picks(5_000_000, 2, &[cam.clone(), cam.clone()]), [0, 0]);
        // 1.5 Mbps: both in the middle (2 × 500 k + 96 k ≤ 1.275 M).
        assert_eq!(picks(1_500_000, 2, &[cam.clone(), cam.clone()]), [1, 1]);
        // 300 kbps: the lowest, even if it does not fit.
        assert_eq!(picks(300_000, 2, &[cam.clone(), cam.clone()]), [2, 2]);
        // A track without layers costs what it costs.
        assert_eq!(picks(2_600_000, 1, &[cam.clone(), vec![600_000]]), [0, 0]);
        assert_eq!(picks(2_000_000, 1, &[cam.clone(), vec![600_000]]), [1, 0]);
    }

    #[test]
    fn a_layer_held_is_kept_a_little_longer_than_one_gone_up_to() {
        let cam = vec![1_500_000, 500_000, 150_000];
        // 1.7 Mbps: 1.548 M needed; 0.85 × 1.7 M = 1.445 M does not go up
        // to the top, 0.95 × 1.7 M = 1.615 M keeps it.
        assert_eq!(allocate(1_700_000, 1, &[(cam.clone(), Some(1))]).picks, [1]);
        assert_eq!(allocate(1_700_000, 1, &[(cam.clone(), Some(0))]).picks, [0]);
        // Below that, even the top layer held goes.
        assert_eq!(allocate(1_500_000, 1, &[(cam, Some(0))]).picks, [1]);
    }
}
