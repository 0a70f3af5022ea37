//! Streams pushed out while a recording records (RTMP, SRT): one task per
//! output runs an ffmpeg that copies the live encode to the receiver: its
//! pictures as they are made (the encode's tap, in the usual skip-held
//! MP4 mode: a second or so behind), else its live HLS segments (from the
//! newest one, at their own pace: a segment or two behind). A receiver that goes away is
//! tried again with backoff (1 s doubling to 30 s, from 1 s again after a
//! minute of pushing); the recording never waits for or fails with a
//! stream. Outputs are added and removed while it records (the driver's
//! [`Command`]); each task reports its state, which the driver keeps in
//! the recording.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tapedeck_core::output::{self, Output, OutputSpec, OutputState};
use tapedeck_core::recording::Recording;
use tapedeck_core::{Code, Problem, Status};
use tapedeck_media::ffmpeg::live::{self, StreamKind};
use tokio::sync::{mpsc, oneshot};

use crate::engine::services::Services;

/// What the driver is asked to do with a recording's outputs.
pub enum Command {
    /// Add an output (its JSON, checked against the recording).
    Add(serde_json::Value),
    /// Remove output `id`.
    Remove(String),
}

/// A task's news: output `id` is now `state`.
#[derive(Debug)]
pub struct Report {
    /// The output.
    pub id: String,
    /// Its state.
    pub state: OutputState,
    /// What went wrong, if something did.
    pub error: Option<String>,
}

/// The running stream tasks of one recording.
pub struct Streams {
    tasks: HashMap<String, (oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    tx: mpsc::UnboundedSender<Report>,
    rx: mpsc::UnboundedReceiver<Report>,
}

impl Default for Streams {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tasks: HashMap::new(),
            tx,
            rx,
        }
    }
}

/// The first wait before trying a receiver again, and the longest.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// A push that lasted this long starts its backoff over.
const STEADY: Duration = Duration::from_secs(60);

impl Streams {
    /// Starts a task for every stream output of `rec` not yet started.
    pub fn start(&mut self, services: &Arc<Services>, rec: &Recording) {
        for o in &rec.outputs {
            let running = self.tasks.contains_key(&o.id);
            if o.spec.stream_url().is_some() && o.state == OutputState::Pending && !running {
                let (stop, stopped) = oneshot::channel();
                let task = tokio::spawn(push(
                    services.clone(),
                    (rec.id, rec.video.fps),
                    o.clone(),
                    self.tx.clone(),
                    stopped,
                ));
                self.tasks.insert(o.id.clone(), (stop, task));
            }
        }
    }

    /// Stops output `id`'s task, killing its ffmpeg.
    pub fn stop(&mut self, id: &str) {
        if let Some((stop, _)) = self.tasks.remove(id) {
            let _ = stop.send(());
        }
    }

    /// The next report of any task (never, while none runs).
    pub async fn next(&mut self) -> Report {
        match self.rx.recv().await {
            Some(r) => r,
            None => std::future::pending().await,
        }
    }

    /// Lets the tasks push the end of the playlist (up to `wait`), then
    /// stops those still running.
    pub async fn finish(&mut self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        for (_, (stop, mut task)) in self.tasks.drain() {
            if tokio::time::timeout_at(until, &mut task).await.is_err() {
                let _ = stop.send(());
                let _ = task.await;
            }
        }
    }
}

/// Applies a task's report to `rec`; whether anything changed.
pub fn apply(rec: &mut Recording, r: Report) -> bool {
    let Some(o) = rec.outputs.iter_mut().find(|o| o.id == r.id) else {
        return false;
    };
    // A removed output stays stopped whatever its task said last.
    if o.state == OutputState::Stopped {
        return false;
    }
    let changed = o.state != r.state || (r.error.is_some() && o.last_error != r.error);
    o.state = r.state;
    if r.error.is_some() {
        o.last_error = r.error;
    }
    changed
}

