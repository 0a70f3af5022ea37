//! The supervisor: one driver task per active recording.
//!
//! The driver owns its recording's state: API handlers and sockets send it
//! commands and get replies, so transitions never race. A frames recording's
//! media runs on a blocking pipeline thread fed through a bounded queue; when
//! the queue is full new frames are dropped and counted, the socket is never
//! blocked. At start the supervisor finalizes what a crash left behind from
//! the spools, and a sweep deletes expired recordings.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tapedeck_core::recording::{Action, EndReason, Recording, SourceSpec, Stats, Status};
use tapedeck_core::{ErrorCode, RecordingId};
use tapedeck_media::ffmpeg::{EncodeSpec, Tools};
use tapedeck_media::frames::{
    self, Counters, Finished, FrameOutcome, FramePipeline, PipelineError,
};
use tapedeck_media::picture::FrameLimits;
use tapedeck_media::web::recorder::FrameSink;
use tapedeck_media::web::{Compositor, Control, WebError, WebFrame, WebOptions, WebReport};
use tapedeck_store::blob::Blobs;
use tapedeck_store::repo::Repo;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::error::ApiError;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::now_ms;
use crate::processing;

/// Everything a driver needs.
#[derive(Debug)]
pub struct Ctx {
    /// Configuration.
    pub config: Config,
    /// Metadata.
    pub repo: Repo,
    /// Media.
    pub blobs: Blobs,
    /// Events.
    pub events: EventBus,
    /// Metrics.
    pub metrics: Metrics,
    /// ffmpeg and ffprobe.
    pub tools: Tools,
    drivers: Mutex<HashMap<RecordingId, DriverHandle>>,
    create_lock: tokio::sync::Mutex<()>,
    web_slots: Arc<tokio::sync::Semaphore>,
    lives: Mutex<HashMap<RecordingId, Arc<Live>>>,
}

impl Ctx {
    /// The work folder of a recording (spool, live output, thumbnails).
    pub fn work_dir(&self, id: RecordingId) -> PathBuf {
        self.config
            .server
            .data_dir
            .join("work")
            .join(id.to_string())
    }

    /// Applies `action` to `rec`, stamps times, saves it and emits the event.
    pub async fn transition(&self, rec: &mut Recording, action: Action) -> Result<(), ApiError> {
        let next = rec.status.apply(action)?;
        let now = now_ms();
        rec.status = next;
        match action {
            Action::Start => rec.started_at = Some(now),
            Action::Stop | Action::Cancel => rec.stopped_at = Some(now),
            Action::Complete | Action::Fail => {
                rec.completed_at = Some(now);
                rec.stopped_at.get_or_insert(now);
            }
            Action::Pause | Action::Resume => {}
        }
        if action == Action::Cancel {
            rec.end_reason = Some(EndReason::Cancelled);
        }
        if action == Action::Fail && rec.end_reason.is_none() {
            rec.end_reason = Some(EndReason::Error);
        }
        self.repo.update(rec).await?;
        self.events.emit(action.event_name(), rec, now);
        if next.is_terminal() {
            self.metrics.finished(next.as_str());
        }
        Ok(())
    }
}

/// Live numbers of a frames recording, shared by the driver, the pipeline thread and sockets.
#[derive(Debug, Default)]
pub struct Live {
    /// Frames received on sockets.
    pub received: AtomicU64,
    /// Frames refused before the pipeline (not an image, too large) or dropped because the queue was full.
    pub refused: AtomicU64,
    /// Of `refused`, invalid frames.
    pub refused_invalid: AtomicU64,
    /// The pipeline's counters.
    pub counters: Mutex<Counters>,
    /// The last problem with a frame.
    pub last_error: Mutex<Option<String>>,
    last_frame: Mutex<Option<Instant>>,
}

impl Live {
    /// Stats as the recording shows them.
    pub fn stats(&self) -> Stats {
        let c = *self.counters.lock().unwrap_or_else(|e| e.into_inner());
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
            realtime_factor: None,
        }
    }

    /// Notes that a frame arrived now.
    pub fn touch(&self) {
        *self.last_frame.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    fn idle_for(&self) -> Option<Duration> {
        self.last_frame
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|t| t.elapsed())
    }
}

/// A message to a pipeline thread.
pub enum PipeMsg {
    /// One web frame (screenshot and overlay).
    Web(WebFrame),
    /// One encoded frame and its source time.
    Frame(Vec<u8>, i64),
    /// Pause.
    Pause,
    /// Resume.
    Resume,
    /// A socket (re)connected.
    Rebase,
    /// Finish the file and report.
    Finish(oneshot::Sender<Result<Finished, PipelineError>>),
    /// Discard everything.
    Cancel,
}

