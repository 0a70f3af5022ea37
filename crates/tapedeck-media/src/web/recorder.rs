//! The web frame loop.
//!
//! Deterministic mode: chromium-headless-shell under begin-frame control with
//! the page on virtual time. For output frame `k` the loop dispatches the
//! frame's input events (without awaiting them: input is handled on the next
//! frame), advances virtual time to exactly `k / fps` (integer-millisecond
//! budgets with carried remainder), then asks for that frame with
//! `HeadlessExperimental.beginFrame` and a screenshot. The page cannot run
//! ahead or fall behind the video, however slow the machine.
//!
//! Realtime mode: the same browser and loop, but the page runs on the wall
//! clock and a frame is pulled at each wall-clock tick.
//!
//! Every request of every frame and worker goes through a browser-wide
//! `Fetch` interception checked against the [`NetPolicy`] after DNS (which
//! gives navigations a clear reason), and every connection, WebSockets
//! included, through the filtering [`proxy`](super::proxy), which connects
//! only to the addresses it checked.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tapedeck_core::player::{Need, Overlay, Player, Tick};
use tapedeck_core::split::FrameRange;
use tapedeck_core::web::{DEFAULT_AUTO_S, WebMode, WebSource};
use tokio::sync::{mpsc, watch};

use super::audio::{save_audio, start_audio};
use super::browser::{Browser, LaunchOptions, is_script, resolve_binary};
use super::cdp::{Cdp, CdpError, Event, Reply};
use super::heartbeat::Heartbeat;
use super::input;
pub use super::options::{Capture, WebError, WebOptions};
use super::session::{Session, check_policy, guard_requests};
use crate::ffmpeg::AudioTrack;
use crate::ffmpeg::live_sound::SoundNews;

/// What the recording's owner wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Record.
    Run,
    /// Hold (deterministic: the page's time stops too).
    Pause,
    /// Finish now.
    Stop,
}

/// One output frame for the compositor.
#[derive(Debug, Clone, PartialEq)]
pub struct WebFrame {
    /// The page's new pixels (encoded), or `None` if the page did not change.
    pub shot: Option<Vec<u8>>,
    /// What to draw over it.
    pub overlay: Overlay,
    /// Output time.
    pub pts_us: i64,
    /// Push even if nothing changed (the last frame, so the video lasts to the end).
    pub force: bool,
}

/// Where frames go. The recorder waits for room in deterministic mode and
/// drops in realtime mode; either way it never spins or blocks a thread.
pub trait FrameSink: Send {
    /// Hands `frame` over: with `wait`, waits until there is room; without,
    /// gives up at once when full. `Ok(false)`: dropped; `Err`: the consumer is gone.
    fn send(
        &mut self,
        frame: WebFrame,
        wait: bool,
    ) -> futures::future::BoxFuture<'_, Result<bool, SinkClosed>>;
}

/// The frames consumer went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkClosed;

/// How a web recording went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebReport {
    /// Output frames.
    pub frames: u64,
    /// Frames the video is planned to have (progress: `frames` of this).
    pub planned: u64,
    /// Frames captured from the page.
    pub captured: u64,
    /// Frames the page changed in.
    pub changed: u64,
    /// Frames not captured in time (realtime).
    pub missed: u64,
    /// Frames dropped because the encoder was behind (realtime).
    pub dropped: u64,
    /// Video seconds.
    pub video_s: f64,
    /// Wall seconds spent in the frame loop.
    pub wall_s: f64,
    /// `video_s / wall_s`.
    pub realtime_factor: f64,
    /// Requests the policy refused.
    pub blocked: Vec<String>,
    /// Ended by a stop, not by the script.
    pub stopped: bool,
    /// The page's audio, to be muxed with the video (realtime mode).
    pub audio: Option<AudioTrack>,
    /// Why the page's audio is missing when it was asked for.
    pub audio_error: Option<String>,
    /// A range's first picture (a range that starts after frame 0).
    pub first_shot: Option<Vec<u8>>,
    /// The picture of the frame after the range (`WebOptions::probe`).
    pub probe_shot: Option<Vec<u8>>,
}

