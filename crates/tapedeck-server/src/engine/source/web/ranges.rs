//! One deterministic web recording rendered by several browsers at once
//! (`tapedeck_core::split`): each browser plays the script in virtual time
//! up to its range without capturing, then captures its range into its own
//! encoder; the ranges' files are joined without re-encoding.
//!
//! Each browser beyond the first is admitted by the gate as a browser of
//! its own (`Gate::extra_browsers`), only on room nobody queues for. At
//! each join the browser before it also took the next range's first
//! picture (the probe): a page that depends on more than its virtual time
//! shows another picture there, and the recording is rendered again by
//! one browser (note `not_replayable`). A stop keeps the ranges that are
//! whole from the start, and the first one cut.
//!
//! A range is what a job carries between nodes: the recording (its page,
//! script and settings), the range's first frame and its end.

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tapedeck_core::recording::Recording;
use tapedeck_core::split::{self, FrameRange, SplitLimits};
use tapedeck_core::web::WebSource;
use tapedeck_core::{Code, Failure};
use tapedeck_media::picture::FrameLimits;
use tapedeck_media::sink::encoding::{Counters, Finished};
use tapedeck_media::web::{Control, WebError, WebReport};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::super::encoding::{EncodingRun, take};
use super::super::{Admission, Meter, SourceEvent, Take};
use crate::engine::services::Services;

/// One range of a recording: its encoder and its numbers.
pub(super) struct RangeRun {
    pub range: FrameRange,
    pub dir: PathBuf,
    pub run: EncodingRun,
    pub meter: Arc<Meter>,
}

/// The ranges `rec` is rendered in, each beyond the first with the
/// admission of its browser: as many as `web.browsers_per_recording`, the
/// script (`split::plan`) and the gate allow.
pub(super) fn plan(
    services: &Services,
    rec: &Recording,
    src: &WebSource,
) -> Vec<(FrameRange, Option<Admission>)> {
    let web = &services.config.web;
    let fps = rec.video.fps;
    let limits = SplitLimits {
        // A recording watched or streamed while it records is rendered in
        // order by one browser: its live encode is the whole recording.
        browsers: match crate::engine::outputs::live_spec(rec).hls_segment_s {
            Some(_) => 1,
            None => web.browsers_per_recording,
        },
        min_range_s: web.min_range_s,
        // Whole seconds: every range's file begins with a keyframe anyway.
        align: u64::from(fps),
        preroll_cost: super::PREROLL_COST,
        max_frames: u64::from(rec.max_duration_s) * u64::from(fps),
    };
    let mut ranges = split::plan(src, fps, limits);
    let mut extra = vec![];
    if ranges.len() > 1 {
        extra = services
            .sources
            .gate
            .extra_browsers(rec, ranges.len() as u32 - 1);
        let browsers = 1 + extra.len() as u32;
        if browsers < ranges.len() as u32 {
            ranges = split::plan(src, fps, SplitLimits { browsers, ..limits });
        }
        // What the shorter plan does not use goes back now.
        extra.truncate(ranges.len() - 1);
    }
    let mut extra = extra.into_iter();
    ranges
        .into_iter()
        .enumerate()
        .map(|(i, r)| (r, if i == 0 { None } else { extra.next() }))
        .collect()
}

/// Frames a script of steps is planned to have at `fps`.
pub(super) fn planned(src: &WebSource, fps: u32) -> u64 {
    src.script
        .as_ref()
        .map_or(0, |s| s.nominal_ms() * u64::from(fps) / 1000)
}

/// Aborts the browsers when the recording is aborted.
struct AbortAll(Vec<tokio::task::AbortHandle>);