/// What a frames socket gets when it attaches.
#[derive(Clone)]
pub struct Attachment {
    /// Queue into the pipeline.
    pub frames: std::sync::mpsc::SyncSender<PipeMsg>,
    /// Shared numbers.
    pub live: Arc<Live>,
    /// The recording's clock for frames without timestamps.
    pub epoch: Instant,
    /// Frame limits.
    pub limits: FrameLimits,
    /// Status changes.
    pub status: tokio::sync::watch::Receiver<Status>,
}

enum Command {
    Action(Action, oneshot::Sender<Result<Recording, ApiError>>),
    Attach(oneshot::Sender<Result<Attachment, ApiError>>),
    Limit(EndReason),
    /// The web source ended by itself (script over) or failed.
    WebEnded(Result<(), String>),
}

#[derive(Clone, Debug)]
struct DriverHandle {
    cmd: mpsc::Sender<Command>,
}

/// The supervisor.
#[derive(Clone, Debug)]
pub struct Supervisor {
    /// Shared context.
    pub ctx: Arc<Ctx>,
}

impl Supervisor {
    /// A supervisor over the given parts.
    pub fn new(
        config: Config,
        repo: Repo,
        blobs: Blobs,
        events: EventBus,
        metrics: Metrics,
    ) -> Self {
        let tools = Tools {
            ffmpeg: config.encoder.ffmpeg.clone(),
            ffprobe: config.encoder.ffprobe.clone(),
        };
        Self {
            ctx: Arc::new(Ctx {
                repo,
                blobs,
                events,
                metrics,
                tools,
                web_slots: Arc::new(tokio::sync::Semaphore::new(
                    config.web.max_concurrent as usize,
                )),
                config,
                drivers: Mutex::new(HashMap::new()),
                lives: Mutex::new(HashMap::new()),
                create_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn handle(&self, id: RecordingId) -> Option<DriverHandle> {
        self.ctx
            .drivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Checks limits, stores a new pending recording and starts its driver.
    pub async fn create(&self, mut rec: Recording) -> Result<Recording, ApiError> {
        let lim = &self.ctx.config.limits;
        let _guard = self.ctx.create_lock.lock().await;
        if self.ctx.repo.count_active(None).await? >= u64::from(lim.max_concurrent) {
            return Err(ApiError::new(
                429,
                "too_many_recordings",
                format!(
                    "the server already runs {} recordings (limits.max_concurrent)",
                    lim.max_concurrent
                ),
            ));
        }
        if self.ctx.repo.count_active(Some(&rec.owner)).await?
            >= u64::from(lim.max_concurrent_per_user)
        {
            return Err(ApiError::new(
                429,
                "too_many_recordings",
                format!(
                    "you already run {} recordings (limits.max_concurrent_per_user)",
                    lim.max_concurrent_per_user
                ),
            ));
        }
        if lim.user_quota_bytes > 0 {
            let used = self.ctx.repo.usage_bytes(&rec.owner).await?;
            if used >= lim.user_quota_bytes {
                return Err(ApiError::new(
                    403,
                    "quota_exceeded",
                    format!(
                        "your recordings use {used} of your {} bytes; delete some first",
                        lim.user_quota_bytes
                    ),
                ));
            }
        }
        rec.max_duration_s = rec.max_duration_s.min(lim.max_duration_s);
        let web_slot = match rec.source {
            SourceSpec::Web(_) => Some(self.ctx.web_slots.clone().try_acquire_owned().map_err(
                |_| {
                    ApiError::new(
                        429,
                        "too_many_web_recordings",
                        format!(
                            "the server already runs {} web recordings (web.max_concurrent)",
                            self.ctx.config.web.max_concurrent
                        ),
                    )
                },
            )?),
            _ => None,
        };
        self.ctx.repo.insert(&rec).await?;
        drop(_guard);
        self.ctx.metrics.created(rec.source.kind().as_str());
        self.ctx.events.emit("recording.created", &rec, now_ms());
        self.spawn_driver(rec.clone(), web_slot);
        Ok(rec)
    }

    fn spawn_driver(&self, rec: Recording, web_slot: Option<tokio::sync::OwnedSemaphorePermit>) {
        let (tx, rx) = mpsc::channel(64);
        self.ctx
            .drivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rec.id, DriverHandle { cmd: tx.clone() });
        self.ctx.metrics.active(1);
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let id = rec.id;
            Driver {
                ctx: ctx.clone(),
                rec,
                rx,
                me: tx,
                pipe: None,
                web: None,
                _web_slot: web_slot,
            }
            .run()
            .await;
            ctx.drivers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            ctx.lives
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            ctx.metrics.active(-1);
        });
    }

    /// Live numbers of an active recording (frames, duration so far).
    pub fn progress(&self, id: RecordingId) -> Option<Stats> {
        self.ctx
            .lives
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|l| l.stats())
    }

    /// A user action on a recording the caller may control.
    pub async fn act(&self, rec: Recording, action: Action) -> Result<Recording, ApiError> {
        match self.handle(rec.id) {
            Some(h) => {
                let (tx, rx) = oneshot::channel();
                h.cmd
                    .send(Command::Action(action, tx))
                    .await
                    .map_err(|_| gone())?;
                rx.await.map_err(|_| gone())?
            }
            // No driver: the recording is final (or processing after recovery).
            None => Err(match rec.status.apply(action) {
                Err(e) => e.into(),
                // Between a restart and the end of its recovery a recording has no driver.
                Ok(_) => ApiError::new(
                    409,
                    "invalid_transition",
                    "the recording is being finalized after a restart; try again shortly",
                ),
            }),
        }
    }

    /// Attaches a frames socket.
    pub async fn attach(&self, rec: &Recording) -> Result<Attachment, ApiError> {
        if !matches!(rec.source, SourceSpec::Frames {}) {
            return Err(ApiError::new(
                409,
                "wrong_source",
                "this recording does not take frames",
            ));
        }
        let h = self.handle(rec.id).ok_or_else(|| {
            ApiError::new(
                409,
                "invalid_transition",
                format!(
                    "the recording is {}; it takes no more frames",
                    rec.status.as_str()
                ),
            )
        })?;
        let (tx, rx) = oneshot::channel();
        h.cmd.send(Command::Attach(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Finalizes what a crash left behind and restarts drivers of pending recordings.
    pub async fn recover(&self) -> Result<(), ApiError> {
        let stuck = self
            .ctx
            .repo
            .in_statuses(&[
                Status::Pending,
                Status::Recording,
                Status::Paused,
                Status::Processing,
            ])
            .await?;
        for rec in stuck {
            if rec.status == Status::Pending {
                let slot = match rec.source {
                    SourceSpec::Web(_) => self.ctx.web_slots.clone().try_acquire_owned().ok(),
                    _ => None,
                };
                self.spawn_driver(rec, slot);
                continue;
            }
            let ctx = self.ctx.clone();
            tokio::spawn(async move { recover_one(ctx, rec).await });
        }
        Ok(())
    }

    /// Deletes a recording's media, thumbnails, work files and row.
    pub async fn delete(&self, rec: &Recording) -> Result<(), ApiError> {
        if self.handle(rec.id).is_some() && rec.status != Status::Pending {
            return Err(ApiError::new(
                409,
                "invalid_transition",
                format!(
                    "the recording is {}; stop or cancel it first",
                    rec.status.as_str()
                ),
            ));
        }
        if let Some(h) = self.handle(rec.id) {
            let (tx, rx) = oneshot::channel();
            let _ = h.cmd.send(Command::Action(Action::Cancel, tx)).await;
            let _ = rx.await;
        }
        delete_everything(&self.ctx, rec).await
    }

    /// Deletes expired recordings every `retention.sweep_interval_s`.
    pub async fn sweep_forever(self) {
        let every = Duration::from_secs(self.ctx.config.retention.sweep_interval_s.max(1));
        loop {
            if let Err(e) = self.sweep_once().await {
                tracing::warn!(error = %e, "retention sweep");
            }
            tokio::time::sleep(every).await;
        }
    }

    /// One retention pass; returns how many were deleted.
    pub async fn sweep_once(&self) -> Result<usize, ApiError> {
        let mut n = 0;
        for rec in self.ctx.repo.expired(now_ms(), 100).await? {
            if self.handle(rec.id).is_some() {
                continue;
            }
            delete_everything(&self.ctx, &rec).await?;
            n += 1;
        }
        Ok(n)
    }
}

fn gone() -> ApiError {
    ApiError::new(409, "invalid_transition", "the recording has just ended")
}

async fn delete_everything(ctx: &Ctx, rec: &Recording) -> Result<(), ApiError> {
    for key in [rec.media_key(), rec.poster_key(), rec.strip_key()] {
        ctx.blobs.delete(&key).await?;
    }
    let _ = tokio::fs::remove_dir_all(ctx.work_dir(rec.id)).await;
    ctx.repo.delete(rec.id).await?;
    ctx.events.emit("recording.deleted", rec, now_ms());
    Ok(())
}

/// Finalizes a recording whose server stopped while it was recording or processing.
async fn recover_one(ctx: Arc<Ctx>, mut rec: Recording) {
    let work = ctx.work_dir(rec.id);
    let spec = encode_spec(&ctx.config, &rec);
    tracing::info!(id = %rec.id, status = rec.status.as_str(), "recovering from the spool");
    if matches!(rec.status, Status::Recording | Status::Paused) {
        rec.end_reason = Some(EndReason::Recovered);
        if let Err(e) = ctx.transition(&mut rec, Action::Stop).await {
            tracing::error!(id = %rec.id, error = %e, "recovery transition");
            return;
        }
    }
    let started = Instant::now();
    let tools = ctx.tools.clone();
    let w = work.clone();
    let result = tokio::task::spawn_blocking(move || {
        frames::recover(&tools, &spec, &w, Duration::from_secs(3600))
    })
    .await
    .unwrap_or_else(|e| Err(PipelineError::Spool(std::io::Error::other(e.to_string()))));
    match result {
        Ok(f) => {
            let stats = Stats {
                frames_in: rec.stats.frames_in.max(f.counters.frames_in),
                frames_written: f.counters.frames_out,
                ..rec.stats.clone()
            };
            rec.stats = stats;
            processing::finish(&ctx, &mut rec, f, started).await;
        }
        Err(e) => {
            let msg = match e {
                PipelineError::Empty => {
                    "the server stopped before any frame was spooled".to_string()
                }
                PipelineError::Spool(ref io) if io.kind() == std::io::ErrorKind::NotFound => {
                    "the server stopped before any frame was spooled".to_string()
                }
                e => format!("could not rebuild the recording from its spool: {e}"),
            };
            rec.error = Some(msg);
            let _ = ctx.transition(&mut rec, Action::Fail).await;
        }
    }
}

/// The encoder settings of a recording.
pub fn encode_spec(config: &Config, rec: &Recording) -> EncodeSpec {
    EncodeSpec {
        width: rec.video.width,
        height: rec.video.height,
        fps: rec.video.fps,
        cfr: rec.video.cfr,
        format: rec.format,
        video_bitrate_kbps: rec.video.video_bitrate_kbps,
        x264_preset: config.encoder.x264_preset.clone(),
        crf: config.encoder.crf,
        skip_held: config.encoder.skip_held,
    }
}

struct Pipe {
    tx: std::sync::mpsc::SyncSender<PipeMsg>,
    live: Arc<Live>,
    epoch: Instant,
    status: tokio::sync::watch::Sender<Status>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Driver {
    ctx: Arc<Ctx>,
    rec: Recording,
    rx: mpsc::Receiver<Command>,
    me: mpsc::Sender<Command>,
    pipe: Option<Pipe>,
    web: Option<WebRun>,
    _web_slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// A running web source.
struct WebRun {
    control: tokio::sync::watch::Sender<Control>,
    task: tokio::task::JoinHandle<Result<WebReport, WebError>>,
}

/// Web frames into the pipeline queue; waits (deterministic) or drops (realtime) when full.
struct PipeSink {
    tx: std::sync::mpsc::SyncSender<PipeMsg>,
    live: Arc<Live>,
    closed: bool,
}

impl FrameSink for PipeSink {
    fn offer(&mut self, f: WebFrame) -> Result<(), WebFrame> {
        match self.tx.try_send(PipeMsg::Web(f)) {
            Ok(()) => {
                self.live.received.fetch_add(1, Ordering::Relaxed);
                self.live.touch();
                Ok(())
            }
            Err(std::sync::mpsc::TrySendError::Full(PipeMsg::Web(f))) => Err(f),
            Err(_) => {
                self.closed = true;
                Ok(())
            }
        }
    }
    fn open(&self) -> bool {
        !self.closed
    }
}

/// Web recording settings from the configuration.
pub fn web_options(config: &Config, work: &std::path::Path) -> WebOptions {
    WebOptions {
        browser: config.web.browser.clone(),
        policy: tapedeck_core::netpolicy::NetPolicy {
            allow_private: config.web.allow_private_networks,
            allowed_hosts: config.web.allowed_hosts.clone(),
        },
        load_timeout: Duration::from_secs(config.web.load_timeout_s),
        frame_timeout: Duration::from_secs(config.web.frame_timeout_s),
        capture: match config.web.capture_format {
            crate::config::CaptureFormat::Png => tapedeck_media::web::Capture::Png,
            crate::config::CaptureFormat::Jpeg => {
                tapedeck_media::web::Capture::Jpeg(config.web.capture_quality.clamp(1, 100))
            }
        },
        profile: work.join("browser"),
        audio_path: work.join("page-audio.mp4"),
    }
}

impl Driver {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let created = Instant::now();
        if matches!(self.rec.source, SourceSpec::Web(_)) {
            self.start_web().await;
        }
        loop {
            if self.rec.status.is_terminal() {
                break;
            }
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Action(a, reply)) => {
                        let r = self.action(a, None).await;
                        let _ = reply.send(r.clone().map(|_| self.rec.clone()));
                    }
                    Some(Command::Attach(reply)) => {
                        let r = self.attach().await;
                        let _ = reply.send(r);
                    }
                    Some(Command::Limit(reason)) => {
                        if matches!(self.rec.status, Status::Recording | Status::Paused) {
                            let _ = self.action(Action::Stop, Some(reason)).await;
                        }
                    }
                    Some(Command::WebEnded(Ok(()))) => {
                        if matches!(self.rec.status, Status::Recording | Status::Paused) {
                            let _ = self.action(Action::Stop, Some(EndReason::SourceEnded)).await;
                        }
                    }
                    Some(Command::WebEnded(Err(message))) => {
                        if !self.rec.status.is_terminal() {
                            self.fail_now(message).await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => self.check_limits(created).await,
            }
            if self.rec.status.is_terminal() || self.rec.status == Status::Processing {
                break;
            }
        }
        if self.rec.status == Status::Processing {
            self.finish().await;
        }
        // Close the channel before answering late commands with the final state.
        self.rx.close();
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Action(a, reply) => {
                    let _ = reply.send(Err(self
                        .rec
                        .status
                        .apply(a)
                        .err()
                        .map(ApiError::from)
                        .unwrap_or_else(gone)));
                }
                Command::Attach(reply) => {
                    let _ = reply.send(Err(gone()));
                }
                Command::Limit(_) | Command::WebEnded(_) => {}
            }
        }
    }

    async fn check_limits(&mut self, created: Instant) {
        let lim = &self.ctx.config.limits;
        match self.rec.status {
            Status::Pending | Status::Paused => {
                let since = match self.rec.status {
                    Status::Pending => created.elapsed(),
                    _ => self
                        .pipe
                        .as_ref()
                        .and_then(|p| p.live.idle_for())
                        .unwrap_or_default(),
                };
                if since > Duration::from_secs(lim.pending_timeout_s) {
                    if self.rec.status == Status::Pending {
                        let _ = self.action(Action::Cancel, None).await;
                    } else {
                        let _ = self.action(Action::Stop, Some(EndReason::Idle)).await;
                    }
                }
            }
            Status::Recording => {
                let Some(pipe) = &self.pipe else { return };
                let dur = pipe
                    .live
                    .counters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .duration_us;
                if dur >= i64::from(self.rec.max_duration_s) * 1_000_000 {
                    let _ = self
                        .action(Action::Stop, Some(EndReason::MaxDuration))
                        .await;
                    return;
                }
                let idle = pipe.live.idle_for().unwrap_or_else(|| pipe.epoch.elapsed());
                if idle > Duration::from_secs(lim.idle_timeout_s) {
                    let _ = self.action(Action::Stop, Some(EndReason::Idle)).await;
                    return;
                }
                if lim.user_quota_bytes > 0 {
                    let live_file = frames::live_output(
                        &self.ctx.work_dir(self.rec.id),
                        &encode_spec(&self.ctx.config, &self.rec),
                    );
                    let size = tokio::fs::metadata(&live_file)
                        .await
                        .map(|m| m.len())
                        .unwrap_or(0);
                    let used = self
                        .ctx
                        .repo
                        .usage_bytes(&self.rec.owner)
                        .await
                        .unwrap_or(0);
                    if used + size >= lim.user_quota_bytes {
                        let _ = self.action(Action::Stop, Some(EndReason::Quota)).await;
                    }
                }
            }
            _ => {}
        }
    }

    async fn attach(&mut self) -> Result<Attachment, ApiError> {
        match self.rec.status {
            Status::Pending => {
                self.start_pipe().await?;
                self.ctx.transition(&mut self.rec, Action::Start).await?;
            }
            Status::Recording | Status::Paused => {
                if let Some(p) = &self.pipe {
                    let _ = p.tx.try_send(PipeMsg::Rebase);
                }
            }
            s => {
                return Err(ApiError::new(
                    409,
                    "invalid_transition",
                    format!("the recording is {}; it takes no more frames", s.as_str()),
                ));
            }
        }
        let pipe = self.pipe.as_ref().ok_or_else(gone)?;
        let _ = pipe.status.send_replace(self.rec.status);
        let limits = self.limits();
        Ok(Attachment {
            frames: pipe.tx.clone(),
            live: pipe.live.clone(),
            epoch: pipe.epoch,
            limits,
            status: pipe.status.subscribe(),
        })
    }

    fn limits(&self) -> FrameLimits {
        let l = &self.ctx.config.limits;
        FrameLimits {
            max_bytes: l.max_frame_bytes,
            max_width: l.max_frame_width,
            max_height: l.max_frame_height,
        }
    }

    async fn start_pipe(&mut self) -> Result<(), ApiError> {
        let (tx, rx) =
            std::sync::mpsc::sync_channel::<PipeMsg>(self.ctx.config.encoder.queue_frames);
        let live = Arc::new(Live::default());
        let (started_tx, started_rx) = oneshot::channel();
        let (tools, spec, limits, work) = (
            self.ctx.tools.clone(),
            encode_spec(&self.ctx.config, &self.rec),
            self.limits(),
            self.ctx.work_dir(self.rec.id),
        );
        let (thread_live, me, max_us, metrics) = (
            live.clone(),
            self.me.clone(),
            i64::from(self.rec.max_duration_s) * 1_000_000,
            self.ctx.metrics.clone(),
        );
        let web_scale = match &self.rec.source {
            SourceSpec::Web(w) => Some(
                w.viewport_for(self.rec.video.width, self.rec.video.height)
                    .scale,
            ),
            _ => None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("frames-{}", self.rec.id))
            .spawn(move || {
                pipeline_thread(
                    tools,
                    spec,
                    limits,
                    work,
                    rx,
                    started_tx,
                    thread_live,
                    me,
                    max_us,
                    metrics,
                    web_scale,
                )
            })
            .map_err(ApiError::internal)?;
        match started_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.rec.error = Some(format!("the encoder could not start: {e}"));
                let _ = self.ctx.transition(&mut self.rec, Action::Fail).await;
                return Err(ApiError::new(
                    503,
                    "encoder_unavailable",
                    format!("the encoder could not start: {e}"),
                ));
            }
            Err(_) => return Err(ApiError::internal("pipeline thread died")),
        }
        let (status, _) = tokio::sync::watch::channel(self.rec.status);
        self.ctx
            .lives
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.rec.id, live.clone());
        self.pipe = Some(Pipe {
            tx,
            live,
            epoch: Instant::now(),
            status,
            thread: Some(thread),
        });
        Ok(())
    }

