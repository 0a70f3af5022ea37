//! Frame timeline: source timestamps in, output timestamps and write decisions out.
//!
//! Sans-IO: the driver pushes each decoded frame with its source timestamp and
//! gets back what to write to the encoder. The timeline
//! - starts output time at the first frame,
//! - removes paused time so pause leaves no gap in the one output file,
//! - drops frames that go backwards (and rebases after a clock reset),
//! - in CFR mode snaps each frame to its nearest output tick (as ffmpeg's fps
//!   filter does, so timestamp jitter and microsecond rounding never shift a
//!   frame by a whole tick); a frame overtaken on its tick is superseded; every tick in
//!   between repeats the last frame, so the encoder gets exactly one picture
//!   per output frame and never has to guess,
//! - at the end repeats the last frame so the output lasts until the last
//!   frame's own display time is over.
//!
//! Replaying the accepted output timestamps through a fresh timeline gives the
//! same writes, which is how a spool is finalized after a crash.
//!
//! Output is bounded whatever the timestamps: held ticks are one
//! [`Step::Hold`] (a count, not a list), a frame at or past
//! [`TimelineLimits::max_out_us`] is refused, and so is a frame whose
//! timestamp runs ahead of the wall clock since the last frame by more than
//! [`TimelineLimits::max_ahead_us`].
//!
//! Over 600 lines: 389 of code, then its inline tests and property tests.

/// Why an input frame was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The recording was paused.
    Paused,
    /// Its timestamp was not after the previous frame's.
    OutOfOrder,
    /// A later frame arrived before its output tick.
    Superseded,
    /// Its output time is at or past the recording's longest output.
    BeyondLimit,
    /// Its timestamp ran ahead of the wall clock since the last frame by
    /// more than the limit.
    TooFarAhead,
}

impl DropReason {
    /// Whether the frame was refused for its timestamp (counted as invalid).
    pub fn is_bad_timestamp(self) -> bool {
        matches!(self, DropReason::BeyondLimit | DropReason::TooFarAhead)
    }
}

/// What bounds a timeline's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineLimits {
    /// No frame is placed at or after this output time (the recording's
    /// max duration).
    pub max_out_us: i64,
    /// A frame whose timestamp advanced more than this beyond the wall clock
    /// since the previous frame is refused (live input only).
    pub max_ahead_us: i64,
}

impl Default for TimelineLimits {
    /// 24 hours of output; 60 s ahead of the wall clock.
    fn default() -> Self {
        Self {
            max_out_us: 24 * 3_600_000_000,
            max_ahead_us: 60_000_000,
        }
    }
}

/// One thing the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Encode frame `seq` at output time `pts_us`.
    Write {
        /// The driver's sequence number of the frame.
        seq: u64,
        /// Output timestamp in microseconds.
        pts_us: i64,
    },
    /// CFR: encode the last written frame again on `ticks` consecutive
    /// output ticks from `first_tick` ([`Step::repeats`] gives their times).
    Hold {
        /// The first held tick.
        first_tick: i64,
        /// How many ticks.
        ticks: u64,
        /// Output frame rate (ticks per second).
        fps: u32,
    },
    /// VFR: encode the last written frame again at `pts_us` (end of output).
    Repeat {
        /// Output timestamp in microseconds.
        pts_us: i64,
    },
    /// Forget frame `seq`; it is counted as dropped.
    Discard {
        /// The driver's sequence number of the frame.
        seq: u64,
        /// Why.
        reason: DropReason,
    },
}

impl Step {
    /// The output times at which the last frame is encoded again (empty for
    /// writes and discards).
    pub fn repeats(&self) -> impl Iterator<Item = i64> + use<> {
        let (first, n, fps, single) = match *self {
            Step::Hold {
                first_tick,
                ticks,
                fps,
            } => (first_tick, ticks, i64::from(fps.max(1)), None),
            Step::Repeat { pts_us } => (0, 0, 1, Some(pts_us)),
            _ => (0, 0, 1, None),
        };
        single
            .into_iter()
            .chain((0..n).map(move |k| (first + k as i64) * 1_000_000 / fps))
    }
}

/// Result of pushing one frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Push {
    /// The frame's output time when it was accepted (to spool it), else `None`.
    pub accepted_out_us: Option<i64>,
    /// What to do now.
    pub steps: Vec<Step>,
}

/// A source clock jump backwards larger than this is a reset, not disorder.
const RESET_BACKWARDS_US: i64 = 1_000_000;
/// The longest a single frame is assumed to last at the end or before a pause.
const MAX_INTERVAL_US: i64 = 1_000_000;

