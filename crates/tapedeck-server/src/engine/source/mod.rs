//! The seam between a recording's driver and its source.
//!
//! A source is a module (one folder per kind) that owns its ingest, its
//! options and its wiring, and turns what comes in into media for a sink:
//! pictures for the encoding sink ([`encoding`]) or, later, encoded media
//! units for the passthrough sink. The driver sees every source through
//! [`Source`] and hears from it through [`SourceEvent`]s; it has no field or
//! branch per kind. A kind is its module's [`Kind`] (open, recover,
//! authorize) and its table entry in the core (`SourceKind::traits`, the
//! CPU cost estimate in `tapedeck_core::admission`); [`kind`] is the one
//! list. Every match on a kind is exhaustive.
//!
//! Adding a source: its folder here with its `Kind`, a line in [`kind`],
//! its `SourceSpec` variant and table entry in the core, and its HTTP
//! routes in `crate::http`.

pub mod admission;
pub mod encoding;
pub mod frames;
pub mod room;
pub mod shared;
pub use shared::Shared;
pub mod upload;
pub mod web;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tapedeck_core::Failure;
use tapedeck_core::lifecycle::{Progress, SourceControl};
use tapedeck_core::recording::{Recording, SourceKind, SourceSpec, Stats, Status};
use tapedeck_media::sink::encoding::Counters;
use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::services::Services;
use tapedeck_core::Problem;

pub use admission::{Admission, Ticket};

/// A running source, as the driver sees it.
pub trait Source: Send {
    /// Pause or resume delivery; ordered with the media already delivered.
    fn control(&mut self, c: SourceControl) -> BoxFuture<'_, ()>;
    /// Stops delivery and finishes the sink: the file to process.
    fn close(self: Box<Self>) -> BoxFuture<'static, Result<Take, Failure>>;
    /// Stops delivery and the sink without finishing; the work files stay.
    fn abort(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// What a source tells its driver.
#[derive(Debug)]
pub enum SourceEvent {
    /// Media started flowing; the reply carries the status afterwards.
    Started(Option<oneshot::Sender<Status>>),
    /// The source ended by itself.
    Ended,
    /// The source ended for a reason of its own (its room was closed).
    EndedWith(tapedeck_core::EndReason),
    /// The source or its sink failed for good.
    Failed(Failure),
    /// The recording's source is described anew (an upload's length told
    /// late); saved with the recording.
    Describe(SourceSpec),
    /// A count crossed a limit: look at the meter now, not at the next tick.
    Wake,
}

/// What a finished sink produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Take {
    /// The file to process and store.
    pub output: PathBuf,
    /// The sink's final counts.
    pub counters: Counters,
    /// CPU seconds spent encoding.
    pub cpu_s: f64,
    /// Seconds of video per wall second while recording (web).
    pub realtime_factor: Option<f64>,
    /// A room recording's track files, each with where it lies.
    pub tracks: Vec<(tapedeck_core::recording::TrackFile, PathBuf)>,
    /// A room recording's speaker timeline.
    pub speakers: Vec<tapedeck_core::track::Speech>,
    /// The format `output` is in, when not the one asked for (a room's
    /// grid that failed leaves its tracks side by side in WebM).
    pub format: Option<tapedeck_core::Format>,
    /// Something the recording should say when done (why the grid is missing).
    pub note: Option<Failure>,
    /// The recording's source as the source describes it once done (an
    /// upload's length and SHA-256).
    pub source: Option<SourceSpec>,
}

/// Live numbers of one recording, shared by its source, its sink and the driver.
#[derive(Debug, Default)]
pub struct Meter {
    /// Media units received from the source.
    pub received: AtomicU64,
    /// Units refused before the sink (not an image, too large) or dropped because its queue was full.
    pub refused: AtomicU64,
    /// Of `refused`, invalid units.
    pub refused_invalid: AtomicU64,
    /// Output bytes so far.
    pub bytes: AtomicU64,
    /// The sink's counters.
    pub counters: Mutex<Counters>,
    /// The last problem with a unit.
    pub last_error: Mutex<Option<String>>,
    /// The share done of a job after stop (a room's grid).
    pub progress: Mutex<Option<f64>>,
    /// Frames a web recording is planned to have (0: not known).
    pub planned: AtomicU64,
    /// A web recording's pace while it renders.
    pub render: Mutex<Option<Render>>,
    /// Browsers rendering a web recording (0: not a web recording).
    pub browsers: AtomicU64,
    /// A camera accepted beyond the budget whose spool is not encoded yet.
    pub deferred: std::sync::atomic::AtomicBool,
    /// Of such a camera, microseconds of output not encoded yet (all of
    /// it until its encode begins).
    pub lag_us: std::sync::atomic::AtomicI64,
}

/// How a web recording's rendering goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Render {
    /// Frames rendered.
    pub done: u64,
    /// Frames planned.
    pub planned: u64,
    /// Wall seconds spent rendering (pauses excluded).
    pub wall_s: f64,
    /// Video seconds rendered.
    pub video_s: f64,
}

