//! Prometheus metrics at `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CounterLabel {
    counter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CpuLabel {
    what: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProgramLabel {
    program: String,
    outcome: String,
}

/// The server's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    created: Family<Kind, Counter>,
    finished: Family<StatusLabel, Counter>,
    active: Gauge,
    frames_in: Counter,
    frames_dropped: Counter,
    webhooks: Family<ResultLabel, Counter>,
    programs: Family<ProgramLabel, Gauge>,
    rtc: Family<CounterLabel, Gauge>,
    cpu: Family<CpuLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    queued: Gauge,
    /// The machine's busy and total CPU time at the last scrape (jiffies).
    cpu_use: Arc<CpuUse>,
    cluster_free: Gauge<f64, std::sync::atomic::AtomicU64>,
    cluster_nodes: Family<StateLabel, Gauge>,
    jobs_run: Family<Kind, Counter>,
    shipped: Family<Kind, Counter>,
    ship_failures: Counter,
    taken_over: Family<Kind, Counter>,
}

/// A node's state, alive or dead.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("tapedeck");
        let created = Family::<Kind, Counter>::default();
        let finished = Family::<StatusLabel, Counter>::default();
        let active = Gauge::default();
        let frames_in = Counter::default();
        let frames_dropped = Counter::default();
        let webhooks = Family::<ResultLabel, Counter>::default();
        r.register(
            "recordings_created",
            "Recordings created, by source kind",
            created.clone(),
        );
        r.register(
            "recordings_finished",
            "Recordings that reached a final status",
            finished.clone(),
        );
        r.register(
            "recordings_active",
            "Recordings with a running driver",
            active.clone(),
        );
        r.register(
            "frames_received",
            "Frames received on frames sockets",
            frames_in.clone(),
        );
        r.register(
            "frames_dropped",
            "Frames dropped (invalid, paused, superseded, queue full)",
            frames_dropped.clone(),
        );
        r.register(
            "webhook_attempts",
            "Webhook delivery attempts by result",
            webhooks.clone(),
        );
        let programs = Family::<ProgramLabel, Gauge>::default();
        r.register(
            "program_runs",
            "Runs of ffmpeg, ffprobe and the browser since the start, by outcome (started, failed, timed_out)",
            programs.clone(),
        );
        let rtc = Family::<CounterLabel, Gauge>::default();
        r.register(
            "rtc",
            "The media server of rooms: peers now, and since the start datagrams_in, datagrams_stray, peers_dropped, peers_timed_out, send_dropped, frames_out, frames_forwarded",
            rtc.clone(),
        );
        let cpu = Family::<CpuLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        r.register(
            "cpu_cores",
            "CPU in cores: the admission budget (budget), what running recordings reserved by their estimated cost (reserved), and what the machine used since the last scrape (used)",
            cpu.clone(),
        );
        let queued = Gauge::default();
        r.register(
            "web_queue_length",
            "Web recordings waiting, pending, for the server's capacity",
            queued.clone(),
        );
        let cluster_free = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        r.register(
            "cluster_capacity_free",
            "CPU cores free to reserve across the cluster's live nodes (a server alone: its own), for an autoscaler",
            cluster_free.clone(),
        );
        let cluster_nodes = Family::<StateLabel, Gauge>::default();
        r.register(
            "cluster_nodes",
            "The cluster's nodes by state (alive, dead)",
            cluster_nodes.clone(),
        );
        let jobs_run = Family::<Kind, Counter>::default();
        r.register(
            "cluster_jobs_run",
            "Jobs of the cluster's queue this node claimed and ran, by kind (web, grid)",
            jobs_run.clone(),
        );
        let shipped = Family::<Kind, Counter>::default();
        r.register(
            "shipped_bytes",
            "Bytes of live media shipped to the store while recording, by source kind",
            shipped.clone(),
        );
        let ship_failures = Counter::default();
        r.register(
            "ship_failures",
            "Rounds of shipping live media the store refused (tried again)",
            ship_failures.clone(),
        );
        let taken_over = Family::<Kind, Counter>::default();
        r.register(
            "cluster_taken_over",
            "Recordings of dead nodes this node took over, by source kind",
            taken_over.clone(),
        );
        Self {
            shipped,
            ship_failures,
            taken_over,
            rtc,
            cpu,
            queued,
            cluster_free,
            cluster_nodes,
            jobs_run,
            cpu_use: Arc::default(),
            registry: Arc::new(r),
            created,
            finished,
            active,
            frames_in,
            frames_dropped,
            webhooks,
            programs,
        }
    }

    /// A recording was created.
    pub fn created(&self, kind: &str) {
        self.created
            .get_or_create(&Kind { kind: kind.into() })
            .inc();
    }
    /// A recording reached a final status.
    pub fn finished(&self, status: &str) {
        self.finished
            .get_or_create(&StatusLabel {
                status: status.into(),
            })
            .inc();
    }
    /// A driver started (+1) or ended (-1).
    pub fn active(&self, delta: i64) {
        self.active.inc_by(delta);
    }
    /// Frames received and dropped.
    pub fn frames(&self, received: u64, dropped: u64) {
        self.frames_in.inc_by(received);
        self.frames_dropped.inc_by(dropped);
    }
    /// A job of the cluster's queue claimed and run here.
    pub fn job_run(&self, kind: &str) {
        self.jobs_run
            .get_or_create(&Kind { kind: kind.into() })
            .inc();
    }
    /// Live media shipped to the store.
    pub fn shipped(&self, kind: &str, bytes: u64) {
        self.shipped
            .get_or_create(&Kind { kind: kind.into() })
            .inc_by(bytes);
    }
    /// A round of shipping the store refused.
    pub fn ship_failed(&self) {
        self.ship_failures.inc();
    }
    /// A dead node's recording taken over here.
    pub fn taken_over(&self, kind: &str) {
        self.taken_over
            .get_or_create(&Kind { kind: kind.into() })
            .inc();
    }
    /// A webhook attempt's result.
    pub fn webhook(&self, result: &str) {
        self.webhooks
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }
    /// The cluster's nodes as last heard of.
    pub fn cluster(&self, nodes: &[tapedeck_core::cluster::NodeInfo]) {
        let live = nodes.iter().filter(|n| n.alive);
        self.cluster_free.set(live.map(|n| n.cpu.free()).sum());
        for (state, alive) in [("alive", true), ("dead", false)] {
            self.cluster_nodes
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(nodes.iter().filter(|n| n.alive == alive).count() as i64);
        }
    }

    /// The text exposition.
    pub fn render(
        &self,
        rtc: &crate::rtc::RtcStats,
        gate: crate::engine::source::admission::GateFigures,
    ) -> String {
        let cores = |what: &str, v: f64| {
            self.cpu
                .get_or_create(&CpuLabel { what: what.into() })
                .set(v);
        };
        cores("budget", f64::from(gate.total) / 1000.0);
        cores("reserved", f64::from(gate.reserved) / 1000.0);
        if let Some(used) = self.cpu_use.sample() {
            cores("used", used);
        }
        self.queued.set(gate.queued as i64);
        use crate::rtc::RtcStats as R;
        for (name, n) in [
            ("peers", R::get(&rtc.peers)),
            ("datagrams_in", R::get(&rtc.datagrams_in)),
            ("datagrams_stray", R::get(&rtc.datagrams_stray)),
            ("peers_dropped", R::get(&rtc.peers_dropped)),
            ("peers_timed_out", R::get(&rtc.peers_timed_out)),
            ("send_dropped", R::get(&rtc.send_dropped)),
            ("frames_out", R::get(&rtc.frames_out)),
            ("frames_forwarded", R::get(&rtc.frames_forwarded)),
        ] {
            self.rtc
                .get_or_create(&CounterLabel {
                    counter: name.into(),
                })
                .set(n as i64);
        }
        for (program, st) in tapedeck_media::process::stats() {
            for (outcome, n) in [
                ("started", st.started),
                ("failed", st.failed),
                ("timed_out", st.timed_out),
            ] {
                self.programs
                    .get_or_create(&ProgramLabel {
                        program: program.into(),
                        outcome: outcome.into(),
                    })
                    .set(n as i64);
            }
        }
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

/// The machine's CPU use in cores between two samples (`/proc/stat`).
#[derive(Debug, Default)]
pub struct CpuUse(std::sync::Mutex<Option<(u64, u64)>>);

impl CpuUse {
    /// Cores busy since the last sample (the first: since boot).
    pub fn sample(&self) -> Option<f64> {
        let now = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| cpu_jiffies(&s))?;
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (busy0, total0) = last.unwrap_or((0, 0));
        *last = Some(now);
        let (busy, total) = (now.0.saturating_sub(busy0), now.1.saturating_sub(total0));
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (total > 0).then(|| busy as f64 / total as f64 * n as f64)
    }
}

/// The machine's busy and total CPU time from `/proc/stat`'s first line
/// (idle and iowait are not busy).
pub fn cpu_jiffies(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_jiffies_count_all_but_idle_and_iowait() {
        let stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(super::cpu_jiffies(stat), Some((160, 1000)));
        assert_eq!(super::cpu_jiffies("intr 1 2"), None);
    }
}