    async fn action(&mut self, action: Action, reason: Option<EndReason>) -> Result<(), ApiError> {
        self.rec.status.apply(action)?;
        if let Some(p) = &self.pipe {
            self.rec.stats = p.live.stats();
        }
        match action {
            Action::Pause | Action::Resume if self.web.is_some() => {
                if let Some(w) = &self.web {
                    // The page holds still (its virtual time stops); the timeline needs no gap.
                    w.control.send_replace(if action == Action::Pause {
                        Control::Pause
                    } else {
                        Control::Run
                    });
                }
            }
            Action::Pause | Action::Resume => {
                if let Some(p) = &self.pipe {
                    // Ordered with the frames already queued.
                    let msg = if action == Action::Pause {
                        PipeMsg::Pause
                    } else {
                        PipeMsg::Resume
                    };
                    if p.tx.send(msg).is_err() {
                        return Err(ApiError::internal("pipeline ended"));
                    }
                }
            }
            Action::Stop => self.rec.end_reason = Some(reason.unwrap_or(EndReason::Stopped)),
            Action::Cancel => {
                if let Some(w) = self.web.take() {
                    w.control.send_replace(Control::Stop);
                    w.task.abort();
                    let _ = w.task.await;
                }
                if let Some(mut p) = self.pipe.take() {
                    let tx = p.tx.clone();
                    let _ = tokio::task::spawn_blocking(move || tx.send(PipeMsg::Cancel)).await;
                    drop(p.tx);
                    if let Some(t) = p.thread.take() {
                        let _ = tokio::task::spawn_blocking(move || t.join()).await;
                    }
                }
                let _ = tokio::fs::remove_dir_all(self.ctx.work_dir(self.rec.id)).await;
            }
            _ => {}
        }
        self.ctx.transition(&mut self.rec, action).await?;
        if let Some(p) = &self.pipe {
            let _ = p.status.send_replace(self.rec.status);
        }
        Ok(())
    }

