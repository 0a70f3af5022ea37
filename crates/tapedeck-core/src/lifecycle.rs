//! A recording's life as a sans-IO state machine, the same for every source.
//!
//! [`Lifecycle`] owns the [`Recording`] while it is active. The driver feeds
//! it [`Input`]s (the user's commands, what the source says, the counts it
//! reports, ticks) with the current time, and carries out the [`Output`]s it
//! returns, in order: save the recording, emit an event, tell the source to
//! pause, resume, finish or abort, finalize, discard the work files. It never
//! reads a clock; every limit (pending timeout, idle, max duration counted
//! on recorded time, max size, quota) is decided here from the inputs.
//!
//! Over 600 lines: 280 of code and its inline tests (every transition and
//! limit, and a property test), which read best beside the code they check.

use crate::codes::Code;
use crate::codes::Failure;
use crate::recording::{Action, EndReason, InvalidTransition, Recording, Status};

/// The limits one recording runs under. Zero byte limits mean none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A recording no source starts within this is cancelled, ms.
    pub pending_timeout_ms: i64,
    /// A recording whose source delivers nothing this long is idle, ms
    /// ([`Limits::on_idle`] says what follows).
    pub idle_timeout_ms: i64,
    /// A recording whose source delivered no unit yet is idle this long
    /// after it started, instead of `idle_timeout_ms` (an upload's first
    /// byte); `None`: `idle_timeout_ms` from the start too.
    pub first_unit_timeout_ms: Option<i64>,
    /// What idleness does.
    pub on_idle: OnIdle,
    /// A recording paused this long is stopped (`idle`), ms.
    pub paused_timeout_ms: i64,
    /// Recorded time (pauses excluded) at which it is stopped (`max_duration`), µs.
    pub max_duration_us: i64,
    /// Output bytes at which it is stopped (`max_size`); 0: no limit.
    pub max_bytes: u64,
    /// Bytes the owner may store in all; 0: no quota.
    pub quota_bytes: u64,
}

/// What an idle recording comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnIdle {
    /// Stopped (`end_reason: idle`) and processed: what came is the
    /// recording (a camera that went away).
    Stop,
    /// Failed (`upload_expired`): what came is part of a file that its
    /// client stopped sending, not a recording.
    Expire,
}

impl Limits {
    /// When a recording last active at `last_activity_ms` becomes idle,
    /// `any_unit` whether its source delivered anything yet (ms).
    pub fn idle_at_ms(&self, last_activity_ms: i64, any_unit: bool) -> i64 {
        match self.first_unit_timeout_ms {
            Some(first) if !any_unit => last_activity_ms.saturating_add(first),
            _ => last_activity_ms.saturating_add(self.idle_timeout_ms),
        }
    }
}

/// What the source has delivered so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Media units (frames, packets) received; a change is activity.
    pub units_in: u64,
    /// Recorded output time so far, µs.
    pub recorded_us: i64,
    /// Output bytes so far.
    pub bytes: u64,
}

/// Something that happened to the recording.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A user's command: pause, resume, stop or cancel.
    Command(Action),
    /// The source began delivering media.
    Started,
    /// The source's latest counts.
    Progress(Progress),
    /// Bytes the owner's other stored recordings use.
    QuotaUsed(u64),
    /// The source ended by itself (end of script, end of upload).
    Ended,
    /// The source ended for a reason of its own (a room closed by its host).
    EndedWith(EndReason),
    /// The source or a sink failed for good.
    Failed(Failure),
    /// Processing finished: stored, or failed.
    Finalized(Result<(), Failure>),
    /// The server restarted while this recording was active.
    Restarted,
    /// Another node took this recording over from the bucket after the
    /// node that held it died: as `Restarted`, ended `node_lost`.
    TakenOver,
    /// A recording that waited for capacity got it: the pending clock
    /// (`pending_timeout_ms`) starts now, not when it was queued.
    Admitted,
    /// Time passed.
    Tick,
}

/// What a source is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceControl {
    /// Hold: deliver nothing (the output gets no gap).
    Pause,
    /// Deliver again.
    Resume,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Persist [`Lifecycle::recording`].
    Save,
    /// Emit the event of this transition (`Action::event_name`).
    Emit(Action),
    /// Tell the source.
    Source(SourceControl),
    /// Stop the source, finish the sinks, process and store; then send
    /// [`Input::Finalized`].
    Finalize,
    /// Stop the source and sinks without finishing; keep the work files.
    Abort,
    /// Stop the source and sinks and remove the work files.
    Discard,
}

