//! One peer: a str0m `Rtc` with who it is and what it sends.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::Rtc;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, Mid};
use tapedeck_core::RoomId;
use tapedeck_media::rtc::is_keyframe;

use super::{Frame, Joiner, Participant, PeerId, TrackInfo};

/// A track a peer sends.
pub(super) struct TrackIn {
    pub info: TrackInfo,
    pub mid: Mid,
    /// When a keyframe was last asked for (at most one a second).
    pub last_keyframe_request: Option<Instant>,
}

pub(super) struct Peer {
    pub id: PeerId,
    pub room: RoomId,
    pub joiner: Joiner,
    pub rtc: Rtc,
    pub connected: bool,
    pub tracks: Vec<TrackIn>,
    pub frames_in: u64,
    /// The instant its `Rtc` last asked to be woken at.
    pub wake_at: Option<Instant>,
    /// Remote addresses it has sent from (for routing datagrams).
    pub addrs: Vec<SocketAddr>,
}

/// The codec's name as the API shows it.
fn codec_name(c: Codec) -> String {
    format!("{c:?}").to_ascii_lowercase()
}

impl Peer {
    /// A peer for `offer`, answering from `addr`.
    pub fn accept(
        id: PeerId,
        room: RoomId,
        joiner: Joiner,
        offer: &str,
        addr: SocketAddr,
        now: Instant,
    ) -> Result<(Self, String), String> {
        let (rtc, answer) = tapedeck_media::rtc::answer(offer, addr, now)?;
        Ok((
            Self {
                id,
                room,
                joiner,
                rtc,
                connected: false,
                tracks: vec![],
                frames_in: 0,
                wake_at: None,
                addrs: vec![],
            },
            answer,
        ))
    }

    /// A track it sends began.
    pub fn track_added(&mut self, mid: Mid, kind: MediaKind) {
        if self.tracks.iter().any(|t| t.mid == mid) {
            return;
        }
        let codec = self
            .rtc
            .media(mid)
            .and_then(|m| m.remote_pts().first().copied())
            .and_then(|pt| {
                self.rtc
                    .codec_config()
                    .find(|p| p.pt() == pt)
                    .map(|p| p.spec().codec)
            })
            .map(codec_name)
            .unwrap_or_default();
        self.tracks.push(TrackIn {
            info: TrackInfo {
                peer: self.id,
                participant: self.joiner.name.clone(),
                kind: if kind == MediaKind::Audio {
                    "audio"
                } else {
                    "video"
                },
                codec,
                mid: mid.to_string(),
            },
            mid,
            last_keyframe_request: None,
        });
    }

    /// A frame it sent, as subscribers get it; asks for a keyframe after loss.
    pub fn frame(&mut self, d: &MediaData, now: Instant) -> Frame {
        self.frames_in += 1;
        if let Some(t) = self.tracks.iter_mut().find(|t| t.mid == d.mid) {
            // The codec as it really arrives (the offer may list several).
            let codec = codec_name(d.params.spec().codec);
            if t.info.codec != codec {
                t.info.codec = codec;
            }
        }
        if !d.contiguous {
            self.request_keyframe(d.mid, now);
        }
        let rate = d.time.frequency().get() as i128;
        let rtp_us = (d.time.numer() as i128 * 1_000_000 / rate.max(1)) as i64;
        Frame {
            peer: self.id,
            mid: d.mid.to_string(),
            rtp_us,
            arrived: d.network_time,
            keyframe: is_keyframe(d.params.spec().codec, &d.data),
            contiguous: d.contiguous,
            data: d.data.clone(),
        }
    }

    /// Asks for a keyframe on one of its video tracks (at most once a second).
    pub fn request_keyframe(&mut self, mid: Mid, now: Instant) {
        let Some(t) = self
            .tracks
            .iter_mut()
            .find(|t| t.mid == mid && t.info.kind == "video")
        else {
            return;
        };
        if t.last_keyframe_request
            .is_some_and(|at| now.saturating_duration_since(at).as_millis() < 1000)
        {
            return;
        }
        if let Some(mut w) = self.rtc.writer(mid)
            && w.request_keyframe(None, KeyframeRequestKind::Pli).is_ok()
        {
            t.last_keyframe_request = Some(now);
        }
    }

    /// Asks for a keyframe on every video track.
    pub fn request_keyframes(&mut self, now: Instant) {
        let mids: Vec<Mid> = self.tracks.iter().map(|t| t.mid).collect();
        for mid in mids {
            self.request_keyframe(mid, now);
        }
    }

    pub fn participant(&self) -> Participant {
        Participant {
            peer: self.id,
            name: self.joiner.name.clone(),
            user: self.joiner.user.clone(),
            connected: self.connected,
            tracks: self.tracks.iter().map(|t| t.info.clone()).collect(),
            frames_in: self.frames_in,
        }
    }
}