    /// Starts the browser side of a web recording.
    async fn start_web(&mut self) {
        let SourceSpec::Web(src) = self.rec.source.clone() else {
            return;
        };
        if self.start_pipe().await.is_err() {
            return;
        }
        if self
            .ctx
            .transition(&mut self.rec, Action::Start)
            .await
            .is_err()
        {
            return;
        }
        let Some(pipe) = &self.pipe else { return };
        let (control, ctl_rx) = tokio::sync::watch::channel(Control::Run);
        let opts = web_options(&self.ctx.config, &self.ctx.work_dir(self.rec.id));
        let mut sink = PipeSink {
            tx: pipe.tx.clone(),
            live: pipe.live.clone(),
            closed: false,
        };
        let (me, v) = (self.me.clone(), self.rec.video);
        let task = tokio::spawn(async move {
            let r = tapedeck_media::web::record(
                &opts,
                &src,
                v.width,
                v.height,
                v.fps,
                ctl_rx,
                &mut sink,
                &mut |_| {},
            )
            .await;
            let _ = me
                .send(Command::WebEnded(
                    r.as_ref().map(|_| ()).map_err(|e| e.to_string()),
                ))
                .await;
            r
        });
        self.web = Some(WebRun { control, task });
    }

    /// Fails the recording now: the source or the encoder cannot go on.
    async fn fail_now(&mut self, message: String) {
        if let Some(w) = self.web.take() {
            w.control.send_replace(Control::Stop);
            w.task.abort();
            let _ = w.task.await;
        }
        if let Some(mut p) = self.pipe.take() {
            self.rec.stats = p.live.stats();
            let tx = p.tx.clone();
            let _ = tokio::task::spawn_blocking(move || tx.send(PipeMsg::Cancel)).await;
            drop(p.tx);
            if let Some(t) = p.thread.take() {
                let _ = tokio::task::spawn_blocking(move || t.join()).await;
            }
        }
        tracing::warn!(id = %self.rec.id, %message, "recording failed");
        self.rec.error = Some(message);
        let _ = self.ctx.transition(&mut self.rec, Action::Fail).await;
    }

