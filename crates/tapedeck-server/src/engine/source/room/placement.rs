//! Where a room recording puts each frame, sans-IO: which track file it
//! belongs to, where it lies on the recording's timeline, and whether it
//! is written at all (paused, or video waiting for a keyframe). The clock
//! comes in with the frames (their arrival) and the commands; the files
//! are the writer's (`super::TrackWriter`).
//!
//! - A participant's track is one file, across sessions: one who leaves
//!   and comes back (a new peer) continues the same file after a gap.
//! - A session is placed where its first frame arrives (never before where
//!   the file already ends); within it, frames follow RTP time.
//! - Lip sync: once a track's RTCP sender reports tie its RTP time to the
//!   sender's clock (NTP), its frames are placed by that clock, through one
//!   offset per participant's session (set by the first such frame, where
//!   arrival placed it). Sound and picture captured at the same instant then
//!   lie at the same place however differently they travelled, and the
//!   reports (about one a second) correct each RTP clock's drift against
//!   the sender's. Until a track's first report it follows arrival.
//! - Pause cuts the same time from every track; after a resume every
//!   session is placed anew and video starts again at a keyframe.

use std::collections::HashMap;
use std::time::Instant;

use tapedeck_core::track::TrackKind;

use crate::rtc::{Frame, PeerId, TrackInfo};

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write it into track `track`'s file at `at_us` on the timeline.
    Write {
        /// Index of the track.
        track: usize,
        /// Its place, µs from the recording's start (pauses cut out).
        at_us: i64,
    },
    /// Not recorded: why.
    Skip(Skip),
}

/// Why a frame is not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The recording is paused.
    Paused,
    /// No track of the recording is live for it (its peer left).
    Unknown,
    /// Video that waits for a keyframe (at its start or after a resume).
    WaitingForKey,
}

/// One participant's track.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackPlace {
    /// Whose.
    pub participant: String,
    /// Sound or picture.
    pub kind: TrackKind,
    /// The session feeding it: its peer, and an RTP time with its place.
    anchor: Option<(PeerId, i64, i64)>,
    /// Video waits for a keyframe (at the start, after a resume).
    need_key: bool,
    /// Where its file's content ends on the timeline, as the writer said.
    end_us: i64,
}

/// Every track of one room recording and where it stands.
#[derive(Debug)]
pub struct Placement {
    t0: Instant,
    paused_us: i64,
    paused_at: Option<Instant>,
    /// (peer, mid) → index in `tracks`.
    live: HashMap<(PeerId, String), usize>,
    tracks: Vec<TrackPlace>,
    /// Per session: the timeline's µs minus the sender's clock's µs.
    clocks: HashMap<PeerId, i64>,
}

impl Placement {
    /// A recording whose timeline starts at `t0`.
    pub fn new(t0: Instant) -> Self {
        Self {
            t0,
            paused_us: 0,
            paused_at: None,
            live: HashMap::new(),
            tracks: vec![],
            clocks: HashMap::new(),
        }
    }

    /// The recording starts over at `t0` (when media begins to flow).
    pub fn start_at(&mut self, t0: Instant) {
        self.t0 = t0;
    }

    /// A track began: its index, and whether it is a new one (a returning
    /// participant continues their own).
    pub fn track(&mut self, t: &TrackInfo) -> (usize, bool) {
        let again = self
            .tracks
            .iter()
            .position(|w| w.participant == t.participant && w.kind == t.kind);
        let (idx, new) = match again {
            Some(i) => (i, false),
            None => {
                self.tracks.push(TrackPlace {
                    participant: t.participant.clone(),
                    kind: t.kind,
                    anchor: None,
                    need_key: t.kind == TrackKind::Video,
                    end_us: 0,
                });
                (self.tracks.len() - 1, true)
            }
        };
        self.live.insert((t.peer, t.mid.clone()), idx);
        (idx, new)
    }

    /// A peer left: its tracks take no more frames.
    pub fn left(&mut self, peer: PeerId) {
        self.live.retain(|(p, _), _| *p != peer);
        self.clocks.remove(&peer);
    }

