//! The supervisor: the registry of drivers and admission.
//!
//! Creating a recording checks the server's, the user's and the source's
//! limits, stores it `pending` and starts its driver (`driver.rs`). Handlers
//! reach a recording's driver only through here. Recovery after a restart
//! is in `recovery.rs`, the retention sweep in `retention.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tapedeck_core::Code;

use tapedeck_core::RecordingId;
use tapedeck_core::lifecycle::Input;
use tapedeck_core::recording::{Action, Recording, Stats, Status};
use tapedeck_store::blob::Blobs;
use tapedeck_store::repo::Repo;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::engine::driver::{Command, Driver, gone};
use crate::engine::events::EventBus;
use crate::engine::metrics::Metrics;
use crate::engine::services::Services;
use crate::engine::source::{self, Admission, Meter, OpenCtx, Ticket};
use crate::now_ms;
use tapedeck_core::Problem;

#[derive(Clone, Debug)]
struct DriverHandle {
    cmd: mpsc::Sender<Command>,
    meter: Arc<Meter>,
    status: watch::Receiver<Status>,
    /// For a call guest's in-browser recording: the host (its owner) and
    /// the guest.
    guest: Option<Guest>,
    /// Its source's kind.
    kind: tapedeck_core::recording::SourceKind,
}

/// A call guest, and the room's host whose recordings theirs are.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Guest {
    host: String,
    room: tapedeck_core::RoomId,
    name: String,
}

impl Guest {
    /// The guest who sends `rec`, if a call guest does.
    fn of(rec: &Recording) -> Option<Self> {
        let g = rec.source.guest()?;
        Some(Guest {
            host: rec.owner.clone(),
            room: g.room,
            name: g.name,
        })
    }
}

/// How a driver gets its source.
pub(crate) enum Start {
    /// Open the recording's source with this slot.
    Open(Admission),
    /// Wait, pending, for the queue to hand over a slot, then open.
    Queued(tokio::sync::oneshot::Receiver<Admission>),
    /// The server stopped while it was active: rebuild it from what was spooled.
    Recover,
    /// Its node died: rebuild it from what was shipped (restored into
    /// the work folder), ended `node_lost`.
    TakeOver,
}

/// The supervisor.
#[derive(Clone, Debug)]
pub struct Supervisor {
    /// What drivers share.
    pub services: Arc<Services>,
    drivers: Arc<Mutex<HashMap<RecordingId, DriverHandle>>>,
    create_lock: Arc<tokio::sync::Mutex<()>>,
}

impl Supervisor {
    /// A supervisor over the given parts.
    pub fn new(
        config: Config,
        repo: Repo,
        blobs: Blobs,
        events: EventBus,
        metrics: Metrics,
        rtc: crate::rtc::Rtc,
    ) -> Self {
        Self {
            services: Arc::new(Services::new(config, repo, blobs, events, metrics, rtc)),
            drivers: Arc::default(),
            create_lock: Arc::default(),
        }
    }

    fn handle(&self, id: RecordingId) -> Option<DriverHandle> {
        self.drivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Active recordings (pending, recording, paused) call guests send
    /// that `pick` selects.
    fn active_guest_recordings(&self, pick: impl Fn(&Guest) -> bool) -> u64 {
        self.drivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|h| h.status.borrow().is_active() && h.guest.as_ref().is_some_and(&pick))
            .count() as u64
    }

    /// What this server holds: live sessions (frames sockets, calls'
    /// recordings, uploads) and queued work (web recordings rendering or
    /// waiting their turn).
    pub fn held(&self) -> (u32, u32) {
        let drivers = self.drivers.lock().unwrap_or_else(|e| e.into_inner());
        let count = |pick: fn(&tapedeck_core::kinds::Traits) -> bool| {
            drivers.values().filter(|h| pick(&h.kind.traits())).count() as u32
        };
        (count(|t| t.live), count(|t| t.queues))
    }

