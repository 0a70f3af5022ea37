//! The encoding sink's thread, shared by the sources that deliver pictures
//! (frames, web), and the source that rebuilds a recording from its spool.
//!
//! The sink runs on one blocking thread per recording, fed through a bounded
//! queue. Senders either wait for room asynchronously (web, deterministic)
//! or give up at once and count the drop (frames socket, web realtime):
//! nothing spins and no runtime thread blocks.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tapedeck_core::Code;

use futures::future::BoxFuture;
use tapedeck_core::lifecycle::SourceControl;
use tapedeck_core::recording::{Recording, SourceSpec};
use tapedeck_core::settings::VideoSettings;
use tapedeck_core::timeline::TimelineLimits;
use tapedeck_core::{Failure, Format};
use tapedeck_media::ffmpeg::live_sound::SoundHandle;
use tapedeck_media::ffmpeg::tap::TapHandle;
use tapedeck_media::ffmpeg::{EncodeSpec, Tools};
use tapedeck_media::picture::FrameLimits;
use tapedeck_media::sink::encoding::{
    self, EncodingSink, Finished, FrameOutcome, PipelineError, SpoolEncoder, live_output,
};
use tapedeck_media::web::{Compositor, WebFrame};
use tokio::sync::{mpsc, oneshot};

use super::{Meter, Source, SourceEvent, Take};
use crate::config::Config;
use crate::engine::metrics::Metrics;
use crate::engine::services::Services;

/// How long the sink may take to finish a file.
const FINISH_TIMEOUT: Duration = Duration::from_secs(3600);

/// A message to the sink thread.
pub enum SinkMsg {
    /// One encoded image and its source time, µs.
    Frame(Vec<u8>, i64),
    /// One web frame (screenshot and overlay).
    Web(WebFrame),
    /// Pause: frames are dropped until resumed; the output gets no gap.
    Pause,
    /// Resume.
    Resume,
    /// The source reconnected: its clock may have restarted.
    Rebase,
    /// Begin encoding a deferred sink's spool now (the budget has room).
    Promote,
    /// Finish the file and report; a deferred sink's spool encoded by the
    /// encoder given, if one is (after its turn, or on another node).
    Finish(
        oneshot::Sender<Result<Finished, PipelineError>>,
        Option<SpoolEncoder>,
    ),
}

/// The encoder settings of a recording, busy as the admission gate decided
/// (`source::admission`): see [`spec_under_load`].
pub fn encode_spec(services: &Services, rec: &Recording) -> EncodeSpec {
    let busy = services.sources.gate.is_busy(rec.id);
    spec_under_load(&services.config, &rec.video, rec.format, busy)
}

/// The encoder settings of a recording of `video` in `format`. A busy one
/// (admitted while the others held at least `encoder.busy_above` of the
/// CPU budget) starts at `encoder.busy_x264_preset` with one thread: on the
/// 720p camera of `bench/frames_many.sh`, ultrafast costs a third of
/// veryfast's CPU for about twice the bytes at the same SSIM. An encoder
/// keeps the settings it started with.
pub fn spec_under_load(
    config: &Config,
    video: &VideoSettings,
    format: Format,
    busy: bool,
) -> EncodeSpec {
    EncodeSpec {
        width: video.width,
        height: video.height,
        fps: video.fps,
        cfr: video.cfr,
        format,
        video_bitrate_kbps: video.video_bitrate_kbps,
        x264_preset: if busy {
            config.encoder.busy_x264_preset.clone()
        } else {
            config.encoder.x264_preset.clone()
        },
        crf: config.encoder.crf,
        skip_held: config.encoder.skip_held,
        threads: busy.then_some(1),
        live: Default::default(),
    }
}

