//! The CPU-cost gate: every recording reserves its estimated cost
//! ([`tapedeck_core::admission::estimate`]) from the server's budget while
//! it runs. A live source that does not fit is refused (429
//! `server_busy`); a web recording that does not fit (or finds
//! `web.max_concurrent` browsers running) waits `pending` in the fair queue
//! and is handed its [`Admission`] when enough is released.
//!
//! A recording admitted while the others running hold at least
//! `encoder.busy_above` of the budget is *busy*: its encoder starts at the
//! busy preset with one thread (`encoding::encode_spec`), and it reserves
//! what that costs ([`estimate_busy`]). The gate remembers the choice, so
//! the reservation and the encoder agree.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tapedeck_core::Code;

use tapedeck_core::RecordingId;
use tapedeck_core::admission::{Budget, FairQueue, MilliCores, estimate, estimate_busy, queues};
use tapedeck_core::recording::Recording;
use tokio::sync::oneshot;

use crate::config::Config;

mod deferred;
use tapedeck_core::Problem;

/// What a running recording holds; released when dropped.
#[derive(Debug, Default)]
pub struct Admission {
    id: Option<RecordingId>,
    reserved: MilliCores,
    web: bool,
    /// An extra browser's: borrowed room that others' admission ignores.
    borrowed: bool,
    /// A camera's accepted beyond the budget: spooled, encoded later.
    deferred: bool,
    gate: Option<Arc<Gate>>,
}

impl Admission {
    /// Whether the recording was accepted beyond the budget: its pictures
    /// are only spooled, and encoded once [`Gate::queue_encode`] grants.
    pub fn is_deferred(&self) -> bool {
        self.deferred
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            if self.deferred {
                let mut st = gate.lock();
                st.deferred -= 1;
                if let Some(id) = self.id {
                    st.busy.remove(&id);
                }
                return;
            }
            gate.release(self.id, self.reserved, self.web, self.borrowed);
        }
    }
}

/// How a new recording gets its admission.
pub enum Ticket {
    /// It fits now.
    Now(Admission),
    /// It waits in the queue; the admission comes through here.
    Queued(oneshot::Receiver<Admission>),
}

struct Waiter {
    rec: Recording,
    grant: oneshot::Sender<Admission>,
    /// A web recording (it needs a browser), else a deferred encode.
    web: bool,
}

struct State {
    budget: Budget,
    web_running: u32,
    /// What extra browsers borrowed (`Gate::extra_browsers`), and how many.
    borrowed: MilliCores,
    web_borrowed: u32,
    queue: FairQueue<RecordingId>,
    waiting: HashMap<RecordingId, Waiter>,
    /// Whether each admitted recording is busy.
    busy: HashMap<RecordingId, bool>,
    /// Cameras accepted beyond the budget, spooling or waiting to encode.
    deferred: u32,
}

/// The server's budget and queue (one per server).
pub struct Gate {
    state: Mutex<State>,
    total: MilliCores,
    web_max: u32,
    max_queued: usize,
    busy_above: f64,
    deferred_max: u32,
    /// Where deferred cameras' pictures wait, and the free bytes it must keep.
    data_dir: std::path::PathBuf,
    min_free: u64,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("total", &self.total)
            .field("reserved", &self.reserved())
            .finish()
    }
}

/// Figures for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateFigures {
    /// The budget, thousandths of a core.
    pub total: MilliCores,
    /// What running recordings hold.
    pub reserved: MilliCores,
    /// Web recordings waiting.
    pub queued: usize,
}