impl Render {
    /// Video seconds per wall second so far.
    pub fn realtime_factor(&self) -> Option<f64> {
        (self.wall_s > 0.0 && self.done > 0).then(|| self.video_s / self.wall_s)
    }

    /// Wall seconds left at the pace so far.
    pub fn eta_s(&self) -> Option<f64> {
        (self.done > 0 && self.planned > 0)
            .then(|| self.planned.saturating_sub(self.done) as f64 * self.wall_s / self.done as f64)
    }
}

impl Meter {
    /// Stats as the recording shows them.
    pub fn stats(&self) -> Stats {
        let c = self.counters();
        let render = *self.render.lock().unwrap_or_else(|e| e.into_inner());
        let refused = self.refused.load(Ordering::Relaxed);
        let dur = c.duration_us as f64 / 1e6;
        Stats {
            frames_in: self.received.load(Ordering::Relaxed),
            frames_written: c.frames_out,
            frames_dropped: c.frames_dropped + refused,
            frames_invalid: c.frames_invalid + self.refused_invalid.load(Ordering::Relaxed),
            achieved_fps: if dur > 0.0 {
                c.frames_distinct as f64 / dur
            } else {
                0.0
            },
            cpu_s: 0.0,
            processing_s: 0.0,
            realtime_factor: render.and_then(|r| r.realtime_factor()),
            progress: *self.progress.lock().unwrap_or_else(|e| e.into_inner()),
            frames_planned: Some(self.planned.load(Ordering::Relaxed)).filter(|&n| n > 0),
            eta_s: render.and_then(|r| r.eta_s()),
            browsers: Some(self.browsers.load(Ordering::Relaxed) as u32).filter(|&n| n > 0),
            encode_lag_s: self
                .deferred
                .load(Ordering::Relaxed)
                .then(|| self.lag_us.load(Ordering::Relaxed) as f64 / 1e6),
        }
    }

    /// Notes a sink's encode lag (`None`: encoded live).
    pub fn note_lag(&self, lag_us: Option<i64>) {
        if let Some(l) = lag_us {
            self.lag_us.store(l, Ordering::Relaxed);
        }
    }

    /// Sets the frames a web recording is planned to have.
    pub fn set_planned(&self, frames: u64) {
        self.planned.store(frames, Ordering::Relaxed);
    }

    /// Notes how a web recording's rendering goes.
    pub fn set_render(&self, r: Render) {
        self.set_planned(r.planned);
        *self.render.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    }

    /// Sets the share done of a job after stop.
    pub fn set_progress(&self, p: Option<f64>) {
        if p.is_some() {
            *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = p;
        }
    }

