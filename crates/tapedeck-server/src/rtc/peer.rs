//! One peer: a str0m `Rtc` with who it is and what it sends.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::Rtc;
use str0m::change::SdpPendingOffer;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid, Rid};
use str0m::net::Protocol;
use tapedeck_core::RoomId;
use tapedeck_media::rtc::{Endpoints, is_keyframe, key_pixels};

use super::loss::{LossEstimate, Reports};
use super::simulcast::{Follow, Layers, Rate};
use tapedeck_media::rtc::Feedback;

use super::{Frame, Joiner, Participant, PeerId, TrackCodec, TrackInfo, TrackKind, TrackSource};

/// A track a peer sends.
pub(super) struct TrackIn {
    pub info: TrackInfo,
    pub mid: Mid,
    /// When a keyframe was last asked for, per layer (at most one a second).
    pub last_keyframe_request: Vec<(Option<Rid>, Instant)>,
    /// Its simulcast layers, once a frame with a rid came (none for a
    /// track sent as one stream).
    pub layers: Option<Layers>,
    /// The layer the recording keeps: the best one alive.
    pub recorded: Follow,
    /// Its bitrate as received, all layers together (what a receiver's
    /// bandwidth must carry of a track without layers).
    pub rate: Rate,
}

/// A frame as the others get it, with what forwarding needs to follow a
/// simulcast layer.
pub(super) struct Sent {
    /// What the recording gets (None for a codec tapedeck does not record,
    /// or a simulcast layer it does not keep).
    pub frame: Option<Frame>,
    /// Its simulcast layer.
    pub rid: Option<Rid>,
    pub keyframe: bool,
    /// Its RTP time on its own layer (µs).
    pub rtp_us: i64,
}

/// Where a track forwarded to this peer stands in the SDP exchange (the
/// server offers, the browser answers; one offer at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OutState {
    /// Waiting for the next offer.
    ToOpen,
    /// In the offer now out, at this mid.
    Negotiating(Mid),
    /// Answered: media flows on this mid.
    Open(Mid),
    /// Its sender left: to be stopped in the next offer.
    ToStop(Mid),
    /// Stopped in the offer now out.
    NegotiatingStop(Mid),
}

/// Another participant's track forwarded to this peer.
pub(super) struct TrackOut {
    /// Whose track, and its mid at the sender.
    pub from: (PeerId, Mid),
    /// Whether it is a shared screen's (offered in a stream of its own,
    /// `peer_N-screen`, so the page shows it apart from the camera).
    pub screen: bool,
    pub kind: MediaKind,
    pub state: OutState,
    /// The simulcast layer it gets (its sender's track has layers).
    pub follow: Follow,
}

impl TrackOut {
    /// The mid it is written on, once answered.
    pub fn open_mid(&self) -> Option<Mid> {
        match self.state {
            OutState::Open(m) => Some(m),
            _ => None,
        }
    }
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
    /// The media lines its page keeps for sharing a screen.
    pub screen: Vec<Mid>,
    /// Remote addresses it has sent from, and over which protocol (for
    /// routing datagrams).
    pub addrs: Vec<(Protocol, SocketAddr)>,
    /// The protocol its latest datagram came over (its media's path).
    pub transport: Protocol,
    /// Whether it has a call page to signal (a WHIP publisher only sends).
    pub signalled: bool,
    /// Other participants' tracks it receives.
    pub outs: Vec<TrackOut>,
    /// The server's offer awaiting the browser's answer.
    pub pending: Option<SdpPendingOffer>,
    /// Camera and microphone as the participant set them on the call page.
    pub audio_on: bool,
    pub video_on: bool,
    /// Sharing a screen, as its page says.
    pub screen_on: bool,
    /// Since when ICE has had no working path (the network dropped): the
    /// peer is kept for [`RECONNECT_GRACE`] so a participant whose network
    /// comes back continues where they were.
    pub lost_at: Option<Instant>,
    /// When it joined (it must connect within `rtc.connect_timeout_s`).
    pub joined_at: Instant,
    /// Its bandwidth estimate (bits per second), for the simulcast
    /// layers it gets: from the loss its receiver reports give (None while
    /// they show none).
    pub estimate: LossEstimate,
    /// Its receiver reports since the estimate was last updated.
    pub reports: Reports,
    /// When its simulcast layers were last chosen (again each second).
    pub allocated_at: Option<Instant>,
}

/// How long a peer whose network path dropped is kept, waiting for it to
/// come back, before it counts as gone (browsers give up after about 30 s).
pub const RECONNECT_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// The codec's name as the API shows it.
/// The codec of a track tapedeck records (None: one it does not).
fn track_codec(c: Codec) -> Option<TrackCodec> {
    Some(match c {
        Codec::Opus => TrackCodec::Opus,
        Codec::Vp8 => TrackCodec::Vp8,
        Codec::Vp9 => TrackCodec::Vp9,
        Codec::Av1 => TrackCodec::Av1,
        Codec::H264 => TrackCodec::H264,
        _ => return None,
    })
}

