//! The media server, sans-IO: every peer of every room in one state
//! machine that owns no socket, reads no clock and sends on no channel.
//! It is driven by [`Sfu::handle`] with the time and an [`Input`] (a
//! datagram, a command, time passing) and drained with
//! [`Sfu::poll_output`]: datagrams to send, events (a call page's signal,
//! a room's media for its recordings) and when to call it next. The thin
//! loop around it (`super::run`) owns the UDP socket, the clock and the
//! channels; the tests drive it with simulated peers in simulated time.
//!
//! Cost is per event, not per peer: a datagram goes to the peer its source
//! address belongs to (a new address is matched once with `Rtc::accepts`,
//! which reads the STUN username), and a peer's timer is woken only when
//! its own `poll_output` deadline is due (a heap of deadlines). str0m's
//! chat example scans every peer per datagram and times out every peer per
//! loop, which at 200 peers and ~180 packets/s each is millions of calls a
//! second.
//!
//! Forwarding (the SFU proper): a frame from one peer is written, as it
//! arrived (no decoding), to every other peer of its room that joined from
//! the call page, on a send-only m-line the server offered it over the page's
//! socket; a receiver's keyframe request goes to the sender. Work one peer's
//! output makes for others (frames, keyframe requests, new tracks) is queued
//! and settled after that peer is polled, so no peer is polled inside
//! another's poll.
//!
//! A peer whose input str0m refuses (bad DTLS, garbage SRTP, a broken
//! state) is dropped and counted; no other peer is touched.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use str0m::format::PayloadParams;
use str0m::media::{KeyframeRequest, MediaKind, MediaTime, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Event as RtcEvent, IceConnectionState, Input as RtcInput};
use tapedeck_core::RoomId;
use tapedeck_media::rtc::Endpoints;

mod command;
mod error;
mod forward;
#[cfg(test)]
mod tests;

pub use command::{Input, Reply};
pub use error::SfuError;
use forward::Layer;

use super::peer::{OutState, Peer, RECONNECT_GRACE};
use super::{Ended, PeerId, RoomMedia, RtcStats, Signal};

/// Work one peer's output makes for the others of its room.
enum Propagate {
    /// A frame to forward.
    Media {
        from: PeerId,
        mid: Mid,
        params: PayloadParams,
        time: MediaTime,
        arrived: Instant,
        data: Arc<[u8]>,
        /// Its simulcast layer, whether it is a key frame, and its RTP time
        /// on its layer (µs).
        rid: Option<Rid>,
        keyframe: bool,
        rtp_us: i64,
    },
    /// A new track to offer to the others.
    TrackAdded {
        from: PeerId,
        mid: Mid,
        kind: MediaKind,
        screen: bool,
    },
    /// A receiver asked for a keyframe on a forwarded track.
    Keyframe { to: PeerId, req: KeyframeRequest },
}

/// What the media server allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Peers at once across all rooms.
    pub max_peers: u32,
    /// Peers not yet connected one caller may hold.
    pub max_connecting_per_caller: u32,
    /// Peers one caller may hold in one room, connected or not.
    pub max_sessions_per_caller: u32,
    /// A peer not connected this long after joining is dropped.
    pub connect_timeout: std::time::Duration,
}

/// What the media server asks of the loop around it.
#[derive(Debug)]
pub enum Output {
    /// Send `data` to `to` from the media socket (UDP) or on the peer's
    /// TCP connection (`proto` TCP, framed by the loop).
    Transmit {
        /// Which of the two.
        proto: Protocol,
        /// The peer's address.
        to: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
    /// Something to pass on.
    Event(Event),
    /// Nothing more now: call [`Sfu::handle`] with [`Input::Timeout`] at
    /// this instant (or sooner, with other input).
    Timeout(Instant),
}

/// What the media server tells the rest of the server.
#[derive(Debug, Clone)]
pub enum Event {
    /// A message for a peer's call page; one the loop cannot deliver is
    /// answered with [`Input::SignalStalled`].
    Signal(PeerId, Signal),
    /// Media for `room`'s subscribers (its recordings); one that does not
    /// keep up loses it.
    Media(RoomId, RoomMedia),
}

/// The media server: every peer, its rooms, their timers.
pub struct Sfu {
    /// The address in every peer's candidate: what str0m is told each
    /// datagram was sent to. Not the socket's own address: that is
    /// 0.0.0.0 when bound to all interfaces (and a private one behind
    /// NAT), and ICE discards a request whose destination is not one of
    /// its candidates.
    local: Endpoints,
    limits: Limits,
    peers: HashMap<PeerId, Peer>,
    /// The peers of each room, in join order.
    rooms: HashMap<RoomId, Vec<PeerId>>,
    queue: Vec<Propagate>,
    by_addr: HashMap<(Protocol, SocketAddr), PeerId>,
    timers: BinaryHeap<Reverse<(Instant, PeerId)>>,
    next_id: u64,
    stats: Arc<RtcStats>,
    /// What `poll_output` hands out next.
    out: VecDeque<Output>,
    /// The time of the input being handled.
    now: Instant,
}

/// How long the loop may sleep with no timer set.
const IDLE: Duration = Duration::from_secs(3600);

impl Sfu {
    /// A media server whose peers are told `local` as its addresses.
    pub fn new(local: Endpoints, limits: Limits, stats: Arc<RtcStats>, now: Instant) -> Self {
        Self {
            local,
            limits,
            peers: HashMap::new(),
            rooms: HashMap::new(),
            queue: Vec::new(),
            by_addr: HashMap::new(),
            timers: BinaryHeap::new(),
            next_id: 1,
            stats,
            out: VecDeque::new(),
            now,
        }
    }