#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    tick: i64,
}

/// The timeline of one recording's video.
#[derive(Debug, Clone)]
pub struct Timeline {
    fps: i64,
    cfr: bool,
    limits: TimelineLimits,
    /// The last accepted frame's source time and wall time.
    last_seen: Option<(i64, i64)>,
    origin_us: Option<i64>,
    offset_us: i64,
    last_out_us: Option<i64>,
    last_interval_us: i64,
    paused: bool,
    rebase: bool,
    pending: Option<Pending>,
    last_written_tick: Option<i64>,
    last_written_pts: Option<i64>,
    writes: u64,
    distinct: u64,
    ended: bool,
}

impl Timeline {
    /// A timeline for output at `fps`, constant (`cfr`) or variable frame rate.
    pub fn new(fps: u32, cfr: bool) -> Self {
        let fps = i64::from(fps.max(1));
        Self {
            fps,
            cfr,
            limits: TimelineLimits::default(),
            last_seen: None,
            origin_us: None,
            offset_us: 0,
            last_out_us: None,
            last_interval_us: 1_000_000 / fps,
            paused: false,
            rebase: false,
            pending: None,
            last_written_tick: None,
            last_written_pts: None,
            writes: 0,
            distinct: 0,
            ended: false,
        }
    }

    /// The same timeline with other limits.
    pub fn with_limits(mut self, limits: TimelineLimits) -> Self {
        self.limits = limits;
        self
    }

    fn frame_us(&self) -> i64 {
        1_000_000 / self.fps
    }

    fn tick_pts(&self, tick: i64) -> i64 {
        tick * 1_000_000 / self.fps
    }

    /// The output tick nearest to `out_us` (halves round up).
    fn nearest_tick(&self, out_us: i64) -> i64 {
        (out_us * self.fps + 500_000).div_euclid(1_000_000)
    }

    /// Pushes frame `seq` with source timestamp `src_us` (a replay: no wall clock).
    pub fn push(&mut self, seq: u64, src_us: i64) -> Push {
        self.push_at(seq, src_us, None)
    }

    /// Pushes frame `seq` with source timestamp `src_us`, received at
    /// `wall_us` on the receiver's clock (live input).
    pub fn push_at(&mut self, seq: u64, src_us: i64, wall_us: Option<i64>) -> Push {
        let mut push = Push::default();
        let discard = |push: &mut Push, reason| {
            push.steps.push(Step::Discard { seq, reason });
        };
        if self.paused || self.ended {
            discard(&mut push, DropReason::Paused);
            return push;
        }
        let origin = *self.origin_us.get_or_insert(src_us);
        let mut out = src_us.saturating_sub(origin).saturating_sub(self.offset_us);
        if let Some(last) = self.last_out_us {
            if self.rebase || out < last - RESET_BACKWARDS_US {
                // After a pause or a clock reset the next frame follows the last
                // one after its usual interval: no gap, no overlap.
                let target = last + self.last_interval_us;
                self.offset_us = src_us.saturating_sub(origin).saturating_sub(target);
                out = target;
            } else if out <= last {
                discard(&mut push, DropReason::OutOfOrder);
                return push;
            } else if let (Some(wall), Some((last_src, last_wall))) = (wall_us, self.last_seen)
                && src_us.saturating_sub(last_src)
                    > wall
                        .saturating_sub(last_wall)
                        .saturating_add(self.limits.max_ahead_us)
            {
                discard(&mut push, DropReason::TooFarAhead);
                return push;
            }
        }
        if out >= self.limits.max_out_us {
            discard(&mut push, DropReason::BeyondLimit);
            return push;
        }
        if let Some(last) = self.last_out_us
            && !self.rebase
            && out > last
        {
            self.last_interval_us = (out - last).clamp(self.frame_us().min(1000), MAX_INTERVAL_US);
        }
        if let Some(wall) = wall_us {
            self.last_seen = Some((src_us, wall));
        }
        self.rebase = false;
        self.last_out_us = Some(out);
        push.accepted_out_us = Some(out);
        if self.cfr {
            let tick = self.nearest_tick(out);
            let tick = match self.last_written_tick {
                Some(w) => tick.max(w + 1),
                None => tick,
            };
            match self.pending {
                Some(p) if tick <= p.tick => {
                    push.steps.push(Step::Discard {
                        seq: p.seq,
                        reason: DropReason::Superseded,
                    });
                    self.pending = Some(Pending { seq, tick: p.tick });
                }
                Some(p) => {
                    self.write(&mut push, p.seq, p.tick);
                    self.pending = Some(Pending { seq, tick });
                }
                None => self.pending = Some(Pending { seq, tick }),
            }
        } else {
            push.steps.push(Step::Write { seq, pts_us: out });
            self.writes += 1;
            self.distinct += 1;
            self.last_written_pts = Some(out);
        }
        push
    }