impl Gate {
    /// A gate with the configured budget (`limits.cpu_budget_cores`, 0: the
    /// machine's cores), `web.max_concurrent` and `web.max_queued`.
    pub fn new(config: &Config) -> Arc<Self> {
        let cores = if config.limits.cpu_budget_cores > 0.0 {
            config.limits.cpu_budget_cores
        } else {
            // Four fifths of the cores: the rest is for what reserves
            // nothing (processing, the database, the system) and for the
            // estimates' error. Filled to every core by estimate, 39
            // cameras on 2 cores fell behind (`bench/frames_many.sh`).
            std::thread::available_parallelism().map_or(1, |n| n.get()) as f64 * 0.8
        };
        let total = (cores * 1000.0).round().clamp(1.0, f64::from(u32::MAX)) as MilliCores;
        Arc::new(Self {
            state: Mutex::new(State {
                budget: Budget::new(total),
                web_running: 0,
                borrowed: 0,
                web_borrowed: 0,
                queue: FairQueue::default(),
                waiting: HashMap::new(),
                busy: HashMap::new(),
                deferred: 0,
            }),
            total,
            web_max: config.web.max_concurrent,
            max_queued: config.web.max_queued as usize,
            busy_above: config.encoder.busy_above,
            deferred_max: config.limits.max_deferred_cameras,
            data_dir: config.server.data_dir.clone(),
            min_free: config.limits.min_free_disk_bytes,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fits(&self, st: &State, cost: MilliCores, web: bool) -> bool {
        st.budget.fits(cost) && (!web || st.web_running < self.web_max)
    }

    /// Whether the recordings running now hold at least `busy_above` of
    /// the budget (0: always).
    fn busy_now(&self, st: &State) -> bool {
        f64::from(st.budget.reserved()) / f64::from(self.total) >= self.busy_above
    }

    /// The cost of `rec` admitted now, and whether it is busy.
    fn cost_now(&self, st: &State, rec: &Recording) -> (MilliCores, bool) {
        // A call's grid composed live is an encode of its own.
        let live_grid = match &rec.source {
            tapedeck_core::recording::SourceSpec::Room(_)
                if crate::engine::outputs::live_encode(rec) =>
            {
                tapedeck_core::admission::estimate_live_grid(&rec.video)
            }
            _ => 0,
        };
        if self.busy_now(st) {
            (estimate_busy(&rec.source, &rec.video) + live_grid, true)
        } else {
            (estimate(&rec.source, &rec.video) + live_grid, false)
        }
    }

    fn take(
        self: &Arc<Self>,
        st: &mut State,
        id: RecordingId,
        (cost, busy): (MilliCores, bool),
        web: bool,
    ) -> Admission {
        let reserved = st.budget.try_reserve(cost).unwrap_or(0);
        if web {
            st.web_running += 1;
        }
        st.busy.insert(id, busy);
        Admission {
            id: Some(id),
            reserved,
            web,
            borrowed: false,
            deferred: false,
            gate: Some(self.clone()),
        }
    }

    /// What a web recording claimed from a cluster's queue may cost now:
    /// the budget left (all of it while nothing runs: a recording larger
    /// than the budget runs alone), or `None` when no browser is free.
    pub fn free_for_web(&self) -> Option<MilliCores> {
        let st = self.lock();
        if st.web_running >= self.web_max {
            return None;
        }
        let taken = st.budget.reserved() + st.borrowed;
        if taken == 0 {
            return Some(MilliCores::MAX);
        }
        self.total.checked_sub(taken).filter(|f| *f > 0)
    }

    /// The budget a batch job claimed from a cluster's queue may cost now
    /// (all of it while nothing is reserved), `None` when nothing is left.
    pub fn free_for_work(&self) -> Option<MilliCores> {
        let st = self.lock();
        let taken = st.budget.reserved() + st.borrowed;
        if taken == 0 {
            return Some(MilliCores::MAX);
        }
        self.total.checked_sub(taken).filter(|f| *f > 0)
    }

    /// Reserves `cost` for a batch job (a call's grid) this node claimed,
    /// if it still fits; given back when the admission drops.
    pub fn admit_work(self: &Arc<Self>, cost: MilliCores) -> Option<Admission> {
        let reserved = self.lock().budget.try_reserve(cost)?;
        Some(Admission {
            id: None,
            reserved,
            web: false,
            borrowed: false,
            deferred: false,
            gate: Some(self.clone()),
        })
    }

    /// Admits a web recording this node claimed from a cluster's queue, if
    /// it still fits (something may have taken the room since).
    pub fn admit_claimed(self: &Arc<Self>, rec: &Recording) -> Option<Admission> {
        let mut st = self.lock();
        let (cost, busy) = self.cost_now(&st, rec);
        if !self.fits(&st, cost, true) {
            return None;
        }
        Some(self.take(&mut st, rec.id, (cost, busy), true))
    }

    /// Admits `rec` now, queues it (web), or refuses it.
    pub fn admit(self: &Arc<Self>, rec: &Recording) -> Result<Ticket, Problem> {
        let web = queues(&rec.source);
        let mut st = self.lock();
        let (cost, busy) = self.cost_now(&st, rec);
        if web {
            if st.queue.is_empty() && self.fits(&st, cost, true) {
                st.queue.served(&rec.owner);
                return Ok(Ticket::Now(self.take(&mut st, rec.id, (cost, busy), true)));
            }
            if st.queue.len() >= self.max_queued {
                return Err(Problem::new(
                    Code::QueueFull,
                    format!(
                        "{} web recordings already wait for their turn (web.max_queued)",
                        st.queue.len()
                    ),
                ));
            }
            let (grant, rx) = oneshot::channel();
            st.queue.push(&rec.owner, rec.id);
            st.waiting.insert(
                rec.id,
                Waiter {
                    rec: rec.clone(),
                    grant,
                    web: true,
                },
            );
            return Ok(Ticket::Queued(rx));
        }
        if self.fits(&st, cost, false) {
            return Ok(Ticket::Now(self.take(&mut st, rec.id, (cost, busy), false)));
        }
        // A camera's pictures can wait on disk: accepted, spooled only,
        // encoded when there is room (`queue_encode`), busy.
        if self.may_defer(&st, rec) {
            st.deferred += 1;
            st.busy.insert(rec.id, true);
            return Ok(Ticket::Now(Admission {
                id: Some(rec.id),
                reserved: 0,
                web: false,
                borrowed: false,
                deferred: true,
                gate: Some(self.clone()),
            }));
        }
        Err(self.busy_problem(&st, cost, rec))
    }

    fn busy_problem(&self, st: &State, cost: MilliCores, rec: &Recording) -> Problem {
        // A camera beyond the budget would have waited on disk: say why not.
        let wait = self
            .why_not_deferred(st, rec)
            .map_or(String::new(), |why| format!(", and it cannot wait: {why}"));
        Problem::new(
            Code::ServerBusy,
            format!(
                "the server's CPU budget is taken: {:.2} of {:.2} cores reserved, and this recording needs about {:.2} (limits.cpu_budget_cores){wait}; try again later",
                f64::from(st.budget.reserved()) / 1000.0,
                f64::from(self.total) / 1000.0,
                f64::from(cost.min(self.total)) / 1000.0
            ),
        )
    }

    /// Up to `want` more browsers for `rec`, admitted now (a deterministic
    /// recording rendered in ranges, one browser each), each with what a
    /// busy recording like `rec` costs, on room the budget and
    /// `web.max_concurrent` have. None while other recordings wait: a
    /// recording spreads out only on room nobody queues for. Never waits.
    ///
    /// The room is borrowed: the admission of any recording after it
    /// (a camera, a call, another user's web recording) does not count it,
    /// so a spread-out recording never makes another one wait or be
    /// refused; for a while the machine is then over its budget, and the
    /// ranges render slower.
    ///
    /// A recording that spreads out fills the machine: it becomes busy, so
    /// every range's encoder starts at the busy preset (all alike, so the
    /// files join). Measured on 60 s of the rich clock page at 1080p30 by
    /// two browsers (`bench/web_speed.sh --browsers`), the busy preset
    /// renders it about a tenth faster.
    pub fn extra_browsers(self: &Arc<Self>, rec: &Recording, want: u32) -> Vec<Admission> {
        let mut st = self.lock();
        if !st.queue.is_empty() {
            return vec![];
        }
        let cost = estimate_busy(&rec.source, &rec.video);
        let mut out = vec![];
        while (out.len() as u32) < want
            && st.budget.reserved() + st.borrowed + cost <= self.total
            && st.web_running + st.web_borrowed < self.web_max
        {
            st.borrowed += cost;
            st.web_borrowed += 1;
            out.push(Admission {
                // Not the recording's own: its release leaves `busy` be.
                id: None,
                reserved: cost,
                web: true,
                borrowed: true,
                deferred: false,
                gate: Some(self.clone()),
            });
        }
        if !out.is_empty() {
            st.busy.insert(rec.id, true);
        }
        out
    }

    /// Admits `rec` after a restart: what was admitted before is not
    /// refused; a web recording queues as if new (in the order given).
    pub fn readmit(self: &Arc<Self>, rec: &Recording) -> Ticket {
        match self.admit(rec) {
            Ok(t) => t,
            Err(_) => Ticket::Now(Admission::default()),
        }
    }

    fn release(
        self: &Arc<Self>,
        id: Option<RecordingId>,
        reserved: MilliCores,
        web: bool,
        borrowed: bool,
    ) {
        {
            let mut st = self.lock();
            if borrowed {
                st.borrowed = st.borrowed.saturating_sub(reserved);
                st.web_borrowed = st.web_borrowed.saturating_sub(1);
                return;
            }
            st.budget.release(reserved);
            if let Some(id) = id {
                st.busy.remove(&id);
            }
            if web {
                st.web_running = st.web_running.saturating_sub(1);
            }
        }
        self.dispatch();
    }

    /// Hands admissions to the queue's head while it fits.
    fn dispatch(self: &Arc<Self>) {
        loop {
            let (admission, grant) = {
                let mut st = self.lock();
                let Some(&id) = st.queue.peek() else { return };
                // Costed at its turn: the load then says whether it is busy.
                let Some((cost, web)) = st.waiting.get(&id).map(|w| match w.web {
                    true => (self.cost_now(&st, &w.rec), true),
                    false => ((self.encode_cost(), true), false),
                }) else {
                    st.queue.pop();
                    continue;
                };
                if !self.fits(&st, cost.0, web) {
                    return;
                }
                st.queue.pop();
                let Some(w) = st.waiting.remove(&id) else {
                    continue;
                };
                (self.take(&mut st, id, cost, web), w.grant)
            };
            // A waiter that went away gives it back (its drop runs dispatch again).
            drop(grant.send(admission));
        }
    }

    /// Takes `id` out of the queue (cancelled or deleted while waiting).
    pub fn withdraw(self: &Arc<Self>, id: RecordingId) {
        let removed = {
            let mut st = self.lock();
            st.waiting.remove(&id);
            st.queue.remove(&id)
        };
        if removed {
            self.dispatch();
        }
    }

    /// Where `id` waits (1 is next), if it does.
    pub fn position(&self, id: RecordingId) -> Option<u32> {
        self.lock().queue.position(&id).map(|p| p as u32)
    }

    /// Recordings waiting, of `owner` or of everyone.
    pub fn queued(&self, owner: Option<&str>) -> usize {
        let st = self.lock();
        match owner {
            Some(o) => st.queue.count_of(o),
            None => st.queue.len(),
        }
    }

    /// Whether `id`'s encoder is to start busy: as admitted, or for a
    /// recording the gate does not hold (one being recovered), by the
    /// load now.
    pub fn is_busy(&self, id: RecordingId) -> bool {
        let st = self.lock();
        st.busy
            .get(&id)
            .copied()
            .unwrap_or_else(|| self.busy_now(&st))
    }

    /// What running recordings hold, extra browsers' borrowed room too.
    pub fn reserved(&self) -> MilliCores {
        let st = self.lock();
        st.budget.reserved() + st.borrowed
    }

    /// Budget, reserved and queued, for `/metrics`.
    pub fn figures(&self) -> GateFigures {
        let st = self.lock();
        GateFigures {
            total: self.total,
            reserved: st.budget.reserved() + st.borrowed,
            queued: st.queue.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_core::recording::SourceSpec;

    fn web(n: u64) -> Recording {
        Recording {
            id: RecordingId::from_parts(n, n.into()),
            owner: format!("user{n}"),
            ..Recording::example()
        }
    }

    fn gate(cores: f64, browsers: u32) -> Arc<Gate> {
        let mut c = Config::default();
        c.limits.cpu_budget_cores = cores;
        c.web.max_concurrent = browsers;
        Gate::new(&c)
    }

    #[test]
    fn extra_browsers_take_what_fits_and_never_what_a_waiting_one_needs() {
        let cost = estimate_busy(&web(1).source, &web(1).video);
        // Room for three browsers' cost, four browsers allowed.
        let g = gate(f64::from(cost * 3) / 1000.0, 4);
        let Ok(Ticket::Now(first)) = g.admit(&web(1)) else {
            panic!("the first fits")
        };
        assert!(!g.is_busy(web(1).id));
        let extra = g.extra_browsers(&web(1), 5);
        assert_eq!(extra.len(), 2, "the budget holds three");
        assert_eq!(g.reserved(), cost * 3);
        // Spread out, its encoders start at the busy preset, all alike.
        assert!(g.is_busy(web(1).id));
        // A 4K recording waits for more than the extras give back.
        let mut big = web(2);
        (big.video.width, big.video.height) = (3840, 2160);
        assert!(estimate(&big.source, &big.video) > cost * 2);
        let Ok(Ticket::Queued(mut turn)) = g.admit(&big) else {
            panic!("the budget is full")
        };
        drop(extra);
        assert!(turn.try_recv().is_err(), "still too big");
        // Room for another browser, but someone waits: nobody spreads out.
        assert!(g.extra_browsers(&web(1), 1).is_empty());
        drop(first);
        let _big = turn.try_recv().expect("the waiting one got its turn");
        // Borrowed room gives way: a camera and another user's web
        // recording are admitted over a recording spread out to the full.
        let g = gate(f64::from(cost * 2) / 1000.0, 3);
        let Ok(Ticket::Now(_a)) = g.admit(&web(5)) else {
            panic!("fits")
        };
        assert_eq!(g.extra_browsers(&web(5), 3).len(), 1);
        let mut camera = web(6);
        camera.source = SourceSpec::Frames { input_fps: Some(5) };
        assert!(matches!(g.admit(&camera), Ok(Ticket::Now(_))));
        let Ok(Ticket::Now(_other)) = g.admit(&web(7)) else {
            panic!("another user's web recording runs at once")
        };
        // max_concurrent counts every browser.
        let g = gate(100.0, 2);
        let Ok(Ticket::Now(_a)) = g.admit(&web(4)) else {
            panic!("fits")
        };
        assert_eq!(g.extra_browsers(&web(4), 3).len(), 1);
    }
}