    /// The next thing to do: a datagram to send, an event to pass on, or
    /// when to call again.
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        // Stale heap entries (a peer gone or woken since) cost one early
        // wake-up each; they are skipped in `timers_due`.
        let next = self.timers.peek().map(|Reverse((at, _))| *at);
        Output::Timeout(next.unwrap_or(self.now + IDLE))
    }

    fn transmit(&mut self, proto: Protocol, to: SocketAddr, data: Vec<u8>) {
        self.out.push_back(Output::Transmit { proto, to, data });
    }

    /// Whether a datagram from `from` over `proto` belongs to a peer (the
    /// loop closes a TCP connection nobody owns).
    pub fn knows(&self, proto: Protocol, from: SocketAddr) -> bool {
        self.by_addr.contains_key(&(proto, from))
    }

    fn datagram(&mut self, proto: Protocol, data: &[u8], from: SocketAddr) {
        self.stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
        let now = self.now;
        let destination = match proto {
            Protocol::Udp => Some(self.local.udp),
            Protocol::Tcp => self.local.tcp,
            _ => None,
        };
        let (Some(destination), Ok(contents)) = (destination, data.try_into()) else {
            self.stats.datagrams_stray.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let input = RtcInput::Receive(
            now,
            Receive {
                proto,
                source: from,
                destination,
                contents,
            },
        );
        let id = match self.by_addr.get(&(proto, from)) {
            Some(id) => Some(*id),
            // A new address: its first packet is a STUN check naming the
            // peer's ICE username; only then is every peer asked.
            None => self
                .peers
                .values()
                .find(|p| p.rtc.accepts(&input))
                .map(|p| p.id),
        };
        let Some(id) = id else {
            self.stats.datagrams_stray.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if !peer.addrs.contains(&(proto, from)) {
            peer.addrs.push((proto, from));
            self.by_addr.insert((proto, from), id);
        }
        peer.transport = proto;
        if let Err(e) = peer.rtc.handle_input(input) {
            tracing::info!(peer = %id, error = %e, "rtc: dropping a peer whose input was refused");
            self.stats.peers_dropped.fetch_add(1, Ordering::Relaxed);
            self.remove(id, Ended::Failed);
            return;
        }
        self.drive(id);
    }

    fn timers_due(&mut self) {
        let now = self.now;
        // Those due now, each woken once: a peer that asks to be woken at
        // this same instant again (str0m's pacer sending padding does) is
        // woken on the next call, at a later time, not in a loop here.
        let mut due = vec![];
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            due.push((at, id));
        }
        for (at, id) in due {
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if peer
                .lost_at
                .is_some_and(|t| now.saturating_duration_since(t) >= RECONNECT_GRACE)
            {
                self.remove(id, Ended::Disconnected);
                continue;
            }
            if !peer.connected
                && now.saturating_duration_since(peer.joined_at) >= self.limits.connect_timeout
            {
                tracing::info!(peer = %id, "rtc: dropping a peer that did not connect in time");
                self.stats.peers_timed_out.fetch_add(1, Ordering::Relaxed);
                self.remove(id, Ended::ConnectTimeout);
                continue;
            }
            // A stale entry: the peer asked for another time since.
            if peer.wake_at != Some(at) {
                continue;
            }
            peer.wake_at = None;
            if peer.rtc.handle_input(RtcInput::Timeout(now)).is_err() {
                self.stats.peers_dropped.fetch_add(1, Ordering::Relaxed);
                self.remove(id, Ended::Failed);
                continue;
            }
            self.drive(id);
        }
    }

    /// Polls one peer, then settles what that made for the others.
    fn drive(&mut self, id: PeerId) {
        self.poll(id);
        self.settle();
    }

    /// Polls one peer until it only waits: sends what it sends, passes on
    /// what it receives, and sets its next timer. Work for other peers goes
    /// to the queue.
    fn poll(&mut self, id: PeerId) {
        let now = self.now;
        loop {
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            if !peer.rtc.is_alive()
                || peer
                    .lost_at
                    .is_some_and(|at| now.saturating_duration_since(at) >= RECONNECT_GRACE)
            {
                self.remove(id, Ended::Disconnected);
                return;
            }
            let out = match peer.rtc.poll_output() {
                Ok(out) => out,
                Err(e) => {
                    tracing::info!(peer = %id, error = %e, "rtc: dropping a peer that failed");
                    self.stats.peers_dropped.fetch_add(1, Ordering::Relaxed);
                    self.remove(id, Ended::Failed);
                    return;
                }
            };
            match out {
                str0m::Output::Timeout(at) => {
                    if peer.wake_at != Some(at) {
                        peer.wake_at = Some(at);
                        self.timers.push(Reverse((at, id)));
                    }
                    return;
                }
                str0m::Output::Transmit(t) => {
                    self.transmit(t.proto, t.destination, t.contents.into());
                }
                str0m::Output::Event(ev) => match ev {
                    RtcEvent::Connected => {
                        peer.connected = true;
                        peer.request_keyframes(now);
                    }
                    RtcEvent::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        // The path dropped: keep the peer (and its tracks'
                        // files) a while for the network to come back.
                        tracing::info!(peer = %id, "rtc: a peer's network path dropped; waiting for it");
                        peer.lost_at.get_or_insert(now);
                        let at = now + RECONNECT_GRACE;
                        self.timers.push(Reverse((at, id)));
                    }
                    RtcEvent::IceConnectionStateChange(
                        IceConnectionState::Connected | IceConnectionState::Completed,
                    ) if peer.lost_at.is_some() => {
                        // Back: video restarts at a key frame.
                        tracing::info!(peer = %id, "rtc: a peer's network path is back");
                        peer.lost_at = None;
                        peer.request_keyframes(now);
                    }
                    RtcEvent::MediaAdded(m) => {
                        // The server's own send-only m-lines come back as
                        // MediaAdded too: only what the peer sends is a track.
                        if peer.outs.iter().any(|o| {
                            matches!(o.state, OutState::Negotiating(x) | OutState::Open(x) if x == m.mid)
                        }) || !m.direction.is_receiving()
                        {
                            continue;
                        }
                        peer.track_added(m.mid, m.kind);
                        // A WHIP publisher's tracks come after it connected:
                        // its video starts at a keyframe.
                        if peer.connected {
                            peer.request_keyframe(m.mid, now);
                        }
                        if let Some(t) = peer.tracks.iter().find(|t| t.mid == m.mid) {
                            let (room, info) = (peer.room, t.info.clone());
                            self.queue.push(Propagate::TrackAdded {
                                from: id,
                                mid: m.mid,
                                kind: m.kind,
                                screen: info.source.is_screen(),
                            });
                            self.publish(room, RoomMedia::Track(info));
                        }
                    }
                    RtcEvent::MediaData(d) => {
                        let sent = peer.frame(&d, now);
                        let room = peer.room;
                        self.queue.push(Propagate::Media {
                            from: id,
                            mid: d.mid,
                            params: d.params,
                            time: d.time,
                            arrived: d.network_time,
                            data: d.data,
                            rid: sent.rid,
                            keyframe: sent.keyframe,
                            rtp_us: sent.rtp_us,
                        });
                        // A codec tapedeck does not record (or a simulcast
                        // layer it does not keep) is forwarded only.
                        if let Some(frame) = sent.frame {
                            self.publish(room, RoomMedia::Frame(frame));
                        }
                    }
                    RtcEvent::MediaEgressStats(st) => {
                        peer.reports
                            .egress(st.mid, st.bytes, st.packets, st.loss, now);
                    }
                    RtcEvent::KeyframeRequest(req) => {
                        self.queue.push(Propagate::Keyframe { to: id, req });
                    }
                    _ => {}
                },
            }
        }
    }

