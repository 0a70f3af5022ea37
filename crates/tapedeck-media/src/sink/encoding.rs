//! The encoding sink: pictures in, an encoded video out.
//!
//! Runs on one blocking thread per recording. Each frame is checked and
//! decoded ([`Picture`]), placed on the [`Timeline`], appended to the spool
//! when accepted, and written to the live encoder as the timeline decides. If
//! the live encoder dies, the spool is still written and [`recover`] rebuilds
//! the output from it; the same happens at the next start after a crash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tapedeck_core::Code;

use tapedeck_core::timeline::{DropReason, Step, Timeline, TimelineLimits};

use crate::ffmpeg::{EncodeSpec, Encoder, FfmpegError, Tools};
use crate::picture::{FrameError, FrameLimits, Picture};
use crate::spool::SpoolWriter;

use super::replay::CatchUp;
pub use super::replay::recover;

/// The spool file name inside a recording's work folder.
pub const SPOOL_FILE: &str = "frames.spool";

/// Counters of one pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Frames received.
    pub frames_in: u64,
    /// Distinct frames written to the encoder.
    pub frames_distinct: u64,
    /// Output frames the video will have.
    pub frames_out: u64,
    /// Frames dropped for any reason.
    pub frames_dropped: u64,
    /// Of those, invalid or too large.
    pub frames_invalid: u64,
    /// Output duration so far.
    pub duration_us: i64,
    /// Bytes in the spool.
    pub spool_bytes: u64,
}

impl std::ops::AddAssign for Counters {
    /// The counts of two pipelines whose videos are joined.
    fn add_assign(&mut self, o: Counters) {
        self.frames_in += o.frames_in;
        self.frames_distinct += o.frames_distinct;
        self.frames_out += o.frames_out;
        self.frames_dropped += o.frames_dropped;
        self.frames_invalid += o.frames_invalid;
        self.duration_us += o.duration_us;
        self.spool_bytes += o.spool_bytes;
    }
}

/// What happened to one frame.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameOutcome {
    /// Accepted onto the timeline (it may still be superseded).
    Accepted,
    /// Refused: not an image, too large, corrupt.
    Invalid(FrameError),
    /// Dropped by the timeline.
    Dropped(DropReason),
}

/// The pipeline failed for good.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// ffmpeg could not start, or the output could not be made even from the spool.
    #[error(transparent)]
    Ffmpeg(#[from] FfmpegError),
    /// The spool could not be written or read.
    #[error("spool: {0}")]
    Spool(#[from] std::io::Error),
    /// Nothing was recorded.
    #[error("no frames were recorded")]
    Empty,
    /// The spool's encoder of the owner's arranging failed (another node).
    #[error("{0}")]
    Elsewhere(String),
    /// A picture of the source's own making (a web page's screenshot) could
    /// not be used: the video would lack that frame.
    #[error("{0}")]
    Capture(String),
}

impl PipelineError {
    /// The recording failure this is, with a code from the catalogue.
    pub fn failure(&self) -> tapedeck_core::Failure {
        use tapedeck_core::Failure;
        match self {
            PipelineError::Empty => {
                Failure::new(Code::InvalidFrames, "no valid frames were received")
            }
            PipelineError::Ffmpeg(e) => Failure::new(Code::EncoderFailed, e.to_string()),
            PipelineError::Capture(m) => Failure::new(Code::CaptureFailed, m.clone()),
            PipelineError::Elsewhere(m) => Failure::new(Code::EncoderFailed, m.clone()),
            PipelineError::Spool(e) if e.kind() == std::io::ErrorKind::StorageFull => Failure::new(
                Code::DiskFull,
                format!("the work folder's disk is full: {e}; what was spooled before is kept"),
            ),
            PipelineError::Spool(e) => Failure::new(
                Code::StorageFailed,
                format!("the work folder could not be written: {e}"),
            ),
        }
    }
}

/// The result of a finished pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The encoded file.
    pub output: PathBuf,
    /// Final counters.
    pub counters: Counters,
    /// CPU seconds: ffmpeg plus this pipeline's thread.
    pub cpu_s: f64,
    /// The live encoder failed and the output was rebuilt from the spool.
    pub rebuilt_from_spool: bool,
}

/// Encodes a deferred sink's whole spool, given the spool file, as its
/// owner arranges (after a turn in a queue, on another node); what
/// [`recover`] would return.
pub type SpoolEncoder = Box<dyn FnOnce(&Path) -> Result<Finished, PipelineError> + Send>;

