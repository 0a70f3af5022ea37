//! The `web` source: a page played in headless Chromium
//! ([`tapedeck_media::web::record`]), its frames composed and encoded by the
//! encoding sink. It starts as soon as it is opened and ends with its
//! script; in realtime mode the page's sound is laid under the video.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tapedeck_core::Code;

use futures::future::BoxFuture;
use tapedeck_core::lifecycle::SourceControl;
use tapedeck_core::recording::{Recording, SourceSpec};
use tapedeck_core::{Failure, Format};
use tapedeck_media::ffmpeg::{self, AudioTrack, Tools};
use tapedeck_media::web::{
    Capture, Control, FrameSink, SinkClosed, WebError, WebFrame, WebOptions, WebReport,
};
use tokio::sync::watch;

mod ranges;

use super::encoding::{EncodingRun, SinkMsg};
use super::{Meter, OpenCtx, Source, SourceEvent, Take};
use crate::config::{CaptureFormat, Config};
use crate::engine::services::Services;

/// Web recording settings from the configuration.
pub fn web_options(config: &Config, work: &Path) -> WebOptions {
    WebOptions {
        browser: config.web.browser.clone(),
        policy: tapedeck_core::netpolicy::NetPolicy {
            allow_private: config.web.allow_private_networks,
            allowed_hosts: config.web.allowed_hosts.clone(),
            // Read now: an address the host gained since it started counts.
            own_addrs: tapedeck_media::web::own_addrs(),
        },
        load_timeout: Duration::from_secs(config.web.load_timeout_s),
        frame_timeout: Duration::from_secs(config.web.frame_timeout_s),
        capture: match config.web.capture_format {
            CaptureFormat::Png => Capture::Png,
            CaptureFormat::Jpeg => Capture::Jpeg(config.web.capture_quality.clamp(1, 100)),
        },
        profile: work.join("browser"),
        audio_path: work.join("page-audio.mp4"),
        range: tapedeck_core::split::FrameRange::ALL,
        probe: false,
        live_sound: None,
    }
}

/// What playing a frame before a range costs against capturing one:
/// 5.6 ms against 55-58 ms at 1080p30 on the rich clock page (the frames
/// before a range are drawn without a picture, `noDisplayUpdates`).
const PREROLL_COST: f64 = 0.1;

/// A running web recording: one browser, or several each rendering a range
/// of its frames ([`ranges`]).
pub struct WebRecording {
    services: Arc<Services>,
    rec: Recording,
    meter: Arc<Meter>,
    control: watch::Sender<Control>,
    ranges: Vec<ranges::RangeRun>,
    /// Each range's browser's report, in range order, once all ended (and
    /// the render by one browser where a join did not hold).
    reports: tokio::task::JoinHandle<ranges::Rendered>,
    /// Sums the ranges' meters into the recording's (several browsers).
    gather: Option<tokio::task::JoinHandle<()>>,
}

