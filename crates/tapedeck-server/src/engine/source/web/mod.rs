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
    }
}

/// A running web recording.
pub struct WebRecording {
    services: Arc<Services>,
    rec: Recording,
    control: watch::Sender<Control>,
    task: tokio::task::JoinHandle<Result<WebReport, WebError>>,
    run: EncodingRun,
}

impl WebRecording {
    /// Starts the encoder, then the browser.
    pub async fn open(ctx: OpenCtx) -> Result<Self, Failure> {
        let SourceSpec::Web(src) = ctx.rec.source.clone() else {
            return Err(Failure::internal("not a web recording"));
        };
        let v = ctx.rec.video;
        let scale = src.viewport_for(v.width, v.height).scale;
        let run = EncodingRun::start(
            &ctx.services,
            &ctx.rec,
            ctx.meter.clone(),
            ctx.events.clone(),
            Some(scale),
        )
        .await?;
        let _ = ctx.events.send(SourceEvent::Started(None)).await;
        let (control, ctl_rx) = watch::channel(Control::Run);
        let opts = web_options(&ctx.services.config, &ctx.services.work_dir(ctx.rec.id));
        let mut sink = Queue {
            queue: run.queue(),
            meter: ctx.meter.clone(),
        };
        let events = ctx.events.clone();
        let planned = ctx.meter.clone();
        let task = tokio::spawn(async move {
            let r = tapedeck_media::web::record(
                &opts,
                &src,
                v.width,
                v.height,
                v.fps,
                ctl_rx,
                &mut sink,
                &mut |report| {
                    planned.set_render(super::Render {
                        done: report.frames,
                        planned: report.planned,
                        wall_s: report.wall_s,
                        video_s: report.video_s,
                    })
                },
            )
            .await;
            let _ = events
                .send(match &r {
                    Ok(_) => SourceEvent::Ended,
                    Err(e) => SourceEvent::Failed(e.failure()),
                })
                .await;
            r
        });
        Ok(Self {
            services: ctx.services,
            rec: ctx.rec,
            control,
            task,
            run,
        })
    }
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
            let report = match this.task.await {
                Ok(Ok(report)) => report,
                Ok(Err(e)) => {
                    this.run.abort().await;
                    return Err(e.failure());
                }
                Err(e) => {
                    this.run.abort().await;
                    return Err(Failure::new(
                        Code::BrowserCrashed,
                        format!("the web recorder stopped: {e}"),
                    ));
                }
            };
            let mut f = this.run.close().await?;
            if let Some(track) = report.audio {
                let r = &this.rec;
                f.output = with_audio(
                    &this.services.tools,
                    f.output,
                    track,
                    r.format,
                    r.video.audio_bitrate_kbps,
                )
                .await;
            }
            Ok(super::encoding::take(f, Some(report.realtime_factor)))
        })
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let this = *self;
            this.control.send_replace(Control::Stop);
            this.task.abort();
            let _ = this.task.await;
            this.run.abort().await;
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
/// stays as it is (without sound) and the reason is logged.
async fn with_audio(
    tools: &Tools,
    video: std::path::PathBuf,
    track: AudioTrack,
    format: Format,
    kbps: u32,
) -> std::path::PathBuf {
    let tools = tools.clone();
    let out = video.with_file_name(format!("with-audio.{}", format.extension()));
    let (v, o) = (video.clone(), out.clone());
    let r = tokio::task::spawn_blocking(move || {
        let duration = ffmpeg::probe(&tools, &v)?.duration_s;
        ffmpeg::add_audio(&tools, &v, &track, format, kbps, duration, &o)
    })
    .await;
    match r {
        Ok(Ok(())) => {
            let _ = tokio::fs::remove_file(&video).await;
            out
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the page's audio could not be added");
            video
        }
        Err(e) => {
            tracing::warn!(error = %e, "the page's audio could not be added");
            video
        }
    }
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