    /// Whether `id` has a running driver.
    pub fn is_active(&self, id: RecordingId) -> bool {
        self.handle(id).is_some()
    }

    /// Checks limits, stores a new pending recording and starts its driver.
    pub async fn create(&self, rec: Recording) -> Result<Recording, Problem> {
        self.create_as(rec, false).await
    }

    /// [`Supervisor::create`]; `placed` when another node of the cluster
    /// placed it here having looked for room: a camera that does not fit
    /// is then taken deferred, not sent on again (the others' figures may
    /// be a heartbeat old).
    pub async fn create_as(&self, mut rec: Recording, placed: bool) -> Result<Recording, Problem> {
        let s = &self.services;
        let lim = &s.config.limits;
        let _guard = self.create_lock.lock().await;
        // Web recordings waiting their turn do not count: they run nothing.
        let gate = &s.sources.gate;
        let clustered = s.config.cluster.enabled;
        let in_cluster_queue = crate::engine::dispatch::queued_in_cluster(s, &rec);
        let queued = |owner: Option<&str>| {
            let owner = owner.map(str::to_string);
            async move {
                if clustered {
                    s.repo
                        .queued_jobs(owner.as_deref())
                        .await
                        .map(|n| n as usize)
                } else {
                    Ok(gate.queued(owner.as_deref()))
                }
            }
        };
        let active = |n: u64, queued: usize| n.saturating_sub(queued as u64);
        if active(s.repo.count_active(None).await?, queued(None).await?)
            >= u64::from(lim.max_concurrent)
        {
            return Err(Problem::new(
                Code::TooManyRecordings,
                format!(
                    "the server already runs {} recordings (limits.max_concurrent)",
                    lim.max_concurrent
                ),
            ));
        }
        // A call guest's recordings (sent from their browser, filed under
        // the host) have a limit of their own and take none of the host's.
        let guest = Guest::of(&rec);
        if let Some(g) = &guest {
            let theirs = self.active_guest_recordings(|o| o == g);
            if theirs >= u64::from(lim.max_uploads_per_guest) {
                return Err(Problem::new(
                    Code::TooManyRecordings,
                    format!(
                        "you already send {theirs} recordings from your browser in this call (limits.max_uploads_per_guest)"
                    ),
                ));
            }
        } else if active(
            s.repo
                .count_active(Some(&rec.owner))
                .await?
                .saturating_sub(self.active_guest_recordings(|g| g.host == rec.owner)),
            queued(Some(&rec.owner)).await?,
        ) >= u64::from(lim.max_concurrent_per_user)
        {
            return Err(Problem::new(
                Code::TooManyRecordings,
                format!(
                    "you already run {} recordings (limits.max_concurrent_per_user)",
                    lim.max_concurrent_per_user
                ),
            ));
        }
        // An upload of a declared length has reserved its bytes against
        // the quota already (`Ledger::reserve`): its own reservation is in
        // `used` and must not refuse it.
        let reserved = rec.source.reserved_quota();
        if lim.user_quota_bytes > 0 && !reserved {
            let used = s.usage_bytes(&rec.owner, None).await?;
            if used >= lim.user_quota_bytes {
                return Err(Problem::new(
                    Code::QuotaExceeded,
                    format!(
                        "your recordings use {used} of your {} bytes; delete some first",
                        lim.user_quota_bytes
                    ),
                ));
            }
        }
        rec.max_duration_s = rec.max_duration_s.min(lim.max_duration_s);
        if in_cluster_queue {
            return self.create_queued(rec, _guard).await;
        }
        // In a cluster a camera that does not fit here is recorded live
        // where it fits (the face places it there on `server_busy`); it
        // is spooled for later only where no node has room.
        if s.config.cluster.enabled
            && !placed
            && gate.would_defer(&rec)
            && room_elsewhere(s, &rec).await
        {
            return Err(gate.busy(&rec));
        }
        let ticket = gate.admit(&rec)?;
        if let Err(e) = s.repo.insert(&rec).await {
            if let Ticket::Queued(_) = ticket {
                gate.withdraw(rec.id);
            }
            return Err(e.into());
        }
        drop(_guard);
        s.metrics.created(rec.source.kind().as_str());
        s.events.emit("recording.created", &rec, now_ms());
        let start = match ticket {
            Ticket::Now(a) => Start::Open(a),
            Ticket::Queued(turn) => Start::Queued(turn),
        };
        self.spawn_driver(rec.clone(), start);
        rec.queue_position = gate.position(rec.id);
        Ok(rec)
    }