/// The state machine of one recording.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    rec: Recording,
    limits: Limits,
    /// When this machine took the recording over (a restart starts the pending clock over).
    since_ms: i64,
    last_activity_ms: i64,
    paused_at_ms: i64,
    progress: Progress,
    quota_used: u64,
}

impl Lifecycle {
    /// Takes `rec` over at `now_ms`.
    pub fn new(rec: Recording, limits: Limits, now_ms: i64) -> Self {
        Self {
            rec,
            limits,
            since_ms: now_ms,
            last_activity_ms: now_ms,
            paused_at_ms: now_ms,
            progress: Progress::default(),
            quota_used: 0,
        }
    }

    /// The recording as it is now.
    pub fn recording(&self) -> &Recording {
        &self.rec
    }

    /// The recording, to fill in what processing found (stats, media).
    pub fn recording_mut(&mut self) -> &mut Recording {
        &mut self.rec
    }

    /// Its status.
    pub fn status(&self) -> Status {
        self.rec.status
    }

    /// The latest counts.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// Feeds one input at `now_ms`. A user command the status does not allow
    /// is refused; anything else that does not apply is ignored (an empty list).
    pub fn handle(&mut self, input: Input, now_ms: i64) -> Result<Vec<Output>, InvalidTransition> {
        let s = self.rec.status;
        let live = matches!(s, Status::Recording | Status::Paused);
        Ok(match input {
            Input::Command(a @ (Action::Pause | Action::Resume)) => {
                self.rec.status.apply(a)?;
                self.move_to(a, now_ms);
                if a == Action::Pause {
                    self.paused_at_ms = now_ms;
                } else {
                    self.last_activity_ms = now_ms;
                }
                let c = if a == Action::Pause {
                    SourceControl::Pause
                } else {
                    SourceControl::Resume
                };
                let mut out = vec![Output::Source(c), Output::Save, Output::Emit(a)];
                // Counts that arrived while paused may already be over a limit.
                out.extend(self.check_limits(now_ms));
                out
            }
            Input::Command(Action::Stop) => {
                self.rec.status.apply(Action::Stop)?;
                self.stop(EndReason::Stopped, now_ms)
            }
            Input::Command(Action::Cancel) => {
                self.rec.status.apply(Action::Cancel)?;
                self.cancel(now_ms)
            }
            // Start, Complete and Fail are the server's, never a user's.
            Input::Command(action) => {
                return Err(InvalidTransition { from: s, action });
            }
            Input::Started if s == Status::Pending => {
                self.move_to(Action::Start, now_ms);
                self.last_activity_ms = now_ms;
                let mut out = vec![Output::Save, Output::Emit(Action::Start)];
                // Counts that arrived before the start may already be over a limit.
                out.extend(self.check_limits(now_ms));
                out
            }
            Input::Progress(p) => {
                if p.units_in != self.progress.units_in {
                    self.last_activity_ms = now_ms;
                }
                self.progress = p;
                self.check_limits(now_ms)
            }
            Input::QuotaUsed(bytes) => {
                self.quota_used = bytes;
                self.check_limits(now_ms)
            }
            Input::Ended if live => self.stop(EndReason::SourceEnded, now_ms),
            Input::EndedWith(reason) if live => self.stop(reason, now_ms),
            Input::Ended | Input::EndedWith(_) if s == Status::Pending => self.fail(
                Failure::new(
                    Code::NoSource,
                    "the source ended before it delivered anything",
                ),
                now_ms,
            ),
            Input::Failed(f) if !s.is_terminal() => self.fail(f, now_ms),
            Input::Finalized(Ok(())) if s == Status::Processing => {
                self.move_to(Action::Complete, now_ms);
                vec![Output::Save, Output::Emit(Action::Complete)]
            }
            Input::Finalized(Err(f)) if s == Status::Processing => self.fail(f, now_ms),
            Input::Restarted if live => self.stop(EndReason::Recovered, now_ms),
            Input::Restarted if s == Status::Processing => vec![Output::Finalize],
            Input::TakenOver if live => self.stop(EndReason::NodeLost, now_ms),
            Input::TakenOver if s == Status::Processing => vec![Output::Finalize],
            Input::Admitted if s == Status::Pending => {
                self.since_ms = now_ms;
                vec![]
            }
            Input::Tick => self.check_limits(now_ms),
            _ => vec![],
        })
    }