/// A live frames pipeline.
pub struct EncodingSink {
    tools: Tools,
    spec: EncodeSpec,
    work_dir: PathBuf,
    picture: Picture,
    timeline: Timeline,
    spool: SpoolWriter,
    encoder: Option<Encoder>,
    encoder_error: Option<FfmpegError>,
    /// Spool only: nothing decoded here (encoded at the finish, or by
    /// `catch_up` once promoted).
    deferred: bool,
    catch_up: Option<CatchUp>,
    held: HashMap<u64, Vec<u8>>,
    last_written: Option<Vec<u8>>,
    seq: u64,
    counters: Counters,
    last_sync: Instant,
    cpu_at_start: f64,
    /// The receiver's clock for the timeline's check of source timestamps.
    epoch: Instant,
    limits: TimelineLimits,
}

/// The live output's file name.
pub fn live_output(work_dir: &Path, spec: &EncodeSpec) -> PathBuf {
    work_dir.join(format!("live.{}", spec.format.extension()))
}

impl EncodingSink {
    /// Starts the encoder and opens the spool in `work_dir`.
    pub fn start(
        tools: Tools,
        spec: EncodeSpec,
        limits: FrameLimits,
        work_dir: &Path,
    ) -> Result<Self, PipelineError> {
        std::fs::create_dir_all(work_dir)?;
        let encoder = Encoder::spawn(&tools, &spec, &live_output(work_dir, &spec))?;
        Self::with(tools, spec, limits, work_dir, Some(encoder))
    }

    /// A sink that only spools (a camera accepted beyond the CPU budget):
    /// frames are placed on the timeline and appended to the spool as
    /// received, not decoded; [`EncodingSink::finish_video`] encodes the
    /// file from the spool ([`recover`]), pictures that do not decode
    /// counted as invalid then.
    pub fn start_deferred(
        tools: Tools,
        spec: EncodeSpec,
        limits: FrameLimits,
        work_dir: &Path,
    ) -> Result<Self, PipelineError> {
        std::fs::create_dir_all(work_dir)?;
        Self::with(tools, spec, limits, work_dir, None)
    }

    /// A sink around `encoder` (none: deferred) with its spool in `work_dir`.
    fn with(
        tools: Tools,
        spec: EncodeSpec,
        limits: FrameLimits,
        work_dir: &Path,
        encoder: Option<Encoder>,
    ) -> Result<Self, PipelineError> {
        let spool = SpoolWriter::open(&work_dir.join(SPOOL_FILE))?;
        Ok(Self {
            picture: Picture::new(spec.width, spec.height, limits),
            timeline: Timeline::new(spec.fps, spec.cfr),
            tools,
            spec,
            work_dir: work_dir.to_path_buf(),
            spool,
            deferred: encoder.is_none(),
            catch_up: None,
            encoder,
            encoder_error: None,
            held: HashMap::new(),
            last_written: None,
            seq: 0,
            counters: Counters::default(),
            last_sync: Instant::now(),
            cpu_at_start: thread_cpu_s(),
            epoch: Instant::now(),
            limits: TimelineLimits::default(),
        })
    }

    /// Bounds the output (the recording's max duration) and how far a
    /// frame's timestamp may run ahead of the wall clock.
    pub fn set_limits(&mut self, limits: TimelineLimits) {
        self.limits = limits;
        self.timeline =
            std::mem::replace(&mut self.timeline, Timeline::new(1, true)).with_limits(limits);
    }