    /// Lays the page's audio under the finished video; on failure the video
    /// stays as it is (without sound) and the reason is logged.
    async fn with_audio(
        &self,
        video: PathBuf,
        track: tapedeck_media::ffmpeg::AudioTrack,
    ) -> PathBuf {
        let tools = self.ctx.tools.clone();
        let (format, kbps) = (self.rec.format, self.rec.video.audio_bitrate_kbps);
        let out = video.with_file_name(format!("with-audio.{}", format.extension()));
        let (v, o) = (video.clone(), out.clone());
        let r = tokio::task::spawn_blocking(move || {
            let duration = tapedeck_media::ffmpeg::probe(&tools, &v)?.duration_s;
            tapedeck_media::ffmpeg::add_audio(&tools, &v, &track, format, kbps, duration, &o)
        })
        .await;
        match r {
            Ok(Ok(())) => {
                let _ = tokio::fs::remove_file(&video).await;
                out
            }
            Ok(Err(e)) => {
                tracing::warn!(id = %self.rec.id, error = %e, "the page's audio could not be added");
                video
            }
            Err(e) => {
                tracing::warn!(id = %self.rec.id, error = %e, "the page's audio could not be added");
                video
            }
        }
    }

    /// Processing: finish the encode, then thumbnails, probe, upload.
    async fn finish(&mut self) {
        let started = Instant::now();
        let mut realtime_factor = None;
        let mut audio = None;
        if let Some(w) = self.web.take() {
            w.control.send_replace(Control::Stop);
            match w.task.await {
                Ok(Ok(report)) => {
                    realtime_factor = Some(report.realtime_factor);
                    audio = report.audio;
                }
                Ok(Err(e)) => return self.fail_now(e.to_string()).await,
                Err(e) => {
                    return self
                        .fail_now(format!("the web recorder stopped: {e}"))
                        .await;
                }
            }
        }
        let Some(mut pipe) = self.pipe.take() else {
            self.rec.error = Some("no source ever connected".into());
            let _ = self.ctx.transition(&mut self.rec, Action::Fail).await;
            return;
        };
        let (tx, rx) = oneshot::channel();
        let sent = {
            let t = pipe.tx.clone();
            tokio::task::spawn_blocking(move || t.send(PipeMsg::Finish(tx)).is_ok())
                .await
                .unwrap_or(false)
        };
        let result = if sent {
            rx.await.unwrap_or(Err(PipelineError::Empty))
        } else {
            Err(PipelineError::Empty)
        };
        if let Some(t) = pipe.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        let mut stats = pipe.live.stats();
        match result {
            Ok(mut f) => {
                if let Some(track) = audio {
                    f.output = self.with_audio(f.output, track).await;
                }
                stats.frames_written = f.counters.frames_out;
                stats.realtime_factor = realtime_factor;
                self.rec.stats = stats;
                processing::finish(&self.ctx, &mut self.rec, f, started).await;
            }
            Err(e) => {
                self.rec.stats = stats;
                self.rec.error = Some(match e {
                    PipelineError::Empty => "no valid frames were received".to_string(),
                    e => e.to_string(),
                });
                let _ = self.ctx.transition(&mut self.rec, Action::Fail).await;
            }
        }
        let _ = pipe.status.send_replace(self.rec.status);
    }
}