/// Carries out `cmd` on `rec` (which the caller saves): the output added
/// (started at once if it records) or removed.
pub async fn command(
    services: &Arc<Services>,
    streams: &mut Streams,
    rec: &mut Recording,
    cmd: Command,
) -> Result<Output, Problem> {
    if !matches!(
        rec.status,
        Status::Pending | Status::Recording | Status::Paused
    ) {
        return Err(Problem::new(
            Code::InvalidTransition,
            format!(
                "the recording is {}; outputs change only while it records",
                rec.status.as_str()
            ),
        ));
    }
    match cmd {
        Command::Add(value) => {
            // Stopped streams stay listed but take no place among the
            // outputs a recording may run.
            let running: Vec<OutputSpec> = rec
                .outputs
                .iter()
                .filter(|o| o.state != OutputState::Stopped)
                .map(|o| o.spec.clone())
                .collect();
            let spec = output::parse_one(value, None, &rec.source, &running)?;
            if rec.outputs.len() >= output::MAX_LISTED {
                return Err(Problem::from(output::InvalidOutput {
                    field: "output".into(),
                    message: format!(
                        "a recording lists at most {} outputs, stopped ones included",
                        output::MAX_LISTED
                    ),
                }));
            }
            output::check_format(&spec, rec.format).map_err(|message| {
                Problem::from(output::InvalidOutput {
                    field: "kind".into(),
                    message,
                })
            })?;
            let Some(url) = spec.stream_url() else {
                return Err(Problem::new(
                    Code::InvalidTransition,
                    "hls and images outputs are given when the recording is created; rtmp and srt ones may be added while it records",
                ));
            };
            // Its encode, started or about to be (a pending recording's
            // source is open), writes live segments only if it was created
            // with an output that needs them.
            if super::live_spec(rec).hls_segment_s.is_none() {
                return Err(Problem::new(
                    Code::NotReady,
                    "a stream is pushed from the live HLS segments, which this recording's encoder does not write: create it with an hls or a stream output to add streams while it records",
                ));
            }
            super::check_address(&services.config, url)
                .await
                .map_err(|message| {
                    Problem::from(output::InvalidOutput {
                        field: "url".into(),
                        message,
                    })
                })?;
            let out = Output::new(output::next_id(&rec.outputs), spec);
            rec.outputs.push(out.clone());
            if matches!(rec.status, Status::Recording | Status::Paused) {
                streams.start(services, rec);
            }
            Ok(out)
        }
        Command::Remove(id) => {
            let o = rec.outputs.iter_mut().find(|o| o.id == id).ok_or_else(|| {
                Problem::new(
                    Code::NotFound,
                    format!("no output {id:?} in this recording"),
                )
            })?;
            if o.spec.stream_url().is_none() {
                return Err(Problem::new(
                    Code::InvalidTransition,
                    "hls and images outputs run until the recording ends; only rtmp and srt ones are removed",
                ));
            }
            streams.stop(&id);
            o.state = OutputState::Stopped;
            Ok(o.clone())
        }
    }
}

