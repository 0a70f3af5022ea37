//! Cameras beyond the budget (`limits.max_deferred_cameras`): accepted
//! while the data folder's disk has room, spooled only, and their encode
//! queued after stop in the same fair queue as web recordings.

use std::sync::Arc;

use tapedeck_core::Problem;
use tapedeck_core::admission::MilliCores;
use tapedeck_core::recording::Recording;
use tokio::sync::oneshot;

use super::{Admission, Gate, State, Ticket, Waiter};

/// What encoding a deferred camera's spool reserves: a batch encode runs
/// flat out (the busy preset, one thread, and its decoding), about half a
/// core; three at once on the default budget of two cores.
const DEFERRED_ENCODE: MilliCores = 500;

/// Bytes free to an unprivileged writer on the disk holding `dir` (its
/// nearest existing ancestor); `None` when that cannot be read.
fn free_disk(dir: &std::path::Path) -> Option<u64> {
    let dir = dir.ancestors().find(|d| d.exists())?;
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

impl Gate {
    /// What encoding a deferred camera reserves (all of a smaller budget).
    pub fn encode_cost(&self) -> MilliCores {
        DEFERRED_ENCODE.min(self.total)
    }

    /// Queues the encode of deferred camera `rec` (it stopped; its spool
    /// is whole) in the fair queue beside web recordings; its admission
    /// reserves [`DEFERRED_ENCODE`] and says busy.
    pub fn queue_encode(self: &Arc<Self>, rec: &Recording) -> Ticket {
        let mut st = self.lock();
        if let Some(a) = self.encode_if_room(&mut st, rec) {
            return Ticket::Now(a);
        }
        let (grant, rx) = oneshot::channel();
        st.queue.push(&rec.owner, rec.id);
        st.waiting.insert(
            rec.id,
            Waiter {
                rec: rec.clone(),
                grant,
                web: false,
            },
        );
        Ticket::Queued(rx)
    }

    /// The encode of deferred camera `rec` admitted now, while it still
    /// records, if the budget has room and nothing waits before it.
    pub fn encode_now(self: &Arc<Self>, rec: &Recording) -> Option<Admission> {
        let mut st = self.lock();
        self.encode_if_room(&mut st, rec)
    }

    fn encode_if_room(self: &Arc<Self>, st: &mut State, rec: &Recording) -> Option<Admission> {
        let cost = self.encode_cost();
        if !st.queue.is_empty() || !self.fits(st, cost, false) {
            return None;
        }
        st.queue.served(&rec.owner);
        Some(self.take(st, rec.id, (cost, true), false))
    }

    /// Cameras accepted beyond the budget now.
    pub fn deferred(&self) -> u32 {
        self.lock().deferred
    }

    /// Whether live `rec` (a camera) would be accepted deferred now: it
    /// does not fit the budget and deferral has room.
    pub fn would_defer(&self, rec: &Recording) -> bool {
        let st = self.lock();
        let (cost, _) = self.cost_now(&st, rec);
        !self.fits(&st, cost, false) && self.may_defer(&st, rec)
    }

    /// Whether camera `rec` may be accepted beyond the budget: deferral
    /// has room, and so has the disk its pictures wait on.
    pub(super) fn may_defer(&self, st: &State, rec: &Recording) -> bool {
        rec.source.kind() == tapedeck_core::SourceKind::Frames
            && self.why_not_deferred(st, rec).is_none()
    }

    /// Why camera `rec` may not wait beyond the budget (`None` for
    /// another kind, or when it may).
    pub(super) fn why_not_deferred(&self, st: &State, rec: &Recording) -> Option<String> {
        if rec.source.kind() != tapedeck_core::SourceKind::Frames {
            return None;
        }
        if st.deferred >= self.deferred_max {
            return Some(format!(
                "{} cameras already wait beyond it, the most limits.max_deferred_cameras allows",
                st.deferred
            ));
        }
        match free_disk(&self.data_dir) {
            Some(free) if free < self.min_free => Some(format!(
                "the data folder's disk has {} MiB free, under limits.min_free_disk_bytes",
                free >> 20
            )),
            _ => None,
        }
    }

    /// The `server_busy` problem for `rec` now.
    pub fn busy(&self, rec: &Recording) -> Problem {
        let st = self.lock();
        let (cost, _) = self.cost_now(&st, rec);
        self.busy_problem(&st, cost, rec)
    }
}