    fn write(&mut self, push: &mut Push, seq: u64, tick: i64) {
        self.hold_until(push, tick);
        let pts_us = self.tick_pts(tick);
        push.steps.push(Step::Write { seq, pts_us });
        self.writes += 1;
        self.distinct += 1;
        self.last_written_tick = Some(tick);
        self.last_written_pts = Some(pts_us);
    }

    /// Repeats the last written frame on every tick before `tick`: one step.
    fn hold_until(&mut self, push: &mut Push, tick: i64) {
        if let Some(w) = self.last_written_tick {
            if tick > w + 1 {
                let ticks = (tick - w - 1) as u64;
                push.steps.push(Step::Hold {
                    first_tick: w + 1,
                    ticks,
                    fps: self.fps as u32,
                });
                self.writes += ticks;
            }
            self.last_written_tick = Some(tick - 1).max(self.last_written_tick);
        }
    }

    /// Pauses: frames are discarded until [`Timeline::resume`].
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Resumes; the next frame follows the last without a gap.
    pub fn resume(&mut self) {
        if self.paused {
            self.paused = false;
            self.rebase = true;
        }
    }

    /// The source reconnected or reset its clock: rebase like after a pause.
    pub fn rebase(&mut self) {
        if self.last_out_us.is_some() {
            self.rebase = true;
        }
    }

    /// Output duration so far, counting the last frame's display time.
    pub fn duration_us(&self) -> i64 {
        match self.last_out_us {
            Some(last) => last + self.last_interval_us,
            None => 0,
        }
    }

    /// Ends the timeline: flushes the pending frame and repeats the last one
    /// so the output lasts [`Timeline::duration_us`].
    pub fn end(&mut self) -> Vec<Step> {
        let mut push = Push::default();
        if self.ended {
            return push.steps;
        }
        self.ended = true;
        if let Some(p) = self.pending.take() {
            self.write(&mut push, p.seq, p.tick);
        }
        let Some(last_pts) = self.last_written_pts else {
            return push.steps;
        };
        let end = self.duration_us();
        if self.cfr {
            let final_tick = self.nearest_tick(end) - 1;
            self.hold_until(&mut push, final_tick + 1);
        } else {
            let pts = end - self.frame_us().min(self.last_interval_us);
            if pts > last_pts {
                push.steps.push(Step::Repeat { pts_us: pts });
                self.writes += 1;
            }
        }
        push.steps
    }

    /// Output frames the encoder will produce (CFR: every tick; VFR: every write).
    pub fn frames_out(&self) -> u64 {
        match (self.cfr, self.last_written_tick) {
            (true, Some(t)) => (t + 1) as u64,
            (true, None) => 0,
            (false, _) => self.writes,
        }
    }

