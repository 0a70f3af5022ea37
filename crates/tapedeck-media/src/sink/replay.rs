//! A spool played back into an encoder: after the fact ([`recover`]: a
//! crash, a failed live encode, a deferred camera's turn) or while it is
//! still written ([`CatchUp`]: a deferred camera promoted while it
//! records). Both replay its records on a timeline under the recording's
//! limits, so both make the same file.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tapedeck_core::timeline::{Step, Timeline, TimelineLimits};

use super::encoding::{
    Counters, Finished, PipelineError, SPOOL_FILE, end_frame_us, last_write_index, thread_cpu_s,
};
use crate::ffmpeg::{EncodeSpec, Encoder, FfmpegError, Tools};
use crate::picture::{FrameLimits, Picture};
use crate::spool::{SpoolReader, Tail, TailEnd};

/// A deferred sink's encode begun while it records: the spool followed
/// as it grows ([`Tail`]) by an encoder on a thread of its own.
pub(super) struct CatchUp {
    end: Arc<TailEnd>,
    pub(super) encoded_us: Arc<AtomicI64>,
    thread: Option<std::thread::JoinHandle<Result<Finished, PipelineError>>>,
}

impl CatchUp {
    pub(super) fn start(
        tools: Tools,
        spec: EncodeSpec,
        work_dir: &Path,
        limits: TimelineLimits,
        timeout: Duration,
    ) -> Result<Self, PipelineError> {
        let end = Arc::new(TailEnd::default());
        let encoded_us = Arc::new(AtomicI64::new(0));
        let reader = SpoolReader::new(BufReader::new(Tail::open(
            &work_dir.join(SPOOL_FILE),
            end.clone(),
        )?));
        let output = recovered_output(work_dir, &spec);
        let progress = encoded_us.clone();
        let thread = std::thread::Builder::new()
            .name("catch-up".into())
            .spawn(move || {
                encode_spool(&tools, &spec, reader?, &output, limits, timeout, &progress)
            })?;
        Ok(Self {
            end,
            encoded_us,
            thread: Some(thread),
        })
    }

    /// The spool is whole: the encode ends at its end.
    pub(super) fn finish(mut self) -> Result<Finished, PipelineError> {
        self.end.whole();
        let died = || {
            Err(PipelineError::Spool(std::io::Error::other(
                "the catch-up encoder died",
            )))
        };
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| died()),
            None => died(),
        }
    }
}

impl Drop for CatchUp {
    fn drop(&mut self) {
        // A sink dropped without its finish (cancelled): the thread stops.
        self.end.cancel();
    }
}

/// Rebuilds the output from the spool in `work_dir` (after a crash or a failed
/// live encode). Frames after a damaged record are lost; the rest are kept.
///
/// The spool is replayed under `limits` like the live timeline: frames past
/// the longest output are dropped, so a spool holding a hostile timestamp
/// cannot make an endless video.
pub fn recover(
    tools: &Tools,
    spec: &EncodeSpec,
    work_dir: &Path,
    limits: TimelineLimits,
    timeout: Duration,
) -> Result<Finished, PipelineError> {
    let reader = SpoolReader::open(&work_dir.join(SPOOL_FILE))?;
    let output = recovered_output(work_dir, spec);
    encode_spool(
        tools,
        spec,
        reader,
        &output,
        limits,
        timeout,
        &AtomicI64::new(0),
    )
}

/// Where [`recover`] puts the file it makes.
fn recovered_output(work_dir: &Path, spec: &EncodeSpec) -> PathBuf {
    work_dir.join(format!("recovered.{}", spec.format.extension()))
}

/// Encodes the records of `reader` into `output`, replayed on a timeline
/// under `limits`; `encoded_us` follows the output time written so far.
fn encode_spool<R: Read>(
    tools: &Tools,
    spec: &EncodeSpec,
    reader: SpoolReader<R>,
    output: &Path,
    limits: TimelineLimits,
    timeout: Duration,
    encoded_us: &AtomicI64,
) -> Result<Finished, PipelineError> {
    let cpu_start = thread_cpu_s();
    let mut encoder = Encoder::spawn(tools, spec, output)?;
    let mut picture = Picture::new(
        spec.width,
        spec.height,
        FrameLimits {
            max_bytes: usize::MAX,
            ..Default::default()
        },
    );
    let mut timeline = Timeline::new(spec.fps, spec.cfr).with_limits(limits);
    let mut held: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut last: Option<Vec<u8>> = None;
    let mut counters = Counters::default();
    let frame_us = end_frame_us(spec);
    let mut write = |steps: Vec<Step>,
                     end: bool,
                     held: &mut HashMap<u64, Vec<u8>>,
                     counters: &mut Counters|
     -> Result<(), FfmpegError> {
        let last_i = if end { last_write_index(&steps) } else { None };
        for (i, step) in steps.into_iter().enumerate() {
            let dur = (Some(i) == last_i).then_some(frame_us);
            match step {
                Step::Write { seq, pts_us } => {
                    if let Some(p) = held.remove(&seq) {
                        encoder.write_frame(pts_us, &p, dur, false)?;
                        encoded_us.store(pts_us, Ordering::Relaxed);
                        last = Some(p);
                    }
                }
                Step::Hold { .. } | Step::Repeat { .. } => {
                    if let Some(p) = &last {
                        let mut times = step.repeats().peekable();
                        while let Some(pts_us) = times.next() {
                            let d = dur.filter(|_| times.peek().is_none());
                            encoder.write_frame(pts_us, p, d, true)?;
                            encoded_us.store(pts_us, Ordering::Relaxed);
                        }
                    }
                }
                Step::Discard { seq, .. } => {
                    held.remove(&seq);
                    counters.frames_dropped += 1;
                }
            }
        }
        Ok(())
    };
    let mut web = crate::web::spooled::Replay::default();
    for (seq, rec) in reader.enumerate() {
        counters.frames_in += 1;
        let converted = if crate::web::spooled::is_web_record(&rec.payload) {
            web.picture(&rec.payload)
                .and_then(|img| picture.convert_rgb(img))
        } else {
            picture.convert(&rec.payload).map_err(|e| e.to_string())
        };
        let Ok(p) = converted else {
            counters.frames_dropped += 1;
            continue;
        };
        held.insert(seq as u64, p);
        let push = timeline.push(seq as u64, rec.out_us);
        write(push.steps, false, &mut held, &mut counters)?;
    }
    write(timeline.end(), true, &mut held, &mut counters)?;
    if timeline.distinct_frames() == 0 {
        return Err(PipelineError::Empty);
    }
    let report = encoder.end_input_and_wait(timeout)?;
    counters.frames_distinct = timeline.distinct_frames();
    counters.frames_out = timeline.frames_out();
    counters.duration_us = timeline.duration_us();
    Ok(Finished {
        output: output.to_path_buf(),
        counters,
        cpu_s: report.cpu_s + (thread_cpu_s() - cpu_start).max(0.0),
        rebuilt_from_spool: true,
    })
}