impl Peer {
    /// A peer for `offer`, answering from `addr`.
    pub fn accept(
        id: PeerId,
        room: RoomId,
        joiner: Joiner,
        offer: &str,
        at: Endpoints,
        now: Instant,
        signalled: bool,
    ) -> Result<(Self, String), String> {
        // A call page receives the others: its receiver reports give the
        // loss its bandwidth estimate comes from (see `rtc::loss`). A WHIP
        // publisher only sends.
        let feedback = if signalled {
            Feedback::Reports
        } else {
            Feedback::None
        };
        let (rtc, answer) = tapedeck_media::rtc::answer(offer, at, now, feedback)?;
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
                screen: vec![],
                transport: Protocol::Udp,
                signalled,
                outs: vec![],
                pending: None,
                audio_on: true,
                video_on: true,
                screen_on: false,
                lost_at: None,
                joined_at: now,
                estimate: LossEstimate::default(),
                reports: Reports::default(),
                allocated_at: None,
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
            .and_then(track_codec);
        let kind = if kind == MediaKind::Audio {
            TrackKind::Audio
        } else {
            TrackKind::Video
        };
        self.tracks.push(TrackIn {
            info: TrackInfo {
                peer: self.id,
                participant: self.joiner.name.clone(),
                kind,
                source: TrackSource::of(kind, self.screen.contains(&mid)),
                codec,
                mid: mid.to_string(),
            },
            mid,
            last_keyframe_request: vec![],
            layers: None,
            rate: Rate::default(),
            recorded: Follow::default(),
        });
    }

    /// A frame it sent, as the recording and the others get it; asks for
    /// a keyframe after loss.
    pub fn frame(&mut self, d: &MediaData, now: Instant) -> Sent {
        self.frames_in += 1;
        let spec = d.params.spec().codec;
        if let Some(t) = self.tracks.iter_mut().find(|t| t.mid == d.mid) {
            // The codec as it really arrives (the offer may list several).
            t.info.codec = track_codec(spec);
        }
        if !d.contiguous {
            self.request_layer_keyframe(d.mid, d.rid, now);
        }
        let keyframe = is_keyframe(spec, &d.data);
        let rate = d.time.frequency().get() as i128;
        let rtp_us = (d.time.numer() as i128 * 1_000_000 / rate.max(1)) as i64;
        // A report sent before the track's first packet (a call page's
        // screen, kept silent until shared) ties no RTP time the frames
        // use: only reports of a sending track count.
        let sender = d
            .last_sender_info
            .as_ref()
            .filter(|sr| sr.sender_packet_count > 0)
            .map(|sr| sender_us(d, sr));
        let mut sent = Sent {
            frame: None,
            rid: d.rid,
            keyframe,
            rtp_us,
        };
        let Some(codec) = track_codec(spec) else {
            return sent;
        };
        // A simulcast layer: the recording keeps the best one alive as one
        // track, switching at key frames, its time going on across.
        let mut recorded_us = rtp_us;
        if let Some(t) = self.tracks.iter_mut().find(|t| t.mid == d.mid) {
            t.rate.add(d.data.len(), now);
        }
        if let Some(rid) = d.rid {
            let Some(t) = self.tracks.iter_mut().find(|t| t.mid == d.mid) else {
                return sent;
            };
            let layers = t.layers.get_or_insert_with(Layers::default);
            let pixels = keyframe.then(|| key_pixels(spec, &d.data)).flatten();
            layers.frame(rid, pixels, d.data.len(), sender.map(|s| s - rtp_us), now);
            if !layers.settled(now) {
                return sent;
            }
            if let Some(best) = layers.ranked(now).first() {
                t.recorded.want(*best);
            }
            let clocks = layers.clocks();
            let taken = t
                .recorded
                .frame(rid, keyframe, rtp_us, d.network_time, &clocks);
            // The layer switched to starts at its next key frame: ask for it.
            if let Some(next) = t.recorded.target() {
                self.request_layer_keyframe(d.mid, Some(next), now);
            }
            match taken {
                Some(at) => recorded_us = at,
                None => return sent,
            }
        }
        sent.frame = Some(Frame {
            peer: self.id,
            mid: d.mid.to_string(),
            rtp_us: recorded_us,
            sender_us: sender,
            arrived: d.network_time,
            // str0m gives it negated (0 to -127).
            audio_level: d.ext_vals.audio_level.map(|l| l.unsigned_abs().min(127)),
            codec,
            keyframe,
            contiguous: d.contiguous,
            data: d.data.clone(),
        });
        sent
    }

    /// Asks for a keyframe on one of its video tracks: on every layer of
    /// a simulcast track (at most once a second each).
    pub fn request_keyframe(&mut self, mid: Mid, now: Instant) {
        let rids: Vec<Option<Rid>> = match self
            .tracks
            .iter()
            .find(|t| t.mid == mid)
            .and_then(|t| t.layers.as_ref())
        {
            Some(l) => l.ranked(now).into_iter().map(Some).collect(),
            None => vec![None],
        };
        for rid in rids {
            self.request_layer_keyframe(mid, rid, now);
        }
    }