    /// Handles one frame with its source timestamp.
    pub fn frame(&mut self, bytes: &[u8], src_us: i64) -> Result<FrameOutcome, PipelineError> {
        self.counters.frames_in += 1;
        if self.deferred {
            return self.place(Vec::new(), bytes, src_us);
        }
        let picture = match self.picture.convert(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.counters.frames_dropped += 1;
                self.counters.frames_invalid += 1;
                return Ok(FrameOutcome::Invalid(e));
            }
        };
        self.place(picture, bytes, src_us)
    }

    /// Handles one already decoded picture; `spool_bytes` is what the spool
    /// keeps for it (an encoded image), `src_us` its source timestamp.
    pub fn picture(
        &mut self,
        rgb: image::RgbImage,
        spool_bytes: &[u8],
        src_us: i64,
    ) -> Result<FrameOutcome, PipelineError> {
        self.counters.frames_in += 1;
        let picture = match self.picture.convert_rgb(rgb) {
            Ok(p) => p,
            Err(message) => {
                self.counters.frames_dropped += 1;
                self.counters.frames_invalid += 1;
                return Ok(FrameOutcome::Invalid(FrameError::Corrupt {
                    kind: tapedeck_core::frame_message::ImageKind::Png,
                    message,
                }));
            }
        };
        self.place(picture, spool_bytes, src_us)
    }

    fn place(
        &mut self,
        picture: Vec<u8>,
        bytes: &[u8],
        src_us: i64,
    ) -> Result<FrameOutcome, PipelineError> {
        let seq = self.seq;
        self.seq += 1;
        self.held.insert(seq, picture);
        let wall_us = self.epoch.elapsed().as_micros() as i64;
        let push = self.timeline.push_at(seq, src_us, Some(wall_us));
        if let Some(out) = push.accepted_out_us {
            self.spool.append(out, bytes)?;
        }
        let mut outcome = FrameOutcome::Accepted;
        for step in push.steps {
            if let Step::Discard { seq: s, reason } = step
                && s == seq
            {
                outcome = if reason.is_bad_timestamp() {
                    self.counters.frames_invalid += 1;
                    FrameOutcome::Invalid(FrameError::Timestamp(timestamp_reason(reason)))
                } else {
                    FrameOutcome::Dropped(reason)
                };
            }
            self.apply(step, None);
        }
        if self.last_sync.elapsed() >= Duration::from_millis(500) {
            self.sync()?;
        }
        self.refresh();
        Ok(outcome)
    }

    fn apply(&mut self, step: Step, duration_us: Option<i64>) {
        match step {
            Step::Write { seq, pts_us } => {
                if let Some(p) = self.held.remove(&seq) {
                    self.write(pts_us, &p, duration_us, false);
                    if let Some(old) = self.last_written.replace(p) {
                        self.picture.recycle(old);
                    }
                }
            }
            Step::Hold { .. } | Step::Repeat { .. } => {
                if let Some(p) = self.last_written.take() {
                    let mut times = step.repeats().peekable();
                    while let Some(pts_us) = times.next() {
                        let last = times.peek().is_none();
                        self.write(pts_us, &p, duration_us.filter(|_| last), true);
                    }
                    self.last_written = Some(p);
                }
            }
            Step::Discard { seq, .. } => {
                if let Some(p) = self.held.remove(&seq) {
                    self.picture.recycle(p);
                }
                self.counters.frames_dropped += 1;
            }
        }
    }

    fn write(&mut self, pts_us: i64, picture: &[u8], duration_us: Option<i64>, repeat: bool) {
        let Some(enc) = self.encoder.as_mut() else {
            return;
        };
        if let Err(e) = enc.write_frame(pts_us, picture, duration_us, repeat) {
            tracing::warn!(error = %e, "live encoder failed; the output will be rebuilt from the spool");
            self.encoder_error = Some(e);
            self.encoder = None;
        }
    }

    fn refresh(&mut self) {
        self.counters.frames_distinct = self.timeline.distinct_frames();
        self.counters.frames_out = self.timeline.frames_out();
        self.counters.duration_us = self.timeline.duration_us();
        self.counters.spool_bytes = self.spool.len();
    }

    /// Flushes the spool to disk.
    pub fn sync(&mut self) -> Result<(), PipelineError> {
        self.spool.sync()?;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Pauses: frames are dropped until resumed; the output gets no gap.
    pub fn pause(&mut self) {
        self.timeline.pause();
    }

    /// Resumes after a pause.
    pub fn resume(&mut self) {
        self.timeline.resume();
    }

    /// The source reconnected: its clock may have restarted.
    pub fn rebase(&mut self) {
        self.timeline.rebase();
    }

    /// Begins encoding a deferred sink's spool now, while it records:
    /// an encoder follows the spool as it grows (from its first record),
    /// and the finish only waits for it to reach the end. The file is the
    /// one [`recover`] would make after stop. Nothing for a live sink or
    /// one already promoted.
    pub fn promote(&mut self, timeout: Duration) -> Result<(), PipelineError> {
        if !self.deferred || self.catch_up.is_some() {
            return Ok(());
        }
        self.sync()?;
        self.catch_up = Some(CatchUp::start(
            self.tools.clone(),
            self.spec.clone(),
            &self.work_dir,
            self.limits,
            timeout,
        )?);
        Ok(())
    }

    /// Microseconds of output not encoded yet: all of it for a deferred
    /// sink, what the catch-up encoder has still to reach once promoted;
    /// `None` for a live sink.
    pub fn encode_lag_us(&self) -> Option<i64> {
        if !self.deferred {
            return None;
        }
        let done = self
            .catch_up
            .as_ref()
            .map_or(0, |c| c.encoded_us.load(Ordering::Relaxed));
        Some((self.counters.duration_us - done).max(0))
    }

    /// Current counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Encoded bytes so far where the file's size lags behind them (see
    /// [`Encoder::encoded_bytes`]); `None` where the file's size is the measure.
    pub fn encoded_bytes(&self) -> Option<u64> {
        self.encoder.as_ref().and_then(Encoder::encoded_bytes)
    }

    /// The live encoder's failure, if it failed.
    pub fn encoder_failed(&self) -> Option<&FfmpegError> {
        self.encoder_error.as_ref()
    }

    /// Ends the timeline and finishes the file (from the spool if the live encoder failed).
    pub fn finish_video(self, timeout: Duration) -> Result<Finished, PipelineError> {
        self.finish_video_with(timeout, None)
    }

    /// [`EncodingSink::finish_video`], a deferred sink's spool (not
    /// promoted) encoded by `encoder` when given.
    pub fn finish_video_with(
        mut self,
        timeout: Duration,
        encoder: Option<SpoolEncoder>,
    ) -> Result<Finished, PipelineError> {
        let steps = self.timeline.end();
        let last = last_write_index(&steps);
        let frame_us = end_frame_us(&self.spec);
        for (i, step) in steps.into_iter().enumerate() {
            self.apply(step, (Some(i) == last).then_some(frame_us));
        }
        self.sync()?;
        self.refresh();
        if self.timeline.distinct_frames() == 0 {
            return Err(PipelineError::Empty);
        }
        let own_cpu = (thread_cpu_s() - self.cpu_at_start).max(0.0);
        let live = match self.encoder.take() {
            Some(enc) => enc.end_input_and_wait(timeout),
            None => Err(self.encoder_error.take().unwrap_or(FfmpegError::Output {
                program: "ffmpeg".into(),
                message: "encoder stopped".into(),
            })),
        };
        match live {
            Ok(report) => Ok(Finished {
                output: live_output(&self.work_dir, &self.spec),
                counters: self.counters,
                cpu_s: report.cpu_s + own_cpu,
                rebuilt_from_spool: false,
            }),
            Err(e) => {
                if !self.deferred {
                    tracing::warn!(error = %e, "live encode failed; rebuilding from the spool");
                }
                let mut f = match (self.catch_up.take(), encoder) {
                    (Some(c), _) => c.finish()?,
                    (None, Some(encode)) if self.deferred => {
                        encode(&self.work_dir.join(SPOOL_FILE))?
                    }
                    _ => recover(
                        &self.tools,
                        &self.spec,
                        &self.work_dir,
                        self.limits,
                        timeout,
                    )?,
                };
                // Deferred, the pictures were first decoded now: those that
                // did not decode are invalid, beside what the timeline
                // dropped as they came.
                let undecoded = if self.deferred {
                    f.counters.frames_dropped
                } else {
                    0
                };
                f.counters.frames_in = self.counters.frames_in;
                f.counters.frames_invalid = self.counters.frames_invalid + undecoded;
                f.counters.frames_dropped = self.counters.frames_dropped + undecoded;
                f.cpu_s += own_cpu;
                Ok(f)
            }
        }
    }
}

