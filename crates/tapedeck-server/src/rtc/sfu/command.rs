//! The media server's inputs: a datagram, time passing, and the commands
//! of the rest of the server (join, answer, leave, subscribe, keyframes,
//! close a room).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use str0m::media::{MediaKind, Mid};
use str0m::net::Protocol;
use tapedeck_core::RoomId;

use super::{Sfu, SfuError};
use crate::rtc::peer::Peer;
use crate::rtc::{Ended, Joiner, Offer, Participant, PeerId, RoomLimits, TrackInfo, TrackKind};

/// Something for the media server to handle.
#[derive(Debug)]
pub enum Input<'a> {
    /// A datagram arrived on the media socket.
    Datagram {
        /// Over UDP, or a peer's TCP connection (RFC 4571 frames unwrapped).
        proto: Protocol,
        /// Who sent it.
        from: SocketAddr,
        /// What it holds.
        data: &'a [u8],
    },
    /// Time passed: timers due now run.
    Timeout,
    /// A peer joins `room` with an SDP offer. A `signalled` one (a call
    /// page) also receives everyone else's tracks, renegotiated over
    /// [`super::Event::Signal`]; another (WHIP) only publishes.
    Join {
        /// The room.
        room: RoomId,
        /// Its limits now.
        limits: RoomLimits,
        /// Who.
        joiner: Joiner,
        /// The offer, and its screen's media lines.
        offer: Offer,
        /// Whether it has a call page to signal.
        signalled: bool,
    },
    /// A call page's answer to the server's last offer.
    Answer {
        /// Whose.
        peer: PeerId,
        /// The SDP.
        sdp: String,
    },
    /// A call page turned its microphone or camera on or off.
    MediaState {
        /// Whose.
        peer: PeerId,
        /// Microphone on.
        audio: bool,
        /// Camera on.
        video: bool,
        /// Sharing a screen.
        screen: bool,
    },
    /// A peer leaves `room`.
    Leave {
        /// The room.
        room: RoomId,
        /// The peer.
        peer: PeerId,
    },
    /// A recording subscribes to `room`'s media: the answer lists the
    /// tracks live now, and every sender is asked for a keyframe.
    Subscribe {
        /// The room.
        room: RoomId,
    },
    /// Asks every sender in `room` for a keyframe.
    RequestKeyframes {
        /// The room.
        room: RoomId,
    },
    /// Asks one track's sender for a keyframe (at most one a second).
    RequestKeyframe {
        /// The sender.
        peer: PeerId,
        /// Its track's mid.
        mid: String,
    },
    /// Ends every peer of `room`.
    CloseRoom {
        /// The room.
        room: RoomId,
    },
    /// A call page's signal could not be delivered (it does not read its
    /// socket): the peer is ended.
    SignalStalled {
        /// Whose.
        peer: PeerId,
    },
}

/// The media server's answer to an input.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Nothing to say.
    Done,
    /// The peer joined: its id and the SDP answer.
    Joined(PeerId, String),
    /// Whether the peer was in the room it left.
    Left(bool),
    /// The tracks live in a room subscribed to.
    Tracks(Vec<TrackInfo>),
}