impl Drop for AbortAll {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// What the rendering of a split recording needs after its ranges.
pub(super) struct Split {
    pub services: Arc<Services>,
    pub rec: Recording,
    pub meter: Arc<Meter>,
    pub events: mpsc::Sender<SourceEvent>,
    /// The recording's stop, pause and resume: a render by one browser
    /// listens too.
    pub control: watch::Receiver<Control>,
    /// The task summing the ranges' meters (stopped for a render by one).
    pub gather: Option<tokio::task::AbortHandle>,
    pub ranges: Vec<FrameRange>,
}

/// The render of a whole recording by one browser, after a join that did
/// not hold.
pub(super) struct Once {
    run: EncodingRun,
    report: Result<WebReport, WebError>,
}

/// How the browsers ended.
pub(super) struct Rendered {
    /// Each range's report, in range order.
    pub reports: Vec<Result<WebReport, WebError>>,
    /// The render by one browser, if a join did not hold.
    pub once: Option<Once>,
    /// What the recording says of it (`not_replayable`).
    pub note: Option<Failure>,
}

/// Waits for every range's browser, in whatever order they end: the first
/// that fails fails the recording at once. When all are done and a join
/// does not hold while the script ran to its end, one browser renders the
/// recording again, still recording (a stop or a pause reaches it). It
/// ended when that is done too.
pub(super) async fn await_all(
    tasks: Vec<JoinHandle<Result<WebReport, WebError>>>,
    s: Split,
) -> Rendered {
    let mut guard = AbortAll(tasks.iter().map(|t| t.abort_handle()).collect());
    let n = tasks.len();
    let mut pending: FuturesUnordered<_> = tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| async move { (i, t.await) })
        .collect();
    let mut out: Vec<Option<Result<WebReport, WebError>>> = (0..n).map(|_| None).collect();
    let mut failed = false;
    while let Some((i, r)) = pending.next().await {
        let r =
            r.unwrap_or_else(|e| Err(WebError::Crashed(format!("the web recorder stopped: {e}"))));
        if let Err(e) = &r
            && !failed
        {
            failed = true;
            let _ = s.events.send(SourceEvent::Failed(e.failure())).await;
        }
        out[i] = Some(r);
    }
    let reports: Vec<Result<WebReport, WebError>> = out
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(WebError::Crashed("a browser never reported".into()))))
        .collect();
    let mut done = Rendered {
        reports,
        once: None,
        note: None,
    };
    if failed {
        return done;
    }
    let ok: Vec<&WebReport> = done
        .reports
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .collect();
    let (kept, mismatch) = keep(&s.ranges, &ok);
    if mismatch {
        done.note = Some(Failure::new(
            Code::NotReplayable,
            format!(
                "the page showed another picture at frame {} when a second browser played it up to there; one browser rendered it",
                s.ranges.get(kept).map_or(0, |r| r.start)
            ),
        ));
        if !ok.iter().any(|r| r.stopped) {
            match once(&s, &mut guard).await {
                Ok(o) => {
                    if let Err(e) = &o.report {
                        let _ = s.events.send(SourceEvent::Failed(e.failure())).await;
                        done.once = Some(o);
                        return done;
                    }
                    done.once = Some(o);
                }
                Err(f) => {
                    let _ = s.events.send(SourceEvent::Failed(f)).await;
                    return done;
                }
            }
        }
    }
    let _ = s.events.send(SourceEvent::Ended).await;
    done
}

/// A join whose two sides differ by more than this share of pixels shows.
const MISMATCH: f64 = 1e-4;

/// Whether the probe (the next range's first frame as the browser before
/// it rendered it) is the picture the next browser began with.
fn join_holds(before: &WebReport, after: &WebReport) -> bool {
    let (Some(a), Some(b)) = (&before.probe_shot, &after.first_shot) else {
        return false;
    };
    match tapedeck_media::picture::differing_share(a, b, &FrameLimits::default()) {
        Ok(share) => {
            if share > MISMATCH {
                tracing::warn!(share, "a join of the ranges does not match");
            }
            share <= MISMATCH
        }
        Err(e) => {
            tracing::warn!(error = %e, "a join's pictures could not be compared");
            false
        }
    }
}

/// What to keep of the ranges: how many (from the first), and whether a
/// join did not hold.
fn keep(ranges: &[FrameRange], reports: &[&WebReport]) -> (usize, bool) {
    let mut keep = 0;
    for (i, (r, rep)) in ranges.iter().zip(reports).enumerate() {
        if rep.frames == 0 {
            break;
        }
        keep = i + 1;
        let whole = r.end.is_none_or(|end| rep.frames >= end - r.start);
        if !whole {
            break;
        }
        if let Some(next) = reports.get(i + 1)
            && next.frames > 0
            && !join_holds(rep, next)
        {
            return (keep, true);
        }
    }
    (keep, false)
}