    /// Does the queued work, polling the peers it touches, until none is left.
    fn settle(&mut self) {
        while !self.queue.is_empty() {
            for work in std::mem::take(&mut self.queue) {
                match work {
                    Propagate::Media {
                        from,
                        mid,
                        params,
                        time,
                        arrived,
                        data,
                        rid,
                        keyframe,
                        rtp_us,
                    } => {
                        let layer = rid.map(|rid| Layer {
                            rid,
                            keyframe,
                            rtp_us,
                        });
                        self.forward(from, mid, params, time, arrived, &data, layer)
                    }
                    Propagate::TrackAdded {
                        from,
                        mid,
                        kind,
                        screen,
                    } => {
                        for to in self.room_peers_of(from) {
                            if to != from
                                && let Some(p) = self.peers.get_mut(&to)
                            {
                                p.forward_from((from, mid), kind, screen);
                            }
                            self.negotiate(to);
                        }
                        self.tell_participants_of(from);
                    }
                    Propagate::Keyframe { to, req } => {
                        // A simulcast receiver asks for the layer it gets.
                        let from = self.peers.get(&to).and_then(|p| {
                            p.outs
                                .iter()
                                .find(|o| o.open_mid() == Some(req.mid))
                                .map(|o| (o.from, o.follow.current().or(o.follow.target())))
                        });
                        if let Some(((sender, smid), rid)) = from
                            && let Some(p) = self.peers.get_mut(&sender)
                        {
                            match rid {
                                Some(rid) => p.request_layer_keyframe(smid, Some(rid), self.now),
                                None => p.request_keyframe(smid, self.now),
                            }
                            self.poll(sender);
                        }
                    }
                }
            }
        }
    }