    /// Where frame `f` goes: by the sender's clock when its track's
    /// reports give it (`f.sender_us`), else by its RTP time from where its
    /// session's first frame arrived.
    pub fn frame(&mut self, f: &Frame) -> Decision {
        if self.paused_at.is_some() {
            return Decision::Skip(Skip::Paused);
        }
        let Some(&idx) = self.live.get(&(f.peer, f.mid.clone())) else {
            return Decision::Skip(Skip::Unknown);
        };
        let now_us =
            f.arrived.saturating_duration_since(self.t0).as_micros() as i64 - self.paused_us;
        let w = &mut self.tracks[idx];
        // A new session (first frame, or the participant came back) is
        // placed where it arrives; within it, frames follow RTP time.
        let (rtp0, at0) = match w.anchor {
            Some((p, rtp, at)) if p == f.peer => (rtp, at),
            _ => {
                let at = now_us.max(w.end_us);
                w.anchor = Some((f.peer, f.rtp_us, at));
                (f.rtp_us, at)
            }
        };
        let by_rtp = at0 + (f.rtp_us - rtp0);
        let at_us = match f.sender_us {
            Some(sent) => {
                let offset = *self.clocks.entry(f.peer).or_insert(by_rtp - sent);
                let at = sent + offset;
                // Re-anchored: should the reports stop, RTP time goes on from here.
                w.anchor = Some((f.peer, f.rtp_us, at));
                at
            }
            None => by_rtp,
        };
        if w.need_key && !f.keyframe {
            return Decision::Skip(Skip::WaitingForKey);
        }
        Decision::Write { track: idx, at_us }
    }

    /// The writer put a frame into track `track`'s file, whose content now
    /// ends at `end_us` on the timeline: video no longer waits for a key.
    pub fn written(&mut self, track: usize, end_us: i64) {
        if let Some(w) = self.tracks.get_mut(track) {
            w.need_key = false;
            w.end_us = w.end_us.max(end_us);
        }
    }

    /// Pauses at `now`: frames are not recorded until the resume.
    pub fn pause(&mut self, now: Instant) {
        self.paused_at.get_or_insert(now);
    }

    /// Resumes at `now`: the paused time is cut from the timeline; every
    /// session is placed anew where it resumes, video at a keyframe.
    pub fn resume(&mut self, now: Instant) {
        if let Some(at) = self.paused_at.take() {
            self.paused_us += now.saturating_duration_since(at).as_micros() as i64;
            for w in &mut self.tracks {
                w.anchor = None;
                w.need_key = w.kind == TrackKind::Video;
            }
            self.clocks.clear();
        }
    }

    /// The live video tracks that wait for a keyframe (none while paused).
    pub fn waiting_for_keyframes(&self) -> Vec<(PeerId, String)> {
        if self.paused_at.is_some() {
            return vec![];
        }
        let mut out: Vec<_> = self
            .live
            .iter()
            .filter(|(_, i)| {
                let w = &self.tracks[**i];
                w.kind == TrackKind::Video && w.need_key
            })
            .map(|((peer, mid), _)| (*peer, mid.clone()))
            .collect();
        out.sort();
        out
    }

    /// Where the recording's content ends so far.
    pub fn end_us(&self) -> i64 {
        self.tracks.iter().map(|t| t.end_us).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tapedeck_core::track::TrackCodec;

    fn info(peer: u64, who: &str, kind: TrackKind, mid: &str) -> TrackInfo {
        TrackInfo {
            peer: PeerId(peer),
            participant: who.into(),
            kind,
            codec: Some(if kind == TrackKind::Video {
                TrackCodec::Vp8
            } else {
                TrackCodec::Opus
            }),
            mid: mid.into(),
        }
    }

    /// Writes what `p` decides and tells it the file grows by `len_us`.
    fn put(
        p: &mut Placement,
        peer: u64,
        mid: &str,
        rtp_us: i64,
        at: Instant,
        key: bool,
    ) -> Decision {
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
}
