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

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tapedeck_core::netpolicy::{NetPolicy, Verdict};
use tapedeck_core::player::{Answer, Input, Need, Overlay, PlayError, Player, Rect, Tick};
use tapedeck_core::script::Script;
use tapedeck_core::tour::{self, Survey};
use tapedeck_core::web::{DEFAULT_AUTO_S, WebMode, WebSource};
use tokio::sync::{mpsc, watch};

use super::browser::{Browser, LaunchOptions, is_script, resolve_binary};
use super::cdp::{Cdp, CdpError, Event, Reply};
use crate::ffmpeg::AudioTrack;

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

/// The image format frames are captured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// Lossless, slower to encode and decode.
    Png,
    /// Lossy at this quality (1-100), fast.
    Jpeg(u8),
}

/// Settings for web recordings.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// chromium-headless-shell.
    pub browser: PathBuf,
    /// Which addresses pages may reach.
    pub policy: NetPolicy,
    /// Longest wait for a page (or a `goto`) to load.
    pub load_timeout: Duration,
    /// Longest wait for one frame.
    pub frame_timeout: Duration,
    /// How frames are taken from the browser.
    pub capture: Capture,
    /// Browser profile folder (removed afterwards).
    pub profile: PathBuf,
    /// Where the page's audio goes when the source records it (realtime).
    pub audio_path: PathBuf,
}

/// How a web recording went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebReport {
    /// Output frames.
    pub frames: u64,
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
}