    /// Distinct input frames written.
    pub fn distinct_frames(&self) -> u64 {
        self.distinct
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn writes(steps: &[Step]) -> Vec<(Option<u64>, i64)> {
        steps
            .iter()
            .flat_map(|s| match *s {
                Step::Write { seq, pts_us } => vec![(Some(seq), pts_us)],
                Step::Hold { .. } | Step::Repeat { .. } => s.repeats().map(|p| (None, p)).collect(),
                Step::Discard { .. } => vec![],
            })
            .collect()
    }

    fn run(t: &mut Timeline, frames: &[(u64, i64)]) -> Vec<Step> {
        let mut all = vec![];
        for &(seq, src) in frames {
            all.extend(t.push(seq, src).steps);
        }
        all.extend(t.end());
        all
    }

    #[test]
    fn five_fps_into_thirty_holds_each_frame_six_ticks() {
        let mut t = Timeline::new(30, true);
        let frames: Vec<_> = (0..50)
            .map(|i| (i, 1_000_000 + i as i64 * 200_000))
            .collect();
        let steps = run(&mut t, &frames);
        let w = writes(&steps);
        assert_eq!(w.len(), 300, "one picture per output frame");
        assert_eq!(w[1], (None, 33_333), "held");
        assert_eq!(w[6], (Some(1), 200_000));
        assert_eq!(w[294], (Some(49), 9_800_000));
        assert_eq!(w[299], (None, 9_966_666));
        assert_eq!(t.frames_out(), 300, "10 s at 30 fps");
        assert_eq!(t.duration_us(), 10_000_000);
    }

    #[test]
    fn faster_input_is_superseded_not_queued() {
        let mut t = Timeline::new(30, true);
        let frames: Vec<_> = (0..120).map(|i| (i, i as i64 * 1_000_000 / 120)).collect();
        let steps = run(&mut t, &frames);
        let superseded = steps
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    Step::Discard {
                        reason: DropReason::Superseded,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(t.distinct_frames() + superseded as u64, 120);
        // The last frame (991.7 ms) is nearest the 1.0 s tick: within one frame of 1 s.
        assert!((30..=31).contains(&t.frames_out()), "{}", t.frames_out());
    }

    #[test]
    fn rounded_timestamps_keep_their_tick() {
        // 30 fps input with microsecond-rounded times into 30 fps output: one frame per tick.
        let mut t = Timeline::new(30, true);
        let frames: Vec<_> = (0..600)
            .map(|i| (i, (i as f64 * 1e6 / 30.0).round() as i64))
            .collect();
        let steps = run(&mut t, &frames);
        assert_eq!(t.frames_out(), 600);
        assert!(
            steps
                .iter()
                .all(|s| !matches!(s, Step::Discard { .. } | Step::Hold { .. }))
        );
        // Jitter of a few ms around 5 fps does not move frames off their ticks.
        let mut t = Timeline::new(30, true);
        let frames: Vec<_> = (0..50)
            .map(|i| {
                (
                    i,
                    i as i64 * 200_000 + if i % 2 == 0 { 4_000 } else { -3_000 },
                )
            })
            .collect();
        run(&mut t, &frames);
        assert_eq!((t.distinct_frames(), t.frames_out()), (50, 300));
    }

    #[test]
    fn pause_removes_the_gap() {
        let mut t = Timeline::new(10, true);
        for i in 0..10 {
            t.push(i, i as i64 * 100_000);
        }
        t.pause();
        let p = t.push(10, 1_000_000);
        assert_eq!(
            p.steps,
            vec![Step::Discard {
                seq: 10,
                reason: DropReason::Paused
            }]
        );
        t.resume();
        // The source resumes 60 s later; output continues 100 ms after the last frame.
        let p = t.push(11, 61_000_000);
        assert_eq!(p.accepted_out_us, Some(1_000_000));
        let p = t.push(12, 61_100_000);
        assert_eq!(p.accepted_out_us, Some(1_100_000));
        t.end();
        assert_eq!(t.frames_out(), 12);
    }

    #[test]
    fn disorder_is_dropped_and_resets_are_rebased() {
        let mut t = Timeline::new(30, false);
        t.push(0, 5_000_000);
        t.push(1, 5_100_000);
        let p = t.push(2, 5_050_000);
        assert_eq!(
            p.steps,
            vec![Step::Discard {
                seq: 2,
                reason: DropReason::OutOfOrder
            }]
        );
        let p = t.push(3, 10_000);
        assert_eq!(
            p.accepted_out_us,
            Some(200_000),
            "clock reset continues after the interval"
        );
    }

    #[test]
    fn vfr_writes_at_source_times() {
        let mut t = Timeline::new(30, false);
        let steps = run(&mut t, &[(0, 0), (1, 130_000), (2, 170_000)]);
        let w = writes(&steps);
        assert_eq!(
            &w[..3],
            &[(Some(0), 0), (Some(1), 130_000), (Some(2), 170_000)]
        );
    }

    #[test]
    fn a_long_hold_is_one_step() {
        let mut t = Timeline::new(30, true);
        t.push(0, 0);
        // An hour later on the source's clock, an hour later on the wall clock.
        let p = t.push_at(1, 3_600_000_000, Some(3_600_000_000));
        assert_eq!(p.steps, vec![Step::Write { seq: 0, pts_us: 0 }]);
        // Frame 1 is written at the end, after one step holding frame 0 for an
        // hour of ticks, and held itself for its last interval (1 s at most).
        let end = t.end();
        assert_eq!(
            end,
            vec![
                Step::Hold {
                    first_tick: 1,
                    ticks: 107_999,
                    fps: 30
                },
                Step::Write {
                    seq: 1,
                    pts_us: 3_600_000_000
                },
                Step::Hold {
                    first_tick: 108_001,
                    ticks: 29,
                    fps: 30
                },
            ]
        );
        assert_eq!(t.frames_out(), 108_030);
        assert_eq!(end[0].repeats().nth(1), Some(66_666));
    }

    #[test]
    fn hostile_timestamps_are_refused() {
        // The outside check: 0, then 10^12 ms right after.
        let mut t = Timeline::new(30, true);
        t.push_at(0, 0, Some(0));
        let p = t.push_at(1, 1_000_000_000_000_000, Some(40_000));
        assert_eq!(p.accepted_out_us, None);
        assert_eq!(
            p.steps,
            vec![Step::Discard {
                seq: 1,
                reason: DropReason::TooFarAhead
            }]
        );
        // 59 s ahead of the wall clock is a client's own timing; 61 s is not.
        assert!(
            t.push_at(2, 59_000_000, Some(100_000))
                .accepted_out_us
                .is_some()
        );
        assert_eq!(
            t.push_at(3, 121_000_000, Some(200_000)).steps,
            vec![Step::Discard {
                seq: 3,
                reason: DropReason::TooFarAhead
            }]
        );
        // A limit of 10 s: a frame 3600 s in (on a slow wall clock too) is refused,
        // and the output never passes 10 s.
        let mut t = Timeline::new(30, true).with_limits(TimelineLimits {
            max_out_us: 10_000_000,
            max_ahead_us: i64::MAX,
        });
        t.push(0, 0);
        t.push(1, 1_000_000);
        let p = t.push(2, 3_600_000_000);
        assert_eq!(
            p.steps,
            vec![Step::Discard {
                seq: 2,
                reason: DropReason::BeyondLimit
            }]
        );
        t.end();
        assert!(t.frames_out() <= 300 && t.duration_us() <= 10_000_000);
        // After a pause the source's clock may be anywhere: the frame is rebased.
        let mut t = Timeline::new(30, true);
        t.push_at(0, 0, Some(0));
        t.pause();
        t.resume();
        assert_eq!(
            t.push_at(1, 900_000_000_000, Some(1_000)).accepted_out_us,
            Some(33_333)
        );
    }

    proptest! {
        /// Any timestamps, any wall clock: no push returns more than a few
        /// steps, and the output never reaches past the limit.
        #[test]
        fn output_is_bounded(frames in proptest::collection::vec((any::<i64>(), 0i64..10_000_000), 1..100),
                             max_s in 1i64..100_000) {
            let mut t = Timeline::new(60, true).with_limits(TimelineLimits {
                max_out_us: max_s * 1_000_000,
                max_ahead_us: 60_000_000,
            });
            let mut wall = 0i64;
            for (i, (src, dw)) in frames.iter().enumerate() {
                wall += dw;
                let p = t.push_at(i as u64, *src, Some(wall));
                prop_assert!(p.steps.len() <= 3, "{:?}", p.steps);
            }
            let end = t.end();
            prop_assert!(end.len() <= 3);
            prop_assert!(t.frames_out() as i64 <= max_s * 60 + 60);
        }

        /// Whatever the input, writes are strictly increasing in time, every frame is
        /// either written or discarded exactly once, and a replay of the accepted
        /// output times writes the same frames at the same times.
        #[test]
        fn invariants(deltas in proptest::collection::vec(-300_000i64..400_000, 1..200),
                      fps in 1u32..=60, cfr: bool, pause_at in 0usize..200) {
            let mut t = Timeline::new(fps, cfr);
            let mut src = 0i64;
            let mut steps = vec![];
            let mut accepted = vec![];
            for (i, d) in deltas.iter().enumerate() {
                if i == pause_at { t.pause(); }
                if i == pause_at + 3 { t.resume(); }
                src += d;
                let p = t.push(i as u64, src);
                if let Some(out) = p.accepted_out_us { accepted.push((i as u64, out)); }
                steps.extend(p.steps);
            }
            steps.extend(t.end());
            let w = writes(&steps);
            for pair in w.windows(2) { prop_assert!(pair[0].1 < pair[1].1); }
            let mut seen = std::collections::HashSet::new();
            for s in &steps {
                match *s {
                    Step::Write { seq, .. } | Step::Discard { seq, .. } => prop_assert!(seen.insert(seq)),
                    Step::Hold { .. } | Step::Repeat { .. } => {}
                }
            }
            prop_assert_eq!(seen.len(), deltas.len());
            let mut replay = Timeline::new(fps, cfr);
            let mut rsteps = vec![];
            for (seq, out) in &accepted { rsteps.extend(replay.push(*seq, *out).steps); }
            rsteps.extend(replay.end());
            prop_assert_eq!(writes(&rsteps), w);
        }
    }
}
