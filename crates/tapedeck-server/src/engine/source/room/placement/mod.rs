//! Where a room recording puts each frame, sans-IO: which track file it
//! belongs to, where it lies on the recording's timeline, and whether it
//! is written at all (paused, or video waiting for a keyframe). The clock
//! comes in with the frames (their arrival) and the commands; the files
//! are the writer's (`super::TrackWriter`).
//!
//! - A participant's track is one file, across sessions: one who leaves
//!   and comes back (a new peer) continues the same file after a gap.
//! - A session is placed where its first frame arrives (never before where
//!   the file already ends); within it, frames follow RTP time.
//! - Lip sync: once a track's RTCP sender reports tie its RTP time to the
//!   sender's clock (NTP), its frames are placed by that clock, through one
//!   offset per participant's session (set by the first such frame, where
//!   arrival placed it). Sound and picture captured at the same instant then
//!   lie at the same place however differently they travelled, and the
//!   reports (about one a second) correct each RTP clock's drift against
//!   the sender's. Until a track's first report it follows arrival.
//! - Pause cuts the same time from every track; after a resume every
//!   session is placed anew and video starts again at a keyframe.

use std::collections::HashMap;
use std::time::Instant;

use tapedeck_core::track::{TrackKind, TrackSource};

use crate::rtc::{Frame, PeerId, TrackInfo};

/// A frame its sender's reports place further than this from where it
/// arrived is placed by RTP time instead, µs (a network or a sender's
/// pipeline never holds media this long).
const MAX_REPORT_SKEW_US: i64 = 5_000_000;

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write it into track `track`'s file at `at_us` on the timeline.
    Write {
        /// Index of the track.
        track: usize,
        /// Its place, µs from the recording's start (pauses cut out).
        at_us: i64,
    },
    /// Not recorded: why.
    Skip(Skip),
}

/// Why a frame is not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The recording is paused.
    Paused,
    /// No track of the recording is live for it (its peer left).
    Unknown,
    /// Video that waits for a keyframe (at its start or after a resume).
    WaitingForKey,
}

/// One participant's track.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackPlace {
    /// Whose.
    pub participant: String,
    /// Sound or picture.
    pub kind: TrackKind,
    /// Camera, microphone or a shared screen.
    pub source: TrackSource,
    /// The session feeding it: its peer, and an RTP time with its place.
    anchor: Option<(PeerId, i64, i64)>,
    /// Video waits for a keyframe (at the start, after a resume).
    need_key: bool,
    /// Where its file's content ends on the timeline, as the writer said.
    end_us: i64,
}

/// Every track of one room recording and where it stands.
#[derive(Debug)]
pub struct Placement {
    t0: Instant,
    paused_us: i64,
    paused_at: Option<Instant>,
    /// (peer, mid) → index in `tracks`.
    live: HashMap<(PeerId, String), usize>,
    tracks: Vec<TrackPlace>,
    /// Per session: the timeline's µs minus the sender's clock's µs.
    clocks: HashMap<PeerId, i64>,
}

impl Placement {
    /// A recording whose timeline starts at `t0`.
    pub fn new(t0: Instant) -> Self {
        Self {
            t0,
            paused_us: 0,
            paused_at: None,
            live: HashMap::new(),
            tracks: vec![],
            clocks: HashMap::new(),
        }
    }

    /// The recording starts over at `t0` (when media begins to flow).
    pub fn start_at(&mut self, t0: Instant) {
        self.t0 = t0;
    }

    /// A track began: its index, and whether it is a new one (a returning
    /// participant continues their own).
    pub fn track(&mut self, t: &TrackInfo) -> (usize, bool) {
        // The same person's same source (camera, microphone, screen) goes
        // on in the same file, unless another of their sessions feeds it
        // now (a WHIP camera beside the call page's).
        let busy = |i: usize| self.live.iter().any(|((p, _), &j)| j == i && *p != t.peer);
        let again = (0..self.tracks.len()).find(|&i| {
            let w = &self.tracks[i];
            w.participant == t.participant && w.source == t.source && !busy(i)
        });
        let (idx, new) = match again {
            Some(i) => (i, false),
            None => {
                self.tracks.push(TrackPlace {
                    participant: t.participant.clone(),
                    kind: t.kind,
                    source: t.source,
                    anchor: None,
                    need_key: t.kind == TrackKind::Video,
                    end_us: 0,
                });
                (self.tracks.len() - 1, true)
            }
        };
        self.live.insert((t.peer, t.mid.clone()), idx);
        (idx, new)
    }