    /// What the lifecycle decides limits on.
    pub fn progress(&self) -> Progress {
        Progress {
            units_in: self.received.load(Ordering::Relaxed),
            recorded_us: self.counters().duration_us,
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// The sink's counters now.
    pub fn counters(&self) -> Counters {
        *self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes the last problem with a unit.
    pub fn set_error(&self, message: impl Into<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.into());
    }

    /// Sets this meter to the sum of `parts`, the meters of the ranges
    /// of one web recording rendered by several browsers at once: counts
    /// add up, the pace is the video of all over the wall time of the
    /// slowest.
    pub fn gather(&self, parts: &[Arc<Meter>]) {
        let sum = |f: fn(&Meter) -> &AtomicU64| -> u64 {
            parts.iter().map(|m| f(m).load(Ordering::Relaxed)).sum()
        };
        self.received.store(sum(|m| &m.received), Ordering::Relaxed);
        self.refused.store(sum(|m| &m.refused), Ordering::Relaxed);
        self.refused_invalid
            .store(sum(|m| &m.refused_invalid), Ordering::Relaxed);
        self.bytes.store(sum(|m| &m.bytes), Ordering::Relaxed);
        let mut counters = Counters::default();
        let mut render: Option<Render> = None;
        for m in parts {
            counters += m.counters();
            let r = *m.render.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = r {
                let all = render.get_or_insert(Render {
                    done: 0,
                    planned: 0,
                    wall_s: 0.0,
                    video_s: 0.0,
                });
                all.done += r.done;
                all.planned += r.planned;
                all.wall_s = all.wall_s.max(r.wall_s);
                all.video_s += r.video_s;
            }
            if let Some(e) = m.last_error() {
                self.set_error(e);
            }
        }
        *self.counters.lock().unwrap_or_else(|e| e.into_inner()) = counters;
        if let Some(r) = render {
            self.set_render(r);
        }
    }

    /// The last problem with a unit.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What a source gets when it is opened.
pub struct OpenCtx {
    /// Shared services.
    pub services: Arc<Services>,
    /// The recording as created.
    pub rec: Recording,
    /// Where to tell the driver.
    pub events: mpsc::Sender<SourceEvent>,
    /// The recording's status as the driver sets it.
    pub status: watch::Receiver<Status>,
    /// The recording's live numbers.
    pub meter: Arc<Meter>,
    /// The slot [`admit`] reserved.
    pub admission: Admission,
    /// Accepted beyond the budget: spool only, encode later (a camera).
    pub deferred: bool,
}

/// One source kind as the engine drives it: how to open one, how to
/// finish one the server was recording when it stopped, and who may
/// record it. Every method is the kind's own (none has a default); what
/// the engine decides by besides is the kind's table entry in the core
/// (`SourceKind::traits`: queues, resumes, live, own encode, idle).
pub trait Kind: Sync {
    /// Starts delivering media for `ctx.rec`.
    fn open(&self, ctx: OpenCtx) -> BoxFuture<'static, Result<Box<dyn Source>, Failure>>;
    /// A source for a recording the server was recording or processing
    /// when it stopped: finishing it rebuilds the output from what was
    /// spooled.
    fn recovered(&self, services: Arc<Services>, rec: &Recording) -> Box<dyn Source>;
    /// Checks that `p` may record this source and settles what the source
    /// decides (a room recording's format), before the recording exists.
    fn authorize<'a>(
        &'a self,
        services: &'a Services,
        p: &'a crate::engine::principal::Principal,
        v: &'a mut tapedeck_core::request::ValidCreate,
    ) -> BoxFuture<'a, Result<(), Problem>>;
}

/// `Kind::authorize` of a kind that anyone with a key may record.
pub fn any_key<'a>() -> BoxFuture<'a, Result<(), Problem>> {
    Box::pin(async { Ok(()) })
}

/// The one list of source kinds: a new kind is its module and a line here.
pub fn kind(k: SourceKind) -> &'static dyn Kind {
    match k {
        SourceKind::Frames => &frames::Frames,
        SourceKind::Web => &web::Web,
        SourceKind::Room => &room::Room,
        SourceKind::Upload => &upload::Upload,
    }
}

/// Opens the source of `ctx.rec`. The source holds the recording's CPU
/// reservation until it has closed or aborted, whatever its kind.
pub async fn open(mut ctx: OpenCtx) -> Result<Box<dyn Source>, Failure> {
    let admission = std::mem::take(&mut ctx.admission);
    ctx.deferred = admission.is_deferred();
    let source = kind(ctx.rec.source.kind()).open(ctx).await?;
    Ok(Box::new(Reserved { source, admission }))
}

/// A source with its CPU reservation: released when it has finished.
struct Reserved {
    source: Box<dyn Source>,
    admission: Admission,
}

impl Source for Reserved {
    fn control(&mut self, c: SourceControl) -> BoxFuture<'_, ()> {
        self.source.control(c)
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<Take, Failure>> {
        let Self { source, admission } = *self;
        Box::pin(async move {
            let r = source.close().await;
            drop(admission);
            r
        })
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        let Self { source, admission } = *self;
        Box::pin(async move {
            source.abort().await;
            drop(admission);
        })
    }
}

/// Checks that the caller may record this source, and settles what the
/// source decides; before the recording exists.
pub async fn authorize(
    services: &Services,
    p: &crate::engine::principal::Principal,
    v: &mut tapedeck_core::request::ValidCreate,
) -> Result<(), Problem> {
    for (i, o) in v.outputs.iter().enumerate() {
        if let Some(url) = o.stream_url() {
            crate::engine::outputs::check_address(&services.config, url)
                .await
                .map_err(|message| {
                    Problem::from(tapedeck_core::output::InvalidOutput {
                        field: format!("outputs[{i}].url"),
                        message,
                    })
                })?;
        }
    }
    kind(v.source.kind()).authorize(services, p, v).await
}

/// A new pending recording of `owner` from a validated request; `node`:
/// the cluster node that creates it (its driver runs there).
pub fn new_recording(
    config: &crate::config::Config,
    owner: &str,
    v: tapedeck_core::request::ValidCreate,
    regenerated_from: Option<tapedeck_core::RecordingId>,
    node: Option<String>,
) -> Recording {
    let now = crate::now_ms();
    Recording {
        id: tapedeck_core::RecordingId::from_parts(now as u64, rand::random()),
        owner: owner.to_string(),
        status: tapedeck_core::Status::Pending,
        end_reason: None,
        source: v.source,
        format: v.format,
        preset: v.preset,
        video: v.video,
        max_duration_s: v.max_duration_s.unwrap_or(config.limits.max_duration_s),
        title: v.title,
        metadata: v.metadata,
        created_at: now,
        started_at: None,
        stopped_at: None,
        completed_at: None,
        expires_at: (config.retention.days > 0)
            .then(|| now + i64::from(config.retention.days) * 86_400_000),
        duration_s: None,
        size_bytes: None,
        error: None,
        note: None,
        stats: Default::default(),
        media: None,
        regenerated_from,
        queue_position: None,
        tracks: vec![],
        speakers: vec![],
        outputs: v
            .outputs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| tapedeck_core::output::Output::new(format!("o{}", i + 1), spec))
            .collect(),
        node,
    }
}