    /// Applies `action` (already checked) and stamps the times it sets.
    fn move_to(&mut self, action: Action, now_ms: i64) {
        let Ok(next) = self.rec.status.apply(action) else {
            return;
        };
        self.rec.status = next;
        match action {
            Action::Start => self.rec.started_at = Some(now_ms),
            Action::Stop | Action::Cancel => self.rec.stopped_at = Some(now_ms),
            Action::Complete | Action::Fail => {
                self.rec.completed_at = Some(now_ms);
                self.rec.stopped_at.get_or_insert(now_ms);
            }
            Action::Pause | Action::Resume => {}
        }
    }

    fn stop(&mut self, reason: EndReason, now_ms: i64) -> Vec<Output> {
        self.rec.end_reason = Some(reason);
        self.move_to(Action::Stop, now_ms);
        vec![Output::Save, Output::Emit(Action::Stop), Output::Finalize]
    }

    fn cancel(&mut self, now_ms: i64) -> Vec<Output> {
        self.rec.end_reason = Some(EndReason::Cancelled);
        self.move_to(Action::Cancel, now_ms);
        vec![Output::Discard, Output::Save, Output::Emit(Action::Cancel)]
    }

    fn fail(&mut self, f: Failure, now_ms: i64) -> Vec<Output> {
        let had_source = self.rec.status != Status::Processing;
        self.rec.end_reason.get_or_insert(EndReason::Error);
        self.rec.error = Some(f);
        self.move_to(Action::Fail, now_ms);
        let mut out = Vec::with_capacity(3);
        if had_source {
            out.push(Output::Abort);
        }
        out.extend([Output::Save, Output::Emit(Action::Fail)]);
        out
    }

    /// Ends an idle recording as its limits say.
    fn idle(&mut self, now_ms: i64) -> Vec<Output> {
        match self.limits.on_idle {
            OnIdle::Stop => self.stop(EndReason::Idle, now_ms),
            OnIdle::Expire => {
                let message = if self.progress.units_in == 0 {
                    let within = self
                        .limits
                        .first_unit_timeout_ms
                        .unwrap_or(self.limits.idle_timeout_ms);
                    format!(
                        "no byte arrived within {} s of the upload's start; the upload was given up",
                        within / 1000
                    )
                } else {
                    format!(
                        "no bytes arrived for {} s; the upload was given up",
                        self.limits.idle_timeout_ms / 1000
                    )
                };
                self.rec.end_reason = Some(EndReason::UploadExpired);
                self.fail(Failure::new(Code::UploadExpired, message), now_ms)
            }
        }
    }

