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
            "The media server of rooms: peers now, and since the start datagrams_in, datagrams_stray, peers_dropped, send_dropped, frames_out, frames_forwarded",
            rtc.clone(),
        );
        Self {
            rtc,
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
    /// A webhook attempt's result.
    pub fn webhook(&self, result: &str) {
        self.webhooks
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }
    /// The text exposition.
    pub fn render(&self, rtc: &crate::rtc::RtcStats) -> String {
        use crate::rtc::RtcStats as R;
        for (name, n) in [
            ("peers", R::get(&rtc.peers)),
            ("datagrams_in", R::get(&rtc.datagrams_in)),
            ("datagrams_stray", R::get(&rtc.datagrams_stray)),
            ("peers_dropped", R::get(&rtc.peers_dropped)),
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