    /// A web recording of a cluster: stored pending, with no node, and
    /// queued as a job any node may claim (`dispatch`).
    async fn create_queued(
        &self,
        mut rec: Recording,
        guard: tokio::sync::MutexGuard<'_, ()>,
    ) -> Result<Recording, Problem> {
        let s = &self.services;
        let max = s.config.web.max_queued;
        let waiting = s.repo.queued_jobs(None).await?;
        if waiting >= max as u64 {
            return Err(Problem::new(
                Code::QueueFull,
                format!("{waiting} web recordings already wait for their turn (web.max_queued)"),
            ));
        }
        rec.node = None;
        s.repo.insert(&rec).await?;
        if let Err(e) = crate::engine::dispatch::enqueue(s, &rec).await {
            let _ = s.repo.delete(rec.id).await;
            return Err(e);
        }
        drop(guard);
        s.metrics.created(rec.source.kind().as_str());
        s.events.emit("recording.created", &rec, now_ms());
        rec.queue_position = crate::engine::dispatch::position(s, rec.id).await;
        Ok(rec)
    }

    /// Where `rec` waits for its turn (1 is next), if it does: in this
    /// node's queue, or in the cluster's.
    pub async fn queue_position_of(&self, rec: &Recording) -> Option<u32> {
        if rec.status == Status::Pending
            && rec.node.is_none()
            && crate::engine::dispatch::queued_in_cluster(&self.services, rec)
        {
            return crate::engine::dispatch::position(&self.services, rec.id).await;
        }
        // A deferred camera's encode waiting in the cluster's queue.
        if rec.status == Status::Processing
            && self.services.config.cluster.enabled
            && rec.source.kind() == tapedeck_core::SourceKind::Frames
        {
            let job = format!("encode-{}", rec.id);
            if let Some(p) = crate::engine::dispatch::job_position(&self.services, &job).await {
                return Some(p);
            }
        }
        self.queue_position(rec.id)
    }

