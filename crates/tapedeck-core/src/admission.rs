//! Admission by CPU cost, and the fair queue of batch work.
//!
//! Sans-IO. Each recording reserves an estimated CPU cost ([`estimate`], in
//! thousandths of a core) from the server's budget while it runs. A live
//! source (frames, room, upload) that does not fit is refused at once; its
//! bytes would otherwise arrive at a server too busy to keep up. A web
//! recording is batch work: one that does not fit waits in the [`FairQueue`]
//! and starts when enough is released, in order within its owner and round
//! robin across owners, so one user's 500 jobs do not starve another's one.

use std::collections::{BTreeMap, VecDeque};

use crate::recording::SourceSpec;
use crate::settings::VideoSettings;
use crate::web::WebMode;

/// CPU in thousandths of a core.
pub type MilliCores = u32;

/// The estimated CPU cost of a recording while it records.
///
/// The figures were measured on the 2-core development machine:
/// - frames: x264 `veryfast` needs about 0.29 of a core for 720p at 30
///   distinct pictures a second (10.5 per Mpixel/s); decoding and scaling
///   the input about a third of that; held frames are skip pictures and
///   cost almost nothing, so the input rate is what counts
///   (`input_fps`, the output rate when the client does not say): 10 plus
///   12 per Mpixel/s, as 8 cameras at 5 fps measured (0.061 of a core
///   each steady, `bench/frames_many.sh`, with JPEGs decoded straight to
///   I420);
/// - web, realtime: the browser, capture and encode took 0.42 of a core at
///   720p30 (`bench/web.sh`): 150 for the browser plus 10 per Mpixel/s;
/// - web, deterministic: it takes what it is given and only runs longer
///   when given less. Alone, one frame waits on the next (Chromium draws,
///   reads back and encodes each frame in turn), so one 1080p30 recording
///   leaves about a third of 2 cores idle; two at once gave 0.85 s of video
///   a second together against 0.60 for one alone (`bench/web_speed.sh
///   --batch 2`). It reserves 500 plus 140 per Mpixel: two 1080p ones fit
///   in 2 cores' default budget (1.6), a 1440p one runs alone there, and a
///   4K one takes the whole budget of a small machine;
/// - room: every track is forwarded and written without transcoding (0.23 %
///   of a core per stream, `bench/rooms.sh`): 50 for a call;
/// - upload: bytes to disk while they arrive (the fix-up afterwards is
///   processing): 10.
pub fn estimate(spec: &SourceSpec, v: &VideoSettings) -> MilliCores {
    estimate_as(spec, v, false)
}

/// The estimated cost of a recording whose encoder starts on a busy server
/// (one thread at the busy preset, `ultrafast`): frames cost 8 plus 5.5
/// per Mpixel/s of input (`bench/frames_many.sh`: 0.032 of a core for a
/// 720p camera at 5 fps steady, against 0.061 at `veryfast`); the rest as
/// [`estimate`].
pub fn estimate_busy(spec: &SourceSpec, v: &VideoSettings) -> MilliCores {
    estimate_as(spec, v, true)
}

fn estimate_as(spec: &SourceSpec, v: &VideoSettings, busy: bool) -> MilliCores {
    let mpx = f64::from(v.width) * f64::from(v.height) / 1e6;
    let cost = match spec {
        SourceSpec::Frames { input_fps } => {
            let fps = input_fps.unwrap_or(v.fps).clamp(1, v.fps.max(1));
            let per_mpx = if busy { 5.5 } else { 12.0 };
            (if busy { 8.0 } else { 10.0 }) + mpx * f64::from(fps) * per_mpx
        }
        SourceSpec::Web(w) if w.mode == WebMode::Realtime => 150.0 + mpx * f64::from(v.fps) * 10.0,
        SourceSpec::Web(_) => 500.0 + mpx * 140.0,
        SourceSpec::Room(_) => 50.0,
        SourceSpec::Upload(_) => 10.0,
    };
    cost.ceil().min(f64::from(u32::MAX)) as MilliCores
}

