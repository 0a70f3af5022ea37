//! The driver: one task per active recording, a thin loop around the core's
//! [`Lifecycle`]. It moves commands, source events, counts and ticks into the
//! state machine and carries out what it returns (save, emit, control the
//! source, finalize, discard). It knows no source kind.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tapedeck_core::Code;

use tapedeck_core::Failure;
use tapedeck_core::lifecycle::{Input, Lifecycle, Limits, OnIdle, Output};
use tapedeck_core::recording::{Action, Recording, Status};
use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::outputs;
use crate::engine::processing;
use crate::engine::services::Services;
use crate::engine::source::{Meter, Source, SourceEvent};
use crate::now_ms;
use tapedeck_core::Problem;

/// What handlers send a driver.
pub enum Command {
    /// A user's action; the reply is the recording afterwards.
    Act(Action, oneshot::Sender<Result<Recording, Problem>>),
    /// An operator's "store it now" for a recording waiting out a storage retry.
    RetryNow,
    /// Another node of the cluster took the recording over (this node was
    /// cut off or stalled past `node_timeout_s`): let go of it, writing
    /// nothing.
    Fence,
    /// Add or remove a stream output; the reply is the output.
    Output(
        outputs::stream::Command,
        oneshot::Sender<Result<tapedeck_core::output::Output, Problem>>,
    ),
}

/// How often limits are looked at.
const TICK: Duration = Duration::from_millis(250);
/// Quota usage is read from the repository every this many ticks.
const QUOTA_EVERY: u32 = 8;

/// One recording's driver.
pub struct Driver {
    services: Arc<Services>,
    lc: Lifecycle,
    source: Option<Box<dyn Source>>,
    meter: Arc<Meter>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Receiver<SourceEvent>,
    status: watch::Sender<Status>,
    finalize_due: bool,
    /// Held by another node now: nothing more is written or sent.
    fenced: bool,
    /// Its stream outputs' tasks.
    streams: outputs::stream::Streams,
}

/// The limits of `rec` under `services`' configuration.
pub fn limits(services: &Services, rec: &Recording) -> Limits {
    let l = &services.config.limits;
    let mut limits = Limits {
        pending_timeout_ms: (l.pending_timeout_s as i64).saturating_mul(1000),
        idle_timeout_ms: (l.idle_timeout_s as i64).saturating_mul(1000),
        first_unit_timeout_ms: None,
        on_idle: OnIdle::Stop,
        paused_timeout_ms: (l.paused_timeout_s as i64).saturating_mul(1000),
        max_duration_us: i64::from(rec.max_duration_s) * 1_000_000,
        max_bytes: l.max_size_bytes,
        quota_bytes: l.user_quota_bytes,
    };
    crate::engine::source::adjust_limits(&services.config, &rec.source, &mut limits);
    limits
}

impl Driver {
    /// A driver for `rec`; the source comes with [`Driver::run`].
    pub fn new(
        services: Arc<Services>,
        rec: Recording,
        meter: Arc<Meter>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Receiver<SourceEvent>,
        status: watch::Sender<Status>,
    ) -> Self {
        let limits = limits(&services, &rec);
        Self {
            services,
            lc: Lifecycle::new(rec, limits, now_ms()),
            source: None,
            meter,
            commands,
            events,
            status,
            finalize_due: false,
            fenced: false,
            streams: Default::default(),
        }
    }

    /// Applies `action` to `rec`, which no driver holds and no source was
    /// opened for (a recording stopped or cancelled while it waited in a
    /// cluster's queue): saved and emitted as a driver would.
    pub async fn act_alone(
        services: Arc<Services>,
        rec: Recording,
        action: Action,
    ) -> Result<Recording, Problem> {
        let (_cmd, commands) = mpsc::channel(1);
        let (_ev, events) = mpsc::channel(1);
        let (status, _) = watch::channel(rec.status);
        let mut d = Self::new(services, rec, Arc::default(), commands, events, status);
        d.feed(Input::Command(action)).await?;
        Ok(d.lc.recording().clone())
    }