impl WebRecording {
    /// Starts the encoders, then the browsers.
    pub async fn open(ctx: OpenCtx) -> Result<Self, Failure> {
        let SourceSpec::Web(src) = ctx.rec.source.clone() else {
            return Err(Failure::internal("not a web recording"));
        };
        let plan = ranges::plan(&ctx.services, &ctx.rec, &src);
        let split = plan.len() > 1;
        ctx.meter
            .browsers
            .store(plan.len() as u64, Ordering::Relaxed);
        let work = ctx.services.work_dir(ctx.rec.id);
        let (control, ctl_rx) = watch::channel(Control::Run);
        let mut runs: Vec<ranges::RangeRun> = vec![];
        let mut tasks = vec![];
        for (i, (range, admission)) in plan.into_iter().enumerate() {
            // The first range's spool is the recording's own: after a
            // crash it is rebuilt as any other (the part from the start).
            let dir = match i {
                0 => work.clone(),
                i => work.join(format!("range-{i}")),
            };
            let meter = match split {
                true => Arc::new(Meter::default()),
                false => ctx.meter.clone(),
            };
            if split {
                // Planned from the start, so the sum is the whole from the
                // start (a browser reports once its range begins).
                meter.set_render(super::Render {
                    done: 0,
                    planned: range.len_of(ranges::planned(&src, ctx.rec.video.fps)),
                    wall_s: 0.0,
                    video_s: 0.0,
                });
            }
            let run = match EncodingRun::start_in(
                &ctx.services,
                &ctx.rec,
                meter.clone(),
                ctx.events.clone(),
                Some(
                    src.viewport_for(ctx.rec.video.width, ctx.rec.video.height)
                        .scale,
                ),
                dir.clone(),
            )
            .await
            {
                Ok(run) => run,
                Err(f) => {
                    for r in runs {
                        r.run.abort().await;
                    }
                    return Err(f);
                }
            };
            let mut opts = web_options(&ctx.services.config, &dir);
            opts.live_sound = run.sound.clone();
            opts.range = range;
            opts.probe = range.end.is_some();
            tasks.push(render(
                opts,
                src.clone(),
                ctx.rec.video,
                (ctl_rx.clone(), run.queue()),
                meter.clone(),
                admission,
            ));
            runs.push(ranges::RangeRun {
                range,
                dir,
                run,
                meter,
            });
        }
        let _ = ctx.events.send(SourceEvent::Started(None)).await;
        let gather = split.then(|| {
            let parts: Vec<Arc<Meter>> = runs.iter().map(|r| r.meter.clone()).collect();
            let meter = ctx.meter.clone();
            tokio::spawn(async move {
                loop {
                    meter.gather(&parts);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        });
        let later = ranges::Split {
            services: ctx.services.clone(),
            rec: ctx.rec.clone(),
            meter: ctx.meter.clone(),
            events: ctx.events.clone(),
            control: ctl_rx.clone(),
            gather: gather.as_ref().map(|g| g.abort_handle()),
            ranges: runs.iter().map(|r| r.range).collect(),
        };
        let reports = tokio::spawn(ranges::await_all(tasks, later));
        Ok(Self {
            services: ctx.services,
            rec: ctx.rec,
            meter: ctx.meter,
            control,
            ranges: runs,
            reports,
            gather,
        })
    }

    async fn abort_runs(runs: Vec<ranges::RangeRun>) {
        for r in runs {
            r.run.abort().await;
        }
    }
}

/// Starts the browser of one range, frames into its encoder's queue; the
/// range's admission (a browser beyond the recording's first) is given
/// back when it ends.
fn render(
    opts: WebOptions,
    src: tapedeck_core::web::WebSource,
    v: tapedeck_core::settings::VideoSettings,
    (control, queue): (watch::Receiver<Control>, flume::Sender<SinkMsg>),
    meter: Arc<Meter>,
    admission: Option<super::Admission>,
) -> tokio::task::JoinHandle<Result<WebReport, WebError>> {
    tokio::spawn(async move {
        let _admission = admission;
        let mut sink = Queue {
            queue,
            meter: meter.clone(),
        };
        tapedeck_media::web::record(
            &opts,
            &src,
            v.width,
            v.height,
            v.fps,
            control,
            &mut sink,
            &mut |report| {
                meter.set_render(super::Render {
                    done: report.frames,
                    planned: report.planned,
                    wall_s: report.wall_s,
                    video_s: report.video_s,
                })
            },
        )
        .await
    })
}

impl Source for WebRecording {
    fn control(&mut self, c: SourceControl) -> BoxFuture<'_, ()> {
        // The page holds still (its virtual time stops); the timeline needs no gap.
        self.control.send_replace(match c {
            SourceControl::Pause => Control::Pause,
            SourceControl::Resume => Control::Run,
        });
        Box::pin(async {})
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<Take, Failure>> {
        Box::pin(async move {
            let this = *self;
            this.control.send_replace(Control::Stop);
            let reports = this.reports.await;
            if let Some(g) = &this.gather {
                g.abort();
            }
            let ranges::Rendered {
                mut reports,
                once,
                note,
            } = match reports {
                Ok(r) => r,
                Err(e) => {
                    WebRecording::abort_runs(this.ranges).await;
                    return Err(Failure::new(
                        Code::BrowserCrashed,
                        format!("the web recorder stopped: {e}"),
                    ));
                }
            };
            if this.ranges.len() > 1 {
                return ranges::close(
                    &this.services,
                    &this.rec,
                    &this.meter,
                    this.ranges,
                    reports,
                    once,
                    note,
                )
                .await;
            }
            let report = match reports.pop() {
                Some(Ok(report)) => report,
                Some(Err(e)) => {
                    WebRecording::abort_runs(this.ranges).await;
                    return Err(e.failure());
                }
                None => return Err(Failure::internal("a web recording without a browser")),
            };
            let Some(only) = this.ranges.into_iter().next() else {
                return Err(Failure::internal("a web recording without an encoder"));
            };
            let mut f = only.run.close().await?;
            let mut missing = report.audio_error;
            if let Some(track) = report.audio {
                let r = &this.rec;
                let (out, why) = with_audio(
                    &this.services.tools,
                    f.output,
                    track,
                    r.format,
                    r.video.audio_bitrate_kbps,
                )
                .await;
                f.output = out;
                missing = missing.or(why);
            }
            let mut take = super::encoding::take(f, Some(report.realtime_factor));
            // A video without the page's sound says so (it is whole otherwise).
            take.note = missing.map(|why| Failure::new(Code::AudioMissing, why));
            Ok(take)
        })
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let this = *self;
            this.control.send_replace(Control::Stop);
            if let Some(g) = &this.gather {
                g.abort();
            }
            this.reports.abort();
            let _ = this.reports.await;
            WebRecording::abort_runs(this.ranges).await;
        })
    }
}

/// Web frames into the sink's queue: waits for room (deterministic) or
/// drops (realtime), as the recorder asks.
struct Queue {
    queue: flume::Sender<SinkMsg>,
    meter: Arc<Meter>,
}

impl FrameSink for Queue {
    fn send(&mut self, f: WebFrame, wait: bool) -> BoxFuture<'_, Result<bool, SinkClosed>> {
        Box::pin(async move {
            let sent = if wait {
                self.queue
                    .send_async(SinkMsg::Web(f))
                    .await
                    .map_err(|_| SinkClosed)?;
                true
            } else {
                match self.queue.try_send(SinkMsg::Web(f)) {
                    Ok(()) => true,
                    Err(flume::TrySendError::Full(_)) => false,
                    Err(flume::TrySendError::Disconnected(_)) => return Err(SinkClosed),
                }
            };
            if sent {
                self.meter.received.fetch_add(1, Ordering::Relaxed);
            }
            Ok(sent)
        })
    }
}