    fn check_limits(&mut self, now_ms: i64) -> Vec<Output> {
        let l = self.limits;
        match self.rec.status {
            Status::Pending if now_ms - self.since_ms >= l.pending_timeout_ms => {
                self.cancel(now_ms)
            }
            Status::Paused if now_ms - self.paused_at_ms >= l.paused_timeout_ms => {
                self.stop(EndReason::Idle, now_ms)
            }
            Status::Recording => {
                let p = self.progress;
                if p.recorded_us >= l.max_duration_us {
                    self.stop(EndReason::MaxDuration, now_ms)
                } else if l.max_bytes > 0 && p.bytes >= l.max_bytes {
                    self.stop(EndReason::MaxSize, now_ms)
                } else if l.quota_bytes > 0 && self.quota_used + p.bytes >= l.quota_bytes {
                    self.stop(EndReason::Quota, now_ms)
                } else if now_ms >= l.idle_at_ms(self.last_activity_ms, p.units_in > 0) {
                    self.idle(now_ms)
                } else {
                    vec![]
                }
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::recording::SourceSpec;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        pending_timeout_ms: 60_000,
        idle_timeout_ms: 10_000,
        first_unit_timeout_ms: None,
        on_idle: OnIdle::Stop,
        paused_timeout_ms: 120_000,
        max_duration_us: 30_000_000,
        max_bytes: 1_000_000,
        quota_bytes: 5_000_000,
    };

    /// A pending frames recording, for tests of other modules too.
    pub(crate) fn rec() -> Recording {
        Recording {
            id: crate::RecordingId::from_parts(1, 2),
            owner: "ann".into(),
            source: SourceSpec::Frames { input_fps: None },
            max_duration_s: 30,
            ..Recording::example()
        }
    }

    fn started() -> Lifecycle {
        let mut lc = Lifecycle::new(rec(), LIMITS, 0);
        lc.handle(Input::Started, 1_000).unwrap();
        lc
    }

    fn progress(units_in: u64, recorded_s: i64, bytes: u64) -> Input {
        Input::Progress(Progress {
            units_in,
            recorded_us: recorded_s * 1_000_000,
            bytes,
        })
    }

    #[test]
    fn start_pause_resume_stop_complete() {
        let mut lc = Lifecycle::new(rec(), LIMITS, 0);
        let out = lc.handle(Input::Started, 1_000).unwrap();
        assert_eq!(out, vec![Output::Save, Output::Emit(Action::Start)]);
        assert_eq!(lc.recording().started_at, Some(1_000));
        let out = lc.handle(Input::Command(Action::Pause), 2_000).unwrap();
        assert_eq!(out[0], Output::Source(SourceControl::Pause));
        assert_eq!(lc.status(), Status::Paused);
        assert!(lc.handle(Input::Command(Action::Pause), 2_100).is_err());
        let out = lc.handle(Input::Command(Action::Resume), 3_000).unwrap();
        assert_eq!(out[0], Output::Source(SourceControl::Resume));
        let out = lc.handle(Input::Command(Action::Stop), 4_000).unwrap();
        assert_eq!(
            out,
            vec![Output::Save, Output::Emit(Action::Stop), Output::Finalize]
        );
        let r = lc.recording();
        assert_eq!(
            (r.status, r.end_reason, r.stopped_at),
            (Status::Processing, Some(EndReason::Stopped), Some(4_000))
        );
        assert!(lc.handle(Input::Command(Action::Cancel), 4_500).is_err());
        let out = lc.handle(Input::Finalized(Ok(())), 5_000).unwrap();
        assert_eq!(out, vec![Output::Save, Output::Emit(Action::Complete)]);
        assert_eq!(lc.recording().completed_at, Some(5_000));
        assert_eq!(lc.status(), Status::Completed);
    }

    #[test]
    fn users_cannot_send_server_actions() {
        let mut lc = Lifecycle::new(rec(), LIMITS, 0);
        for a in [Action::Start, Action::Complete, Action::Fail] {
            assert!(lc.handle(Input::Command(a), 1).is_err());
        }
        assert_eq!(lc.status(), Status::Pending);
    }

    #[test]
    fn cancel_discards() {
        let mut lc = started();
        let out = lc.handle(Input::Command(Action::Cancel), 2_000).unwrap();
        assert_eq!(out[0], Output::Discard);
        let r = lc.recording();
        assert_eq!(
            (r.status, r.end_reason),
            (Status::Cancelled, Some(EndReason::Cancelled))
        );
    }

    #[test]
    fn pending_timeout_counts_from_takeover() {
        let mut lc = Lifecycle::new(rec(), LIMITS, 100_000);
        assert!(lc.handle(Input::Tick, 159_999).unwrap().is_empty());
        let out = lc.handle(Input::Tick, 160_000).unwrap();
        assert_eq!(out[0], Output::Discard);
        assert_eq!(lc.status(), Status::Cancelled);
    }

    #[test]
    fn pending_timeout_counts_from_admission_after_a_wait_in_the_queue() {
        let mut lc = Lifecycle::new(rec(), LIMITS, 100_000);
        // Queued for ten minutes, then admitted.
        assert!(lc.handle(Input::Admitted, 700_000).unwrap().is_empty());
        assert!(lc.handle(Input::Tick, 759_999).unwrap().is_empty());
        assert_eq!(lc.status(), Status::Pending);
        let out = lc.handle(Input::Tick, 760_000).unwrap();
        assert_eq!(out[0], Output::Discard);
    }

    #[test]
    fn idle_counts_from_the_last_new_unit() {
        let mut lc = started();
        lc.handle(progress(5, 1, 10), 5_000).unwrap();
        // Same count: no activity.
        assert!(lc.handle(progress(5, 1, 10), 14_999).unwrap().is_empty());
        let out = lc.handle(Input::Tick, 15_000).unwrap();
        assert_eq!(out.last(), Some(&Output::Finalize));
        assert_eq!(lc.recording().end_reason, Some(EndReason::Idle));
    }

    #[test]
    fn an_idle_upload_expires_and_a_first_unit_has_its_own_time() {
        let limits = Limits {
            idle_timeout_ms: 50_000,
            first_unit_timeout_ms: Some(20_000),
            on_idle: OnIdle::Expire,
            ..LIMITS
        };
        // No first unit: the shorter first-unit time applies from the start.
        let mut lc = Lifecycle::new(rec(), limits, 0);
        lc.handle(Input::Started, 1_000).unwrap();
        assert_eq!(limits.idle_at_ms(1_000, false), 21_000);
        assert!(lc.handle(Input::Tick, 20_999).unwrap().is_empty());
        let out = lc.handle(Input::Tick, 21_000).unwrap();
        assert_eq!(
            out,
            [Output::Abort, Output::Save, Output::Emit(Action::Fail)]
        );
        let r = lc.recording();
        assert_eq!(
            (r.status, r.end_reason),
            (Status::Failed, Some(EndReason::UploadExpired))
        );
        let error = r.error.as_ref().unwrap();
        assert_eq!(error.code, Code::UploadExpired);
        assert!(error.message.contains("within 20 s"), "{}", error.message);
        // Once a unit came, only the idle time counts, from the last one.
        let mut lc = Lifecycle::new(rec(), limits, 0);
        lc.handle(Input::Started, 1_000).unwrap();
        lc.handle(progress(1, 0, 0), 15_000).unwrap();
        assert_eq!(limits.idle_at_ms(15_000, true), 65_000);
        assert!(lc.handle(Input::Tick, 64_999).unwrap().is_empty());
        lc.handle(Input::Tick, 65_000).unwrap();
        let error = lc.recording().error.as_ref().unwrap();
        assert!(error.message.contains("for 50 s"), "{}", error.message);
        // The first unit has its own time, longer than the idle one too.
        let late = Limits {
            first_unit_timeout_ms: Some(90_000),
            ..limits
        };
        assert_eq!(late.idle_at_ms(0, false), 90_000);
        assert_eq!(late.idle_at_ms(0, true), 50_000);
    }

    #[test]
    fn paused_too_long_stops_idle() {
        let mut lc = started();
        lc.handle(Input::Command(Action::Pause), 2_000).unwrap();
        // Paused time is not idle time, and a pause has its own timeout
        // (longer than the pending one).
        assert!(lc.handle(Input::Tick, 121_999).unwrap().is_empty());
        lc.handle(Input::Tick, 122_000).unwrap();
        assert_eq!(
            (lc.status(), lc.recording().end_reason),
            (Status::Processing, Some(EndReason::Idle))
        );
    }

    #[test]
    fn resume_restarts_the_idle_clock() {
        let mut lc = started();
        lc.handle(Input::Command(Action::Pause), 2_000).unwrap();
        lc.handle(Input::Command(Action::Resume), 50_000).unwrap();
        assert!(lc.handle(Input::Tick, 59_999).unwrap().is_empty());
        lc.handle(Input::Tick, 60_000).unwrap();
        assert_eq!(lc.recording().end_reason, Some(EndReason::Idle));
    }

    #[test]
    fn max_duration_is_recorded_time_not_wall_time() {
        let mut lc = started();
        // Long wall time, little recorded time: still recording.
        for t in 1..100 {
            lc.handle(progress(t, 10, 0), t as i64 * 5_000).unwrap();
        }
        assert_eq!(lc.status(), Status::Recording);
        lc.handle(progress(100, 30, 0), 500_001).unwrap();
        assert_eq!(lc.recording().end_reason, Some(EndReason::MaxDuration));
    }

    #[test]
    fn max_size_and_quota() {
        let mut lc = started();
        lc.handle(progress(1, 1, 999_999), 2_000).unwrap();
        assert_eq!(lc.status(), Status::Recording);
        lc.handle(progress(2, 1, 1_000_000), 2_100).unwrap();
        assert_eq!(lc.recording().end_reason, Some(EndReason::MaxSize));

        let mut lc = started();
        lc.handle(Input::QuotaUsed(4_500_000), 1_500).unwrap();
        lc.handle(progress(1, 1, 499_999), 2_000).unwrap();
        assert_eq!(lc.status(), Status::Recording);
        lc.handle(progress(2, 1, 500_000), 2_100).unwrap();
        assert_eq!(lc.recording().end_reason, Some(EndReason::Quota));

        // No limits: nothing stops it.
        let free = Limits {
            max_bytes: 0,
            quota_bytes: 0,
            ..LIMITS
        };
        let mut lc = Lifecycle::new(rec(), free, 0);
        lc.handle(Input::Started, 0).unwrap();
        lc.handle(Input::QuotaUsed(u64::MAX / 2), 1).unwrap();
        lc.handle(progress(1, 1, u64::MAX / 4), 2).unwrap();
        assert_eq!(lc.status(), Status::Recording);
    }

    #[test]
    fn source_end_and_failure() {
        let mut lc = started();
        lc.handle(Input::Ended, 3_000).unwrap();
        assert_eq!(lc.recording().end_reason, Some(EndReason::SourceEnded));
        // A source may say why it ended.
        let mut other = started();
        other
            .handle(Input::EndedWith(EndReason::RoomClosed), 3_000)
            .unwrap();
        assert_eq!(other.status(), Status::Processing);
        assert_eq!(other.recording().end_reason, Some(EndReason::RoomClosed));

        let mut lc = started();
        let out = lc
            .handle(
                Input::Failed(Failure::new(Code::PageUnresponsive, "no frame in 30 s")),
                3_000,
            )
            .unwrap();
        assert_eq!(
            out,
            vec![Output::Abort, Output::Save, Output::Emit(Action::Fail)]
        );
        let r = lc.recording();
        assert_eq!(r.error.as_ref().unwrap().code, Code::PageUnresponsive);
        assert_eq!(
            (r.end_reason, r.completed_at),
            (Some(EndReason::Error), Some(3_000))
        );
        // A failure while processing keeps why it was stopped, and there is no source to abort.
        let mut lc = started();
        lc.handle(Input::Command(Action::Stop), 2_000).unwrap();
        let out = lc
            .handle(
                Input::Finalized(Err(Failure::new(Code::StorageFailed, "disk"))),
                3_000,
            )
            .unwrap();
        assert_eq!(out, vec![Output::Save, Output::Emit(Action::Fail)]);
        assert_eq!(lc.recording().end_reason, Some(EndReason::Stopped));

        // A source that ends before it starts fails with a reason.
        let mut lc = Lifecycle::new(rec(), LIMITS, 0);
        lc.handle(Input::Ended, 10).unwrap();
        assert_eq!(lc.recording().error.as_ref().unwrap().code, Code::NoSource);
    }

    #[test]
    fn restart_recovers_or_finalizes_again() {
        let mut lc = started();
        let out = lc.handle(Input::Restarted, 9_000).unwrap();
        assert_eq!(out.last(), Some(&Output::Finalize));
        assert_eq!(lc.recording().end_reason, Some(EndReason::Recovered));
        // Already processing: finalize again, nothing else changes.
        let out = lc.handle(Input::Restarted, 10_000).unwrap();
        assert_eq!(out, vec![Output::Finalize]);
        assert_eq!(lc.recording().stopped_at, Some(9_000));
    }

    #[test]
    fn taken_over_ends_node_lost_or_finalizes_again() {
        let mut lc = started();
        let out = lc.handle(Input::TakenOver, 9_000).unwrap();
        assert_eq!(out.last(), Some(&Output::Finalize));
        assert_eq!(lc.recording().end_reason, Some(EndReason::NodeLost));
        // Stopped by its user before the node died: its reason stays.
        let mut lc = started();
        lc.handle(Input::Command(Action::Stop), 5_000).unwrap();
        let out = lc.handle(Input::TakenOver, 9_000).unwrap();
        assert_eq!(out, vec![Output::Finalize]);
        assert_eq!(lc.recording().end_reason, Some(EndReason::Stopped));
    }

    #[test]
    fn terminal_ignores_everything_but_refuses_commands() {
        let mut lc = started();
        lc.handle(Input::Command(Action::Cancel), 2_000).unwrap();
        let before = lc.recording().clone();
        for i in [
            Input::Tick,
            Input::Started,
            Input::Ended,
            Input::Restarted,
            Input::TakenOver,
            Input::Finalized(Ok(())),
            Input::Failed(Failure::internal("late")),
            progress(9, 99, 99),
        ] {
            assert!(lc.handle(i, 1_000_000).unwrap().is_empty());
        }
        assert!(lc.handle(Input::Command(Action::Stop), 1).is_err());
        assert_eq!(lc.recording(), &before);
    }

    fn any_input() -> impl Strategy<Value = Input> {
        prop_oneof![
            prop_oneof![
                Just(Action::Start),
                Just(Action::Pause),
                Just(Action::Resume),
                Just(Action::Stop),
                Just(Action::Cancel),
                Just(Action::Complete),
                Just(Action::Fail),
            ]
            .prop_map(Input::Command),
            Just(Input::Started),
            (0u64..50, 0i64..40_000_000, 0u64..2_000_000).prop_map(|(u, r, b)| Input::Progress(
                Progress {
                    units_in: u,
                    recorded_us: r,
                    bytes: b
                }
            )),
            (0u64..6_000_000).prop_map(Input::QuotaUsed),
            Just(Input::Ended),
            Just(Input::EndedWith(EndReason::RoomClosed)),
            Just(Input::Failed(Failure::internal("x"))),
            Just(Input::Finalized(Ok(()))),
            Just(Input::Finalized(Err(Failure::new(
                Code::StorageFailed,
                "x"
            )))),
            Just(Input::Restarted),
            Just(Input::TakenOver),
            Just(Input::Tick),
        ]
    }

    fn check_legal(r: &Recording) -> Result<(), TestCaseError> {
        let (st, sp, done) = (r.started_at, r.stopped_at, r.completed_at);
        match r.status {
            Status::Pending => {
                prop_assert!(st.is_none() && sp.is_none() && done.is_none());
                prop_assert!(r.end_reason.is_none() && r.error.is_none());
            }
            Status::Recording | Status::Paused => {
                prop_assert!(st.is_some() && sp.is_none() && r.end_reason.is_none());
            }
            Status::Processing => {
                prop_assert!(sp.is_some() && r.end_reason.is_some() && done.is_none());
            }
            Status::Completed => {
                prop_assert!(done.is_some() && r.end_reason.is_some() && r.error.is_none());
            }
            Status::Failed => {
                prop_assert!(done.is_some() && r.end_reason.is_some() && r.error.is_some());
            }
            Status::Cancelled => prop_assert_eq!(r.end_reason, Some(EndReason::Cancelled)),
        }
        if let (Some(a), Some(b)) = (st, sp) {
            prop_assert!(a <= b);
        }
        if let (Some(a), Some(b)) = (sp, done) {
            prop_assert!(a <= b);
        }
        Ok(())
    }

    proptest! {
        /// No sequence of inputs and ticks leaves an illegal state; terminal
        /// states never change; end reasons are set on every terminal state.
        #[test]
        fn never_illegal(steps in proptest::collection::vec((any_input(), 0i64..20_000), 0..60)) {
            let mut lc = Lifecycle::new(rec(), LIMITS, 0);
            let mut now = 0;
            for (input, dt) in steps {
                now += dt;
                let before = lc.recording().clone();
                match lc.handle(input, now) {
                    Ok(out) => {
                        if before.status.is_terminal() {
                            prop_assert!(out.is_empty());
                            prop_assert_eq!(lc.recording(), &before);
                        }
                        if lc.status() != before.status {
                            prop_assert!(out.contains(&Output::Save));
                        }
                        let saved = out.iter().position(|o| *o == Output::Save);
                        if let Some(e) = out.iter().position(|o| matches!(o, Output::Emit(_))) {
                            prop_assert!(saved.is_some_and(|s| s < e), "saved before emitted");
                        }
                    }
                    Err(_) => prop_assert_eq!(lc.recording(), &before),
                }
                check_legal(lc.recording())?;
                if lc.status() == Status::Recording {
                    prop_assert!(lc.progress().recorded_us < LIMITS.max_duration_us);
                }
            }
        }
    }
}