#[allow(clippy::too_many_arguments)]
fn pipeline_thread(
    tools: Tools,
    spec: EncodeSpec,
    limits: FrameLimits,
    work: PathBuf,
    rx: std::sync::mpsc::Receiver<PipeMsg>,
    started: oneshot::Sender<Result<(), String>>,
    live: Arc<Live>,
    driver: mpsc::Sender<Command>,
    max_us: i64,
    metrics: Metrics,
    web_scale: Option<f64>,
) {
    let fps = spec.fps;
    let mut compositor = web_scale.map(|s| Compositor::new(s, fps, limits));
    let mut pipeline = match FramePipeline::start(tools, spec, limits, &work) {
        Ok(p) => {
            let _ = started.send(Ok(()));
            p
        }
        Err(e) => {
            let _ = started.send(Err(e.to_string()));
            return;
        }
    };
    let mut limit_sent = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(msg @ (PipeMsg::Frame(..) | PipeMsg::Web(_))) => {
                if limit_sent {
                    live.refused.fetch_add(1, Ordering::Relaxed);
                    metrics.frames(0, 1);
                    continue;
                }
                let outcome = match msg {
                    PipeMsg::Frame(bytes, src_us) => pipeline.frame(&bytes, src_us).map(Some),
                    PipeMsg::Web(frame) => match compositor.as_mut() {
                        Some(c) => c.frame(&mut pipeline, frame),
                        None => continue,
                    },
                    _ => continue,
                };
                match outcome {
                    Ok(Some(FrameOutcome::Invalid(e))) => {
                        *live.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(e.to_string());
                        metrics.frames(0, 1);
                    }
                    Ok(Some(FrameOutcome::Dropped(_))) => metrics.frames(0, 1),
                    Ok(Some(FrameOutcome::Accepted) | None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "spool write failed");
                        *live.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(format!("server could not store the frame: {e}"));
                    }
                }
                let c = pipeline.counters();
                *live.counters.lock().unwrap_or_else(|e| e.into_inner()) = c;
                if c.duration_us >= max_us && !limit_sent {
                    limit_sent = true;
                    let _ = driver.blocking_send(Command::Limit(EndReason::MaxDuration));
                }
            }
            Ok(PipeMsg::Pause) => pipeline.pause(),
            Ok(PipeMsg::Resume) => pipeline.resume(),
            Ok(PipeMsg::Rebase) => pipeline.rebase(),
            Ok(PipeMsg::Finish(reply)) => {
                let r = pipeline.finish(Duration::from_secs(3600));
                if let Ok(f) = &r {
                    *live.counters.lock().unwrap_or_else(|e| e.into_inner()) = f.counters;
                }
                let _ = reply.send(r);
                return;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = pipeline.sync() {
                    tracing::error!(error = %e, "spool sync failed");
                }
            }
            // Cancelled: dropping the pipeline kills the encoder.
            Ok(PipeMsg::Cancel) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl ErrorCode for ApiError {
    fn code(&self) -> &'static str {
        self.code
    }
    fn status(&self) -> u16 {
        self.status
    }
}
