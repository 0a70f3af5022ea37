//! One page's DevTools session: calls under the frame timeout, events,
//! virtual time, begin-frame capture, navigation with a clear reason for
//! every failure, and the browser-wide request guard.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tapedeck_core::netpolicy::{NetPolicy, Verdict};
use tokio::sync::mpsc;

use super::cdp::{Cdp, CdpError, Event};
use super::options::{Capture, WebError, WebOptions};
use tapedeck_core::web::Viewport;

pub(super) const CMD: Duration = Duration::from_secs(30);

/// What one `beginFrame` drew.
pub(super) struct Drawn {
    /// The screenshot, when one was asked for and the frame was drawn.
    pub(super) shot: Option<Vec<u8>>,
    /// The display drew a new frame (the page or its compositing changed).
    pub(super) damage: bool,
}

pub(super) struct Session {
    pub(super) cdp: Cdp,
    pub(super) sid: String,
    pub(super) events: mpsc::UnboundedReceiver<Event>,
    pub(super) blocked: Arc<Mutex<Vec<String>>>,
    pub(super) policy: NetPolicy,
    pub(super) deterministic: bool,
    /// Virtual time elapsed, whole milliseconds.
    pub(super) vt_ms: u64,
    pub(super) vt_base: f64,
    /// The last frame time given to `beginFrame`, ms.
    last_ticks: f64,
    pub(super) frame_timeout: Duration,
    pub(super) load_timeout: Duration,
    pub(super) load_fired: bool,
    pub(super) crashed: Option<String>,
    pub(super) fps: u32,
}

impl Session {
    /// A call the page's renderer must answer: a page that does not answer
    /// within the frame timeout (a script that never yields, say) has stopped
    /// responding.
    pub(super) async fn call(&self, method: &str, params: Value) -> Result<Value, WebError> {
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
    pub(super) async fn call_browser(
        &self,
        method: &str,
        params: Value,
    ) -> Result<Value, WebError> {
        Ok(self.cdp.call(Some(&self.sid), method, params, CMD).await?)
    }

    /// Handles events that arrived; fails on a crash.
    pub(super) fn drain_events(&mut self) -> Result<(), WebError> {
        while let Ok(ev) = self.events.try_recv() {
            self.on_event(ev);
        }
        match &self.crashed {
            Some(c) => Err(WebError::Crashed(c.clone())),
            None => Ok(()),
        }
    }

    pub(super) fn on_event(&mut self, ev: Event) {
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
    pub(super) async fn wait_event(
        &mut self,
        method: &str,
        timeout: Duration,
    ) -> Result<bool, WebError> {
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
    pub(super) async fn advance_to(&mut self, ms: u64, policy: &str) -> Result<bool, WebError> {
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

    /// The frame time of the next `beginFrame`: the virtual clock, and
    /// never the same as the last one. Chromium leaves a `beginFrame` with
    /// the previous frame's time and no screenshot unanswered, which
    /// happens when a `goto` mid-script ran the virtual clock ahead of the
    /// video (the frames after it catch up without advancing it). A
    /// microsecond later, by the same rule in every browser, so a range
    /// played up to is the same.
    pub(super) fn frame_ticks(&mut self) -> f64 {
        let t = (self.vt_base + self.vt_ms as f64).max(self.last_ticks + 0.001);
        self.last_ticks = t;
        t
    }

    pub(super) async fn begin_frame(
        &mut self,
        screenshot: Option<Capture>,
    ) -> Result<Drawn, WebError> {
        self.begin_frame_drawn(screenshot, true).await
    }

    /// A frame whose main-thread work (input, animation frames, layout)
    /// runs; `display` false: nothing is drawn (a frame played before a
    /// captured range).
    pub(super) async fn begin_frame_drawn(
        &mut self,
        screenshot: Option<Capture>,
        display: bool,
    ) -> Result<Drawn, WebError> {
        let interval = 1000.0 / f64::from(self.fps);
        let mut p = json!({"interval": interval, "noDisplayUpdates": !display});
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
        Ok(Drawn {
            shot: r
                .get("screenshotData")
                .and_then(Value::as_str)
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok()),
            damage: r.get("hasDamage").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// The latest refusal (a navigation that failed as blocked was refused last,
    /// possibly on a redirect hop to another address).
    pub(super) fn last_blocked(&self) -> Option<String> {
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .cloned()
    }

    /// Navigates and waits until the page loaded.
    pub(super) async fn navigate(&mut self, url: &str) -> Result<(), WebError> {
        check_policy(&self.policy, url).await?;
        // Through the proxy a dead host would look like a (502) page: try it first.
        if let Ok(u) = url::Url::parse(url)
            && let (Some(host), Some(port)) = (u.host_str(), u.port_or_known_default())
        {
            let addrs = super::proxy::checked_addrs(&self.policy, host, port)
                .await
                .map_err(|r| refusal(url, r))?;
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

    pub(super) async fn eval(&self, expr: &str) -> Result<Value, WebError> {
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
pub(super) async fn check_policy(policy: &NetPolicy, url: &str) -> Result<(), WebError> {
    match policy.check_url(url) {
        Verdict::Allow => Ok(()),
        Verdict::Deny(b) => Err(WebError::Blocked {
            url: url.to_string(),
            reason: b.to_string(),
        }),
        Verdict::Resolve { host, port } => super::proxy::checked_addrs(policy, &host, port)
            .await
            .map(|_| ())
            .map_err(|r| refusal(url, r)),
    }
}

/// A refused address as the recording's failure: the policy's refusal is
/// `source_blocked`; a name that does not resolve is `source_unreachable`
/// (a typo is not a block).
fn refusal(url: &str, r: super::proxy::Refusal) -> WebError {
    match r {
        super::proxy::Refusal::Blocked { reason, .. } => WebError::Blocked {
            url: url.to_string(),
            reason,
        },
        super::proxy::Refusal::Unresolved(_) => WebError::Load {
            url: url.to_string(),
            reason: "the host name does not resolve".into(),
        },
    }
}

/// Answers every paused request: continue if the policy allows it, fail otherwise.
pub(super) async fn guard_requests(
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

impl Session {
    /// Opens a page of the viewport's size under begin-frame control, with
    /// every request paused for the guard; in deterministic mode on paused
    /// virtual time, one frame drawn.
    pub(super) async fn open(
        cdp: Cdp,
        events: mpsc::UnboundedReceiver<Event>,
        blocked: Arc<Mutex<Vec<String>>>,
        opts: &WebOptions,
        vp: Viewport,
        deterministic: bool,
        fps: u32,
    ) -> Result<Session, WebError> {
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
            cdp,
            sid,
            events,
            blocked: blocked.clone(),
            policy: opts.policy.clone(),
            deterministic,
            vt_ms: 0,
            vt_base: 0.0,
            last_ticks: 0.0,
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
        Ok(s)
    }
}