/// A web recording that failed, with a reason a person can act on.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum WebError {
    /// The browser could not start.
    #[error("{0}")]
    Browser(String),
    /// The address is not allowed.
    #[error("{url} is not allowed: {reason}")]
    Blocked {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The page could not be loaded.
    #[error("could not load {url}: {reason}")]
    Load {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Loading did not finish.
    #[error("{url} did not finish loading within {secs} s")]
    LoadTimeout {
        /// The URL.
        url: String,
        /// The limit.
        secs: u64,
    },
    /// The page stopped producing frames.
    #[error("the page stopped responding (no frame within {0} s)")]
    Unresponsive(u64),
    /// The page or the browser crashed.
    #[error("the browser crashed: {0}")]
    Crashed(String),
    /// The script failed.
    #[error(transparent)]
    Script(#[from] PlayError),
    /// A selector is not valid CSS.
    #[error("script step {step}: {message}")]
    Selector {
        /// 1-based.
        step: usize,
        /// The browser's message.
        message: String,
    },
    /// The frames consumer went away.
    #[error("the encoder stopped")]
    SinkClosed,
}

impl WebError {
    /// The recording failure this is, with a code from the catalogue.
    pub fn failure(&self) -> tapedeck_core::Failure {
        let code = match self {
            WebError::Browser(_) | WebError::Crashed(_) => "browser_crashed",
            WebError::Blocked { .. } => "source_blocked",
            WebError::Load { reason, .. } if reason.starts_with("TLS error") => "tls_error",
            WebError::Load { .. } => "source_unreachable",
            WebError::LoadTimeout { .. } => "page_load_timeout",
            WebError::Unresponsive(_) => "page_unresponsive",
            WebError::Script(PlayError::NotFound { .. }) | WebError::Selector { .. } => {
                "selector_not_found"
            }
            WebError::Script(_) => "script_error",
            WebError::SinkClosed => "encoder_failed",
        };
        tapedeck_core::Failure::new(code, self.to_string())
    }
}

impl From<CdpError> for WebError {
    fn from(e: CdpError) -> Self {
        match e {
            CdpError::Closed => WebError::Crashed("the browser exited unexpectedly".into()),
            e => WebError::Browser(e.to_string()),
        }
    }
}

const CMD: Duration = Duration::from_secs(30);

struct Session {
    cdp: Cdp,
    sid: String,
    events: mpsc::UnboundedReceiver<Event>,
    blocked: Arc<Mutex<Vec<String>>>,
    policy: NetPolicy,
    deterministic: bool,
    /// Virtual time elapsed, whole milliseconds.
    vt_ms: u64,
    vt_base: f64,
    frame_timeout: Duration,
    load_timeout: Duration,
    load_fired: bool,
    crashed: Option<String>,
    fps: u32,
}

impl Session {
    /// A call the page's renderer must answer: a page that does not answer
    /// within the frame timeout (a script that never yields, say) has stopped
    /// responding.
    async fn call(&self, method: &str, params: Value) -> Result<Value, WebError> {
        match self
            .cdp
            .call(Some(&self.sid), method, params, self.frame_timeout)
            .await
        {
            Err(CdpError::Timeout(_)) => Err(WebError::Unresponsive(self.frame_timeout.as_secs())),
            r => Ok(r?),
        }
    }

    /// A call the browser answers on its own time (files, recordings).
    async fn call_browser(&self, method: &str, params: Value) -> Result<Value, WebError> {
        Ok(self.cdp.call(Some(&self.sid), method, params, CMD).await?)
    }

    /// Handles events that arrived; fails on a crash.
    fn drain_events(&mut self) -> Result<(), WebError> {
        while let Ok(ev) = self.events.try_recv() {
            self.on_event(ev);
        }
        match &self.crashed {
            Some(c) => Err(WebError::Crashed(c.clone())),
            None => Ok(()),
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev.method.as_str() {
            "Page.loadEventFired" if ev.session.as_deref() == Some(&self.sid) => {
                self.load_fired = true
            }
            "Inspector.targetCrashed" | "Target.targetCrashed" => {
                self.crashed = Some("the page's renderer crashed".into())
            }
            "Target.detachedFromTarget"
                if ev.params.get("sessionId").and_then(Value::as_str) == Some(&self.sid) =>
            {
                self.crashed = Some("the page was closed".into())
            }
            "Page.javascriptDialogOpening" => {
                // alert()/confirm() would block the page forever: dismiss them.
                let _ = self.cdp.send(
                    Some(&self.sid),
                    "Page.handleJavaScriptDialog",
                    json!({"accept": false}),
                );
            }
            _ => {}
        }
    }

    /// Waits for an event by name, handling others meanwhile.
    async fn wait_event(&mut self, method: &str, timeout: Duration) -> Result<bool, WebError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => return Ok(false),
                Ok(None) => return Err(CdpError::Closed.into()),
                Ok(Some(ev)) => {
                    let hit = ev.method == method;
                    self.on_event(ev);
                    if let Some(c) = &self.crashed {
                        return Err(WebError::Crashed(c.clone()));
                    }
                    if hit {
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// Advances virtual time to `ms` since the start (deterministic mode).
    async fn advance_to(&mut self, ms: u64, policy: &str) -> Result<bool, WebError> {
        if ms <= self.vt_ms {
            return Ok(true);
        }
        let budget = ms - self.vt_ms;
        self.call(
            "Emulation.setVirtualTimePolicy",
            json!({"policy": policy, "budget": budget, "maxVirtualTimeTaskStarvationCount": 100000}),
        )
        .await?;
        let ok = self
            .wait_event("Emulation.virtualTimeBudgetExpired", self.frame_timeout)
            .await?;
        if ok {
            self.vt_ms = ms;
        }
        Ok(ok)
    }

    fn frame_ticks(&self) -> f64 {
        self.vt_base + self.vt_ms as f64
    }

    async fn begin_frame(
        &mut self,
        screenshot: Option<Capture>,
    ) -> Result<Option<Vec<u8>>, WebError> {
        let interval = 1000.0 / f64::from(self.fps);
        let mut p = json!({"interval": interval, "noDisplayUpdates": false});
        if self.deterministic {
            p["frameTimeTicks"] = json!(self.frame_ticks());
        }
        match screenshot {
            Some(Capture::Png) => {
                p["screenshot"] = json!({"format": "png", "optimizeForSpeed": true})
            }
            Some(Capture::Jpeg(q)) => {
                p["screenshot"] = json!({"format": "jpeg", "quality": q, "optimizeForSpeed": true})
            }
            None => {}
        }
        let r = match self
            .cdp
            .call(
                Some(&self.sid),
                "HeadlessExperimental.beginFrame",
                p,
                self.frame_timeout,
            )
            .await
        {
            Ok(r) => r,
            Err(CdpError::Timeout(_)) => {
                return Err(WebError::Unresponsive(self.frame_timeout.as_secs()));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(r.get("screenshotData")
            .and_then(Value::as_str)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok()))
    }

    /// The latest refusal (a navigation that failed as blocked was refused last,
    /// possibly on a redirect hop to another address).
    fn last_blocked(&self) -> Option<String> {
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .cloned()
    }

    /// Navigates and waits until the page loaded.
    async fn navigate(&mut self, url: &str) -> Result<(), WebError> {
        check_policy(&self.policy, url).await?;
        // Through the proxy a dead host would look like a (502) page: try it first.
        if let Ok(u) = url::Url::parse(url)
            && let (Some(host), Some(port)) = (u.host_str(), u.port_or_known_default())
        {
            let addrs = super::proxy::checked_addrs(&self.policy, host, port)
                .await
                .map_err(|reason| WebError::Blocked {
                    url: url.into(),
                    reason,
                })?;
            super::proxy::connect(&addrs)
                .await
                .map_err(|e| WebError::Load {
                    url: url.into(),
                    reason: format!("the host is unreachable ({e})"),
                })?;
        }
        self.load_fired = false;
        // Page.navigate answers once the response starts: a server that never
        // answers is a load timeout.
        let started = Instant::now();
        let r = match self
            .cdp
            .send(Some(&self.sid), "Page.navigate", json!({"url": url}))
            .wait(self.load_timeout)
            .await
        {
            Ok(r) => r,
            Err(CdpError::Timeout(_)) => {
                return Err(WebError::LoadTimeout {
                    url: url.into(),
                    secs: self.load_timeout.as_secs(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(err) = r.get("errorText").and_then(Value::as_str) {
            if err == "net::ERR_BLOCKED_BY_CLIENT" {
                // The page or a redirect went where the policy does not allow.
                return Err(WebError::Blocked {
                    url: url.into(),
                    reason: self
                        .last_blocked()
                        .map(|b| format!("refused by the address policy: {b}"))
                        .unwrap_or_else(|| "refused by the address policy".into()),
                });
            }
            let reason = match err {
                "net::ERR_NAME_NOT_RESOLVED" => "the host name does not resolve".into(),
                e if e.starts_with("net::ERR_CERT") || e.contains("SSL") => {
                    format!("TLS error ({e})")
                }
                "net::ERR_CONNECTION_REFUSED"
                | "net::ERR_ADDRESS_UNREACHABLE"
                | "net::ERR_CONNECTION_TIMED_OUT"
                | "net::ERR_TIMED_OUT"
                | "net::ERR_INTERNET_DISCONNECTED"
                | "net::ERR_CONNECTION_RESET" => format!("the host is unreachable ({err})"),
                e => e.to_string(),
            };
            return Err(WebError::Load {
                url: url.into(),
                reason,
            });
        }
        let deadline = started + self.load_timeout;
        let step = (1000 / self.fps.max(1)).max(1) as u64;
        while !self.load_fired {
            if Instant::now() >= deadline {
                return Err(WebError::LoadTimeout {
                    url: url.into(),
                    secs: self.load_timeout.as_secs(),
                });
            }
            if self.deterministic {
                // Virtual time waits for the network while loading.
                let to = self.vt_ms + step;
                if self.advance_to(to, "pauseIfNetworkFetchesPending").await? {
                    self.begin_frame(None).await?;
                }
            } else {
                self.wait_event("Page.loadEventFired", Duration::from_millis(100))
                    .await?;
                self.begin_frame(None).await?;
            }
            self.drain_events()?;
        }
        // Let the first paint, fonts and entry animations start.
        if self.deterministic {
            for _ in 0..10 {
                let to = self.vt_ms + step;
                if !self.advance_to(to, "pauseIfNetworkFetchesPending").await? {
                    break;
                }
                self.begin_frame(None).await?;
            }
        }
        Ok(())
    }

    async fn eval(&self, expr: &str) -> Result<Value, WebError> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": false}),
            )
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(WebError::Browser(format!(
                "page script failed: {}",
                ex.pointer("/exception/description")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
            )));
        }
        Ok(r.pointer("/result/value").cloned().unwrap_or(Value::Null))
    }
}

/// Checks a navigation target before the browser sees it.
async fn check_policy(policy: &NetPolicy, url: &str) -> Result<(), WebError> {
    let blocked = |reason: String| WebError::Blocked {
        url: url.to_string(),
        reason,
    };
    match policy.check_url(url) {
        Verdict::Allow => Ok(()),
        Verdict::Deny(b) => Err(blocked(b.to_string())),
        Verdict::Resolve { host, port } => super::proxy::checked_addrs(policy, &host, port)
            .await
            .map(|_| ())
            .map_err(blocked),
    }
}

/// Answers every paused request: continue if the policy allows it, fail otherwise.
async fn guard_requests(
    cdp: Cdp,
    mut rx: mpsc::UnboundedReceiver<Event>,
    policy: NetPolicy,
    blocked: Arc<Mutex<Vec<String>>>,
) {
    while let Some(ev) = rx.recv().await {
        let (cdp, policy, blocked) = (cdp.clone(), policy.clone(), blocked.clone());
        tokio::spawn(async move {
            let Some(id) = ev.params.get("requestId").and_then(Value::as_str) else {
                return;
            };
            let url = ev
                .params
                .pointer("/request/url")
                .and_then(Value::as_str)
                .unwrap_or("");
            let verdict = match check_policy(&policy, url).await {
                Ok(()) => None,
                Err(e) => Some(e.to_string()),
            };
            let session = ev.session.as_deref();
            match verdict {
                None => {
                    let _ = cdp.send(session, "Fetch.continueRequest", json!({"requestId": id}));
                }
                Some(reason) => {
                    super::proxy::note_refusal(&blocked, reason);
                    let _ = cdp.send(
                        session,
                        "Fetch.failRequest",
                        json!({"requestId": id, "errorReason": "BlockedByClient"}),
                    );
                }
            }
        });
    }
}

const SURVEY_JS: &str = include_str!("survey.js");
const VISUAL_BOX_JS: &str = include_str!("visual_box.js");

/// `expr` (an expression) evaluated with `visualBox` defined.
fn with_visual_box(expr: &str) -> String {
    // `return (` on one line: a comment at the start of `expr` must not end
    // the statement.
    format!("(() => {{\n{VISUAL_BOX_JS}\nreturn (\n{expr}\n);\n}})()")
}

fn inspect_js(selector: Option<&str>) -> String {
    let sel = serde_json::to_string(&selector).unwrap_or_else(|_| "null".into());
    with_visual_box(&format!(
        r#"(() => {{
  const sel = {sel};
  const se = document.scrollingElement || document.documentElement;
  const out = {{ scrollHeight: Math.max(se ? se.scrollHeight : 0, document.body ? document.body.scrollHeight : 0, innerHeight), scrollY: scrollY }};
  if (sel !== null) {{
    let el;
    try {{ el = document.querySelector(sel); }} catch (e) {{ out.error = String(e.message); return out; }}
    if (el) {{ const r = visualBox(el); out.rect = {{ x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height }}; }}
  }}
  return out;
}})()"#
    ))
}

fn mouse(kind: &str, x: f64, y: f64, button: &str, buttons: u32) -> Value {
    json!({"type": kind, "x": x, "y": y, "button": button, "buttons": buttons, "clickCount": if button == "left" { 1 } else { 0 }})
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
    let (browser, cdp, events, fetch) = Browser::launch(&LaunchOptions {
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
    drop(proxy);
    let crashed_tail = if matches!(result, Err(WebError::Crashed(_))) {
        Some(browser.stderr_tail())
    } else {
        None
    };
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
    cdp.call(
        None,
        "Fetch.enable",
        json!({"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}),
        CMD,
    )
    .await?;
    let _ = cdp
        .call(
            None,
            "Browser.setDownloadBehavior",
            json!({"behavior": "deny"}),
            CMD,
        )
        .await;
    let target = cdp
        .call(
            None,
            "Target.createTarget",
            json!({"url": "about:blank", "width": vp.width, "height": vp.height, "enableBeginFrameControl": true}),
            CMD,
        )
        .await?;
    let target_id = target
        .get("targetId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let attached = cdp
        .call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
            CMD,
        )
        .await?;
    let sid = attached
        .get("sessionId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut s = Session {
        cdp: cdp.clone(),
        sid,
        events,
        blocked: blocked.clone(),
        policy: opts.policy.clone(),
        deterministic,
        vt_ms: 0,
        vt_base: 0.0,
        frame_timeout: opts.frame_timeout,
        load_timeout: opts.load_timeout,
        load_fired: false,
        crashed: None,
        fps,
    };
    s.call("Page.enable", json!({})).await?;
    s.call("Inspector.enable", json!({})).await.ok();
    s.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": vp.width, "height": vp.height, "deviceScaleFactor": vp.scale, "mobile": false}),
    )
    .await?;
    s.call(
        "Emulation.setFocusEmulationEnabled",
        json!({"enabled": true}),
    )
    .await
    .ok();
    if deterministic {
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let r = s
            .call(
                "Emulation.setVirtualTimePolicy",
                json!({"policy": "pause", "initialVirtualTime": now_s.floor()}),
            )
            .await?;
        s.vt_base = r
            .get("virtualTimeTicksBase")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        // The renderer wants one full frame before virtual time runs.
        s.begin_frame(None).await?;
    }
    s.navigate(&src.url).await?;

    let script = resolve_script(&s, src, vp.width, vp.height).await?;
    let mut player = Player::new(script, fps, vp.width, vp.height);
    if src.script.is_none() && src.template.is_none() {
        let secs = src.auto.map(|a| a.duration_s).unwrap_or(DEFAULT_AUTO_S);
        player = player.exact_length(u64::from(secs) * u64::from(fps));
    }

    let mut report = WebReport::default();
    let audio = if src.wants_audio() {
        start_audio(&s).await
    } else {
        None
    };
    let started = Instant::now();
    let mut paused_for = Duration::ZERO;
    let mut pauses: Vec<(Instant, Instant)> = Vec::new();
    let vt_start = s.vt_ms;
    let mut buttons = 0u32;
    let mut last: Option<WebFrame> = None;
    let mut unacked = Vec::new();
    let mut heartbeat = Heartbeat::default();
    loop {
        s.drain_events()?;
        // Control: stop, or wait out a pause.
        let mut c = *control.borrow();
        if c == Control::Pause {
            let paused_at = Instant::now();
            while c == Control::Pause {
                if control.changed().await.is_err() {
                    c = Control::Stop;
                    break;
                }
                c = *control.borrow();
            }
            paused_for += paused_at.elapsed();
            pauses.push((paused_at, Instant::now()));
        }
        if c == Control::Stop {
            report.stopped = true;
            break;
        }
        let plan = match player.poll() {
            Tick::Done => break,
            Tick::Need(need) => {
                let answer = match need {
                    Need::Navigate { url, .. } => {
                        s.navigate(&url).await?;
                        // A question to the old document may go unanswered
                        // when the new one runs in another process.
                        heartbeat = Heartbeat::default();
                        Answer::Navigated
                    }
                    Need::Inspect { step, selector } => {
                        let v = s.eval(&inspect_js(selector.as_deref())).await?;
                        if let Some(e) = v.get("error").and_then(Value::as_str) {
                            return Err(WebError::Selector {
                                step: step + 1,
                                message: e.to_string(),
                            });
                        }
                        let rect = v
                            .get("rect")
                            .and_then(|r| serde_json::from_value::<Rect>(r.clone()).ok());
                        Answer::Inspected {
                            rect,
                            scroll_height: v
                                .get("scrollHeight")
                                .and_then(Value::as_f64)
                                .unwrap_or(0.0),
                            scroll_y: v.get("scrollY").and_then(Value::as_f64).unwrap_or(0.0),
                        }
                    }
                };
                player.answer(answer)?;
                continue;
            }
            Tick::Frame(plan) => plan,
        };
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
        let mut replies = Vec::new();
        for input in &plan.inputs {
            let (method, params) = match input {
                Input::MouseMove { x, y } => (
                    "Input.dispatchMouseEvent",
                    mouse(
                        "mouseMoved",
                        *x,
                        *y,
                        if buttons == 1 { "left" } else { "none" },
                        buttons,
                    ),
                ),
                Input::MouseDown { x, y } => {
                    buttons = 1;
                    (
                        "Input.dispatchMouseEvent",
                        mouse("mousePressed", *x, *y, "left", 1),
                    )
                }
                Input::MouseUp { x, y } => {
                    buttons = 0;
                    (
                        "Input.dispatchMouseEvent",
                        mouse("mouseReleased", *x, *y, "left", 0),
                    )
                }
                Input::Key { text } => {
                    let down = if text == "\n" {
                        json!({"type": "keyDown", "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r", "unmodifiedText": "\r"})
                    } else {
                        json!({"type": "keyDown", "key": text, "text": text, "unmodifiedText": text})
                    };
                    replies.push(s.cdp.send(Some(&s.sid), "Input.dispatchKeyEvent", down));
                    let key = if text == "\n" { "Enter" } else { text.as_str() };
                    (
                        "Input.dispatchKeyEvent",
                        json!({"type": "keyUp", "key": key}),
                    )
                }
            };
            replies.push(s.cdp.send(Some(&s.sid), method, params));
        }
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
            let mut shot = s.begin_frame(Some(opts.capture)).await?;
            // Realtime: a busy renderer may have nothing drawn for the first
            // frame yet; ask again, the video starts with a picture.
            let mut tries = 0;
            while shot.is_none() && report.changed == 0 && !deterministic && tries < 10 {
                tries += 1;
                shot = s.begin_frame(Some(opts.capture)).await?;
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
        if shot.is_some() {
            report.changed += 1;
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
        report.frames = plan.index + 1;
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
    if let Some(began) = audio {
        let secs = |t: Instant| t.saturating_duration_since(began).as_secs_f64();
        match save_audio(&mut s, &opts.audio_path).await {
            Ok(()) => {
                report.audio = Some(AudioTrack {
                    path: opts.audio_path.clone(),
                    lead_s: secs(started),
                    cuts: pauses.iter().map(|(a, b)| (secs(*a), secs(*b))).collect(),
                })
            }
            // The video is whole; say what is missing.
            Err(e) => tracing::warn!(error = %e, "the page's audio could not be saved"),
        }
    }
    Ok(report)
}

/// How long the tab recording runs on after the last frame.
/// Realtime mode's check that the page's main thread still runs: the
/// compositor goes on drawing the last picture of a page stuck in a script,
/// so frames alone do not show it.
#[derive(Default)]
struct Heartbeat {
    sent_at: Option<Instant>,
    pending: Option<Reply>,
}

impl Heartbeat {
    const EVERY: Duration = Duration::from_secs(1);

    /// Fails when the last question went unanswered for the frame timeout;
    /// asks again once it was answered and a second has passed.
    fn beat(&mut self, s: &Session) -> Result<(), WebError> {
        if let Some(reply) = &mut self.pending {
            match reply.try_take() {
                None if self.sent_at.is_some_and(|t| t.elapsed() > s.frame_timeout) => {
                    return Err(WebError::Unresponsive(s.frame_timeout.as_secs()));
                }
                None => return Ok(()),
                // An error answer (a page between documents) is still an answer.
                Some(Err(CdpError::Closed)) => return Err(CdpError::Closed.into()),
                Some(_) => self.pending = None,
            }
        }
        if self.sent_at.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return Ok(());
        }
        self.pending = Some(s.cdp.send(
            Some(&s.sid),
            "Runtime.evaluate",
            json!({"expression": "0", "returnByValue": true}),
        ));
        self.sent_at = Some(Instant::now());
        Ok(())
    }
}

const AUDIO_TAIL: Duration = Duration::from_millis(250);

/// Starts the browser's tab recording for its audio; the returned instant is
/// the best estimate of the audio's time zero. `None` where the browser has no
/// such recording (the video goes on without sound).
async fn start_audio(s: &Session) -> Option<Instant> {
    let before = Instant::now();
    // The video track of this recording is thrown away: keep it tiny.
    let r = s
        .call(
            "Page.startScreenRecording",
            json!({"audio": true, "maxWidth": 32, "maxHeight": 32, "frameRate": 1}),
        )
        .await;
    let after = Instant::now();
    match r {
        Ok(_) => Some(before + (after - before) / 2),
        Err(e) => {
            tracing::warn!(error = %e, "this browser cannot record the page's audio");
            None
        }
    }
}

/// Stops the tab recording and writes it (MP4 with Opus audio) to `path`.
async fn save_audio(s: &mut Session, path: &std::path::Path) -> Result<(), WebError> {
    use tokio::io::AsyncWriteExt;
    // Sound reaches the recording after the browser's output latency (about
    // 40-130 ms on its silent output): let the end of the video's audio arrive.
    // Frames keep coming meanwhile, as they do for the recording's video track.
    let until = Instant::now() + AUDIO_TAIL;
    while Instant::now() < until {
        s.begin_frame(None).await?;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let r = s
        .call_browser("Page.stopScreenRecording", json!({}))
        .await?;
    let handle = r
        .get("stream")
        .and_then(Value::as_str)
        .ok_or_else(|| WebError::Browser("the screen recording gave no stream".into()))?
        .to_string();
    let io =
        |e: std::io::Error| WebError::Browser(format!("could not write the page's audio: {e}"));
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    loop {
        let chunk = s
            .call_browser("IO.read", json!({"handle": handle, "size": 1 << 20}))
            .await?;
        let data = chunk.get("data").and_then(Value::as_str).unwrap_or("");
        let bytes = if chunk.get("base64Encoded").and_then(Value::as_bool) == Some(true) {
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| WebError::Browser(format!("bad audio chunk: {e}")))?
        } else {
            data.as_bytes().to_vec()
        };
        file.write_all(&bytes).await.map_err(io)?;
        if chunk.get("eof").and_then(Value::as_bool) != Some(false) {
            break;
        }
    }
    file.flush().await.map_err(io)?;
    let _ = s.call_browser("IO.close", json!({"handle": handle})).await;
    Ok(())
}

/// Hands a frame to the sink, waiting for room if `wait`; false if dropped.
async fn offer(sink: &mut dyn FrameSink, f: WebFrame, wait: bool) -> Result<bool, WebError> {
    sink.send(f, wait)
        .await
        .map_err(|SinkClosed| WebError::SinkClosed)
}

async fn resolve_script(
    s: &Session,
    src: &WebSource,
    width: u32,
    height: u32,
) -> Result<Script, WebError> {
    if let Some(script) = &src.script {
        return Ok(script.clone());
    }
    let v = s
        .eval(&with_visual_box(SURVEY_JS.trim_end().trim_end_matches(';')))
        .await?;
    let survey: Survey = serde_json::from_value(v).unwrap_or(Survey {
        viewport_w: f64::from(width),
        viewport_h: f64::from(height),
        scroll_height: f64::from(height),
        elements: vec![],
    });
    Ok(match src.template {
        Some(t) => tour::template(t, &survey),
        None => tour::auto(
            &survey,
            src.auto.map(|a| a.duration_s).unwrap_or(DEFAULT_AUTO_S),
        ),
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
