//! Forwarding: a frame of one peer's track written to every other peer
//! of its room that receives it; a simulcast track's frame only to those
//! that get its layer, on their own continuous timeline; and the choice
//! of those layers from each receiver's bandwidth estimate.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use str0m::format::PayloadParams;
use str0m::media::{MediaKind, MediaTime, Mid, Rid};

use super::Sfu;
use crate::rtc::PeerId;
use crate::rtc::simulcast;

/// A simulcast frame's layer, as forwarding follows it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layer {
    pub rid: Rid,
    pub keyframe: bool,
    pub rtp_us: i64,
}

/// A receiver's bandwidth while its reports show no loss: every layer
/// fits, so each gets the best one alive.
const UNLIMITED_BPS: u64 = 1_000_000_000_000;

/// How often a receiver's simulcast layers are chosen again.
const REALLOCATE: Duration = Duration::from_secs(1);

impl Sfu {
    /// Writes a frame of `from`'s track to every peer receiving it; a
    /// simulcast layer's frame only to those that get that layer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward(
        &mut self,
        from: PeerId,
        mid: Mid,
        params: PayloadParams,
        time: MediaTime,
        arrived: Instant,
        data: &Arc<[u8]>,
        layer: Option<Layer>,
    ) {
        let Some(sender) = self.peers.get(&from) else {
            return;
        };
        let room = sender.room;
        // The layers alive and their clocks, to follow one.
        let layers = layer.and_then(|_| {
            sender
                .tracks
                .iter()
                .find(|t| t.mid == mid)
                .and_then(|t| t.layers.as_ref())
                .filter(|l| l.settled(self.now))
                .map(|l| (l.ranked(self.now), l.clocks()))
        });
        let receivers = self.rooms.get(&room).cloned().unwrap_or_default();
        for to in receivers {
            if to == from {
                continue;
            }
            let Some(p) = self.peers.get_mut(&to) else {
                continue;
            };
            let Some(o) = p.outs.iter_mut().find(|o| o.from == (from, mid)) else {
                continue;
            };
            let Some(out_mid) = o.open_mid() else {
                continue;
            };
            let mut time = time;
            if layer.is_some() && layers.is_none() {
                // Its layers are not known yet.
                continue;
            }
            if let (Some(l), Some((alive, clocks))) = (layer, &layers) {
                // A receiver on no layer, or on one that stopped, is
                // given one (it starts at that layer's next key frame);
                // each second the layers are chosen again (the sender's
                // rates change).
                let lost = o.follow.current().is_none_or(|c| !alive.contains(&c))
                    && o.follow.target().is_none_or(|t| !alive.contains(&t));
                let due = p
                    .allocated_at
                    .is_none_or(|t| self.now.saturating_duration_since(t) >= REALLOCATE);
                if lost || due {
                    self.allocate(to);
                }
                let Some(p) = self.peers.get_mut(&to) else {
                    continue;
                };
                let Some(o) = p.outs.iter_mut().find(|o| o.from == (from, mid)) else {
                    continue;
                };
                let Some(at_us) = o.follow.frame(l.rid, l.keyframe, l.rtp_us, arrived, clocks)
                else {
                    continue;
                };
                let hz = i128::from(time.frequency().get());
                let ticks = (i128::from(at_us) * hz + 500_000).div_euclid(1_000_000);
                time = MediaTime::new(ticks.max(0) as u64, time.frequency());
            }
            let Some(p) = self.peers.get_mut(&to) else {
                continue;
            };
            let Some(w) = p.rtc.writer(out_mid) else {
                continue;
            };
            let Some(pt) = w.match_params(params) else {
                continue;
            };
            if let Err(e) = w.write(pt, arrived, time, data.clone()) {
                tracing::debug!(peer = %to, error = %e, "rtc: forward");
                continue;
            }
            self.stats.frames_forwarded.fetch_add(1, Ordering::Relaxed);
            self.poll(to);
        }
    }

    /// Chooses the simulcast layer of each video track `to` receives, to
    /// fit its bandwidth estimate with the tracks sent whole (see
    /// [`simulcast::allocate`]); a layer
    /// chosen and not yet reached is asked of its sender as a key frame. The estimator
    /// is told what the next layer up and the best layers would take, so
    /// str0m pads and probes toward them.
    pub(super) fn allocate(&mut self, to: PeerId) {
        let now = self.now;
        let Some(p) = self.peers.get_mut(&to) else {
            return;
        };
        if p.estimate.update(&mut p.reports, now) {
            tracing::debug!(peer = %to, estimate = ?p.estimate.bps(), "rtc: a receiver's estimate changed");
        }
        let estimate = p.estimate.bps().unwrap_or(UNLIMITED_BPS);
        let Some(p) = self.peers.get(&to) else {
            return;
        };
        let mut audio = 0;
        let mut videos = vec![];
        // Per entry of `videos`: the out it is and its layers, best first
        // (None: a track without layers, which is forwarded whole).
        let mut layered = vec![];
        for (i, o) in p.outs.iter().enumerate() {
            if o.open_mid().is_none() {
                continue;
            }
            if o.kind == MediaKind::Audio {
                audio += 1;
                continue;
            }
            let Some(track) = self
                .peers
                .get(&o.from.0)
                .and_then(|s| s.tracks.iter().find(|t| t.mid == o.from.1))
            else {
                continue;
            };
            match track.layers.as_ref() {
                // Not settled yet: it is chosen again when it is.
                Some(layers) if !layers.settled(now) => continue,
                Some(layers) => {
                    let ranked = layers.ranked(now);
                    if ranked.is_empty() {
                        continue;
                    }
                    let rates: Vec<u64> = ranked.iter().map(|r| layers.rate_bps(*r, now)).collect();
                    let held = o
                        .follow
                        .current()
                        .and_then(|c| ranked.iter().position(|r| *r == c));
                    videos.push((rates, held));
                    layered.push(Some((i, ranked)));
                }
                None => {
                    videos.push((vec![track.rate.bps(now)], Some(0)));
                    layered.push(None);
                }
            }
        }
        let alloc = simulcast::allocate(estimate, audio, &videos);
        let Some(p) = self.peers.get_mut(&to) else {
            return;
        };
        p.allocated_at = Some(now);
        let mut asks = vec![];
        for (entry, k) in layered.into_iter().zip(&alloc.picks) {
            let Some((i, ranked)) = entry else {
                continue;
            };
            let o = &mut p.outs[i];
            o.follow.want(ranked[*k]);
            // Asked again each time while it waits: the sender sends a
            // key frame only when asked, a request within a second of
            // another receiver's is not sent (so one joining just after
            // another would wait for ever), and a request can be lost.
            if let Some(t) = o.follow.target() {
                asks.push((o.from, t));
            }
        }
        for ((sender, mid), rid) in asks {
            if let Some(s) = self.peers.get_mut(&sender) {
                s.request_layer_keyframe(mid, Some(rid), now);
                self.poll(sender);
            }
        }
        self.poll(to);
    }
}