    /// Asks for a keyframe on one layer of a video track (`rid` None: a
    /// track without layers), at most once a second.
    pub fn request_layer_keyframe(&mut self, mid: Mid, rid: Option<Rid>, now: Instant) {
        let Some(t) = self
            .tracks
            .iter_mut()
            .find(|t| t.mid == mid && t.info.kind == TrackKind::Video)
        else {
            return;
        };
        let last = t.last_keyframe_request.iter().find(|(r, _)| *r == rid);
        if last.is_some_and(|(_, at)| now.saturating_duration_since(*at).as_millis() < 1000) {
            return;
        }
        if let Some(mut w) = self.rtc.writer(mid)
            && w.request_keyframe(rid, KeyframeRequestKind::Pli).is_ok()
        {
            t.last_keyframe_request.retain(|(r, _)| *r != rid);
            t.last_keyframe_request.push((rid, now));
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
            audio: self.audio_on,
            video: self.video_on,
            screen: self.screen_on,
            transport: match self.transport {
                Protocol::Udp => "udp",
                _ => "tcp",
            },
        }
    }

    /// Starts receiving `from`'s track (offered in the next negotiation).
    pub fn forward_from(&mut self, from: (PeerId, Mid), kind: MediaKind, screen: bool) {
        if self.signalled && !self.outs.iter().any(|o| o.from == from) {
            self.outs.push(TrackOut {
                from,
                screen,
                kind,
                state: OutState::ToOpen,
                follow: Follow::default(),
            });
        }
    }

    /// Stops receiving every track of `gone`.
    pub fn unforward(&mut self, gone: PeerId) {
        self.outs.retain_mut(|o| {
            if o.from.0 != gone {
                return true;
            }
            match o.state {
                OutState::ToOpen => false,
                OutState::Open(m) => {
                    o.state = OutState::ToStop(m);
                    true
                }
                // Settled when the answer comes (see `answered`).
                _ => true,
            }
        });
    }

    /// Makes the next offer when tracks changed and none is out; returns
    /// it for the call page.
    pub fn offer(&mut self) -> Option<String> {
        if !self.signalled || self.pending.is_some() {
            return None;
        }
        let mut change = self.rtc.sdp_api();
        for o in &mut self.outs {
            match o.state {
                OutState::ToOpen => {
                    let stream = if o.screen {
                        format!("{}-screen", o.from.0)
                    } else {
                        o.from.0.to_string()
                    };
                    let mid =
                        change.add_media(o.kind, Direction::SendOnly, Some(stream), None, None);
                    o.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(m) => {
                    change.stop_media(m);
                    o.state = OutState::NegotiatingStop(m);
                }
                _ => {}
            }
        }
        let (offer, pending) = change.apply()?;
        self.pending = Some(pending);
        Some(offer.to_sdp_string())
    }

    /// The browser answered the offer: returns the tracks that opened (to
    /// ask their senders for a keyframe).
    pub fn answered(
        &mut self,
        sdp: &str,
        live: impl Fn(PeerId) -> bool,
    ) -> Result<Vec<(PeerId, Mid)>, String> {
        let answer = tapedeck_media::rtc::parse_answer(sdp)?;
        let pending = self
            .pending
            .take()
            .ok_or_else(|| "no offer is waiting for an answer".to_string())?;
        if let Err(e) = self.rtc.sdp_api().accept_answer(pending, answer) {
            // The offer is void: what it carried goes in the next one.
            for o in &mut self.outs {
                o.state = match o.state {
                    OutState::Negotiating(_) => OutState::ToOpen,
                    OutState::NegotiatingStop(m) => OutState::ToStop(m),
                    s => s,
                };
            }
            return Err(format!("the SDP answer cannot be applied: {e}"));
        }
        let mut opened = vec![];
        self.outs.retain_mut(|o| match o.state {
            OutState::Negotiating(m) => {
                if live(o.from.0) {
                    o.state = OutState::Open(m);
                    opened.push(o.from);
                } else {
                    o.state = OutState::ToStop(m);
                }
                true
            }
            OutState::NegotiatingStop(_) => false,
            _ => true,
        });
        Ok(opened)
    }
}

/// When frame `d` was captured on its sender's clock (µs since 1970), from
/// sender report `sr`: the report's NTP time plus the RTP time between the
/// report and the frame. RTP times are 32 bits on the wire (the report's)
/// and wrap: the difference is taken modulo 2^32, which holds for frames
/// within 6 hours of their report at 90 kHz.
fn sender_us(d: &MediaData, sr: &str0m::rtp::rtcp::SenderInfo) -> i64 {
    let ntp_us = sr
        .ntp_time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.as_micros() as i64);
    let ticks = (d.time.numer() as u32).wrapping_sub(sr.rtp_time.numer() as u32) as i32;
    let rate = i64::from(d.time.frequency().get()).max(1);
    ntp_us + i64::from(ticks) * 1_000_000 / rate
}