/// A real two-frame encode with the configured encoder settings, for each
/// output path (MP4 as configured, with skip pictures when on; WebM; MP4 at
/// the busy preset): what `doctor` and `/readyz` check, by name.
pub fn check_encoders(config: &Config) -> Vec<(String, Result<(), String>)> {
    let tools = config.tools();
    [
        (Format::Mp4, false),
        (Format::Webm, false),
        (Format::Mp4, true),
    ]
    .into_iter()
    .map(|(format, busy)| {
        let video = VideoSettings {
            width: 64,
            height: 64,
            fps: 30,
            video_bitrate_kbps: 1000,
            audio_bitrate_kbps: 128,
            cfr: true,
        };
        let spec = spec_under_load(config, &video, format, busy);
        let r = tapedeck_media::ffmpeg::check_encode(&tools, &spec).map_err(|e| e.to_string());
        let what = if busy {
            format!("{} when busy", format.extension())
        } else {
            format.extension().to_string()
        };
        (what, r)
    })
    .collect()
}

/// How far `rec`'s timeline may reach: its max duration, and how far a
/// frame's timestamp may run ahead of the wall clock.
pub fn timeline_limits(config: &Config, rec: &Recording) -> TimelineLimits {
    // A web page's frame times are the recorder's own and run ahead of the
    // wall clock whenever deterministic mode is faster than real time: the
    // check is for live input only.
    let live = rec.source.traits().live;
    TimelineLimits {
        max_out_us: i64::from(rec.max_duration_s) * 1_000_000,
        max_ahead_us: if live {
            i64::from(config.limits.max_timestamp_lead_s) * 1_000_000
        } else {
            i64::MAX
        },
    }
}

/// The frame limits of the configuration.
pub fn frame_limits(config: &Config) -> FrameLimits {
    let l = &config.limits;
    FrameLimits {
        max_bytes: l.max_frame_bytes,
        max_width: l.max_frame_width,
        max_height: l.max_frame_height,
    }
}

/// A running encoding sink.
pub struct EncodingRun {
    queue: flume::Sender<SinkMsg>,
    cancelled: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Where a web page's sound goes live (its live outputs lay it under
    /// the pictures), for the web recorder.
    pub sound: Option<SoundHandle>,
}

/// Where the sink thread reports.
struct Wiring {
    meter: Arc<Meter>,
    events: mpsc::Sender<SourceEvent>,
    metrics: Metrics,
    max_us: i64,
    /// Output bytes at which nothing more is taken (0: no limit).
    max_bytes: u64,
    /// What the timeline may place.
    timeline: TimelineLimits,
    cancelled: Arc<AtomicBool>,
    work: PathBuf,
    spec: EncodeSpec,
    /// Spool only; encode at the finish.
    deferred: bool,
}

impl EncodingRun {
    /// Starts a camera's sink in its work folder: the encoder, or, for one
    /// accepted beyond the budget (`deferred`), the spool alone (the file
    /// is encoded from it when it is finished).
    pub async fn start(
        services: &Services,
        rec: &Recording,
        meter: Arc<Meter>,
        events: mpsc::Sender<SourceEvent>,
        deferred: bool,
    ) -> Result<Self, Failure> {
        let work = services.work_dir(rec.id);
        Self::spawn(services, rec, (meter, events), None, work, deferred).await
    }

    /// [`EncodingRun::start`] with its spool and output in `work` (one
    /// range of a web recording rendered by several browsers).
    pub async fn start_in(
        services: &Services,
        rec: &Recording,
        meter: Arc<Meter>,
        events: mpsc::Sender<SourceEvent>,
        web_scale: Option<f64>,
        work: PathBuf,
    ) -> Result<Self, Failure> {
        Self::spawn(services, rec, (meter, events), web_scale, work, false).await
    }