/// Records `src` until its script ends or `control` says stop, sending frames to `sink`.
#[allow(clippy::too_many_arguments)]
pub async fn record(
    opts: &WebOptions,
    src: &WebSource,
    width: u32,
    height: u32,
    fps: u32,
    mut control: watch::Receiver<Control>,
    sink: &mut dyn FrameSink,
    on_frame: &mut (dyn FnMut(&WebReport) + Send),
) -> Result<WebReport, WebError> {
    let deterministic = src.mode == WebMode::Deterministic;
    if !deterministic && opts.range != FrameRange::ALL {
        return Err(WebError::Browser(
            "only a deterministic recording renders a range of its frames".into(),
        ));
    }
    let vp = src.viewport_for(width, height);
    let binary = resolve_binary(&opts.browser);
    if is_script(&binary) {
        return Err(WebError::Browser(format!(
            "{} is a shell script, not the browser; set web.browser to the real binary (/usr/lib/chromium/chromium-headless-shell)",
            binary.display()
        )));
    }
    check_policy(&opts.policy, &src.url).await?;
    let blocked: Arc<Mutex<Vec<String>>> = Arc::default();
    let proxy = super::proxy::start(opts.policy.clone(), blocked.clone())
        .await
        .map_err(|e| WebError::Browser(format!("could not start the request filter: {e}")))?;
    let (mut browser, cdp, events, fetch) = Browser::launch(&LaunchOptions {
        binary,
        begin_frame_control: true,
        width: vp.width,
        height: vp.height,
        scale: vp.scale,
        profile: opts.profile.clone(),
        proxy: Some(proxy.addr),
        audio: src.wants_audio(),
    })
    .await
    .map_err(|e| WebError::Browser(e.to_string()))?;
    let result = run(
        opts,
        src,
        deterministic,
        vp,
        fps,
        &mut control,
        sink,
        on_frame,
        cdp,
        events,
        fetch,
        blocked,
    )
    .await;
    // However it ended, the live outputs wait no more for the page's sound.
    if let Some(l) = &opts.live_sound {
        l.close();
    }
    drop(proxy);
    let crashed_tail = if matches!(result, Err(WebError::Crashed(_))) {
        crate::process::note_failure("browser");
        Some(browser.stderr_tail())
    } else {
        None
    };
    // The browser died saving the page's sound (Chromium 156 does, now and
    // then, in Page.stopScreenRecording): the video is whole, the log says why.
    if let Ok(r) = &result
        && r.audio_error
            .as_deref()
            .is_some_and(|e| e.contains("crashed"))
    {
        crate::process::note_failure("browser");
        tracing::warn!(status = ?browser.exited(), tail = %browser.stderr_tail(), "browser crashed saving the page's audio");
    }
    browser.close().await;
    match (result, crashed_tail) {
        (Err(WebError::Crashed(m)), Some(tail)) if !tail.is_empty() => {
            tracing::warn!(%tail, "browser crashed");
            Err(WebError::Crashed(m))
        }
        (r, _) => r,
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    opts: &WebOptions,
    src: &WebSource,
    deterministic: bool,
    vp: tapedeck_core::web::Viewport,
    fps: u32,
    control: &mut watch::Receiver<Control>,
    sink: &mut dyn FrameSink,
    on_frame: &mut (dyn FnMut(&WebReport) + Send),
    cdp: Cdp,
    events: mpsc::UnboundedReceiver<Event>,
    fetch: mpsc::UnboundedReceiver<Event>,
    blocked: Arc<Mutex<Vec<String>>>,
) -> Result<WebReport, WebError> {
    let guard = tokio::spawn(guard_requests(
        cdp.clone(),
        fetch,
        opts.policy.clone(),
        blocked.clone(),
    ));
    let _guard = AbortOnDrop(guard);
    let mut s = Session::open(cdp, events, blocked.clone(), opts, vp, deterministic, fps).await?;
    s.navigate(&src.url).await?;

    let script = input::resolve_script(&s, src, vp.width, vp.height).await?;
    let mut player = Player::new(script, fps, vp.width, vp.height);
    if src.script.is_none() && src.template.is_none() {
        let secs = src.auto.map(|a| a.duration_s).unwrap_or(DEFAULT_AUTO_S);
        player = player.exact_length(u64::from(secs) * u64::from(fps));
    }

    let mut report = WebReport::default();
    let audio = if src.wants_audio() {
        match start_audio(&s, &opts.audio_path, opts.live_sound.clone()).await {
            Ok(t) => Some(t),
            Err(e) => {
                report.audio_error = Some(e.to_string());
                // The live outputs go on without it (silence).
                if let Some(l) = &opts.live_sound {
                    l.close();
                }
                None
            }
        }
    } else {
        None
    };
    let started = Instant::now();
    if let Some(a) = &audio {
        a.tell(|a| SoundNews::Lead(a.at(started)));
    }
    let mut paused_for = Duration::ZERO;
    let mut pauses: Vec<(Instant, Instant)> = Vec::new();
    let vt_start = s.vt_ms;
    let mut buttons = 0u32;
    let mut last: Option<WebFrame> = None;
    let mut unacked = Vec::new();
    let mut last_shot: Option<Vec<u8>> = None;
    let mut heartbeat = Heartbeat::default();
    loop {
        s.drain_events()?;
        // Control: stop, or wait out a pause.
        let mut c = *control.borrow();
        if c == Control::Pause {
            let paused_at = Instant::now();
            if let Some(a) = &audio {
                a.tell(|a| SoundNews::Paused(a.at(paused_at)));
            }
            while c == Control::Pause {
                if control.changed().await.is_err() {
                    c = Control::Stop;
                    break;
                }
                c = *control.borrow();
            }
            paused_for += paused_at.elapsed();
            let resumed = Instant::now();
            pauses.push((paused_at, resumed));
            if let Some(a) = &audio {
                a.tell(|a| SoundNews::Resumed(a.at(resumed)));
            }
        }
        if c == Control::Stop {
            report.stopped = true;
            break;
        }
        let plan = match player.poll() {
            Tick::Done => break,
            Tick::Need(need) => {
                let navigated = matches!(need, Need::Navigate { .. });
                tracing::debug!(frame = player.frames(), range = ?opts.range, ?need, "need");
                let answer = input::answer(&mut s, need).await?;
                if navigated {
                    // A question to the old document may go unanswered
                    // when the new one runs in another process.
                    heartbeat = Heartbeat::default();
                }
                player.answer(answer)?;
                continue;
            }
            Tick::Frame(plan) => plan,
        };
        let range = opts.range;
        if range.is_past(plan.index) {
            if opts.probe && range.end == Some(plan.index) {
                let at = Ahead {
                    vt_start,
                    fps,
                    capture: Some(opts.capture),
                };
                let shot = play_ahead(&mut s, &plan, &mut buttons, &mut unacked, at, opts).await?;
                report.probe_shot = shot.or(last_shot.take());
            }
            break;
        }
        if !range.captures(plan.index) {
            // Before the range: the page plays this frame (its input, its
            // time, its animation frame) and nothing is captured.
            let at = Ahead {
                vt_start,
                fps,
                capture: None,
            };
            play_ahead(&mut s, &plan, &mut buttons, &mut unacked, at, opts).await?;
            continue;
        }
        // Realtime: wait for this frame's wall-clock time; skip capture if late.
        let mut capture = true;
        if !deterministic {
            let due = started + paused_for + Duration::from_micros(plan.pts_us as u64);
            let now = Instant::now();
            if now < due {
                tokio::time::sleep_until(due.into()).await;
            } else if now - due > Duration::from_micros(500_000 / u64::from(fps))
                && report.changed > 0
            {
                // Late: hold the last frame. The first is always taken, the video starts at it.
                capture = false;
            }
        }
        // Input first, without waiting: the renderer handles it in the frame.
        let replies = input::dispatch(&s, &plan.inputs, &mut buttons);
        if let Some(y) = plan.scroll_to {
            s.eval(&format!(
                "window.scrollTo({{left: 0, top: {y}, behavior: 'instant'}})"
            ))
            .await?;
        }
        if deterministic {
            // Exactly k/fps, in whole milliseconds with the remainder carried.
            let target = vt_start + (plan.index + 1) * 1000 / u64::from(fps);
            if !s.advance_to(target, "advance").await? {
                return Err(WebError::Unresponsive(opts.frame_timeout.as_secs()));
            }
        }
        let shot = if capture {
            report.captured += 1;
            let drawn = s.begin_frame(Some(opts.capture)).await?;
            let mut shot = drawn.shot;
            if deterministic && drawn.damage && shot.is_none() {
                // Drawn but not handed over: ask again for the same instant.
                // A frame the browser will not give fails the recording; it
                // never becomes a hold of the previous picture.
                for _ in 0..2 {
                    shot = s.begin_frame(Some(opts.capture)).await?.shot;
                    if shot.is_some() {
                        break;
                    }
                }
                if shot.is_none() {
                    return Err(WebError::NotCaptured(plan.index));
                }
            }
            // Realtime: a busy renderer may have nothing drawn for the first
            // frame yet; ask again, the video starts with a picture.
            let mut tries = 0;
            while shot.is_none() && report.changed == 0 && !deterministic && tries < 10 {
                tries += 1;
                shot = s.begin_frame(Some(opts.capture)).await?.shot;
            }
            shot
        } else {
            report.missed += 1;
            None
        };
        // Input is acknowledged once the renderer has handled it, which for
        // rAF-aligned mouse moves is in the next main frame: wait for the
        // previous frame's input now, after this frame began. Waiting for this
        // frame's own input before the next frame would stall on Chromium's
        // input timeout in realtime mode.
        for r in std::mem::replace(&mut unacked, replies) {
            r.wait(opts.frame_timeout).await.map_err(|e| match e {
                CdpError::Timeout(_) => WebError::Unresponsive(opts.frame_timeout.as_secs()),
                e => e.into(),
            })?;
        }
        if !deterministic {
            heartbeat.beat(&s)?;
        }
        if let Some(shot) = &shot {
            report.changed += 1;
            if report.first_shot.is_none() && range.start > 0 {
                report.first_shot = Some(shot.clone());
            }
            if opts.probe {
                // The probe's picture when the page does not change at it.
                last_shot = Some(shot.clone());
            }
        }
        let frame = WebFrame {
            shot,
            overlay: plan.overlay,
            pts_us: plan.pts_us,
            force: false,
        };
        // Keep the previous frame back so the last one can be marked final.
        if let Some(prev) = last.replace(frame) {
            // Realtime drops a frame when the encoder is behind, but never the
            // first: the video starts at it.
            let wait = deterministic || prev.pts_us == 0;
            if !offer(sink, prev, wait).await? {
                report.dropped += 1;
            }
        }
        report.frames = plan.index + 1 - opts.range.start;
        report.planned = opts.range.len_of(player.planned_frames());
        report.video_s = report.frames as f64 / f64::from(fps);
        report.wall_s = (started.elapsed() - paused_for).as_secs_f64();
        on_frame(&report);
    }
    if let Some(mut f) = last.take() {
        f.force = true;
        offer(sink, f, true).await?;
    }
    report.wall_s = (started.elapsed() - paused_for).as_secs_f64();
    report.realtime_factor = if report.wall_s > 0.0 {
        report.video_s / report.wall_s
    } else {
        0.0
    };
    report.blocked = blocked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(rec) = audio {
        let began = rec.began;
        let secs = |t: Instant| t.saturating_duration_since(began).as_secs_f64();
        match save_audio(&mut s, rec).await {
            Ok(()) => {
                report.audio = Some(AudioTrack {
                    path: opts.audio_path.clone(),
                    lead_s: secs(started),
                    cuts: pauses.iter().map(|(a, b)| (secs(*a), secs(*b))).collect(),
                })
            }
            // The video is whole; say what is missing.
            Err(e) => {
                tracing::warn!(error = %e, "the page's audio could not be saved");
                report.audio_error = Some(format!("the page's audio could not be saved: {e}"));
            }
        }
    }
    Ok(report)
}

/// How a frame outside the captured range is played.
#[derive(Clone, Copy)]
struct Ahead {
    /// Virtual time of frame 0, ms.
    vt_start: u64,
    fps: u32,
    /// None: drawn without a picture (before the range); some: the probe
    /// after it, its picture taken.
    capture: Option<Capture>,
}

/// Plays frame `plan` outside the captured range: its input, the page's
/// time up to it, and an animation frame, drawn without a picture before
/// the range, with one (if the page changed) for the probe after it.
async fn play_ahead(
    s: &mut Session,
    plan: &tapedeck_core::player::FramePlan,
    buttons: &mut u32,
    unacked: &mut Vec<Reply>,
    at: Ahead,
    opts: &WebOptions,
) -> Result<Option<Vec<u8>>, WebError> {
    let Ahead {
        vt_start,
        fps,
        capture,
    } = at;
    let replies = input::dispatch(s, &plan.inputs, buttons);
    if let Some(y) = plan.scroll_to {
        s.eval(&format!(
            "window.scrollTo({{left: 0, top: {y}, behavior: 'instant'}})"
        ))
        .await?;
    }
    let target = vt_start + (plan.index + 1) * 1000 / u64::from(fps);
    if !s.advance_to(target, "advance").await? {
        return Err(WebError::Unresponsive(opts.frame_timeout.as_secs()));
    }
    let shot = s.begin_frame_drawn(capture, capture.is_some()).await?.shot;
    for r in std::mem::replace(unacked, replies) {
        r.wait(opts.frame_timeout).await.map_err(|e| match e {
            CdpError::Timeout(_) => WebError::Unresponsive(opts.frame_timeout.as_secs()),
            e => e.into(),
        })?;
    }
    Ok(shot)
}

/// Hands a frame to the sink, waiting for room if `wait`; false if dropped.
async fn offer(sink: &mut dyn FrameSink, f: WebFrame, wait: bool) -> Result<bool, WebError> {
    sink.send(f, wait)
        .await
        .map_err(|SinkClosed| WebError::SinkClosed)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
