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
        browsers: web.browsers_per_recording,
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

/// Aborts the browsers when the recording is aborted.
struct AbortAll(Vec<tokio::task::AbortHandle>);

impl Drop for AbortAll {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Waits for every range's browser, in whatever order they end: the first
/// that fails fails the recording at once, and it ended when all did.
/// Reports in range order.
pub(super) async fn await_all(
    tasks: Vec<JoinHandle<Result<WebReport, WebError>>>,
    events: mpsc::Sender<SourceEvent>,
) -> Vec<Result<WebReport, WebError>> {
    let _guard = AbortAll(tasks.iter().map(|t| t.abort_handle()).collect());
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
            let _ = events.send(SourceEvent::Failed(e.failure())).await;
        }
        out[i] = Some(r);
    }
    if !failed {
        let _ = events.send(SourceEvent::Ended).await;
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(WebError::Crashed("a browser never reported".into()))))
        .collect()
}

/// A split recording being finished.
pub(super) struct Split {
    pub services: Arc<Services>,
    pub rec: Recording,
    pub meter: Arc<Meter>,
    pub events: mpsc::Sender<SourceEvent>,
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
fn keep(ranges: &[RangeRun], reports: &[WebReport]) -> (usize, bool) {
    let mut keep = 0;
    for (i, (r, rep)) in ranges.iter().zip(reports).enumerate() {
        if rep.frames == 0 {
            break;
        }
        keep = i + 1;
        let whole = r
            .range
            .end
            .is_none_or(|end| rep.frames >= end - r.range.start);
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

/// Finishes a split recording: its whole ranges joined, or, where a join
/// does not hold and the script ran to its end, the recording rendered
/// again by one browser.
pub(super) async fn close(
    s: Split,
    ranges: Vec<RangeRun>,
    reports: Vec<Result<WebReport, WebError>>,
) -> Result<Take, Failure> {
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
            id = %s.rec.id,
            start = r.range.start,
            frames = rep.frames,
            wall_s = rep.wall_s,
            "range rendered"
        );
    }
    let stopped = ok.iter().any(|r| r.stopped);
    let (kept, mismatch) = keep(&ranges, &ok);
    let note = mismatch.then(|| {
        Failure::new(
            Code::NotReplayable,
            format!(
                "the page showed another picture at frame {} when a second browser played it up to there",
                ranges.get(kept).map_or(0, |r| r.range.start)
            ),
        )
    });
    if mismatch && !stopped {
        abort(ranges).await;
        let mut t = once(&s).await?;
        t.note = note;
        return Ok(t);
    }
    let mut ranges = ranges;
    let dropped = ranges.split_off(kept);
    abort(dropped).await;
    s.meter
        .gather(&ranges.iter().map(|r| r.meter.clone()).collect::<Vec<_>>());
    let mut parts: Vec<Finished> = vec![];
    for r in ranges {
        parts.push(r.run.close().await?);
    }
    let video_s: f64 = ok.iter().take(kept).map(|r| r.video_s).sum();
    let wall_s = ok.iter().map(|r| r.wall_s).fold(0.0, f64::max);
    let out = s
        .services
        .work_dir(s.rec.id)
        .join(format!("joined.{}", s.rec.format.extension()));
    let (tools, format, o) = (s.services.tools.clone(), s.rec.format, out.clone());
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

/// The whole recording by one browser, in a folder of its own.
async fn once(s: &Split) -> Result<Take, Failure> {
    tracing::warn!(id = %s.rec.id, "rendering the recording again with one browser");
    use std::sync::atomic::Ordering::Relaxed;
    s.meter.browsers.store(1, Relaxed);
    // Counted again by the one browser.
    s.meter.received.store(0, Relaxed);
    s.meter.refused.store(0, Relaxed);
    let tapedeck_core::recording::SourceSpec::Web(src) = s.rec.source.clone() else {
        return Err(Failure::internal("not a web recording"));
    };
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
    // Rendered while the recording processes: no stop reaches it.
    let (_control, rx) = watch::channel(Control::Run);
    let opts = super::web_options(&s.services.config, &dir);
    let task = super::render(opts, src, v, (rx, run.queue()), s.meter.clone(), None);
    let report = match task.await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            run.abort().await;
            return Err(e.failure());
        }
        Err(e) => {
            run.abort().await;
            return Err(Failure::new(
                Code::BrowserCrashed,
                format!("the web recorder stopped: {e}"),
            ));
        }
    };
    let f = run.close().await?;
    Ok(take(f, Some(report.realtime_factor)))
}