/// One output's task: push, and on failure wait and push again, until
/// the playlist ends or it is stopped.
async fn push(
    services: Arc<Services>,
    (id, fps): (tapedeck_core::RecordingId, u32),
    out: Output,
    reports: mpsc::UnboundedSender<Report>,
    mut stopped: oneshot::Receiver<()>,
) {
    let report = |state, error: Option<String>| {
        let _ = reports.send(Report {
            id: out.id.clone(),
            state,
            error,
        });
    };
    let (url, kind) = match &out.spec {
        OutputSpec::Rtmp { url } => (url.clone(), StreamKind::Rtmp),
        OutputSpec::Srt { url } => (url.clone(), StreamKind::Srt),
        _ => return,
    };
    let playlist = services
        .work_dir(id)
        .join(live::HLS_DIR)
        .join(live::PLAYLIST);
    let mut backoff = BACKOFF.0;
    loop {
        // Checked again each time: a name may resolve elsewhere now. What
        // was checked is what ffmpeg connects to.
        let started = tokio::time::Instant::now();
        let failure = match super::check_address_why(&services.config, &url).await {
            Ok(addr) => {
                let target = output::target(&url, addr);
                tokio::select! {
                    r = run_once(&services, (id, fps), &playlist, &target, kind, &report) => r,
                    _ = &mut stopped => return,
                }
            }
            // Refused now (the name moved to a private address): for good.
            Err((true, e)) => {
                report(OutputState::Failed, Some(e));
                return;
            }
            // Not resolving now: tried again.
            Err((false, e)) => Some(e),
        };
        match failure {
            None => {
                report(OutputState::Stopped, None);
                return;
            }
            Some(e) => {
                tracing::info!(%id, output = %out.id, to = %output::redacted(&url), error = %e, "a stream output failed; trying again");
                report(OutputState::Retrying, Some(e));
            }
        }
        if started.elapsed() >= STEADY {
            backoff = BACKOFF.0;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = &mut stopped => return,
        }
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

/// Pictures a stream may lag behind the live encode before it is dropped
/// (and pushed again from the next keyframe): four seconds' worth.
const TAP_DEPTH_S: usize = 4;

/// One push straight from the live encode's tap: `None` when the encode
/// ended, else why it stopped.
async fn run_tapped(
    services: &Services,
    tap: &std::sync::Arc<tapedeck_media::ffmpeg::tap::Tap>,
    fps: u32,
    to: &output::Target,
    kind: StreamKind,
    report: &impl Fn(OutputState, Option<String>),
) -> Option<String> {
    // A Matroska tap also carries the sound, 50 blocks a second.
    let per_s = fps.max(1) as usize + if tap.is_matroska() { 50 } else { 0 };
    let (sub, units) = tap.subscribe(TAP_DEPTH_S * per_s)?;
    let mut cmd = tapedeck_media::process::async_command(&services.tools.ffmpeg);
    let args = if tap.is_matroska() {
        live::push_muxed_args(to, kind)
    } else {
        live::push_tapped_args(fps, to, kind)
    };
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = match tapedeck_media::process::spawn_async("ffmpeg", &mut cmd) {
        Ok(c) => c,
        Err(e) => {
            tap.unsubscribe(sub);
            return Some(e.to_string());
        }
    };
    let Some(stdin) = child.take_stdin().and_then(|s| s.into_owned_fd().ok()) else {
        tap.unsubscribe(sub);
        return Some("ffmpeg has no stdin".into());
    };
    // The queue is read on a thread of its own: a receiver that stalls
    // fills it, and the tap drops it (the encode never waits).
    // A Matroska tap's units follow its header, set before the first.
    let mut header = tap.is_matroska().then(|| tap.clone());
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut out = std::fs::File::from(stdin);
        for unit in units {
            if let Some(h) = header.take().and_then(|t| t.header())
                && out.write_all(&h).is_err()
            {
                break;
            }
            if out.write_all(&unit).is_err() {
                break;
            }
        }
    });
    report(OutputState::Active, None);
    let status = child.wait().await;
    tap.unsubscribe(sub);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    if tap.is_closed() {
        return None;
    }
    let tail = tapedeck_media::process::error_lines(&child.stderr_text());
    Some(match status {
        Ok(s) if s.success() => "the stream fell behind the live encode".to_string(),
        Ok(s) => format!("ffmpeg {s}: {}", redact_urls(&tail, &to.connect)),
        Err(e) => e.to_string(),
    })
}

/// One push: from the tap where the live encode has one, else from the
/// live segments (waiting for the first); `None` when the recording's
/// encode ended, else why it stopped.
async fn run_once(
    services: &Services,
    rec: (tapedeck_core::RecordingId, u32),
    playlist: &std::path::Path,
    to: &output::Target,
    kind: StreamKind,
    report: &impl Fn(OutputState, Option<String>),
) -> Option<String> {
    let (id, fps) = rec;
    // The encode may not have started yet (a pending recording).
    while services.sources.tap(id).is_none()
        && tokio::fs::read_to_string(playlist)
            .await
            .map_or(true, |t| live::segments(&t).is_empty())
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if let Some(tap) = services.sources.tap(id) {
        return run_tapped(services, &tap, fps, to, kind, report).await;
    }
    let mut cmd = tapedeck_media::process::async_command(&services.tools.ffmpeg);
    cmd.args(live::push_args(playlist, to, kind))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = match tapedeck_media::process::spawn_async("ffmpeg", &mut cmd) {
        Ok(c) => c,
        Err(e) => return Some(e.to_string()),
    };
    report(OutputState::Active, None);
    match child.wait().await {
        Ok(s) if s.success() => None,
        Ok(s) => {
            let tail = tapedeck_media::process::error_lines(&child.stderr_text());
            Some(format!("ffmpeg {s}: {}", redact_urls(&tail, &to.connect)))
        }
        Err(e) => Some(e.to_string()),
    }
}

/// `text` with `url` (a stream key in its path) hidden.
fn redact_urls(text: &str, url: &str) -> String {
    text.replace(url, &output::redacted(url))
}