    /// Runs until the recording is final: `source` is what was opened (or
    /// why it could not be), `first` an input to begin with (a restart).
    pub async fn run(
        mut self,
        source: Result<Box<dyn Source>, tapedeck_core::Failure>,
        first: Option<Input>,
    ) {
        match source {
            Ok(s) => self.source = Some(s),
            Err(f) => {
                let _ = self.feed(Input::Failed(f)).await;
            }
        }
        if let Some(i) = first {
            let _ = self.feed(i).await;
        }
        let mut tick = tokio::time::interval(TICK);
        let mut ticks: u32 = 0;
        let mut events_open = true;
        loop {
            if self.fenced {
                // Another node finishes it; this driver ends as it is.
                break;
            }
            if std::mem::take(&mut self.finalize_due) {
                self.finalize().await;
            }
            if self.lc.status().is_terminal() || self.fenced {
                break;
            }
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Act(a, reply)) => {
                        let r = self.feed(Input::Command(a)).await;
                        let _ = reply.send(r.map(|_| self.lc.recording().clone()));
                    }
                    // Nothing is waiting to be stored outside a finalize.
                    Some(Command::RetryNow) => {}
                    Some(Command::Fence) => self.let_go(),
                    Some(Command::Output(c, reply)) => self.output(c, reply).await,
                    None => break,
                },
                r = self.streams.next() => {
                    if outputs::stream::apply(self.lc.recording_mut(), r) {
                        let _ = self.save().await;
                    }
                }
                ev = self.events.recv(), if events_open => match ev {
                    Some(SourceEvent::Started(reply)) => {
                        let _ = self.feed(Input::Started).await;
                        if let Some(r) = reply {
                            let _ = r.send(self.lc.status());
                        }
                    }
                    Some(SourceEvent::Ended) => { let _ = self.feed(Input::Ended).await; }
                    Some(SourceEvent::EndedWith(r)) => { let _ = self.feed(Input::EndedWith(r)).await; }
                    Some(SourceEvent::Failed(f)) => {
                        if f.code == Code::DiskFull && self.hand_over().await {
                            // Another node finishes it; this driver ends
                            // with the recording as it is.
                            break;
                        }
                        let _ = self.feed(Input::Failed(f)).await;
                    }
                    Some(SourceEvent::Describe(spec)) => {
                        self.lc.recording_mut().source = spec;
                        let _ = self.save().await;
                    }
                    Some(SourceEvent::Wake) => {
                        let _ = self.feed(Input::Progress(self.meter.progress())).await;
                    }
                    None => events_open = false,
                },
                _ = tick.tick() => {
                    ticks = ticks.wrapping_add(1);
                    if ticks % QUOTA_EVERY == 1 {
                        // What its work folder holds counts in the owner's quota.
                        crate::engine::work::measure(&self.services, self.lc.recording()).await;
                    }
                    if self.lc.status() == Status::Recording
                        && self.services.config.limits.user_quota_bytes > 0
                        && ticks % QUOTA_EVERY == 1
                    {
                        let rec = self.lc.recording();
                        if let Ok(used) = self.services.usage_bytes(&rec.owner, Some(rec.id)).await {
                            let _ = self.feed(Input::QuotaUsed(used)).await;
                        }
                    }
                    let _ = self.feed(Input::Progress(self.meter.progress())).await;
                    let _ = self.feed(Input::Tick).await;
                }
            }
        }
        self.close().await;
    }

    /// A cluster node whose disk filled hands a live recording over
    /// rather than failing it: what is on disk is shipped, the source is
    /// stopped, and the recording is marked as another live node's, which
    /// finishes it from the bucket as it would a dead node's
    /// (`engine::takeover`); the work folder goes, freeing the disk.
    /// False (fail it here) outside a cluster that ships, or with no other
    /// node alive.
    async fn hand_over(&mut self) -> bool {
        let s = self.services.clone();
        let live = matches!(self.lc.status(), Status::Recording | Status::Paused);
        if !s.config.cluster.enabled || !s.config.cluster.ships() || !live {
            return false;
        }
        let me = s.config.cluster.node_id.clone();
        let timeout_ms = (s.config.cluster.node_timeout_s as i64).saturating_mul(1000);
        let now = now_ms();
        let target = match s.repo.nodes().await {
            Ok(nodes) => nodes
                .into_iter()
                .filter(|n| n.id != me && !n.draining)
                .filter(|n| tapedeck_core::cluster::alive(n.heartbeat_at, now, timeout_ms))
                .max_by(|a, b| a.cpu.free().total_cmp(&b.cpu.free())),
            Err(_) => None,
        };
        let Some(target) = target else {
            return false;
        };
        let id = self.lc.recording().id;
        s.shipping.finish(id).await;
        if let Some(src) = self.source.take() {
            src.abort().await;
        }
        self.lc.recording_mut().node = Some(target.id.clone());
        if let Err(e) = self.save().await {
            tracing::error!(%id, error = %e, "handing a recording over");
        }
        tracing::warn!(%id, to = %target.id, "the disk is full: the recording is handed over");
        let _ = tokio::fs::remove_dir_all(s.work_dir(id)).await;
        s.work.forget(id);
        true
    }

    /// Waits, `pending`, for the queue to hand over an admission, taking
    /// commands meanwhile (a cancel ends the wait and the recording);
    /// `None` when the recording ended before its turn.
    pub async fn wait_turn(
        &mut self,
        mut turn: oneshot::Receiver<crate::engine::source::Admission>,
    ) -> Option<crate::engine::source::Admission> {
        loop {
            tokio::select! {
                granted = &mut turn => {
                    let admission = granted.ok()?;
                    let _ = self.feed(Input::Admitted).await;
                    return Some(admission);
                }
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Act(a, reply)) => {
                        let r = self.feed(Input::Command(a)).await;
                        let _ = reply.send(r.map(|_| self.lc.recording().clone()));
                        if self.lc.status().is_terminal() {
                            return None;
                        }
                    }
                    Some(Command::RetryNow) => {}
                    Some(Command::Fence) => {
                        self.let_go();
                        return None;
                    }
                    Some(Command::Output(c, reply)) => self.output(c, reply).await,
                    None => return None,
                },
            }
        }
    }

    /// Adds or removes an output; saved when it changed.
    async fn output(
        &mut self,
        c: outputs::stream::Command,
        reply: oneshot::Sender<Result<tapedeck_core::output::Output, Problem>>,
    ) {
        let s = self.services.clone();
        let r = outputs::stream::command(&s, &mut self.streams, self.lc.recording_mut(), c).await;
        if r.is_ok() {
            let _ = self.save().await;
        }
        let _ = reply.send(r);
    }

    /// Feeds one input and carries out the outputs, in order.
    async fn feed(&mut self, input: Input) -> Result<(), Problem> {
        // What the owner reads names the problem, not the server's paths.
        let input = match input {
            Input::Failed(f) => Input::Failed(self.services.redact(f)),
            Input::Finalized(Err(f)) => Input::Finalized(Err(self.services.redact(f))),
            other => other,
        };
        let outputs = self.lc.handle(input, now_ms())?;
        let mut result = Ok(());
        for o in outputs {
            match o {
                Output::Save => {
                    if self.lc.status() == tapedeck_core::Status::Recording
                        && outputs::live_encode(self.lc.recording())
                    {
                        outputs::started(self.lc.recording_mut());
                        let s = self.services.clone();
                        self.streams.start(&s, self.lc.recording());
                    }
                    if self.source.is_some() {
                        // Live numbers until the sink has finished; processing sets the final ones.
                        self.note_stats();
                    }
                    if let Err(e) = self.save().await {
                        tracing::error!(id = %self.lc.recording().id, error = %e, "saving the recording");
                        result = Err(e);
                    }
                    if self.fenced {
                        // Not this node's to announce or carry on.
                        return Ok(());
                    }
                }
                Output::Emit(a) => {
                    self.services
                        .events
                        .emit(a.event_name(), self.lc.recording(), now_ms());
                }
                Output::Source(c) => {
                    if let Some(s) = self.source.as_mut() {
                        s.control(c).await;
                    }
                }
                Output::Finalize => self.finalize_due = true,
                Output::Abort => {
                    if let Some(s) = self.source.take() {
                        s.abort().await;
                    }
                }
                Output::Discard => {
                    if let Some(s) = self.source.take() {
                        s.abort().await;
                    }
                    let work = self.services.work_dir(self.lc.recording().id);
                    let _ = tokio::fs::remove_dir_all(work).await;
                }
            }
        }
        let status = self.lc.status();
        let changed = self
            .status
            .send_if_modified(|s| std::mem::replace(s, status) != status);
        // Once: inputs that arrive after the end change nothing.
        if changed && status.is_terminal() {
            self.services.metrics.finished(status.as_str());
            if let Some(f) = &self.lc.recording().error {
                tracing::warn!(id = %self.lc.recording().id, code = %f.code, message = %f.message, "recording failed");
            }
        }
        result
    }

    /// Puts the meter's numbers in the recording. A recovered recording's
    /// meter starts at zero: counts saved before the restart are kept.
    fn note_stats(&mut self) {
        let (old, new) = (&self.lc.recording().stats, self.meter.stats());
        let merged = tapedeck_core::recording::Stats {
            frames_in: old.frames_in.max(new.frames_in),
            frames_dropped: old.frames_dropped.max(new.frames_dropped),
            frames_invalid: old.frames_invalid.max(new.frames_invalid),
            ..new
        };
        self.lc.recording_mut().stats = merged;
    }

    /// Finishes the sink, processes and stores the file, and completes or fails.
    async fn finalize(&mut self) {
        let started = Instant::now();
        // What was shipped while it recorded is completed first: closing
        // the source rewrites its files.
        let id = self.lc.recording().id;
        self.services.shipping.finish(id).await;
        let result = match self.source.take() {
            Some(s) => match s.close().await {
                Ok(take) => {
                    // The sink's final counts (the last frame is counted only when it finishes).
                    *self
                        .meter
                        .counters
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = take.counters;
                    self.note_stats();
                    let rec = self.lc.recording_mut();
                    match processing::prepare(&self.services, rec, take, started).await {
                        Ok(p) => self.store_with_retry(&p).await,
                        Err(f) => Err(f),
                    }
                }
                Err(f) => Err(f),
            },
            None => Err(tapedeck_core::Failure::new(
                Code::NoSource,
                "no source ever connected",
            )),
        };
        let ok = result.is_ok();
        let _ = self.feed(Input::Finalized(result)).await;
        if ok && self.lc.status() == Status::Completed {
            let work = self.services.work_dir(self.lc.recording().id);
            let _ = tokio::fs::remove_dir_all(work).await;
        }
    }

    /// Stores the prepared files; while the store refuses them, the recording
    /// stays `processing` with a `storage_retry` note, the files are kept,
    /// and the store is tried again with backoff (or at once on
    /// [`Command::RetryNow`]) for `storage.retry_for_s`.
    async fn store_with_retry(&mut self, p: &processing::Prepared) -> Result<(), Failure> {
        let retry_for_ms = (self.services.config.storage.retry_for_s as i64).saturating_mul(1000);
        let mut schedule = tapedeck_core::retry::StorageRetry::new(crate::now_ms(), retry_for_ms);
        // What the recording said before (a grid that failed) is said again
        // once the store took it.
        // (Not a retry note left from before a restart: that one is over.)
        let kept = self
            .lc
            .recording()
            .note
            .clone()
            .filter(|n| n.code != Code::StorageRetry);
        loop {
            let r = processing::store(&self.services, self.lc.recording_mut(), p).await;
            match r {
                Err(f) if f.code == Code::StorageFailed => {
                    let Some(retry) = schedule.failed(crate::now_ms()) else {
                        self.lc.recording_mut().note = kept;
                        return Err(f);
                    };
                    let attempt = retry.attempt;
                    tracing::warn!(id = %self.lc.recording().id, attempt, error = %f.message, "storing failed; retrying");
                    let f = self.services.redact(f);
                    self.lc.recording_mut().note = Some(Failure::new(
                        Code::StorageRetry,
                        format!(
                            "{} (attempt {attempt}; next in {} s; the file is kept)",
                            f.message,
                            retry.wait_ms / 1000
                        ),
                    ));
                    if let Err(e) = self.save().await {
                        tracing::error!(error = %e, "saving the recording");
                    }
                    self.wait_answering(Duration::from_millis(retry.wait_ms.max(0) as u64))
                        .await;
                }
                r => {
                    self.lc.recording_mut().note = kept;
                    return r;
                }
            }
        }
    }

    /// Waits `delay` (or until [`Command::RetryNow`]), answering user actions
    /// meanwhile: none applies while processing.
    async fn wait_answering(&mut self, delay: Duration) {
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Act(a, reply)) => {
                        let status = self.lc.status();
                        let _ = reply.send(Err(status
                            .apply(a)
                            .err()
                            .map(Problem::from)
                            .unwrap_or_else(gone)));
                    }
                    Some(Command::Fence) => {
                        self.let_go();
                        return;
                    }
                    // Refused: it is being stored, not recorded.
                    Some(Command::Output(c, reply)) => self.output(c, reply).await,
                    Some(Command::RetryNow) | None => return,
                },
            }
        }
    }

    /// Saves the recording: in a cluster only while it is still this
    /// node's (`Repo::update_held`); when another node took it over, this
    /// driver lets go instead ([`Driver::let_go`]).
    async fn save(&mut self) -> Result<(), Problem> {
        let s = &self.services;
        if !s.config.cluster.enabled {
            return Ok(s.repo.update(self.lc.recording()).await?);
        }
        let me = s.config.cluster.node_id.clone();
        if !s.repo.update_held(self.lc.recording(), &me).await? {
            self.let_go();
        }
        Ok(())
    }

    /// Another node holds the recording now: nothing more is written,
    /// announced or sent; the source stops at the loop's next turn.
    fn let_go(&mut self) {
        if !self.fenced {
            tracing::warn!(id = %self.lc.recording().id, "another node took this recording over while this one was cut off or stalled: letting go of it");
        }
        self.fenced = true;
    }

    /// Stops anything left running and answers late commands with the final state.
    async fn close(&mut self) {
        if let Some(s) = self.source.take() {
            s.abort().await;
        }
        // Streams push the playlist's end, then stop.
        self.streams.finish(Duration::from_secs(10)).await;
        self.services.sources.set_tap(self.lc.recording().id, None);
        if self.fenced {
            // Its files here are not the recording's any more.
            let id = self.lc.recording().id;
            self.services.shipping.stop(id);
            let _ = tokio::fs::remove_dir_all(self.services.work_dir(id)).await;
            self.services.work.forget(id);
            self.commands.close();
            return;
        }
        // The work folder goes with a recording that no longer needs it
        // (failed or cancelled: nothing will retry it); one that failed to
        // be stored keeps it, counted.
        let rec = self.lc.recording();
        self.services.shipping.stop(rec.id);
        if rec.status.is_terminal() {
            if crate::engine::work::needed(rec) {
                crate::engine::work::measure(&self.services, rec).await;
            } else {
                let _ = tokio::fs::remove_dir_all(self.services.work_dir(rec.id)).await;
                self.services.work.forget(rec.id);
                if self.services.config.cluster.ships() {
                    crate::engine::ship::forget(&self.services, rec.id).await;
                }
            }
        }
        self.commands.close();
        while let Ok(cmd) = self.commands.try_recv() {
            let Command::Act(a, reply) = cmd else {
                continue;
            };
            let status = self.lc.status();
            let _ = reply.send(Err(status
                .apply(a)
                .err()
                .map(Problem::from)
                .unwrap_or_else(gone)));
        }
    }
}

/// The recording ended while the request was on its way.
pub(crate) fn gone() -> Problem {
    Problem::new(Code::InvalidTransition, "the recording has just ended")
}