/// Finishes a split recording: the render by one browser if there was
/// one, else its ranges whole from the start (and the first one cut),
/// joined.
pub(super) async fn close(
    services: &Services,
    rec: &Recording,
    meter: &Meter,
    ranges: Vec<RangeRun>,
    reports: Vec<Result<WebReport, WebError>>,
    once: Option<Once>,
    note: Option<Failure>,
) -> Result<Take, Failure> {
    let spans: Vec<FrameRange> = ranges.iter().map(|r| r.range).collect();
    let ok_now: Vec<&WebReport> = reports.iter().filter_map(|r| r.as_ref().ok()).collect();
    let (kept, _) = keep(&spans, &ok_now);
    let prefix: u64 = ok_now.iter().take(kept).map(|r| r.frames).sum();
    // Stopped before it caught up with the ranges whose joins held: those
    // are the longer part from the start.
    let once = once.filter(|o| match &o.report {
        Ok(r) => !(r.stopped && r.frames < prefix),
        Err(_) => true,
    });
    if let Some(o) = once {
        abort(ranges).await;
        return match o.report {
            Ok(report) => {
                let mut t = take(o.run.close().await?, Some(report.realtime_factor));
                t.note = note;
                Ok(t)
            }
            Err(e) => {
                o.run.abort().await;
                Err(e.failure())
            }
        };
    }
    let mut ok = vec![];
    for r in reports {
        match r {
            Ok(r) => ok.push(r),
            Err(e) => {
                abort(ranges).await;
                return Err(e.failure());
            }
        }
    }
    for (r, rep) in ranges.iter().zip(&ok) {
        tracing::info!(
            id = %rec.id,
            start = r.range.start,
            frames = rep.frames,
            wall_s = rep.wall_s,
            "range rendered"
        );
    }
    let mut ranges = ranges;
    meter
        .browsers
        .store(ranges.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let dropped = ranges.split_off(kept);
    abort(dropped).await;
    meter.gather(&ranges.iter().map(|r| r.meter.clone()).collect::<Vec<_>>());
    let mut parts: Vec<Finished> = vec![];
    for r in ranges {
        parts.push(r.run.close().await?);
    }
    let video_s: f64 = ok.iter().take(kept).map(|r| r.video_s).sum();
    let wall_s = ok.iter().map(|r| r.wall_s).fold(0.0, f64::max);
    let out = services
        .work_dir(rec.id)
        .join(format!("joined.{}", rec.format.extension()));
    let (tools, format, o) = (services.tools.clone(), rec.format, out.clone());
    let files: Vec<PathBuf> = parts.iter().map(|f| f.output.clone()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
        tapedeck_media::ffmpeg::copy::join(&tools, &refs, format, &o)
    })
    .await
    .map_err(|e| Failure::internal(format!("joining the ranges stopped: {e}")))?
    .map_err(|e| {
        Failure::new(
            Code::EncoderFailed,
            format!("the ranges could not be joined: {e}"),
        )
    })?;
    let mut counters = Counters::default();
    for f in &parts {
        counters += f.counters;
        let _ = std::fs::remove_file(&f.output);
    }
    let mut t = take(
        Finished {
            output: out,
            counters,
            cpu_s: parts.iter().map(|f| f.cpu_s).sum(),
            rebuilt_from_spool: false,
        },
        (wall_s > 0.0).then(|| video_s / wall_s),
    );
    t.note = note;
    Ok(t)
}

/// Stops the encoders without finishing. The first range's spool is the
/// recording's own and stays (a crash rebuilds from it); the other
/// ranges' folders go.
async fn abort(ranges: Vec<RangeRun>) {
    for r in ranges {
        r.run.abort().await;
        if r.range.start > 0 {
            let _ = tokio::fs::remove_dir_all(&r.dir).await;
        }
    }
}

/// The whole recording by one browser, in a folder of its own, under the
/// recording's controls.
async fn once(s: &Split, guard: &mut AbortAll) -> Result<Once, Failure> {
    tracing::warn!(id = %s.rec.id, "rendering the recording again with one browser");
    let tapedeck_core::recording::SourceSpec::Web(src) = s.rec.source.clone() else {
        return Err(Failure::internal("not a web recording"));
    };
    use std::sync::atomic::Ordering::Relaxed;
    if let Some(g) = &s.gather {
        g.abort();
    }
    s.meter.browsers.store(1, Relaxed);
    // Counted again by the one browser, from the start.
    s.meter.received.store(0, Relaxed);
    s.meter.refused.store(0, Relaxed);
    s.meter.bytes.store(0, Relaxed);
    *s.meter.counters.lock().unwrap_or_else(|e| e.into_inner()) = Counters::default();
    *s.meter.render.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let dir = s.services.work_dir(s.rec.id).join("once");
    let v = s.rec.video;
    let run = EncodingRun::start_in(
        &s.services,
        &s.rec,
        s.meter.clone(),
        s.events.clone(),
        Some(src.viewport_for(v.width, v.height).scale),
        dir.clone(),
    )
    .await?;
    let opts = super::web_options(&s.services.config, &dir);
    let task = super::render(
        opts,
        src,
        v,
        (s.control.clone(), run.queue()),
        s.meter.clone(),
        None,
    );
    guard.0.push(task.abort_handle());
    let report = task
        .await
        .unwrap_or_else(|e| Err(WebError::Crashed(format!("the web recorder stopped: {e}"))));
    Ok(Once { run, report })
}