/// Lays the page's audio under the finished video; on failure the video
/// stays as it is (without sound), and why is returned beside it.
async fn with_audio(
    tools: &Tools,
    video: std::path::PathBuf,
    track: AudioTrack,
    format: Format,
    kbps: u32,
) -> (std::path::PathBuf, Option<String>) {
    let tools = tools.clone();
    let out = video.with_file_name(format!("with-audio.{}", format.extension()));
    let (v, o) = (video.clone(), out.clone());
    let r = tokio::task::spawn_blocking(move || {
        let duration = ffmpeg::probe(&tools, &v)?.duration_s;
        ffmpeg::add_audio(&tools, &v, &track, format, kbps, duration, &o)
    })
    .await;
    let why = match r {
        Ok(Ok(())) => {
            let _ = tokio::fs::remove_file(&video).await;
            return (out, None);
        }
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::warn!(error = %why, "the page's audio could not be added");
    (
        video,
        Some(format!("the page's audio could not be added: {why}")),
    )
}

/// The web kind: a page played in headless Chromium.
pub struct Web;

impl super::Kind for Web {
    fn open(&self, ctx: OpenCtx) -> BoxFuture<'static, Result<Box<dyn Source>, Failure>> {
        Box::pin(async move { Ok(Box::new(WebRecording::open(ctx).await?) as Box<dyn Source>) })
    }

    fn recovered(&self, services: Arc<Services>, rec: &Recording) -> Box<dyn Source> {
        // Its spool holds the pictures rendered so far.
        Box::new(super::encoding::FromSpool::new(services, rec))
    }

    fn authorize<'a>(
        &'a self,
        _services: &'a Services,
        _p: &'a crate::engine::principal::Principal,
        _v: &'a mut tapedeck_core::request::ValidCreate,
    ) -> BoxFuture<'a, Result<(), tapedeck_core::Problem>> {
        // Any key may record a page; the network policy is checked at parsing.
        super::any_key()
    }
}