    /// A peer left: its tracks take no more frames.
    pub fn left(&mut self, peer: PeerId) {
        self.live.retain(|(p, _), _| *p != peer);
        self.clocks.remove(&peer);
    }

    /// Where frame `f` goes: by the sender's clock when its track's
    /// reports give it (`f.sender_us`), else by its RTP time from where its
    /// session's first frame arrived.
    pub fn frame(&mut self, f: &Frame) -> Decision {
        if self.paused_at.is_some() {
            return Decision::Skip(Skip::Paused);
        }
        let Some(&idx) = self.live.get(&(f.peer, f.mid.clone())) else {
            return Decision::Skip(Skip::Unknown);
        };
        let now_us =
            f.arrived.saturating_duration_since(self.t0).as_micros() as i64 - self.paused_us;
        let w = &mut self.tracks[idx];
        // A new session (first frame, or the participant came back) is
        // placed where it arrives; within it, frames follow RTP time.
        let (rtp0, at0) = match w.anchor {
            Some((p, rtp, at)) if p == f.peer => (rtp, at),
            _ => {
                let at = now_us.max(w.end_us);
                w.anchor = Some((f.peer, f.rtp_us, at));
                (f.rtp_us, at)
            }
        };
        let by_rtp = at0 + (f.rtp_us - rtp0);
        let at_us = match f.sender_us {
            Some(sent) => {
                let offset = *self.clocks.entry(f.peer).or_insert(by_rtp - sent);
                let at = sent + offset;
                if (at - now_us).abs() > MAX_REPORT_SKEW_US {
                    // A report that cannot be this frame's (seconds from
                    // where it arrived: a sender's clock that jumped, a
                    // report about other RTP times): RTP time places it.
                    by_rtp
                } else {
                    // Re-anchored: should the reports stop, RTP time goes
                    // on from here.
                    w.anchor = Some((f.peer, f.rtp_us, at));
                    at
                }
            }
            None => by_rtp,
        };
        if w.need_key && !f.keyframe {
            return Decision::Skip(Skip::WaitingForKey);
        }
        Decision::Write { track: idx, at_us }
    }

    /// The writer put a frame into track `track`'s file, whose content now
    /// ends at `end_us` on the timeline: video no longer waits for a key.
    pub fn written(&mut self, track: usize, end_us: i64) {
        if let Some(w) = self.tracks.get_mut(track) {
            w.need_key = false;
            w.end_us = w.end_us.max(end_us);
        }
    }

    /// Pauses at `now`: frames are not recorded until the resume.
    pub fn pause(&mut self, now: Instant) {
        self.paused_at.get_or_insert(now);
    }

    /// Resumes at `now`: the paused time is cut from the timeline; every
    /// session is placed anew where it resumes, video at a keyframe.
    pub fn resume(&mut self, now: Instant) {
        if let Some(at) = self.paused_at.take() {
            let cut = now.saturating_duration_since(at).as_micros() as i64;
            self.paused_us += cut;
            for w in &mut self.tracks {
                w.anchor = None;
                w.need_key = w.kind == TrackKind::Video;
            }
            // Each session's clock goes on, the paused time cut out: its
            // tracks stay together as before the pause. (Set again from
            // the first frame after it, a track whose file ended later
            // than that frame's place was pushed after it, and stayed
            // pushed: 18 ms out of sync after one pause.)
            for offset in self.clocks.values_mut() {
                *offset -= cut;
            }
        }
    }

    /// The live video tracks that wait for a keyframe (none while paused).
    pub fn waiting_for_keyframes(&self) -> Vec<(PeerId, String)> {
        if self.paused_at.is_some() {
            return vec![];
        }
        let mut out: Vec<_> = self
            .live
            .iter()
            .filter(|(_, i)| {
                let w = &self.tracks[**i];
                w.kind == TrackKind::Video && w.need_key
            })
            .map(|((peer, mid), _)| (*peer, mid.clone()))
            .collect();
        out.sort();
        out
    }

    /// Where the recording's content ends so far.
    pub fn end_us(&self) -> i64 {
        self.tracks.iter().map(|t| t.end_us).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
