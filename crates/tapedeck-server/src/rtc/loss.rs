//! A receiver's bandwidth from the loss its RTCP receiver reports give
//! (the loss-based rule of GCC, draft-ietf-rmcat-gcc-02 §6), for the
//! simulcast layers it gets. Sans-IO: fed the egress stats str0m makes of
//! the reports once a second, asked for an estimate when layers are chosen.
//!
//! Not str0m's own estimator (TWCC): that paces everything sent to the
//! peer at 1.1 × its estimate, and in a cluster test it left a page with 1
//! or 2 packets of a camera sent whole in 2 runs of 7. Loss does not see a
//! queue building before packets drop, so a receiver goes down a layer
//! only once its link drops packets; Chromium's receiver reports come
//! about once a second per stream.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::media::Mid;

/// Loss above which the estimate falls.
const LOSS_HIGH: f64 = 0.10;
/// Loss below which it may grow.
const LOSS_LOW: f64 = 0.02;
/// After a fall, what it was sent is not counted for this long: the layer
/// chosen lower starts at its next key frame, so until then the receiver
/// still gets (and loses) the one that did not fit.
const SETTLE_AFTER_FALL: Duration = Duration::from_secs(3);
/// After a fall, how long before it grows again: a layer that lost packets
/// is not tried again at once (each try costs the receiver a freeze).
const HOLD_AFTER_FALL: Duration = Duration::from_secs(20);
/// Growth per report while loss is low.
const GROWTH: f64 = 1.05;
/// Least time the reports of an update span.
const MIN_SPAN: Duration = Duration::from_millis(500);
/// The most it claims (bits per second).
const MAX_BPS: u64 = 1_000_000_000;

/// What one receiver was sent and lost since the last update, from
/// str0m's egress stats per media line.
#[derive(Debug, Default, Clone)]
pub struct Reports {
    /// Each line's totals at its last stats: bytes, packets.
    totals: HashMap<Mid, (u64, u64)>,
    bytes: u64,
    packets: u64,
    /// Packets lost, by the reports' fraction of the packets sent.
    lost: f64,
    since: Option<Instant>,
}

impl Reports {
    /// A line's stats: its totals sent, and the fraction lost its reports
    /// gave since the last stats (None: no report came). A line's first
    /// stats are where it is counted from.
    pub fn egress(&mut self, mid: Mid, bytes: u64, packets: u64, loss: Option<f32>, now: Instant) {
        self.since.get_or_insert(now);
        let Some((b0, p0)) = self.totals.insert(mid, (bytes, packets)) else {
            return;
        };
        let (db, dp) = (bytes.saturating_sub(b0), packets.saturating_sub(p0));
        self.bytes += db;
        if let Some(f) = loss {
            self.packets += dp;
            self.lost += f64::from(f.clamp(0.0, 1.0)) * dp as f64;
        }
    }

    /// The loss and the bitrate sent since the last update, if the
    /// reports span enough time and counted packets; starts the next.
    fn take(&mut self, now: Instant) -> Option<(f64, u64)> {
        let span = now.saturating_duration_since(self.since?);
        if span < MIN_SPAN || self.packets == 0 {
            return None;
        }
        let out = (
            self.lost / self.packets as f64,
            self.bytes * 8 * 1000 / span.as_millis().max(1) as u64,
        );
        (self.bytes, self.packets, self.lost, self.since) = (0, 0, 0.0, Some(now));
        Some(out)
    }
}

/// A receiver's estimate: none (no limit seen) until its reports show
/// loss; then it falls to what got through, holds, and grows again slowly.
#[derive(Debug, Default, Clone)]
pub struct LossEstimate {
    bps: Option<u64>,
    fell_at: Option<Instant>,
}

impl LossEstimate {
    /// The estimate (bits per second), None while no limit was seen.
    pub fn bps(&self) -> Option<u64> {
        self.bps
    }