    async fn spawn(
        services: &Services,
        rec: &Recording,
        (meter, events): (Arc<Meter>, mpsc::Sender<SourceEvent>),
        web_scale: Option<f64>,
        work: PathBuf,
        deferred: bool,
    ) -> Result<Self, Failure> {
        let (queue, rx) = flume::bounded(services.config.encoder.queue_frames);
        let (started_tx, started_rx) = oneshot::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let mut spec = encode_spec(services, rec);
        // The live outputs come from the one live encode of the whole
        // recording: not a deferred camera's, nor one range of several.
        if !deferred && work == services.work_dir(rec.id) {
            spec.live = crate::engine::outputs::live_spec(rec);
            if spec.live.hls_segment_s.is_some() {
                // A web page's sound goes live with the pictures where they
                // are spliced (MP4 and MKV at a constant rate).
                if matches!(&rec.source, SourceSpec::Web(w) if w.wants_audio())
                    && spec.uses_skip_held()
                {
                    spec.live.sound = Some(SoundHandle::default());
                }
                // Streams (given now or added later) take the pictures as made.
                let tap = match spec.live.sound {
                    Some(_) => TapHandle::matroska(),
                    None => TapHandle::default(),
                };
                services.sources.set_tap(rec.id, Some(tap.0.clone()));
                spec.live.tap = Some(tap);
            }
        }
        let sound = spec.live.sound.clone();
        let wiring = Wiring {
            meter,
            events,
            metrics: services.metrics.clone(),
            max_us: i64::from(rec.max_duration_s) * 1_000_000,
            max_bytes: services.config.limits.max_size_bytes,
            timeline: timeline_limits(&services.config, rec),
            cancelled: cancelled.clone(),
            work,
            spec: spec.clone(),
            deferred,
        };
        let (tools, limits) = (services.tools.clone(), frame_limits(&services.config));
        let thread = std::thread::Builder::new()
            .name(format!("encode-{}", rec.id))
            .spawn(move || sink_thread(tools, spec, limits, rx, started_tx, wiring, web_scale))
            .map_err(|e| Failure::internal(format!("could not start the encoder thread: {e}")))?;
        match started_rx.await {
            Ok(Ok(())) => Ok(Self {
                queue,
                cancelled,
                thread: Some(thread),
                sound,
            }),
            Ok(Err(e)) => Err(e.failure()),
            Err(_) => Err(Failure::internal("the encoder thread died")),
        }
    }

    /// The sink's queue, for the source's ingest.
    pub fn queue(&self) -> flume::Sender<SinkMsg> {
        self.queue.clone()
    }

    /// Pause or resume, in order with the frames already queued.
    pub async fn control(&self, c: SourceControl) {
        let msg = match c {
            SourceControl::Pause => SinkMsg::Pause,
            SourceControl::Resume => SinkMsg::Resume,
        };
        let _ = self.queue.send_async(msg).await;
    }

    /// Begins encoding a deferred sink's spool while it records
    /// ([`EncodingSink::promote`]), in order with the frames queued.
    pub async fn promote(&self) {
        let _ = self.queue.send_async(SinkMsg::Promote).await;
    }

    /// Ends the timeline and finishes the file.
    pub async fn close(self) -> Result<Finished, Failure> {
        self.close_with(None).await
    }

    /// [`EncodingRun::close`], a deferred sink's spool encoded by
    /// `encoder` when given.
    pub async fn close_with(mut self, encoder: Option<SpoolEncoder>) -> Result<Finished, Failure> {
        let (tx, rx) = oneshot::channel();
        let result = match self.queue.send_async(SinkMsg::Finish(tx, encoder)).await {
            Ok(()) => rx.await.unwrap_or_else(|_| {
                Err(PipelineError::Spool(std::io::Error::other(
                    "the encoder thread died",
                )))
            }),
            Err(_) => Err(PipelineError::Spool(std::io::Error::other(
                "the encoder thread ended early",
            ))),
        };
        self.join().await;
        result.map_err(|e| e.failure())
    }

    /// Stops the sink without finishing: the encoder is killed, the spool stays.
    pub async fn abort(mut self) {
        self.cancelled.store(true, Ordering::Relaxed);
        self.join().await;
    }