    /// Starts the driver of `rec`.
    pub(crate) fn spawn_driver(&self, rec: Recording, start: Start) {
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (ev_tx, ev_rx) = mpsc::channel(16);
        let (status_tx, status_rx) = watch::channel(rec.status);
        let meter = Arc::new(Meter::default());
        self.drivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                rec.id,
                DriverHandle {
                    cmd: cmd_tx,
                    meter: meter.clone(),
                    status: status_rx.clone(),
                    guest: Guest::of(&rec),
                    kind: rec.source.kind(),
                },
            );
        let services = self.services.clone();
        let rec_queues = rec.source.kind().traits().queues;
        services.metrics.active(1);
        let drivers = self.drivers.clone();
        tokio::spawn(async move {
            let id = rec.id;
            // The driver's life; the registry forgets it however it ends.
            async {
                let mut driver = Driver::new(
                    services.clone(),
                    rec.clone(),
                    meter.clone(),
                    cmd_rx,
                    ev_rx,
                    status_tx,
                );
                // What to open with: `None` recovers from the spool; a queued
                // recording cancelled before its turn ends here.
                let taken_over = matches!(start, Start::TakeOver);
                let admission = match start {
                    Start::Open(a) => Some(a),
                    Start::Recover | Start::TakeOver => None,
                    Start::Queued(turn) => match driver.wait_turn(turn).await {
                        Some(a) => Some(a),
                        None => {
                            services.sources.gate.withdraw(id);
                            return;
                        }
                    },
                };
                match admission {
                    Some(admission) => {
                        let shipped = rec.clone();
                        let opened = source::open(OpenCtx {
                            services: services.clone(),
                            rec,
                            events: ev_tx,
                            status: status_rx,
                            meter,
                            admission,
                            deferred: false,
                        })
                        .await;
                        if opened.is_ok() {
                            services.shipping.start(&services, &shipped);
                        }
                        driver.run(opened, None).await;
                    }
                    None => {
                        drop(ev_tx);
                        let from_spool = source::recovered(services.clone(), &rec);
                        let first = match taken_over {
                            true => Input::TakenOver,
                            false => Input::Restarted,
                        };
                        driver.run(Ok(from_spool), Some(first)).await;
                    }
                }
            }
            .await;
            services.sources.unregister(id);
            if services.config.cluster.enabled {
                // Its job, if it came from the cluster's queue, is done;
                // either way its room is free for a queued one.
                if rec_queues && let Err(e) = services.repo.finish_job(&id.to_string()).await {
                    tracing::warn!(error = %e, %id, "a finished job stays in the queue");
                }
                crate::engine::dispatch::wake_all(&services).await;
            }
            drivers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            services.metrics.active(-1);
        });
    }

    /// Whether a driver here holds `id`.
    pub fn drives(&self, id: RecordingId) -> bool {
        self.handle(id).is_some()
    }

    /// The recordings this node has a driver for.
    pub fn driven(&self) -> Vec<RecordingId> {
        let drivers = self.drivers.lock().unwrap_or_else(|e| e.into_inner());
        drivers.keys().copied().collect()
    }

    /// Tells `id`'s driver that another node took the recording over.
    pub async fn fence(&self, id: RecordingId) {
        if let Some(h) = self.handle(id) {
            let _ = h.cmd.send(Command::Fence).await;
        }
    }

    /// Live numbers of an active recording (frames, duration so far).
    pub fn progress(&self, id: RecordingId) -> Option<Stats> {
        self.handle(id).map(|h| h.meter.stats())
    }

    /// Where a web recording waits for its turn (1 is next), if it does.
    pub fn queue_position(&self, id: RecordingId) -> Option<u32> {
        self.services.sources.gate.position(id)
    }

    /// Seconds recorded so far by an active recording (pauses left out).
    pub fn recorded_s(&self, id: RecordingId) -> Option<f64> {
        self.handle(id)
            .map(|h| h.meter.progress().recorded_us as f64 / 1e6)
    }

    /// A user action on a recording the caller may control.
    pub async fn act(&self, rec: Recording, action: Action) -> Result<Recording, Problem> {
        // An upload's bytes come from its client, which pauses by not
        // sending: a pause here would show a state the upload does not have.
        if matches!(action, Action::Pause | Action::Resume) && !rec.source.traits().pauses {
            return Err(Problem::new(
                Code::WrongSource,
                "an upload does not pause: its client pauses by not sending (stop ends it with what arrived)",
            ));
        }
        // A recording being finished takes no user action (its driver,
        // busy finishing, might answer only once the file is done): say so now.
        if rec.status == Status::Processing
            && let Err(e) = rec.status.apply(action)
        {
            return Err(e.into());
        }
        match self.handle(rec.id) {
            Some(h) => {
                let (tx, rx) = oneshot::channel();
                h.cmd
                    .send(Command::Act(action, tx))
                    .await
                    .map_err(|_| gone())?;
                rx.await.map_err(|_| gone())?
            }
            // Waiting in the cluster's queue: out of it, or, claimed
            // meanwhile, held by a node now.
            None if rec.status == Status::Pending
                && rec.node.is_none()
                && crate::engine::dispatch::queued_in_cluster(&self.services, &rec) =>
            {
                crate::engine::dispatch::withdraw(self, rec, action)
                    .await?
                    .ok_or_else(crate::engine::dispatch::moving)
            }
            // Held by another node (claimed from the queue that instant,
            // or a request not forwarded): that node acts on it.
            None if held_elsewhere(&self.services, &rec) => Err(crate::engine::dispatch::moving()),
            // No driver: the recording is final.
            None => Err(match rec.status.apply(action) {
                Err(e) => e.into(),
                Ok(_) => gone(),
            }),
        }
    }

    /// Adds or removes a stream output of `rec` while it records.
    pub async fn output(
        &self,
        rec: &Recording,
        cmd: crate::engine::outputs::stream::Command,
    ) -> Result<tapedeck_core::output::Output, Problem> {
        let Some(h) = self.handle(rec.id) else {
            return Err(Problem::new(
                Code::InvalidTransition,
                format!(
                    "the recording is {}; outputs change only while it records",
                    rec.status.as_str()
                ),
            ));
        };
        let (tx, rx) = oneshot::channel();
        h.cmd
            .send(Command::Output(cmd, tx))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Tells the driver of `id` to store its finished file now, if it is
    /// waiting out a storage retry; false if `id` has no driver.
    pub async fn retry_store(&self, id: RecordingId) -> bool {
        match self.handle(id) {
            Some(h) => h.cmd.send(Command::RetryNow).await.is_ok(),
            None => false,
        }
    }

    /// One retention pass (`retention.rs`); returns how many were deleted.
    pub async fn sweep_once(&self) -> Result<usize, Problem> {
        let cluster = self.services.config.cluster.enabled;
        crate::engine::retention::sweep_once(&self.services, |id| self.is_active(id), cluster).await
    }

    /// Deletes expired recordings every `retention.sweep_interval_s`.
    pub async fn sweep_forever(self) {
        crate::engine::retention::sweep_forever(&self.services, |id| self.is_active(id)).await
    }

    /// Deletes a recording's media, thumbnails, work files and row.
    pub async fn delete(&self, rec: &Recording) -> Result<(), Problem> {
        // A live recording another node holds is that node's to end first
        // (its driver and spool are there).
        if self.handle(rec.id).is_none() && held_elsewhere(&self.services, rec) {
            return Err(Problem::new(
                Code::InvalidTransition,
                format!(
                    "the recording is {} on node {}; stop or cancel it first",
                    rec.status.as_str(),
                    rec.node.as_deref().unwrap_or("?")
                ),
            ));
        }
        if let Some(h) = self.handle(rec.id) {
            if rec.status != Status::Pending {
                return Err(Problem::new(
                    Code::InvalidTransition,
                    format!(
                        "the recording is {}; stop or cancel it first",
                        rec.status.as_str()
                    ),
                ));
            }
            let (tx, rx) = oneshot::channel();
            let _ = h.cmd.send(Command::Act(Action::Cancel, tx)).await;
            let _ = rx.await;
        }
        crate::engine::retention::delete_recording(&self.services, rec).await
    }
}

/// Whether another live node of the cluster has the CPU budget to record
/// `rec` live.
async fn room_elsewhere(s: &Services, rec: &Recording) -> bool {
    let me = s.config.cluster.node_id.as_str();
    let need = f64::from(tapedeck_core::admission::estimate(&rec.source, &rec.video)) / 1000.0;
    let timeout_ms = (s.config.cluster.node_timeout_s as i64).saturating_mul(1000);
    let now = now_ms();
    s.repo.nodes().await.is_ok_and(|nodes| {
        nodes.iter().any(|n| {
            n.id != me
                && !n.draining
                && tapedeck_core::cluster::alive(n.heartbeat_at, now, timeout_ms)
                && n.cpu.free() >= need
        })
    })
}

fn held_elsewhere(s: &Services, rec: &Recording) -> bool {
    s.config.cluster.enabled
        && !rec.status.is_terminal()
        && rec
            .node
            .as_deref()
            .is_some_and(|n| n != s.config.cluster.node_id)
}