    /// Updates it from what `reports` gathered; whether it changed.
    pub fn update(&mut self, reports: &mut Reports, now: Instant) -> bool {
        let since_fall = self.fell_at.map(|t| now.saturating_duration_since(t));
        if since_fall.is_some_and(|d| d < SETTLE_AFTER_FALL) {
            // Still the layers that did not fit: start counting afresh.
            reports.take(now);
            return false;
        }
        let Some((loss, sent_bps)) = reports.take(now) else {
            return false;
        };
        let before = self.bps;
        if loss > LOSS_HIGH {
            // What got through, less half the loss again (GCC).
            let base = self.bps.map_or(sent_bps, |b| b.min(sent_bps));
            self.bps = Some((base as f64 * (1.0 - 0.5 * loss)) as u64);
            self.fell_at = Some(now);
        } else if loss < LOSS_LOW
            && since_fall.is_none_or(|d| d >= HOLD_AFTER_FALL)
            && let Some(b) = self.bps
        {
            self.bps = Some(((b as f64 * GROWTH) as u64).min(MAX_BPS));
        }
        self.bps != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// One second of a receiver's reports ending at `ms`: `bps` sent on
    /// one line, `loss` of it lost.
    fn second(r: &mut Reports, t0: Instant, ms: u64, bps: u64, loss: f32) {
        let (b, p) = r.totals.get(&Mid::from("v")).copied().unwrap_or((0, 0));
        r.egress(
            Mid::from("v"),
            b + bps / 8,
            p + bps / 8 / 1200,
            Some(loss),
            at(t0, ms),
        );
    }

    #[test]
    fn no_loss_no_limit() {
        let (t0, mut r, mut e) = (Instant::now(), Reports::default(), LossEstimate::default());
        for s in 0..10 {
            second(&mut r, t0, s * 1000, 2_000_000, 0.0);
            e.update(&mut r, at(t0, s * 1000));
        }
        assert_eq!(e.bps(), None);
    }

    #[test]
    fn loss_brings_it_down_once_then_it_holds_and_grows_slowly() {
        let (t0, mut r, mut e) = (Instant::now(), Reports::default(), LossEstimate::default());
        second(&mut r, t0, 0, 2_000_000, 0.0);
        assert!(!e.update(&mut r, t0));
        // A second of 2 Mbit/s with 60 % lost: 2 M × (1 - 0.3).
        second(&mut r, t0, 1_000, 2_000_000, 0.6);
        assert!(e.update(&mut r, at(t0, 1_000)));
        let fell = e.bps().unwrap();
        assert!((1_390_000..=1_410_000).contains(&fell), "{fell}");
        // The next seconds still lose (the lower layer waits for its key
        // frame): not counted, no second fall.
        for ms in [2_000, 3_000] {
            second(&mut r, t0, ms, 2_000_000, 0.6);
            assert!(!e.update(&mut r, at(t0, ms)));
        }
        assert_eq!(e.bps(), Some(fell));
        // The lower layer gets through: held for 20 s after the fall...
        for s in 5..21 {
            second(&mut r, t0, s * 1000, 500_000, 0.0);
            e.update(&mut r, at(t0, s * 1000));
        }
        assert_eq!(e.bps(), Some(fell));
        // ... then 5 % a second.
        second(&mut r, t0, 22_000, 500_000, 0.0);
        assert!(e.update(&mut r, at(t0, 22_000)));
        assert_eq!(e.bps(), Some((fell as f64 * 1.05) as u64));
    }

    #[test]
    fn some_loss_holds_and_more_brings_it_lower() {
        let (t0, mut r, mut e) = (Instant::now(), Reports::default(), LossEstimate::default());
        second(&mut r, t0, 0, 1_000_000, 0.0);
        e.update(&mut r, t0);
        second(&mut r, t0, 1_000, 1_000_000, 0.25);
        e.update(&mut r, at(t0, 1_000));
        assert_eq!(e.bps(), Some(875_000));
        // 5 %: neither up nor down.
        second(&mut r, t0, 5_000, 900_000, 0.05);
        assert!(!e.update(&mut r, at(t0, 5_000)));
        // Still lossy at a lower rate: down from the lower of the two.
        second(&mut r, t0, 6_000, 600_000, 0.5);
        assert!(e.update(&mut r, at(t0, 6_000)));
        assert_eq!(e.bps(), Some(450_000));
    }

    #[test]
    fn lines_without_reports_and_short_spans_do_not_count() {
        let (t0, mut r) = (Instant::now(), Reports::default());
        let a = Mid::from("a");
        // The first stats: where the line is counted from.
        r.egress(a, 1_000, 10, Some(0.9), t0);
        r.egress(a, 2_000, 20, None, at(t0, 1_000));
        assert_eq!(r.take(at(t0, 1_000)), None, "no report: no loss known");
        r.egress(a, 3_000, 30, Some(0.5), at(t0, 2_000));
        assert_eq!(r.take(at(t0, 2_000)).map(|x| x.0), Some(0.5));
        r.egress(a, 4_000, 40, Some(0.5), at(t0, 2_200));
        assert_eq!(r.take(at(t0, 2_200)), None, "0.2 s is too short");
        // 1,000 bytes over the 1 s since the last update.
        assert_eq!(r.take(at(t0, 3_000)), Some((0.5, 8_000)));
    }
}