    async fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for EncodingRun {
    fn drop(&mut self) {
        // A run dropped without finish or abort must not leave its thread encoding.
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

fn sink_thread(
    tools: Tools,
    spec: EncodeSpec,
    limits: FrameLimits,
    rx: flume::Receiver<SinkMsg>,
    started: oneshot::Sender<Result<(), PipelineError>>,
    w: Wiring,
    web_scale: Option<f64>,
) {
    let mut compositor = web_scale.map(|s| Compositor::new(s, spec.fps, spec.width, spec.height));
    let live_file = live_output(&w.work, &w.spec);
    let started_sink = match w.deferred {
        true => EncodingSink::start_deferred(tools, spec, limits, &w.work),
        false => EncodingSink::start(tools, spec, limits, &w.work),
    };
    let mut sink = match started_sink {
        Ok(mut p) => {
            p.set_limits(w.timeline);
            let _ = started.send(Ok(()));
            p
        }
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let mut over_limit = false;
    let mut last_size = Instant::now();
    loop {
        if w.cancelled.load(Ordering::Relaxed) {
            // Dropping the sink kills the encoder; the spool stays for recovery.
            return;
        }
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(msg @ (SinkMsg::Frame(..) | SinkMsg::Web(_))) => {
                if over_limit {
                    w.meter.refused.fetch_add(1, Ordering::Relaxed);
                    w.metrics.frames(0, 1);
                    continue;
                }
                let outcome = match msg {
                    SinkMsg::Frame(bytes, src_us) => sink.frame(&bytes, src_us).map(Some),
                    SinkMsg::Web(frame) => match compositor.as_mut() {
                        Some(c) => c.frame(&mut sink, frame),
                        None => continue,
                    },
                    _ => continue,
                };
                match outcome {
                    Ok(Some(FrameOutcome::Invalid(e))) => {
                        w.meter.set_error(e.to_string());
                        w.metrics.frames(0, 1);
                    }
                    Ok(Some(FrameOutcome::Dropped(_))) => w.metrics.frames(0, 1),
                    Ok(Some(FrameOutcome::Accepted) | None) => {}
                    Err(e @ PipelineError::Capture(_)) => {
                        // A frame of the page's that the video would lack:
                        // fail rather than hold the previous picture.
                        tracing::error!(error = %e, "web frame unusable");
                        if !over_limit {
                            over_limit = true;
                            let _ = w.events.try_send(SourceEvent::Failed(e.failure()));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "spool write failed");
                        w.meter
                            .set_error(format!("server could not store the frame: {e}"));
                        if matches!(&e, PipelineError::Spool(io) if io.kind() == std::io::ErrorKind::StorageFull)
                            && !over_limit
                        {
                            // A full disk: take nothing more, keep what was
                            // spooled, and fail this recording (others go on).
                            over_limit = true;
                            let _ = w.events.try_send(SourceEvent::Failed(e.failure()));
                        }
                    }
                }
                let c = sink.counters();
                *w.meter.counters.lock().unwrap_or_else(|e| e.into_inner()) = c;
                w.meter.note_lag(sink.encode_lag_us());
                if c.duration_us >= w.max_us && !over_limit {
                    // The lifecycle stops the recording; until then nothing more is taken.
                    over_limit = true;
                    let _ = w.events.try_send(SourceEvent::Wake);
                }
            }
            Ok(SinkMsg::Pause) => sink.pause(),
            Ok(SinkMsg::Resume) => sink.resume(),
            Ok(SinkMsg::Rebase) => sink.rebase(),
            Ok(SinkMsg::Promote) => {
                if let Err(e) = sink.promote(FINISH_TIMEOUT) {
                    // It is encoded after stop instead, as if never promoted.
                    tracing::warn!(error = %e, "the deferred encode could not begin early");
                }
            }
            Ok(SinkMsg::Finish(reply, encoder)) => {
                // Nothing more is taken from here on: the socket learns
                // so at its next picture, even while a deferred camera's
                // encode waits for its turn.
                drop(rx);
                let r = sink.finish_video_with(FINISH_TIMEOUT, encoder);
                if let Ok(f) = &r {
                    *w.meter.counters.lock().unwrap_or_else(|e| e.into_inner()) = f.counters;
                }
                let _ = reply.send(r);
                return;
            }
            Err(flume::RecvTimeoutError::Timeout) => {
                w.meter.note_lag(sink.encode_lag_us());
                if let Err(e) = sink.sync() {
                    tracing::error!(error = %e, "spool sync failed");
                }
            }
            Err(flume::RecvTimeoutError::Disconnected) => return,
        }
        if last_size.elapsed() >= Duration::from_millis(100) {
            last_size = Instant::now();
            let file = std::fs::metadata(&live_file).map(|m| m.len()).unwrap_or(0);
            let bytes = file.max(sink.encoded_bytes().unwrap_or(0));
            {
                w.meter.bytes.store(bytes, Ordering::Relaxed);
                if w.max_bytes > 0 && bytes >= w.max_bytes && !over_limit {
                    // As for max duration: the lifecycle stops the recording.
                    over_limit = true;
                    let _ = w.events.try_send(SourceEvent::Wake);
                }
            }
        }
    }
}

/// A recording the server was recording or processing when it stopped:
/// finishing it rebuilds the output from its spool.
pub struct FromSpool {
    services: Arc<Services>,
    rec: Recording,
}

impl FromSpool {
    /// The source for `rec`.
    pub fn new(services: Arc<Services>, rec: &Recording) -> Self {
        Self {
            services,
            rec: rec.clone(),
        }
    }
}

impl Source for FromSpool {
    fn control(&mut self, _: SourceControl) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<Take, Failure>> {
        Box::pin(async move {
            let work = self.services.work_dir(self.rec.id);
            tracing::info!(id = %self.rec.id, "recovering from the spool");
            let (services, rec) = (self.services.clone(), self.rec.clone());
            let result =
                tokio::task::spawn_blocking(move || encode_from_spool(&services, &rec, &work))
                    .await
                    .unwrap_or_else(|e| {
                        Err(PipelineError::Spool(std::io::Error::other(e.to_string())))
                    });
            match result {
                Ok(f) => Ok(take(f, None)),
                Err(PipelineError::Empty) => Err(Failure::new(
                    Code::RecoveryFailed,
                    "the server stopped before any frame was spooled",
                )),
                // No spool, or one cut before its header was written.
                Err(PipelineError::Spool(io))
                    if matches!(
                        io.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    Err(Failure::new(
                        Code::RecoveryFailed,
                        "the server stopped before any frame was spooled",
                    ))
                }
                Err(e) => Err(Failure::new(
                    Code::RecoveryFailed,
                    format!("could not rebuild the recording from its spool: {e}"),
                )),
            }
        })
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// Encodes `rec`'s file from the spool in `work` as its settings ask
/// ([`encoding::recover`]); blocks.
pub fn encode_from_spool(
    services: &Services,
    rec: &Recording,
    work: &std::path::Path,
) -> Result<Finished, PipelineError> {
    let spec = encode_spec(services, rec);
    let limits = timeline_limits(&services.config, rec);
    encoding::recover(&services.tools, &spec, work, limits, FINISH_TIMEOUT)
}

/// A claimed `encode` job (`engine::offload`): the spool fetched into
/// `dir` encoded as `rec` asks; the file, and a report of its counts.
pub async fn encode_claimed(
    services: &Arc<Services>,
    rec: &Recording,
    dir: &std::path::Path,
) -> Result<(PathBuf, serde_json::Value), String> {
    let (s, r, dir) = (services.clone(), rec.clone(), dir.to_path_buf());
    let f = tokio::task::spawn_blocking(move || encode_from_spool(&s, &r, &dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let report = serde_json::json!({"counters": f.counters, "cpu_s": f.cpu_s});
    Ok((f.output, report))
}

/// Turns a finished sink into a take.
pub fn take(f: Finished, realtime_factor: Option<f64>) -> Take {
    Take {
        output: f.output,
        counters: f.counters,
        cpu_s: f.cpu_s,
        realtime_factor,
        tracks: vec![],
        speakers: vec![],
        format: None,
        note: None,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_core::settings::Preset;

    #[test]
    fn busy_encoders_take_the_busy_preset_and_one_thread() {
        let config = Config::default();
        let video = Preset::Medium.settings();
        let calm = spec_under_load(&config, &video, Format::Mp4, false);
        assert_eq!(
            (calm.x264_preset.as_str(), calm.threads),
            ("veryfast", None)
        );
        let busy = spec_under_load(&config, &video, Format::Mp4, true);
        assert_eq!(
            (busy.x264_preset.as_str(), busy.threads),
            ("ultrafast", Some(1))
        );
    }
}