    /// The peers in the same room as `id` (itself included).
    fn room_peers_of(&self, id: PeerId) -> Vec<PeerId> {
        self.peers
            .get(&id)
            .and_then(|p| self.rooms.get(&p.room))
            .cloned()
            .unwrap_or_default()
    }

    /// Sends `id`'s call page the next offer, if its tracks changed.
    fn negotiate(&mut self, id: PeerId) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        if let Some(offer) = p.offer() {
            self.signal(id, Signal::Offer(offer));
            self.poll(id);
        }
    }

    /// A message to `id`'s call page (a page that does not read its
    /// socket is ended: [`Input::SignalStalled`]).
    fn signal(&mut self, id: PeerId, s: Signal) {
        if self.peers.get(&id).is_some_and(|p| p.signalled) {
            self.out.push_back(Output::Event(Event::Signal(id, s)));
        }
    }

    /// Tells every call page in `id`'s room who is there.
    fn tell_participants_of(&mut self, id: PeerId) {
        if let Some(room) = self.peers.get(&id).map(|p| p.room) {
            self.tell_participants(room);
        }
    }

    fn tell_participants(&mut self, room: RoomId) {
        let ids = self.rooms.get(&room).cloned().unwrap_or_default();
        let list: Vec<_> = ids
            .iter()
            .filter_map(|i| self.peers.get(i))
            .map(Peer::participant)
            .collect();
        for id in ids {
            self.signal(id, Signal::Participants(list.clone()));
        }
    }

    /// Hands `m` to `room`'s subscribers, through the loop.
    fn publish(&mut self, room: RoomId, m: RoomMedia) {
        self.out.push_back(Output::Event(Event::Media(room, m)));
    }

    /// Ends a peer: its page is told why, the others stop receiving it.
    fn remove(&mut self, id: PeerId, why: Ended) {
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        peer.rtc.disconnect();
        if peer.signalled {
            self.out
                .push_back(Output::Event(Event::Signal(id, Signal::Ended(why))));
        }
        for a in &peer.addrs {
            self.by_addr.remove(a);
        }
        self.stats.peers.fetch_sub(1, Ordering::Relaxed);
        self.publish(peer.room, RoomMedia::Left(id));
        let others = match self.rooms.get_mut(&peer.room) {
            Some(list) => {
                list.retain(|p| *p != id);
                list.clone()
            }
            None => vec![],
        };
        if others.is_empty() {
            self.rooms.remove(&peer.room);
        }
        for o in &others {
            if let Some(p) = self.peers.get_mut(o) {
                p.unforward(id);
            }
            self.negotiate(*o);
        }
        self.tell_participants(peer.room);
    }

    fn request_keyframes(&mut self, room: RoomId) {
        let now = self.now;
        for id in self.rooms.get(&room).cloned().unwrap_or_default() {
            if let Some(p) = self.peers.get_mut(&id) {
                p.request_keyframes(now);
            }
            self.drive(id);
        }
    }
}