/// The estimated cost of composing a call's grid after stop (a batch
/// job: it takes what it is given and finishes sooner with more): each
/// participant's video decoded, and the grid encoded at the recording's
/// size and rate. Rough, like the others, and capped at one core.
pub fn estimate_grid(v: &VideoSettings, videos: usize) -> MilliCores {
    let mpx = f64::from(v.width) * f64::from(v.height) / 1e6;
    let cost = 300.0 + 60.0 * videos as f64 + mpx * f64::from(v.fps) * 12.0;
    cost.min(1000.0).ceil() as MilliCores
}

/// The estimated cost of a call's grid composed while it runs (for its
/// live outputs), on top of the room's own: the grid encoded at the
/// recording's size and rate, each camera decoded, the pictures put
/// together. `bench/call_grid.sh` measured 0.36 of a core for one person
/// and 0.41 for three at 720p30: 100 plus 11 per Mpixel/s.
pub fn estimate_live_grid(v: &VideoSettings) -> MilliCores {
    let mpx = f64::from(v.width) * f64::from(v.height) / 1e6;
    (100.0 + mpx * f64::from(v.fps) * 11.0).min(2000.0).ceil() as MilliCores
}

/// Whether a recording of this source waits for capacity (batch) rather
/// than being refused (live).
pub fn queues(spec: &SourceSpec) -> bool {
    spec.traits().queues
}

/// The server's CPU budget and what is reserved from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    total: MilliCores,
    reserved: MilliCores,
}

impl Budget {
    /// A budget of `total` thousandths of a core, none reserved.
    pub fn new(total: MilliCores) -> Self {
        Self {
            total: total.max(1),
            reserved: 0,
        }
    }

    /// The whole budget.
    pub fn total(&self) -> MilliCores {
        self.total
    }

    /// What running recordings hold.
    pub fn reserved(&self) -> MilliCores {
        self.reserved
    }

    /// What `cost` takes from this budget: a cost over the whole budget
    /// takes all of it (it runs alone rather than never).
    pub fn charge(&self, cost: MilliCores) -> MilliCores {
        cost.min(self.total)
    }

    /// Whether `cost` fits in what is left.
    pub fn fits(&self, cost: MilliCores) -> bool {
        self.reserved + self.charge(cost) <= self.total
    }

    /// Reserves `cost` if it fits; returns what was reserved.
    pub fn try_reserve(&mut self, cost: MilliCores) -> Option<MilliCores> {
        if !self.fits(cost) {
            return None;
        }
        let c = self.charge(cost);
        self.reserved += c;
        Some(c)
    }

    /// Gives back what [`Budget::try_reserve`] returned.
    pub fn release(&mut self, reserved: MilliCores) {
        self.reserved = self.reserved.saturating_sub(reserved);
    }
}

/// Batch jobs waiting for capacity: FIFO within an owner; across owners,
/// the owner served longest ago goes next (one never served first, then the
/// one that has waited longest), so owners take turns.
#[derive(Debug, Clone)]
pub struct FairQueue<J> {
    /// Each owner's jobs, oldest first.
    owners: BTreeMap<String, VecDeque<J>>,
    /// When an owner's jobs began to wait (stamp).
    entered: BTreeMap<String, u64>,
    /// When an owner was last served (stamp), queued or not.
    served: BTreeMap<String, u64>,
    clock: u64,
}

impl<J> Default for FairQueue<J> {
    fn default() -> Self {
        Self {
            owners: BTreeMap::new(),
            entered: BTreeMap::new(),
            served: BTreeMap::new(),
            clock: 0,
        }
    }
}

impl<J: PartialEq + Clone> FairQueue<J> {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Adds `job` for `owner` at the end of that owner's jobs.
    pub fn push(&mut self, owner: &str, job: J) {
        if !self.owners.contains_key(owner) {
            let t = self.tick();
            self.entered.insert(owner.to_string(), t);
        }
        self.owners
            .entry(owner.to_string())
            .or_default()
            .push_back(job);
    }