impl Sfu {
    /// Handles `input` at `now`; then drain [`Sfu::poll_output`].
    pub fn handle(&mut self, now: Instant, input: Input<'_>) -> Result<Reply, SfuError> {
        self.now = self.now.max(now);
        match input {
            Input::Datagram { proto, from, data } => {
                self.datagram(proto, data, from);
                Ok(Reply::Done)
            }
            Input::Timeout => {
                self.timers_due();
                Ok(Reply::Done)
            }
            Input::Join {
                room,
                limits,
                joiner,
                offer,
                signalled,
            } => self.join(room, limits, joiner, offer, signalled),
            Input::Answer { peer, sdp } => self.answer(peer, &sdp).map(|()| Reply::Done),
            Input::MediaState {
                peer,
                audio,
                video,
                screen,
            } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.audio_on = audio;
                    p.video_on = video;
                    p.screen_on = screen;
                    let room = p.room;
                    self.tell_participants(room);
                }
                Ok(Reply::Done)
            }
            Input::Leave { room, peer } => {
                let here = self.peers.get(&peer).is_some_and(|p| p.room == room);
                if here {
                    self.remove(peer, Ended::Left);
                }
                Ok(Reply::Left(here))
            }
            Input::Subscribe { room } => {
                let tracks = self
                    .rooms
                    .get(&room)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| self.peers.get(id))
                    .flat_map(|p| p.tracks.iter().map(|t| t.info.clone()))
                    .collect();
                self.request_keyframes(room);
                Ok(Reply::Tracks(tracks))
            }
            Input::RequestKeyframes { room } => {
                self.request_keyframes(room);
                Ok(Reply::Done)
            }
            Input::RequestKeyframe { peer, mid } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.request_keyframe(str0m::media::Mid::from(mid.as_str()), self.now);
                    self.drive(peer);
                }
                Ok(Reply::Done)
            }
            Input::CloseRoom { room } => {
                for id in self.rooms.get(&room).cloned().unwrap_or_default() {
                    self.remove(id, Ended::RoomClosed);
                }
                Ok(Reply::Done)
            }
            Input::SignalStalled { peer } => {
                tracing::info!(peer = %peer, "rtc: ending a call page that does not read its socket");
                self.remove(peer, Ended::SignallingStalled);
                Ok(Reply::Done)
            }
        }
    }

    /// Who is in `room` now.
    pub fn participants(&self, room: RoomId) -> Vec<Participant> {
        self.rooms
            .get(&room)
            .into_iter()
            .flatten()
            .filter_map(|id| self.peers.get(id))
            .map(Peer::participant)
            .collect()
    }

    fn join(
        &mut self,
        room: RoomId,
        limits: RoomLimits,
        joiner: Joiner,
        offer: Offer,
        signalled: bool,
    ) -> Result<Reply, SfuError> {
        let caller = joiner.caller(room);
        // A participant is a caller: their sessions (a camera over WHIP,
        // the call page, one being replaced) are one person.
        let in_room: HashSet<String> = self
            .rooms
            .get(&room)
            .into_iter()
            .flatten()
            .filter_map(|id| self.peers.get(id))
            .map(|p| p.joiner.caller(p.room))
            .collect();
        let connecting = self
            .peers
            .values()
            .filter(|p| !p.connected && p.joiner.caller(p.room) == caller)
            .count();
        // Their sessions count once against the room, so they are
        // bounded here: one join token cannot take the server's slots.
        let sessions = self
            .rooms
            .get(&room)
            .into_iter()
            .flatten()
            .filter_map(|id| self.peers.get(id))
            .filter(|p| p.joiner.caller(p.room) == caller)
            .count();
        if self.peers.len() >= self.limits.max_peers as usize {
            return Err(SfuError::TooManyPeers {
                connected: self.peers.len(),
            });
        }
        if !in_room.contains(&caller) && in_room.len() >= limits.max_participants as usize {
            return Err(SfuError::RoomFull {
                in_room: in_room.len(),
                max: limits.max_participants,
            });
        }
        if sessions >= self.limits.max_sessions_per_caller as usize {
            return Err(SfuError::TooManySessions { sessions });
        }
        if connecting >= self.limits.max_connecting_per_caller as usize {
            return Err(SfuError::TooManyConnecting {
                connecting,
                timeout_s: self.limits.connect_timeout.as_secs(),
            });
        }
        let id = PeerId(self.next_id);
        self.next_id += 1;
        let now = self.now;
        let (mut peer, answer) =
            Peer::accept(id, room, joiner, &offer.sdp, self.local, now, signalled)
                .map_err(SfuError::InvalidSdp)?;
        peer.screen = offer.screen.iter().map(|m| Mid::from(m.as_str())).collect();
        // It receives every track already in the call.
        for other in self.rooms.get(&room).into_iter().flatten() {
            if let Some(o) = self.peers.get(other) {
                for t in &o.tracks {
                    let kind = match t.info.kind {
                        TrackKind::Audio => MediaKind::Audio,
                        TrackKind::Video => MediaKind::Video,
                    };
                    peer.forward_from((o.id, t.mid), kind, t.info.source.is_screen());
                }
            }
        }
        // Its connect deadline: dropped then unless connected.
        self.timers
            .push(std::cmp::Reverse((now + self.limits.connect_timeout, id)));
        self.peers.insert(id, peer);
        self.rooms.entry(room).or_default().push(id);
        self.stats.peers.fetch_add(1, Ordering::Relaxed);
        self.poll(id);
        self.negotiate(id);
        self.settle();
        self.tell_participants(room);
        Ok(Reply::Joined(id, answer))
    }

    fn answer(&mut self, peer: PeerId, sdp: &str) -> Result<(), SfuError> {
        let live: Vec<PeerId> = self.peers.keys().copied().collect();
        let opened = match self.peers.get_mut(&peer) {
            None => return Err(SfuError::PeerGone),
            Some(p) => p
                .answered(sdp, |id| live.contains(&id))
                .map_err(SfuError::InvalidSdp)?,
        };
        // A new receiver starts at a keyframe.
        let now = self.now;
        for (sender, mid) in opened {
            if let Some(s) = self.peers.get_mut(&sender) {
                s.request_keyframe(mid, now);
                self.poll(sender);
            }
        }
        self.poll(peer);
        self.negotiate(peer);
        self.settle();
        Ok(())
    }
}