/// The index of the last step that writes a frame.
pub(super) fn last_write_index(steps: &[Step]) -> Option<usize> {
    steps.iter().rposition(|s| {
        matches!(
            s,
            Step::Write { .. } | Step::Hold { .. } | Step::Repeat { .. }
        )
    })
}

/// Why the timeline refused a frame for its timestamp, for `last_error`.
fn timestamp_reason(reason: DropReason) -> String {
    match reason {
        DropReason::BeyondLimit => "its timestamp is past the recording's max duration".to_string(),
        _ => "its timestamp jumped far ahead of the time since the previous frame \
              (more than the allowed lead; check pts_ms)"
            .to_string(),
    }
}

/// How long the final frame lasts: one output frame.
pub(super) fn end_frame_us(spec: &EncodeSpec) -> i64 {
    1_000_000 / i64::from(spec.fps.max(1))
}

/// CPU seconds the calling thread has used (Linux; 0 elsewhere).
pub fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| parse_proc_stat_cpu(&s))
        .unwrap_or(0.0)
}

/// utime + stime of a `/proc/*/stat` line, in seconds (USER_HZ = 100).
pub fn parse_proc_stat_cpu(stat: &str) -> Option<f64> {
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat() {
        let s = "123 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0";
        assert_eq!(parse_proc_stat_cpu(s), Some(3.0));
    }
}