    /// Notes that `owner` was served outside the queue (a job that fitted
    /// at once): their next queued job waits behind other owners'.
    pub fn served(&mut self, owner: &str) {
        let t = self.tick();
        self.served.insert(owner.to_string(), t);
    }

    /// The owner served next.
    fn next_owner(&self) -> Option<&String> {
        self.owners.keys().min_by_key(|o| {
            (
                self.served.get(*o).copied().unwrap_or(0),
                self.entered.get(*o).copied().unwrap_or(0),
            )
        })
    }

    /// The job served next, without taking it.
    pub fn peek(&self) -> Option<&J> {
        self.owners.get(self.next_owner()?)?.front()
    }

    /// Takes the job served next.
    pub fn pop(&mut self) -> Option<J> {
        let owner = self.next_owner()?.clone();
        let jobs = self.owners.get_mut(&owner)?;
        let job = jobs.pop_front();
        if jobs.is_empty() {
            self.owners.remove(&owner);
            self.entered.remove(&owner);
        }
        self.served(&owner);
        job
    }

    /// Takes `job` out (cancelled or deleted); true if it was queued.
    pub fn remove(&mut self, job: &J) -> bool {
        let Some(owner) = self
            .owners
            .iter()
            .find(|(_, jobs)| jobs.contains(job))
            .map(|(o, _)| o.clone())
        else {
            return false;
        };
        if let Some(jobs) = self.owners.get_mut(&owner) {
            jobs.retain(|j| j != job);
            if jobs.is_empty() {
                self.owners.remove(&owner);
                self.entered.remove(&owner);
            }
        }
        true
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.owners.values().map(VecDeque::len).sum()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Jobs `owner` has waiting.
    pub fn count_of(&self, owner: &str) -> usize {
        self.owners.get(owner).map_or(0, VecDeque::len)
    }

    /// Every job in the order it would be served.
    pub fn order(&self) -> Vec<J> {
        let mut q = self.clone();
        std::iter::from_fn(|| q.pop()).collect()
    }

    /// Where `job` is in the order (1 is next), if queued.
    pub fn position(&self, job: &J) -> Option<usize> {
        self.order().iter().position(|j| j == job).map(|i| i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Preset;
    use proptest::prelude::*;

    fn video(w: u32, h: u32, fps: u32) -> VideoSettings {
        VideoSettings {
            width: w,
            height: h,
            fps,
            ..Preset::Medium.settings()
        }
    }

    fn web(mode: &str) -> SourceSpec {
        serde_json::from_value(
            serde_json::json!({"kind": "web", "url": "https://example.com/", "mode": mode}),
        )
        .unwrap()
    }

    #[test]
    fn costs_follow_kind_size_and_rate() {
        let camera = estimate(
            &SourceSpec::Frames { input_fps: Some(5) },
            &video(1280, 720, 30),
        );
        let camera30 = estimate(
            &SourceSpec::Frames { input_fps: None },
            &video(1280, 720, 30),
        );
        let web4k = estimate(&web("deterministic"), &video(3840, 2160, 60));
        let web720 = estimate(&web("deterministic"), &video(1280, 720, 30));
        let live720 = estimate(&web("realtime"), &video(1280, 720, 30));
        assert_eq!(camera, 66);
        assert_eq!(camera30, 342);
        // A call's live grid at 720p30: about what a 720p30 camera costs.
        assert_eq!(estimate_live_grid(&video(1280, 720, 30)), 405);
        assert_eq!(estimate_live_grid(&video(3840, 2160, 60)), 2000);
        let busy = estimate_busy(
            &SourceSpec::Frames { input_fps: Some(5) },
            &video(1280, 720, 30),
        );
        assert_eq!(busy, 34);
        assert_eq!(
            estimate_busy(&web("realtime"), &video(1280, 720, 30)),
            live720
        );
        assert!(web4k > 2 * web720, "{web4k} vs {web720}");
        // Two 1080p deterministic recordings share 2 cores' default budget
        // (1.6); a 1440p one does not.
        let web1080 = estimate(&web("deterministic"), &video(1920, 1080, 30));
        let web1440 = estimate(&web("deterministic"), &video(2560, 1440, 30));
        assert_eq!((web720, web1080, web1440, web4k), (630, 791, 1017, 1662));
        assert!(2 * web1080 <= 1600 && 2 * web1440 > 1600);
        assert!(web4k > 25 * camera, "{web4k} vs {camera}");
        assert_eq!(live720, 427);
        // A client cannot claim more input than output.
        assert_eq!(
            estimate(
                &SourceSpec::Frames {
                    input_fps: Some(240)
                },
                &video(1280, 720, 30)
            ),
            camera30
        );
    }

    #[test]
    fn budget_reserves_what_fits_and_a_huge_cost_runs_alone() {
        let mut b = Budget::new(2000);
        let a = b.try_reserve(1200).unwrap();
        assert!(b.try_reserve(900).is_none());
        let c = b.try_reserve(800).unwrap();
        assert_eq!(b.reserved(), 2000);
        b.release(a);
        b.release(c);
        assert_eq!(b.reserved(), 0);
        // Over the whole budget: takes all of it, only when nothing else runs.
        assert_eq!(b.try_reserve(5000), Some(2000));
        assert!(b.try_reserve(1).is_none());
    }

    #[test]
    fn one_users_many_jobs_do_not_starve_anothers_one() {
        let mut q = FairQueue::default();
        for i in 0..500 {
            q.push("ann", i);
        }
        q.push("bob", 1000);
        assert_eq!(q.position(&1000), Some(2));
        assert_eq!(q.pop(), Some(0));
        assert_eq!(q.pop(), Some(1000));
        assert_eq!(q.pop(), Some(1));
        // Ann was just served outside the queue (a job that fitted at once):
        // a newcomer's job goes first.
        q.served("ann");
        q.push("cy", 2000);
        assert_eq!(q.position(&2000), Some(1));
        assert_eq!(q.pop(), Some(2000));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.len(), 497);
        assert!(q.remove(&7));
        assert!(!q.remove(&7));
        assert_eq!(q.count_of("ann"), 496);
        assert_eq!(q.count_of("bob"), 0);
    }

    proptest! {
        /// Popping serves jobs exactly in `order()`, every job once, each
        /// owner's in its own order, and between two jobs of one owner every
        /// other waiting owner gets a turn.
        #[test]
        fn pops_follow_the_order_fairly(jobs in proptest::collection::vec(0u8..4, 0..60)) {
            let mut q = FairQueue::default();
            for (i, o) in jobs.iter().enumerate() {
                q.push(&o.to_string(), (*o, i));
            }
            let order: Vec<(u8, usize)> = q.order();
            let mut popped = vec![];
            while let Some(j) = q.pop() {
                prop_assert_eq!(q.position(&j), None);
                popped.push(j);
            }
            prop_assert_eq!(&popped, &order);
            prop_assert_eq!(popped.len(), jobs.len());
            for o in 0..4u8 {
                let mine: Vec<usize> = popped.iter().filter(|j| j.0 == o).map(|j| j.1).collect();
                prop_assert!(mine.windows(2).all(|w| w[0] < w[1]));
            }
            // Round robin: within any window of consecutive pops of the same
            // length as the number of owners still waiting, no owner repeats.
            let owners = jobs.iter().collect::<std::collections::BTreeSet<_>>().len();
            for (k, w) in popped.windows(owners.max(1)).enumerate() {
                let left: std::collections::BTreeSet<u8> = popped[k..].iter().map(|j| j.0).collect();
                if left.len() == owners {
                    let seen: std::collections::BTreeSet<u8> = w.iter().map(|j| j.0).collect();
                    prop_assert_eq!(seen.len(), w.len());
                }
            }
        }
    }
}