/// The room a recording belongs to, if any.
pub fn room_of(rec: &Recording) -> Option<tapedeck_core::RoomId> {
    rec.source.room()
}

/// Notes a new recording in its room's list, if it belongs to a room.
pub async fn created(services: &Services, rec: &Recording) -> Result<(), Problem> {
    if let Some(room) = rec.source.room() {
        services.repo.add_room_recording(room, rec.id).await?;
    }
    Ok(())
}

/// A source for a recording the server was recording or processing when it
/// stopped: finishing it rebuilds the output from what was spooled.
pub fn recovered(services: Arc<Services>, rec: &Recording) -> Box<dyn Source> {
    kind(rec.source.kind()).recovered(services, rec)
}

/// Whether a recording the server was recording when it stopped takes
/// up again where it was (an upload: its client resumes), rather than
/// being finalized from what was spooled.
pub fn resumes(rec: &Recording) -> bool {
    rec.source.traits().resumes
}

/// Adjusts the lifecycle's limits for the source: what idleness does, and
/// an upload's own times (its client pauses by not sending).
pub fn adjust_limits(
    config: &crate::config::Config,
    spec: &SourceSpec,
    l: &mut tapedeck_core::lifecycle::Limits,
) {
    l.on_idle = spec.traits().on_idle;
    match spec {
        SourceSpec::Upload(u) => upload::adjust_limits(&config.uploads, u, l),
        SourceSpec::Frames { .. } | SourceSpec::Web(_) | SourceSpec::Room(_) => {}
    }
}
